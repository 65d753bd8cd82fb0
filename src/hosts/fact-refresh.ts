/**
 * Filling the fact cache (fact-cache.ts): a probe whose answers are written to the store. `hosts probe --cache`
 * calls it, and watch keeps the cache fresh with it.
 */
import type { Requirements } from '../broker/broker.js';
import type { Context } from '../context.js';
import { factInputs, writeFacts } from './fact-cache.js';
import type { InventoryHost } from './inventory.js';
import type { ProbeResult } from './probe.js';
import { probeWithProgress } from './probe-progress.js';

/**
 * Probes these hosts for a profile's requirements and writes what they answered to the fact cache (one
 * transaction per 48 hosts); the hosts that did not answer lose their entry. For watch, which keeps the cache
 * fresh, and `hosts probe --cache`.
 */
export async function refreshFacts(
  ctx: Context,
  hosts: readonly InventoryHost[],
  req: Pick<Requirements, 'dataPath' | 'packages'>,
): Promise<{ results: ProbeResult[]; written: number }> {
  const results = await probeWithProgress(ctx, hosts, { dataPath: req.dataPath, packages: req.packages });
  return { results, written: await cacheFacts(ctx, results, req) };
}

/** Writes probe results to the fact cache. */
export async function cacheFacts(
  ctx: Context,
  results: readonly ProbeResult[],
  req: Pick<Requirements, 'dataPath' | 'packages'>,
): Promise<number> {
  const store = await ctx.store();
  return writeFacts(store.backend, results, factInputs(req.dataPath, req.packages), ctx.now());
}
