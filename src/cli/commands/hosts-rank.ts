import { type RankedHost, rankHosts, requirementsOf, type Strategy } from '../../broker/broker.js';
import { PersonaError } from '../../errors.js';
import { readRankHistory } from '../../feedback/host-history.js';
import { notProbed, type ProbeResult } from '../../hosts/probe.js';
import { chooseFreshTarget, gatherFacts, maxFactAge, probeDecisive } from '../../recover/decide.js';
import { renderRanking } from '../../ui/ranking-table.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { opts }) => {
  if (!opts.profile) throw new PersonaError('E_USAGE', 'hosts rank needs --profile ID');
  const store = await ctx.store();
  const { stored, profile } = await store.load(String(opts.profile));
  const inventory = await ctx.inventory();
  const req = requirementsOf(profile);
  const failed = opts.failed ? String(opts.failed) : undefined;
  const exclude = (opts.exclude as string[] | undefined) ?? [];
  const skip = (name: string, address: string) =>
    name === failed || address === failed || exclude.includes(name);
  const toProbe = inventory.hosts.filter((h) => !skip(h.name, h.address));
  const maxAge = maxFactAge(ctx, opts.maxFactAge);
  // recover's decision, without the lock and the runbook: facts (cached or probed), history, rank, the top
  // re-probed when its facts came from the cache. Timed for the bench (bench/decision.ts).
  const started = performance.now();
  const probed = await gatherFacts(ctx, toProbe, req, maxAge);
  const skipped = inventory.hosts.filter((h) => skip(h.name, h.address)).map(notProbed);
  const strategy = (opts.strategy as Strategy | undefined) ?? 'best-fit';
  const past = await readRankHistory(store.backend, profile.id, ctx.now());
  const rank = (results: readonly ProbeResult[]) =>
    rankHosts(req, results, {
      strategy,
      exclude,
      history: past.history,
      ...(failed ? { failedHost: failed } : {}),
    });
  const top = async (r: readonly RankedHost[]) => (r[0]?.verdict === 'eligible' ? r[0].host : '');
  const facts = await probeDecisive(ctx, [...probed, ...skipped], req, rank);
  const { ranking } = await chooseFreshTarget(ctx, facts, req, {
    rank,
    show: () => {},
    choose: top,
  });
  const decisionMs = Math.round(performance.now() - started);
  const eligible = ranking.filter((r) => r.verdict === 'eligible').length;
  return {
    data: {
      profile: profile.id,
      profile_version: stored.version,
      strategy,
      requirements: req,
      hosts: ranking,
      max_fact_age_s: maxAge,
      facts_from_cache: ranking.filter((r) => r.cachedFacts).length,
      decision_ms: decisionMs,
      ...(past.note ? { history_note: past.note } : {}),
    },
    human: (out) => {
      renderRanking(out, ranking, req);
      if (past.note) out.line(`${out.c.yellow('⚠')} ${past.note}`);
      out.line(
        eligible > 0
          ? `${out.c.green('✔')} ${eligible} eligible host${eligible === 1 ? '' : 's'} for ${profile.id}; best: ${ranking[0]!.host}`
          : `${out.c.red('✖')} no host can take ${profile.id}; the reasons are above`,
      );
    },
    ...(eligible === 0 ? { exitCode: 4 } : {}),
  };
};
