/**
 * A journal keeps only what resume and review need of the ranking, so its size does not grow with the
 * inventory: Consul refuses transactions over 512 KiB, and the journal is mirrored on every save.
 */
import { describe, expect, test } from 'vitest';
import type { RankedHost, Reason } from '../../src/broker/broker.js';
import { parseJournal } from '../../src/runbook/journal.js';
import { journalRanking } from '../../src/runbook/journal-ranking.js';
import type { Journal } from '../../src/runbook/types.js';
import { testJournal } from '../helpers/journal.js';

const LIMIT = 64 * 1024;

/** n candidate hosts as the broker ranks them: every fourth eligible, the rest rejected for one reason or two. */
function ranking(n: number): RankedHost[] {
  const reasons: Reason[][] = [
    [
      {
        code: 'memory',
        message: 'needs 4 GiB of memory, has 1.96 GiB usable',
        fix: 'free memory or pick a bigger host',
      },
    ],
    [
      {
        code: 'unreachable',
        message: 'ssh: connect to host 10.77.3.9 port 22: Connection timed out after 5000 ms',
      },
    ],
    [
      { code: 'cores', message: 'needs 4 cores, has 2 usable (cpuset 0-1)' },
      { code: 'storage', message: 'needs 20 GiB free on /srv, has 3.2 GiB', fix: 'grow /srv' },
    ],
  ];
  const hosts = Array.from(
    { length: n },
    (_, i) => `host-${String(i).padStart(5, '0')}.dc1.example.internal`,
  );
  const eligible = hosts
    .filter((_, i) => i % 4 === 0)
    .map(
      (host, i): RankedHost => ({
        host,
        address: `10.77.${Math.floor(i / 250)}.${i % 250}`,
        verdict: 'eligible',
        rank: i + 1,
        reasons: [],
        score: { components: { fit: 0.9, load: 0.5 }, weights: { fit: 0.7, load: 0.3 }, total: 99 - i / 100 },
      }),
    );
  const rejected = hosts
    .filter((_, i) => i % 4 !== 0)
    .map(
      (host, i): RankedHost => ({
        host,
        address: '10.78.0.1',
        verdict: 'rejected',
        reasons: reasons[i % 3]!,
      }),
    );
  return [...eligible, ...rejected];
}

function journal(fields: Pick<Journal, 'ranking'>): Journal {
  return testJournal({
    store: 'consul://127.0.0.1:8500/persona',
    target_host: { name: 'host-00004.dc1.example.internal', address: '10.77.0.1' },
    ...fields,
  });
}

describe('the ranking kept in a journal', () => {
  test('a journal built from 5,000 candidate hosts encodes under 64 KiB', () => {
    const text = `${JSON.stringify(journal(journalRanking(ranking(5000), 'host-00004.dc1.example.internal')), null, 2)}\n`;
    expect(Buffer.byteLength(text, 'utf8')).toBeLessThan(LIMIT);
  });

  test('it keeps the top candidates with their scores, the chosen target, and rejections counted by reason', () => {
    const kept = journalRanking(ranking(5000), 'host-00004.dc1.example.internal');
    const parsed = parseJournal('test', JSON.stringify(journal(kept)));
    expect(parsed.ranking.map((r) => [r.rank, r.host])).toEqual([
      [1, 'host-00000.dc1.example.internal'],
      [2, 'host-00004.dc1.example.internal'],
      [3, 'host-00008.dc1.example.internal'],
      [4, 'host-00012.dc1.example.internal'],
      [5, 'host-00016.dc1.example.internal'],
    ]);
    expect(parsed.ranking[0]).toMatchObject({ verdict: 'eligible', score: 99 });
    expect(parsed.ranking_summary).toEqual({
      candidates: 5000,
      eligible: 1250,
      rejected: 3750,
      rejected_by_reason: { memory: 1250, unreachable: 1250, cores: 1250, storage: 1250 },
    });
  });

  test('a target chosen from below the top is kept too', () => {
    const kept = journalRanking(ranking(100), 'host-00096.dc1.example.internal');
    expect(kept.ranking.map((r) => r.rank)).toEqual([1, 2, 3, 4, 5, 25]);
  });
});
