/**
 * What validate and monitor saw on the new host, kept as an observation (feedback/observations.ts) for ranking
 * hosts next time. History, not a decision: recording it never fails, stops or holds up a run; a store that refuses
 * or does not answer costs a warning line in the step's log. Once per process, when monitor records (after the
 * switch), observations past their retention are pruned.
 */
import type { StepContext } from '../runbook/types.js';
import type { Sample } from '../steps/checks.js';
import {
  DEFAULT_RETENTION_DAYS,
  type Observation,
  pruneObservations,
  recordObservations,
} from './observations.js';

/** The longest a run waits for the store to take an observation (or to prune). */
const STORE_WAIT_MS = 5_000;
const DAY_MS = 86_400_000;

let prunedThisProcess = false;

export interface RunSeen {
  source: 'validate' | 'monitor';
  ok: boolean;
  missed?: readonly string[];
  sample?: Sample;
}

/** The work's result, or an error once STORE_WAIT_MS passed (the work is left to finish on its own). */
export async function withinWait<T>(work: Promise<T>, what: string): Promise<T> {
  // The work may go on after the wait: its rejection must not go unhandled.
  work.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${STORE_WAIT_MS / 1000} s to ${what}`)),
      STORE_WAIT_MS,
    );
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

export function runObservation(ctx: StepContext, seen: RunSeen): Observation {
  const s = seen.sample;
  return {
    at: ctx.now().toISOString(),
    app: ctx.profile.id,
    host: ctx.target.name,
    source: seen.source,
    run_id: ctx.journal.run_id,
    ok: seen.ok,
    ...(seen.missed && seen.missed.length > 0 ? { missed: [...new Set(seen.missed)] } : {}),
    ...(s
      ? {
          metrics: {
            cpu_pct: s.cpu_pct,
            memory_pct: s.memory_pct,
            memory_used_bytes: s.memory_used_bytes,
            ...(s.disk_write_mbps !== undefined ? { disk_write_mbps: s.disk_write_mbps } : {}),
            ...(s.disk_util_pct !== undefined ? { disk_util_pct: s.disk_util_pct } : {}),
          },
        }
      : {}),
    profile_version: ctx.journal.profile.version,
    vantage: 'persona',
  };
}

/**
 * Records what the step saw. Through the run's own backend, so with the run's lock fence: a driver that lost its
 * lock (taken over, suspended) adds no history either, since what it saw may be cut short by the loss; the cost is
 * one missing observation, said in the log. Skipped when the run is interrupted: that says nothing of the host.
 */
export async function observeRun(ctx: StepContext, seen: RunSeen): Promise<void> {
  if (ctx.signal.aborted) return;
  const o = runObservation(ctx, seen);
  try {
    await withinWait(recordObservations(ctx.backend, [o]), 'the observation');
  } catch (error) {
    ctx.log(
      `warning: ${seen.source} of ${o.app} on ${o.host} not recorded for ranking in ${ctx.backend.describe}: ${(error as Error).message}; the run goes on`,
    );
    return;
  }
  // Pruning lists every observation: only after the switch (monitor), never while the application is down.
  if (prunedThisProcess || seen.source !== 'monitor') return;
  prunedThisProcess = true;
  const days = ctx.observationRetentionDays ?? DEFAULT_RETENTION_DAYS;
  try {
    await withinWait(
      pruneObservations(ctx.backend, new Date(ctx.now().getTime() - days * DAY_MS)),
      'pruning old observations',
    );
  } catch (error) {
    ctx.log(`warning: observations older than ${days} days not pruned: ${(error as Error).message}`);
  }
}
