/**
 * Owners by name: a copy's entries get their source's owner and group by name, whatever ids the target gives those
 * names (rsync staged by a non-root persona, a btrfs stream's numeric ids, users configure created anew).
 */
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import { CHOWN_SCRIPT, OWNERS_SCRIPT, parseOwners, privileged, runPrivileged } from '../runbook/remote.js';
import type { StepContext } from '../runbook/types.js';

/**
 * Gives every entry under `target` on the target host the owner and group, by name, of the same entry under
 * `from` (on `source`, or on this machine when it is undefined); a name the target lacks stops the step.
 */
export async function applyOwners(
  ctx: StepContext,
  source: InventoryHost | undefined,
  from: string,
  target: string,
): Promise<void> {
  await chownAsListed(ctx, target, await listOwners(ctx, source, from));
}

/** Every entry's owner:group by name under `from` (on `source`, or on this machine when it is undefined). */
export async function listOwners(
  ctx: StepContext,
  source: InventoryHost | undefined,
  from: string,
): Promise<string> {
  let listing: string;
  if (source) {
    listing = (
      await runPrivileged(ctx.ssh, source, ['sh', '-c', OWNERS_SCRIPT, 'persona-owners', from], ctx.signal)
    ).stdout;
  } else {
    const { execa } = await import('execa');
    listing = String(
      (await execa('sh', ['-c', OWNERS_SCRIPT, 'persona-owners', from], { cancelSignal: ctx.signal })).stdout,
    );
  }
  return listing;
}

/** Gives the entries under `target` on the target host the owners `listing` (listOwners) names. */
export async function chownAsListed(ctx: StepContext, target: string, listing: string): Promise<void> {
  // Each owner's entries are disjoint from the others': one command per owner, all at once.
  await Promise.all([...parseOwners(listing)].map(([owner, paths]) => chownOne(ctx, target, owner, paths)));
}

async function chownOne(ctx: StepContext, target: string, owner: string, paths: string[]): Promise<void> {
  const r = await ctx.ssh.exec(
    ctx.target,
    privileged(ctx.target, ['sh', '-c', CHOWN_SCRIPT, 'persona-chown', target, owner]),
    { signal: ctx.signal, input: `${paths.join('\0')}\0` },
  );
  if (r.exitCode !== 0) {
    throw new PersonaError(
      'E_STEP_FAILED',
      `cannot give ${paths.length} entries of ${target} on ${ctx.target.name} their owner ${owner}: ${r.stderr.trim().split('\n').slice(-1)[0]}`,
      {
        hint: `Add the user and group to the profile's security_profile (users, groups) so configure creates them on ${ctx.target.name}, then resume.`,
      },
    );
  }
}
