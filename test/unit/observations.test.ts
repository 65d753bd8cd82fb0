import { describe, expect, test } from 'vitest';
import {
  listObservations,
  type Observation,
  observationKey,
  pruneObservations,
  recordObservations,
} from '../../src/feedback/observations.js';
import { FileBackend } from '../../src/stores/file-backend.js';
import { TXN_BATCH } from '../../src/stores/kv.js';
import { tempDir } from '../helpers/tmp.js';

const obs = (over: Partial<Observation> = {}): Observation => ({
  at: '2026-11-20T10:00:00.000Z',
  app: 'demo-web',
  host: 'lab-2',
  source: 'validate',
  run_id: 'r1',
  ok: true,
  ...over,
});

const open = async () => new FileBackend(tempDir()).open();

describe('observations in the file store', () => {
  test('the key is observations/<app>/<host>/<13-digit epoch ms>-<6 random>', () => {
    const key = observationKey(obs());
    expect(key).toMatch(/^observations\/demo-web\/lab-2\/\d{13}-[a-z0-9]{6}$/);
    expect(key.split('/')[3]!.slice(0, 13)).toBe(String(Date.parse('2026-11-20T10:00:00.000Z')));
    expect(observationKey(obs())).not.toBe(key);
    expect(() => observationKey(obs({ at: 'yesterday' }))).toThrow(/not a date/);
  });

  test('many at once go in transactions the smallest store takes (TXN_BATCH puts each), and all arrive', async () => {
    const kv = await open();
    const sizes: number[] = [];
    const txn = kv.txn.bind(kv);
    kv.txn = async (t) => {
      sizes.push(t.puts?.length ?? 0);
      return await txn(t);
    };
    const many = Array.from({ length: 2 * TXN_BATCH + 1 }, (_, i) =>
      obs({ at: new Date(Date.parse('2026-11-20T10:00:00.000Z') + i * 1000).toISOString() }),
    );
    await recordObservations(kv, many);
    expect(sizes).toEqual([TXN_BATCH, TXN_BATCH, 1]);
    expect(await listObservations(kv, { app: 'demo-web' })).toHaveLength(many.length);
    sizes.length = 0;
    await recordObservations(kv, []);
    expect(sizes).toEqual([]);
  });

  test('recorded observations are listed back oldest first, by app, host and since', async () => {
    const kv = await open();
    await recordObservations(kv, [
      obs({ at: '2026-11-22T00:00:00.000Z', ok: false, missed: ['health'] }),
      obs({ at: '2026-11-20T00:00:00.000Z', host: 'lab-3', source: 'monitor', metrics: { cpu_pct: 12 } }),
      obs({ at: '2026-11-21T00:00:00.000Z', app: 'other' }),
    ]);
    const all = await listObservations(kv, {});
    expect(all.map((o) => o.at)).toEqual([
      '2026-11-20T00:00:00.000Z',
      '2026-11-21T00:00:00.000Z',
      '2026-11-22T00:00:00.000Z',
    ]);
    const demo = await listObservations(kv, { app: 'demo-web' });
    expect(demo.map((o) => o.host)).toEqual(['lab-3', 'lab-2']);
    expect(demo[0]!.metrics).toEqual({ cpu_pct: 12 });
    expect(await listObservations(kv, { app: 'demo-web', host: 'lab-2' })).toEqual([
      obs({ at: '2026-11-22T00:00:00.000Z', ok: false, missed: ['health'] }),
    ]);
    const since = await listObservations(kv, { since: new Date('2026-11-21T00:00:00.000Z') });
    expect(since.map((o) => o.app)).toEqual(['other', 'demo-web']);
  });

  test('unparsable values are skipped, not thrown on', async () => {
    const kv = await open();
    await recordObservations(kv, [obs()]);
    await kv.txn({
      puts: [
        { key: 'observations/demo-web/lab-2/1763632800000-aaaaaa', value: '{not json' },
        { key: 'observations/demo-web/lab-2/1763632800001-bbbbbb', value: '{"app":"demo-web"}' },
        { key: 'observations/demo-web/lab-2/1763632800002-cccccc', value: 'null' },
      ],
    });
    expect(await listObservations(kv, { app: 'demo-web' })).toEqual([obs()]);
  });

  test('an invalid app name writes nothing', async () => {
    const kv = await open();
    await expect(recordObservations(kv, [obs(), obs({ app: '../etc' })])).rejects.toThrow(
      /invalid store key/,
    );
    expect(await listObservations(kv, {})).toEqual([]);
  });

  test('pruning deletes what is older than the limit, in batches, and keeps the rest', async () => {
    const kv = await open();
    const day = (d: number) => new Date(Date.UTC(2026, 10, d)).toISOString();
    const old = Array.from({ length: 60 }, (_, i) => obs({ at: day(1), run_id: `old-${i}` }));
    await recordObservations(kv, [...old, obs({ at: day(25) }), obs({ at: day(26), app: 'other' })]);
    await kv.txn({ puts: [{ key: 'observations/demo-web/lab-2/0000000000001-zzzzzz', value: 'garbage' }] });
    expect(await pruneObservations(kv, new Date(day(10)))).toBe(61);
    expect((await listObservations(kv, {})).map((o) => o.at)).toEqual([day(25), day(26)]);
    expect(await kv.list('observations/')).toHaveLength(2);
    expect(await pruneObservations(kv, new Date(day(10)))).toBe(0);
  });
});
