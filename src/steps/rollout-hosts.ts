/**
 * What the rollout's steps share (steps/rollout.ts): the run's rollout facts and candidate, a step's context aimed at
 * one host with the profile to apply there, and configure's own plan and conclusion run host by host, each action
 * keyed by its host (`lab-1:file:/etc/app.conf`) so the journal tells the hosts apart, then a restart of each host.
 */
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import type { Profile } from '../profile/schema.js';
import { parseProfileText } from '../profile/validate.js';
import { runPrivileged } from '../runbook/remote.js';
import type { Action, Applied, StepContext, StepPlan } from '../runbook/types.js';
import { waitHealthy } from './checks.js';
import { configureStep } from './configure.js';

/** The run's rollout facts; a rollout journal always has them. */
export function facts(ctx: StepContext) {
  const r = ctx.journal.rollout;
  if (!r) throw new PersonaError('E_STATE', `run ${ctx.journal.run_id} is not a rollout`);
  return r;
}

export function candidateOf(ctx: StepContext): Profile {
  return parseProfileText(`run ${ctx.journal.run_id}'s candidate`, facts(ctx).candidate_text, ctx.journal.app)
    .profile;
}

/** The step's context aimed at one host, with the profile to apply there. */
export const onHost = (ctx: StepContext, host: InventoryHost, profile: Profile): StepContext => ({
  ...ctx,
  target: host,
  failed: host,
  profile,
});

/** An inner step's action, keyed by host so the journal tells the hosts apart, applied against that host. */
const wrap =
  (host: InventoryHost, profile: Profile) =>
  (a: Action): Action => ({
    ...a,
    id: `${host.name}:${a.id}`,
    apply: (c) => a.apply(onHost(c, host, profile)),
  });

/** What the actions done on one host returned, by the inner step's ids. */
function appliedOn(applied: Applied, host: string): Applied {
  const prefix = `${host}:`;
  return new Map(
    [...applied].filter(([id]) => id.startsWith(prefix)).map(([id, v]) => [id.slice(prefix.length), v]),
  );
}

/** Restarts the application so the new configuration takes effect; runs once per step and run (unobservable). */
const restart = (host: InventoryHost, profile: Profile): Action => ({
  id: `${host.name}:restart`,
  title: `restart ${profile.id} on ${host.name}: ${profile.deploy.stop.join(' ')}; ${profile.deploy.start.join(' ')}`,
  touches: host.name,
  mutates: true,
  observable: false,
  async apply(c) {
    await runPrivileged(c.ssh, host, profile.deploy.stop, c.signal);
    await runPrivileged(c.ssh, host, profile.deploy.start, c.signal);
    c.log(`restarted ${profile.id} on ${host.name}`);
    return { restarted: true };
  },
});

/** Configure's plan on each host, then a restart of each: one plan, with each host's facts kept by name. */
export async function configureOn(
  ctx: StepContext,
  hosts: readonly InventoryHost[],
  profile: Profile,
): Promise<StepPlan> {
  const plans = await Promise.all(hosts.map((h) => configureStep.plan(onHost(ctx, h, profile))));
  const blocked = plans.find((p) => p.blocked)?.blocked;
  return {
    actions: [
      ...plans.flatMap((p, i) => p.actions.map(wrap(hosts[i]!, profile))),
      ...hosts.map((h) => restart(h, profile)),
    ],
    notes: plans.flatMap((p, i) => p.notes.map((n) => `${hosts[i]!.name}: ${n}`)),
    facts: Object.fromEntries(plans.map((p, i) => [hosts[i]!.name, p.facts])),
    ...(blocked ? { blocked } : {}),
  };
}

/** Configure's conclusion on each host (throws when one is not configured as the profile says). */
export async function concludeConfigure(
  ctx: StepContext,
  hosts: readonly InventoryHost[],
  profile: Profile,
  done: { plan: StepPlan; applied: Applied },
): Promise<void> {
  for (const h of hosts)
    await configureStep.conclude(onHost(ctx, h, profile), {
      plan: { actions: [], notes: [], facts: (done.plan.facts?.[h.name] ?? undefined) as StepPlan['facts'] },
      applied: appliedOn(done.applied, h.name),
    });
}

export const hostsOf = (ctx: StepContext, names: readonly string[]) => names.map((n) => ctx.findHost(n));

/** Healthy within the rollout's wait, else throws naming the host and the checks. */
export async function requireHealthy(ctx: StepContext, host: InventoryHost, profile: Profile): Promise<void> {
  const health = await waitHealthy(onHost(ctx, host, profile), facts(ctx).health_wait_s * 1000);
  for (const r of health.results)
    ctx.log(`${host.name}: health ${r.name}: ${r.ok ? 'ok' : 'FAILED'} (${r.detail})`);
  if (!health.ok)
    throw new PersonaError(
      'E_STEP_FAILED',
      `${profile.id} on ${host.name} is not healthy: ${health.results
        .filter((r) => !r.ok)
        .map((r) => `${r.name}: ${r.detail}`)
        .join('; ')}`,
    );
}
