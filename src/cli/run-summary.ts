import type { RunSummary } from '../recover/summary.js';
import type { HumanOut } from '../ui/output.js';

const secs = (ms?: number) => (ms === undefined ? '' : `${(ms / 1000).toFixed(1)} s`);

const WIDTH = 30;

/** The step's bar on the run's time axis: steps that overlap have bars that overlap. */
export function timelineBar(step: { start_ms?: number; duration_ms?: number }, total: number): string {
  if (!(total > 0) || !step.duration_ms) return '';
  const from = Math.min(WIDTH - 1, Math.round(((step.start_ms ?? 0) / total) * WIDTH));
  const width = Math.max(1, Math.min(WIDTH - from, Math.round((step.duration_ms / total) * WIDTH)));
  return `${' '.repeat(from)}${'█'.repeat(width)}`;
}

/** The per-phase timeline of a run. */
export function renderSummary(out: HumanOut, s: RunSummary): void {
  if (s.status === 'dry-run') return;
  out.line();
  out.line(
    out.c.bold(
      `${s.app}: ${s.rollout ? `rollout (canary ${s.rollout.canary.join(', ')}, control ${s.rollout.control.join(', ')})` : `${s.failed_host} → ${s.target_host}`}${s.kind === 'migrate' ? ' (planned move)' : ''}, run ${s.run_id}: ${s.status === 'succeeded' ? out.c.green(s.status) : out.c.red(s.status)}`,
    ),
  );
  const total = s.total_ms ?? 0;
  out.table(
    ['phase', 'status', 'from', 'took', ''],
    s.steps.map((step) => [
      step.kind,
      step.status,
      step.start_ms === undefined ? '' : `+${secs(step.start_ms)}`,
      secs(step.duration_ms),
      timelineBar(step, total),
    ]),
  );
  if (s.downtime_ms !== undefined)
    out.line(
      `downtime ${(s.downtime_ms / 1000).toFixed(2)} s: the longest a client through the balancer went without a good answer (20 Hz)`,
    );
  out.line(
    `total ${secs(total)} (wall time; steps may overlap)${s.journal ? out.c.dim(`; journal ${s.journal}`) : ''}`,
  );
}
