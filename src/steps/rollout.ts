/**
 * The rollout runbook (persona profile rollout): `canary` configures the candidate profile on the canary hosts,
 * restarts the application there and asks its health checks (a failure is evidence for compare, not the run's
 * failure); `compare` samples health, CPU and memory on canary and control over --window and decides
 * (rollout/compare.ts); then `promote` writes the candidate as the new profile version (compare-and-set against the
 * version the rollout started from) and rolls it to the control hosts in batches, or `revert` re-applies the old
 * version on the canary hosts. Only one of the two has work: the other plans nothing. Host by host: rollout-hosts.ts.
 */
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import type { Profile } from '../profile/schema.js';
import {
  type Comparison,
  compareGroups,
  type HostObservation,
  missesOf,
  tableLines,
} from '../rollout/compare.js';
import type { Action, Step, StepContext, StepPlan } from '../runbook/types.js';
import { ProfileStore } from '../stores/profile-store.js';
import { runHealthChecks, sample, waitHealthy } from './checks.js';
import {
  candidateOf,
  concludeConfigure,
  configureOn,
  facts,
  hostsOf,
  onHost,
  requireHealthy,
} from './rollout-hosts.js';

export const canaryStep: Step = {
  kind: 'canary',
  title: 'apply the candidate on the canary hosts',
  mutates: true,
  timeoutMs: () => 30 * 60_000,
  describe: (ctx) => [
    `configure the candidate on ${facts(ctx).canary.join(', ')}, restart ${ctx.profile.id} there, then its health checks and targets`,
  ],
  checks: (ctx) => [`configured as the candidate says, then healthy within ${facts(ctx).health_wait_s} s`],
  plan: (ctx) => configureOn(ctx, hostsOf(ctx, facts(ctx).canary), candidateOf(ctx)),
  async conclude(ctx, done) {
    const candidate = candidateOf(ctx);
    const canary = hostsOf(ctx, facts(ctx).canary);
    await concludeConfigure(ctx, canary, candidate, done);
    // A canary that fails its validation is the comparison's evidence, not the run's failure: compare decides.
    const validated: Record<string, { healthy: boolean; failures: number }> = {};
    for (const h of canary) {
      const health = await waitHealthy(onHost(ctx, h, candidate), facts(ctx).health_wait_s * 1000);
      for (const r of health.results)
        ctx.log(`${h.name}: health ${r.name}: ${r.ok ? 'ok' : 'FAILED'} (${r.detail})`);
      validated[h.name] = { healthy: health.ok, failures: health.results.filter((r) => !r.ok).length };
    }
    return { validated };
  },
};

/** One host over the window: its health before and after, and its sample against the candidate's targets. */
async function observe(
  ctx: StepContext,
  host: InventoryHost,
  group: HostObservation['group'],
  profile: Profile,
  targets: Profile['performance_metrics'],
): Promise<HostObservation> {
  const at = onHost(ctx, host, profile);
  const failed = async () => (await runHealthChecks(at)).filter((r) => !r.ok).length;
  const before = await failed();
  const s = await sample(at, facts(ctx).window_s, 0);
  const after = await failed();
  return { host: host.name, group, health_failures: before + after, sample: s, misses: missesOf(targets, s) };
}

export const compareStep: Step = {
  kind: 'compare',
  title: 'compare canary and control',
  mutates: false,
  timeoutMs: (p) => (p.performance_metrics.window_seconds + 600) * 1000,
  describe: (ctx) => {
    const f = facts(ctx);
    return [
      `sample health, CPU and memory on ${f.canary.join(', ')} (canary) and ${f.control.join(', ')} (control) over ${f.window_s} s`,
      `revert on a canary health failure, a target the canary misses and the control meets${f.max_cpu_increase_pct !== undefined ? `, CPU +${f.max_cpu_increase_pct} points` : ''}${f.max_memory_increase_pct !== undefined ? `, memory +${f.max_memory_increase_pct} points` : ''}; else promote`,
    ];
  },
  checks: () => ['the comparison table and the decision (promote or revert)'],
  plan: async () => ({ actions: [], notes: [] }),
  async conclude(ctx) {
    const f = facts(ctx);
    const candidate = candidateOf(ctx);
    const targets = candidate.performance_metrics;
    const seen = await Promise.all([
      ...hostsOf(ctx, f.canary).map((h) => observe(ctx, h, 'canary', candidate, targets)),
      ...hostsOf(ctx, f.control).map((h) => observe(ctx, h, 'control', ctx.profile, targets)),
    ]);
    const validated = (ctx.previous('canary')?.outputs?.validated ?? {}) as Record<
      string,
      { failures: number }
    >;
    for (const o of seen) if (o.group === 'canary') o.health_failures += validated[o.host]?.failures ?? 0;
    const comparison = compareGroups(seen, {
      ...(f.max_cpu_increase_pct !== undefined ? { max_cpu_increase_pct: f.max_cpu_increase_pct } : {}),
      ...(f.max_memory_increase_pct !== undefined
        ? { max_memory_increase_pct: f.max_memory_increase_pct }
        : {}),
    });
    for (const line of tableLines(comparison)) ctx.log(line);
    return { ...comparison, hosts: seen };
  },
};

/** The comparison's decision; absent before it ran (a dry run). */
const decisionOf = (ctx: StepContext) =>
  (ctx.previous('compare')?.outputs as Comparison | undefined)?.decision;

