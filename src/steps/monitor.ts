/**
 * monitor: watch the application on its new host for the profile's monitor window after traffic moved, and keep
 * what was seen for the record (and for ranking hosts next time).
 */
import { PersonaError } from '../errors.js';
import { observeRun } from '../feedback/run-observation.js';
import type { Step, StepContext, StepOutputs } from '../runbook/types.js';
import { sleep } from '../util/sleep.js';
import { runHealthChecks, sample, targetMisses } from './checks.js';

/**
 * A planned move's downtime as a client saw it: the longest gap between good answers through the balancer, from
 * the prober the run started before its steps (undefined in a recovery; noted when a resume could not measure it).
 */
async function clientDowntime(ctx: StepContext): Promise<StepOutputs | undefined> {
  if (ctx.journal.kind !== 'migrate') return undefined;
  if (!ctx.clientView) {
    ctx.log('downtime not measured: no prober ran through this part of the run (a resume, or no verify_url)');
    return undefined;
  }
  const r = await ctx.clientView.stop();
  const longest = r.longest?.ms ?? 0;
  ctx.log(
    `downtime seen by a client through the balancer: ${(longest / 1000).toFixed(2)} s (${r.url} at ${r.hz} Hz: ${r.requests} requests, ${r.bad} bad, ${r.gaps.length} gap(s))`,
  );
  return {
    longest_ms: Math.round(longest),
    gaps: r.gaps.length,
    requests: r.requests,
    bad: r.bad,
    hz: r.hz,
    url: r.url,
    mean_interval_ms: Math.round(r.mean_interval_ms * 10) / 10,
  };
}

export const monitorStep: Step = {
  kind: 'monitor',
  dependsOn: ['switch'],
  title: 'monitor after the switch',
  mutates: false,
  timeoutMs: (p) => (p.performance_metrics.monitor_seconds + 300) * 1000,
  describe(ctx) {
    return [
      `health checks and resource samples on ${ctx.target.name} for ${ctx.profile.performance_metrics.monitor_seconds} s`,
    ];
  },
  checks(ctx) {
    return [
      `health checks and resource samples on ${ctx.target.name} for ${ctx.profile.performance_metrics.monitor_seconds} s`,
    ];
  },
  /** Nothing to change: monitor only watches (its conclusion). */
  async plan() {
    return { actions: [], notes: [] };
  },
  async conclude(ctx) {
    const seconds = ctx.profile.performance_metrics.monitor_seconds;
    const started = Date.now();
    // Resources are sampled over the whole window while the health checks run.
    const sampling = sample(ctx, Math.max(1, seconds), 0);
    // Awaited after the window; if a health check throws first (abort), its rejection must not go unhandled.
    sampling.catch(() => {});
    let rounds = 0;
    let failures = 0;
    const failed: string[] = [];
    do {
      rounds++;
      for (const r of await runHealthChecks(ctx)) {
        if (!r.ok) {
          failures++;
          failed.push(`${((Date.now() - started) / 1000).toFixed(1)}s ${r.name}: ${r.detail}`);
        }
      }
      if (rounds === 1) await ctx.checkpoint('after-first-round');
      const left = seconds * 1000 - (Date.now() - started);
      if (left > 0) await sleep(Math.min(2000, left), ctx.signal);
    } while (Date.now() - started < seconds * 1000 && !ctx.signal.aborted);
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const s = await sampling;
    const misses = targetMisses(ctx.profile.performance_metrics, s);
    const missed = misses.map((m) => m.message);
    await observeRun(ctx, {
      source: 'monitor',
      ok: failures === 0 && misses.length === 0,
      missed: [...(failures > 0 ? ['health'] : []), ...misses.map((m) => m.code)],
      sample: s,
    });
    const downtime = await clientDowntime(ctx);
    const outputs = {
      ...(downtime ? { downtime } : {}),
      seconds: (Date.now() - started) / 1000,
      rounds,
      health_failures: failures,
      failures: failed.slice(0, 20),
      metrics: s,
      missed_targets: missed,
      healthy: failures === 0 && missed.length === 0,
    };
    ctx.log(
      `watched ${outputs.seconds.toFixed(0)} s: ${rounds} rounds, ${failures} failed health checks; CPU ${s.cpu_pct}%, memory ${s.memory_pct}%`,
    );
    if (failures > 0) {
      throw new PersonaError(
        'E_STEP_FAILED',
        `${ctx.profile.id} on ${ctx.target.name} failed ${failures} health check(s) after the switch: ${failed.slice(0, 3).join('; ')}`,
      );
    }
    if (missed.length > 0) ctx.log(`after the switch: ${missed.join('; ')}`);
    return outputs;
  },
};
