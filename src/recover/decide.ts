/**
 * The facts a decision ranks from, and the target it acts on. Hosts with fresh facts in the fact cache
 * (hosts/fact-cache.ts, younger than max_fact_age) are ranked from them; only the others are probed now. The host
 * chosen is then probed again before anything acts on it: its facts now must still pass the hard filters, else the
 * choice is made again without it (and after two such misses, every host ranked from the cache is probed).
 *
 * Reading the cache never fails a decision: an unreadable store or entry means probing, as without a cache.
 * Nothing here writes the cache: recover, migrate and hosts rank only read it (a dry run changes nothing);
 * `hosts probe --cache` and watch (refreshFacts) write it.
 */
import type { RankedHost, Requirements } from '../broker/broker.js';
import type { Context } from '../context.js';
import { PersonaError } from '../errors.js';
import { factInputs, readFreshFacts } from '../hosts/fact-cache.js';
import type { InventoryHost } from '../hosts/inventory.js';
import type { ProbeResult } from '../hosts/probe.js';
import { probeWithProgress } from '../hosts/probe-progress.js';

/** After this many chosen targets failed their re-probe, the cache is not trusted for the rest of the decision. */
const MISSES_BEFORE_FULL_PROBE = 2;
/** The largest bound, as the max_fact_age setting's (a day). */
const MAX_FACT_AGE_LIMIT_S = 86_400;

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The probe's inputs for a profile's requirements. */
const probeOptions = (req: Requirements) => ({ dataPath: req.dataPath, packages: req.packages });

/** The max_fact_age setting, or the command's --max-fact-age (seconds; 0: no cache). */
export function maxFactAge(ctx: Context, flag: unknown): number {
  if (flag === undefined) return ctx.settings.values.max_fact_age.value;
  const n = Number(flag);
  if (!Number.isInteger(n) || n < 0 || n > MAX_FACT_AGE_LIMIT_S)
    throw new PersonaError(
      'E_USAGE',
      `--max-fact-age ${String(flag)}: must be a whole number of seconds from 0 to ${MAX_FACT_AGE_LIMIT_S}`,
    );
  return n;
}

/**
 * Facts for every candidate, in the candidates' order: fresh cached facts where there are some, a probe now for
 * the rest. maxAgeS 0: every candidate is probed.
 */
export async function gatherFacts(
  ctx: Context,
  candidates: readonly InventoryHost[],
  req: Requirements,
  maxAgeS: number,
): Promise<ProbeResult[]> {
  const fresh = await readCache(ctx, candidates, req, maxAgeS);
  const toProbe = candidates.filter((h) => !fresh.has(h.name));
  if (fresh.size > 0) {
    const oldest = Math.max(...[...fresh.values()].map((r) => (r.ok ? (r.cached?.ageMs ?? 0) : 0)));
    ctx.reporter.info(
      `facts of ${plural(fresh.size, 'host')} from the cache (the oldest ${Math.round(oldest / 1000)} s old, bound ${maxAgeS} s); probing ${toProbe.length}; the target is probed again before acting`,
    );
  }
  const probed = toProbe.length > 0 ? await probeWithProgress(ctx, toProbe, probeOptions(req)) : [];
  const byName = new Map<string, ProbeResult>([...fresh, ...probed.map((r) => [r.host.name, r] as const)]);
  return candidates.map((h) => byName.get(h.name)!);
}

async function readCache(
  ctx: Context,
  candidates: readonly InventoryHost[],
  req: Requirements,
  maxAgeS: number,
): Promise<Map<string, ProbeResult>> {
  if (maxAgeS <= 0) return new Map();
  try {
    const store = await ctx.store();
    const { fresh, note } = await readFreshFacts(
      store.backend,
      candidates,
      factInputs(req.dataPath, req.packages),
      { maxAgeMs: maxAgeS * 1000, now: ctx.now() },
    );
    if (note) ctx.reporter.warn(note);
    return new Map([...fresh].map(([name, c]) => [name, c.result]));
  } catch (error) {
    ctx.reporter.warn(`the fact cache could not be read (${(error as Error).message}); probing every host`);
    return new Map();
  }
}

