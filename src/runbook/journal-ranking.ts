/**
 * What a run's journal keeps of the ranking it chose its target from: the top few candidates with their scores,
 * the chosen target (wherever it ranked), and how many hosts were looked at and rejected, by reason. Enough to
 * resume and to explain the choice (with the age of each facts read from the fact cache: the chosen target's are
 * always probed again before the run acts); the full ranking is an event of the run, not part of its state. A journal
 * holding every host grew by ~300 bytes per host and passed Consul's 512 KiB transaction limit near 1,700 hosts.
 */
import type { RankedHost } from '../broker/broker.js';
import type { Journal } from './journal-schema.js';

/** How many of the best-ranked candidates the journal keeps. */
export const JOURNAL_TOP_CANDIDATES = 5;

export function journalRanking(
  ranking: readonly RankedHost[],
  target: string,
): Pick<Journal, 'ranking' | 'ranking_summary'> {
  const eligible = ranking.filter((r) => r.verdict === 'eligible');
  const kept = ranking.filter(
    (r) => r.host === target || (r.verdict === 'eligible' && (r.rank ?? Infinity) <= JOURNAL_TOP_CANDIDATES),
  );
  const cached = ranking.filter((r) => r.cachedFacts).length;
  const byReason: Record<string, number> = {};
  for (const r of ranking) {
    if (r.verdict !== 'rejected') continue;
    for (const code of new Set(r.reasons.map((x) => x.code))) byReason[code] = (byReason[code] ?? 0) + 1;
  }
  return {
    ranking: kept.map((r) => ({
      host: r.host,
      verdict: r.verdict,
      ...(r.rank ? { rank: r.rank } : {}),
      ...(r.score ? { score: r.score.total } : {}),
      ...(r.cachedFacts ? { facts_age_s: r.cachedFacts.ageS } : {}),
      reasons: r.reasons.map((x) => x.message),
    })),
    ranking_summary: {
      candidates: ranking.length,
      eligible: eligible.length,
      rejected: ranking.length - eligible.length,
      rejected_by_reason: byReason,
      ...(cached > 0 ? { facts_from_cache: cached } : {}),
    },
  };
}
