import type { InventoryHost } from '../hosts/inventory.js';
import { SshError } from '../hosts/ssh.js';
import type { StepContext } from '../runbook/types.js';

/** Whether the host answers over SSH right now; the reason when it does not. */
export async function reachable(
  ctx: StepContext,
  host: InventoryHost,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    await ctx.ssh.exec(host, ['true'], { timeoutMs: 10_000, signal: ctx.signal });
    return { ok: true };
  } catch (error) {
    if (error instanceof SshError && error.kind !== 'cancelled') return { ok: false, reason: error.message };
    throw error;
  }
}
