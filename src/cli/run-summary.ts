import type { RunSummary } from '../recover/summary.js';
import type { HumanOut } from '../ui/output.js';

const secs = (ms?: number) => (ms === undefined ? '' : `${(ms / 1000).toFixed(1)} s`);

/** The per-phase timeline of a run. */
export function renderSummary(out: HumanOut, s: RunSummary): void {
  if (s.status === 'dry-run') return;
  out.line();
  out.line(
    out.c.bold(
      `${s.app}: ${s.failed_host} → ${s.target_host}, run ${s.run_id}: ${s.status === 'succeeded' ? out.c.green(s.status) : out.c.red(s.status)}`,
    ),
  );
  const total = s.total_ms ?? 0;
  out.table(
    ['phase', 'status', 'took', ''],
    s.steps.map((step) => [
      step.kind,
      step.status,
      secs(step.duration_ms),
      total > 0 && step.duration_ms
        ? '█'.repeat(Math.max(1, Math.round((step.duration_ms / total) * 30)))
        : '',
    ]),
  );
  out.line(`total ${secs(total)}${s.journal ? out.c.dim(`; journal ${s.journal}`) : ''}`);
}
