/**
 * Recording what validate and monitor saw never fails a run: a store that refuses costs a warning line; an
 * interrupted run records nothing; old observations are pruned once, after the switch.
 */
import { describe, expect, test } from 'vitest';
import { readRankHistory } from '../../src/feedback/host-history.js';
import { listObservations, recordObservations } from '../../src/feedback/observations.js';
import { observeRun } from '../../src/feedback/run-observation.js';
import type { StepContext } from '../../src/runbook/types.js';
import { FileBackend } from '../../src/stores/file-backend.js';
import type { KvBackend } from '../../src/stores/kv.js';
import { tempDir } from '../helpers/tmp.js';

const NOW = new Date('2026-11-27T12:00:00.000Z');

function context(backend: KvBackend, signal = new AbortController().signal) {
  const log: string[] = [];
  const ctx = {
    backend,
    signal,
    log: (line: string) => log.push(line),
    now: () => NOW,
    profile: { id: 'web' },
    target: { name: 'h2', address: '10.0.0.2', labels: {}, apps: [] },
    journal: { run_id: 'run-1', profile: { version: 4 } },
    observationRetentionDays: 10,
  } as unknown as StepContext;
  return { ctx, log };
}

const sample = { cpu_pct: 91, memory_pct: 40, memory_used_bytes: 1e9, memory_limit_bytes: 4e9, window_s: 1 };

describe('observeRun', () => {
  test('a failed validation is written with its codes, metrics and run', async () => {
    const kv = await new FileBackend(tempDir()).open();
    const { ctx, log } = context(kv);
    await observeRun(ctx, { source: 'validate', ok: false, missed: ['cpu', 'cpu'], sample });
    expect(await listObservations(kv, { app: 'web', host: 'h2' })).toEqual([
      {
        at: NOW.toISOString(),
        app: 'web',
        host: 'h2',
        source: 'validate',
        run_id: 'run-1',
        ok: false,
        missed: ['cpu'],
        metrics: { cpu_pct: 91, memory_pct: 40, memory_used_bytes: 1e9 },
        profile_version: 4,
        vantage: 'persona',
      },
    ]);
    expect(log).toEqual([]);
  });

  test('a store that refuses costs a warning line, never an error', async () => {
    const kv = await new FileBackend(tempDir()).open();
    const broken = Object.create(kv) as KvBackend;
    Object.defineProperty(broken, 'txn', {
      value: async () => {
        throw new Error('connection refused');
      },
    });
    const { ctx, log } = context(broken);
    await expect(observeRun(ctx, { source: 'monitor', ok: true, sample })).resolves.toBeUndefined();
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(
      /^warning: monitor of web on h2 not recorded for ranking in .*connection refused; the run goes on$/,
    );
  });

  test('an interrupted run records nothing', async () => {
    const kv = await new FileBackend(tempDir()).open();
    const controller = new AbortController();
    controller.abort(new Error('SIGINT'));
    const { ctx } = context(kv, controller.signal);
    await observeRun(ctx, { source: 'validate', ok: false, missed: ['health'] });
    expect(await kv.list('observations/')).toEqual([]);
  });

  test('monitor prunes observations past the retention, once per process; validate never does', async () => {
    const kv = await new FileBackend(tempDir()).open();
    const old = { app: 'other', host: 'h9', source: 'watch' as const, ok: false };
    await recordObservations(kv, [
      { ...old, at: '2026-11-01T00:00:00.000Z' },
      { ...old, at: '2026-11-20T00:00:00.000Z' },
    ]);
    const { ctx } = context(kv);
    await observeRun(ctx, { source: 'validate', ok: true, sample });
    expect(await kv.list('observations/other/')).toHaveLength(2);
    await observeRun(ctx, { source: 'monitor', ok: true, sample });
    expect((await listObservations(kv, { app: 'other' })).map((o) => o.at)).toEqual([
      '2026-11-20T00:00:00.000Z',
    ]);
    await recordObservations(kv, [{ ...old, at: '2026-11-02T00:00:00.000Z' }]);
    await observeRun(ctx, { source: 'monitor', ok: true, sample });
    expect(await kv.list('observations/other/')).toHaveLength(2);
    expect(await kv.list('observations/web/h2/')).toHaveLength(3);
  });
});

describe('readRankHistory', () => {
  test("the app's observations, by host; other apps' do not count", async () => {
    const kv = await new FileBackend(tempDir()).open();
    const failed = {
      at: '2026-11-27T00:00:00.000Z',
      source: 'validate' as const,
      ok: false,
      missed: ['health'],
    };
    await recordObservations(kv, [
      { ...failed, app: 'web', host: 'h2', run_id: 'a' },
      { ...failed, app: 'db', host: 'h3', run_id: 'b' },
    ]);
    const { history, note } = await readRankHistory(kv, 'web', NOW);
    expect(note).toBeUndefined();
    expect([...history.keys()]).toEqual(['h2']);
    expect(history.get('h2')!.score).toBeLessThan(1);
  });

  test('a store that cannot be read: no history and a note saying so, never an error', async () => {
    const kv = await new FileBackend(tempDir()).open();
    const broken = Object.create(kv) as KvBackend;
    Object.defineProperty(broken, 'list', {
      value: async () => {
        throw new Error('permission denied');
      },
    });
    const { history, note } = await readRankHistory(broken, 'web', NOW);
    expect(history.size).toBe(0);
    expect(note).toMatch(
      /^ranked without history: the observations of web could not be read from .*permission denied/,
    );
  });
});
