import type { InventoryHost } from '../hosts/inventory.js';
import { SshError, type SshFailureKind } from '../hosts/ssh.js';
import type { StepContext } from '../runbook/types.js';

export type Reach = { ok: true } | { ok: false; kind: SshFailureKind; reason: string };

/** Whether the host answers over SSH right now; the kind of failure and its reason when it does not. */
export async function reachable(ctx: StepContext, host: InventoryHost): Promise<Reach> {
  try {
    await ctx.ssh.exec(host, ['true'], { timeoutMs: 10_000, signal: ctx.signal });
    return { ok: true };
  } catch (error) {
    if (error instanceof SshError && error.kind !== 'cancelled')
      return { ok: false, kind: error.kind, reason: error.message };
    throw error;
  }
}
