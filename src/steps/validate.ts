/**
 * validate: start the application on the new host (unless deploy.status says it runs), wait for its health checks, then sample CPU, memory and disk
 * over the profile's window and hold them against its performance targets. A miss is reported with numbers.
 */
import { isPersonaError, PersonaError } from '../errors.js';
import { observeRun } from '../feedback/run-observation.js';
import { privileged, runPrivileged } from '../runbook/remote.js';
import type { Action, Step, StepContext, StepOutputs, StepPlan } from '../runbook/types.js';
import { sample, targetMisses, waitHealthy } from './checks.js';

const WRITE_TEST_MB = 16;

export const validateStep: Step = {
  kind: 'validate',
  dependsOn: ['migrate'],
  title: 'start and validate on the new host',
  mutates: true,
  attempts: 2,
  timeoutMs: (p) => (p.performance_metrics.window_seconds + 300) * 1000,
  describe(ctx) {
    const m = ctx.profile.performance_metrics;
    const targets = [
      m.cpu_utilization_pct && `CPU ≤ ${m.cpu_utilization_pct.max}%`,
      m.memory_usage_pct && `memory ≤ ${m.memory_usage_pct.max}%`,
      m.disk_io?.min_write_mbps !== undefined && `disk writes ≥ ${m.disk_io.min_write_mbps} MB/s`,
      m.disk_io?.max_util_pct !== undefined && `disk busy ≤ ${m.disk_io.max_util_pct}%`,
    ].filter(Boolean);
    return [
      `start on ${ctx.target.name}: ${ctx.profile.deploy.start.join(' ')}`,
      `health checks: ${ctx.profile.health_checks.map((c) => c.name ?? c.type).join(', ') || '(none)'}`,
      `targets over ${m.window_seconds} s: ${targets.join(', ') || '(none)'}`,
    ];
  },
  checks(ctx) {
    return [
      `${ctx.profile.health_checks.length} health check(s), then CPU, memory and disk sampled for ${ctx.profile.performance_metrics.window_seconds} s against the targets`,
    ];
  },
  async plan(ctx): Promise<StepPlan> {
    const { deploy } = ctx.profile;
    const start: Action = {
      id: 'start',
      title: `start ${ctx.profile.id} on ${ctx.target.name}: ${deploy.start.join(' ')}`,
      touches: ctx.target.name,
      mutates: true,
      // With deploy.status the next plan sees it running; without, the start runs once per run.
      observable: deploy.status !== undefined,
      async apply(c) {
        try {
          await runPrivileged(c.ssh, c.target, deploy.start, c.signal);
        } catch (error) {
          // A host the application does not start on is history for ranking (a lost lock is not).
          if (!(isPersonaError(error) && error.code === 'E_LOCK_LOST'))
            await observeRun(c, { source: 'validate', ok: false, missed: ['start'] });
          throw error;
        }
        c.log(`started ${c.profile.id} on ${c.target.name}`);
        await c.checkpoint('after-start');
        return { started: true };
      },
    };
    if (!deploy.status) return { actions: [start], notes: [] };
    const r = await ctx.ssh.exec(ctx.target, privileged(ctx.target, deploy.status), {
      timeoutMs: 30_000,
      signal: ctx.signal,
    });
    return {
      actions: r.exitCode === 0 ? [] : [start],
      notes: [
        `deploy.status on ${ctx.target.name} exits ${r.exitCode} (${r.exitCode === 0 ? 'running' : 'not running'})`,
      ],
    };
  },
  conclude: (ctx) => concludeValidate(ctx, { sample: true }),
};

/**
 * Healthy within 60 s, then (with `sample`) the performance targets over the profile's window. A planned move
 * samples nothing here: the window would be downtime; its monitor holds the targets after the switch.
 */
export async function concludeValidate(ctx: StepContext, how: { sample: boolean }): Promise<StepOutputs> {
  // A planned move is down until the application answers here: ask often.
  const health = await waitHealthy(ctx, 60_000, how.sample ? 500 : 50);
  for (const r of health.results) ctx.log(`health ${r.name}: ${r.ok ? 'ok' : 'FAILED'} (${r.detail})`);
  if (!health.ok) {
    await observeRun(ctx, { source: 'validate', ok: false, missed: ['health'] });
    const failing = health.results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.detail}`);
    throw new PersonaError(
      'E_STEP_FAILED',
      `${ctx.profile.id} on ${ctx.target.name} is not healthy after ${(health.waitedMs / 1000).toFixed(0)} s: ${failing.join('; ')}`,
    );
  }
  if (!how.sample) {
    // Nothing recorded for a pass here: this is downtime, and the monitor after the switch records what it saw.
    ctx.log('no performance sample before the switch (a planned move): monitor holds the targets after it');
    return { started: true, health: health.results, health_wait_ms: health.waitedMs };
  }
  const metrics = ctx.profile.performance_metrics;
  const wantsWrite = metrics.disk_io?.min_write_mbps !== undefined;
  const s = await sample(ctx, metrics.window_seconds, wantsWrite ? WRITE_TEST_MB : 0);
  ctx.log(
    `sampled ${s.window_s} s: CPU ${s.cpu_pct}%, memory ${s.memory_pct}%${s.disk_write_mbps !== undefined ? `, disk writes ${s.disk_write_mbps} MB/s` : ''}${s.disk_util_pct !== undefined ? `, disk busy ${s.disk_util_pct}%` : ''}`,
  );
  const misses = targetMisses(metrics, s);
  const seen = observeRun(ctx, {
    source: 'validate',
    ok: misses.length === 0,
    missed: misses.map((m) => m.code),
    sample: s,
  });
  const missed = misses.map((m) => m.message);
  // A pass is recorded while the run goes on to the switch (observeRun never throws); a miss before the step fails.
  if (missed.length > 0) {
    await seen;
    throw new PersonaError(
      'E_STEP_FAILED',
      `${ctx.target.name} misses ${ctx.profile.id}'s performance targets: ${missed.join('; ')}`,
      {
        hint: 'Choose another host, or adjust performance_metrics if the targets are wrong.',
      },
    );
  }
  return {
    started: true,
    health: health.results,
    health_wait_ms: health.waitedMs,
    metrics: s,
    targets: metrics,
  };
}
