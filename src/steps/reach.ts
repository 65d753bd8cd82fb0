import type { InventoryHost } from '../hosts/inventory.js';
import { SshError, type SshFailureKind } from '../hosts/ssh.js';
import type { Journal, StepContext } from '../runbook/types.js';

export type Reach = { ok: true } | { ok: false; kind: SshFailureKind; reason: string };

/**
 * How long a host that timed out is taken as timing out still, within one run of one process: the fence's plans
 * and the migrate plan each waited the whole connect timeout for the same dead host (5 s each in the demo). Only a
 * timeout is remembered: a host that answers, refuses or has no route is asked again, since that costs nothing,
 * and an answer is what must never be missed. A resumed run (a new process) asks again.
 */
export const TIMEOUT_MEMORY_MS = 30_000;

const timedOut = new WeakMap<Readonly<Journal>, Map<string, { at: number; reach: Reach }>>();

/** Whether the host answers over SSH right now; the kind of failure and its reason when it does not. */
export async function reachable(ctx: StepContext, host: InventoryHost): Promise<Reach> {
  const seen = timedOut.get(ctx.journal) ?? new Map<string, { at: number; reach: Reach }>();
  timedOut.set(ctx.journal, seen);
  const earlier = seen.get(host.name);
  const age = earlier ? performance.now() - earlier.at : Number.POSITIVE_INFINITY;
  if (earlier && !earlier.reach.ok && age < TIMEOUT_MEMORY_MS)
    return {
      ...earlier.reach,
      reason: `${earlier.reach.reason} (${(age / 1000).toFixed(1)} s ago in this run: not waited for again)`,
    };
  try {
    await ctx.ssh.exec(host, ['true'], { timeoutMs: 10_000, signal: ctx.signal });
    seen.delete(host.name);
    return { ok: true };
  } catch (error) {
    if (error instanceof SshError && error.kind !== 'cancelled') {
      const reach: Reach = { ok: false, kind: error.kind, reason: error.message };
      if (error.kind === 'timeout') seen.set(host.name, { at: performance.now(), reach });
      else seen.delete(host.name);
      return reach;
    }
    throw error;
  }
}