const batches = <T>(xs: readonly T[], n: number): T[][] =>
  Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n));

/** Writes the candidate as the new version, only over the version the rollout started from. */
function writeVersion(ctx: StepContext, text: string, from: number): Action {
  return {
    id: 'profile:write',
    title: `write the candidate as ${ctx.journal.app}'s next version (only over version ${from})`,
    touches: 'store',
    mutates: true,
    observable: true,
    async apply(c) {
      const written = await new ProfileStore(c.backend).put(
        c.journal.app,
        text,
        { version: from },
        {
          author: c.journal.who,
          at: c.now().toISOString(),
          message: `rollout ${c.journal.run_id}: promoted after the canary comparison`,
        },
      );
      c.log(`wrote ${c.journal.app} version ${written.version}`);
      return { version: written.version };
    },
  };
}

export const promoteStep: Step = {
  kind: 'promote',
  dependsOn: ['compare'],
  title: 'promote: write the new version and roll it to the rest',
  mutates: true,
  timeoutMs: () => 60 * 60_000,
  describe: (ctx) => [
    `if the comparison says promote: write the candidate as version ${facts(ctx).from_version + 1}, then configure, restart and check ${facts(ctx).control.join(', ')} in batches of ${facts(ctx).batch}`,
  ],
  async plan(ctx) {
    const f = facts(ctx);
    const decision = decisionOf(ctx);
    if (decision !== 'promote')
      return {
        actions: [],
        notes: [
          decision
            ? `the comparison decided ${decision}: nothing to promote`
            : 'decided after the comparison',
        ],
      };
    const candidate = candidateOf(ctx);
    const stored = await new ProfileStore(ctx.backend).require(ctx.journal.app);
    const notes: string[] = [];
    const actions: Action[] = [];
    if (stored.text === f.candidate_text)
      notes.push(`${ctx.journal.app} version ${stored.version} is the candidate`);
    else if (stored.version !== f.from_version)
      return {
        actions: [],
        notes,
        blocked: {
          message: `${ctx.journal.app}'s profile changed while the rollout ran: version ${stored.version}, the rollout started from ${f.from_version}`,
          hint: 'Nothing was promoted; the control hosts still run the old version. Revert the canary by hand (profile rollout with the current version), or start a new rollout.',
        },
      };
    else actions.push(writeVersion(ctx, f.candidate_text, f.from_version));
    const all: StepPlan['facts'] = {};
    for (const [i, group] of batches(hostsOf(ctx, f.control), f.batch).entries()) {
      const p = await configureOn(ctx, group, candidate);
      if (p.blocked) return { actions: [], notes: [...notes, ...p.notes], blocked: p.blocked };
      notes.push(...p.notes);
      Object.assign(all, p.facts);
      actions.push(...p.actions, {
        id: `batch-${i + 1}:health`,
        title: `health of batch ${i + 1} (${group.map((h) => h.name).join(', ')})`,
        touches: group.map((h) => h.name).join(', '),
        mutates: false,
        observable: true,
        async apply(c) {
          for (const h of group) await requireHealthy(c, h, candidate);
          return { healthy: group.map((h) => h.name) };
        },
      });
    }
    return { actions, notes, facts: all };
  },
  async conclude(ctx, done) {
    if (decisionOf(ctx) !== 'promote') return { promoted: false };
    const f = facts(ctx);
    await concludeConfigure(ctx, hostsOf(ctx, f.control), candidateOf(ctx), done);
    const stored = await new ProfileStore(ctx.backend).require(ctx.journal.app);
    if (stored.text !== f.candidate_text)
      throw new PersonaError(
        'E_STEP_FAILED',
        `${ctx.journal.app}'s stored profile is not the candidate (version ${stored.version})`,
      );
    return { promoted: true, version: stored.version, hosts: [...f.canary, ...f.control] };
  },
};

export const revertStep: Step = {
  kind: 'revert',
  dependsOn: ['compare'],
  title: 'revert: re-apply the current version on the canary hosts',
  mutates: true,
  timeoutMs: () => 30 * 60_000,
  describe: (ctx) => [
    `if the comparison says revert: configure version ${facts(ctx).from_version} on ${facts(ctx).canary.join(', ')}, restart, check health`,
  ],
  async plan(ctx) {
    const decision = decisionOf(ctx);
    if (decision !== 'revert')
      return {
        actions: [],
        notes: [
          decision ? `the comparison decided ${decision}: nothing to revert` : 'decided after the comparison',
        ],
      };
    return configureOn(ctx, hostsOf(ctx, facts(ctx).canary), ctx.profile);
  },
  async conclude(ctx, done) {
    if (decisionOf(ctx) !== 'revert') return { reverted: false };
    const canary = hostsOf(ctx, facts(ctx).canary);
    await concludeConfigure(ctx, canary, ctx.profile, done);
    for (const h of canary) await requireHealthy(ctx, h, ctx.profile);
    return { reverted: true, version: facts(ctx).from_version, hosts: facts(ctx).canary };
  },
};

/** The rollout's runbook, in order. */
export const rolloutRunbook: readonly Step[] = [canaryStep, compareStep, promoteStep, revertStep];

/** The comparison as lines, for the summary. */
export { tableLines };