/** Probes these hosts now and puts their results in place of the cached ones. */
async function reprobe(
  ctx: Context,
  results: readonly ProbeResult[],
  hosts: readonly InventoryHost[],
  req: Requirements,
): Promise<ProbeResult[]> {
  const now = await probeWithProgress(ctx, hosts, probeOptions(req));
  const byName = new Map(now.map((r) => [r.host.name, r]));
  return results.map((r) => byName.get(r.host.name) ?? r);
}

/** Every host ranked from the cache, probed now (before provisioning a host because none fits, say). */
export async function probeCached(
  ctx: Context,
  results: readonly ProbeResult[],
  req: Requirements,
  why: string,
): Promise<ProbeResult[]> {
  const cached = results.filter((r) => r.ok && r.cached).map((r) => r.host);
  if (cached.length === 0) return [...results];
  ctx.reporter.info(`${why}: probing the ${plural(cached.length, 'host')} ranked from the cache`);
  return reprobe(ctx, results, cached, req);
}

/**
 * Where a cached fact would decide alone, it is checked first: the host named by --target (or --to) is probed now,
 * and when no host fits by the facts at hand, every host ranked from the cache is probed (a stale entry must not
 * refuse the recovery, nor provision a host, when a host now fits).
 */
export async function probeDecisive(
  ctx: Context,
  first: readonly ProbeResult[],
  req: Requirements,
  rank: (results: readonly ProbeResult[]) => RankedHost[],
  target?: string,
): Promise<ProbeResult[]> {
  let results = [...first];
  const named = target ? results.find((r) => r.host.name === target && r.ok && r.cached) : undefined;
  if (named) results = await reprobe(ctx, results, [named.host], req);
  if (results.some((r) => r.ok && r.cached) && !rank(results).some((r) => r.verdict === 'eligible'))
    results = await probeCached(ctx, results, req, 'no host fits by its cached facts');
  return results;
}

export interface Decision {
  chosen: string;
  /** The ranking the target was chosen from, with the target's facts as probed now. */
  ranking: RankedHost[];
  results: ProbeResult[];
}

export interface DecideSteps {
  /** Pure: the ranking of these results. */
  rank(results: readonly ProbeResult[]): RankedHost[];
  /** Shows a ranking to whoever chooses (the ranking event). */
  show(ranking: RankedHost[]): void;
  /** The target from a ranking (the top, --target, or a person's pick); throws when there is none. */
  choose(ranking: readonly RankedHost[]): Promise<string>;
}

/**
 * Chooses a target from the ranking, and when its facts came from the cache, probes it again: still eligible,
 * it is the target (ranked with its facts of now); no longer, the reason is said and the choice made again.
 */
export async function chooseFreshTarget(
  ctx: Context,
  first: readonly ProbeResult[],
  req: Requirements,
  steps: DecideSteps,
  shown: RankedHost[] = steps.rank(first),
): Promise<Decision> {
  let results = [...first];
  let ranking = shown;
  let misses = 0;
  for (;;) {
    const chosen = await steps.choose(ranking);
    const was = results.find((r) => r.host.name === chosen);
    if (!was?.ok || !was.cached) return { chosen, ranking, results };
    const age = Math.round(was.cached.ageMs / 1000);
    results = await reprobe(ctx, results, [was.host], req);
    ranking = steps.rank(results);
    const now = ranking.find((r) => r.host === chosen);
    if (now?.verdict === 'eligible') {
      ctx.reporter.info(
        `${chosen} probed again before acting (its cached facts were ${age} s old): still eligible`,
      );
      return { chosen, ranking, results };
    }
    misses++;
    const why = now?.reasons.map((r) => r.message).join('; ') || 'not ranked';
    ctx.reporter.warn(
      `${chosen} was chosen from cached facts ${age} s old, but probed again it no longer fits: ${why}; it is not used`,
    );
    if (misses >= MISSES_BEFORE_FULL_PROBE) {
      results = await probeCached(ctx, results, req, `${misses} chosen hosts no longer fit`);
      ranking = steps.rank(results);
    }
    steps.show(ranking);
  }
}
