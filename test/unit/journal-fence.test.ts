/**
 * A run's journal mirror and its record writes after a takeover: the driver that lost the lock (a zombie: its
 * lease lapsed while it was suspended or partitioned) must not overwrite what the new driver saved.
 */
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { describe, expect, test } from 'vitest';
import { JournalStore } from '../../src/runbook/journal.js';
import type { Journal } from '../../src/runbook/types.js';
import { fencedBackend } from '../../src/stores/fenced-backend.js';
import { FileBackend } from '../../src/stores/file-backend.js';
import type { LockInfo } from '../../src/stores/kv.js';
import { testJournal } from '../helpers/journal.js';
import { tempDir } from '../helpers/tmp.js';

const RUN = '20261127T000000Z-app-abcdef';

const journal = (updated_at: string, driver: number): Journal =>
  testJournal({ run_id: RUN, status: 'running', updated_at, driver: { pid: driver, host: 'here' } });

/** A pid that no process has any more: its lock can be taken over at once. */
const deadPid = () => Number(spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim());
const info = (holder: string, pid: number): LockInfo => ({
  holder,
  host: hostname(),
  pid,
  run_id: RUN,
  started_at: new Date().toISOString(),
});

async function takeover() {
  const storeDir = tempDir();
  const storeA = await new FileBackend(storeDir).open();
  const storeB = await new FileBackend(storeDir).open();
  const lockA = await storeA.acquireLock('app-app', info('alice', deadPid()), { ttlMs: 60_000 });
  await storeA.close(); // A is frozen: it renews nothing, but it still has its handle and its journal store.
  const a = new JournalStore(tempDir(), fencedBackend(storeA, lockA));
  await a.save(journal('2026-11-27T00:00:01Z', 1));
  const lockB = await storeB.acquireLock('app-app', info('bob', process.pid), { ttlMs: 60_000 });
  const b = new JournalStore(tempDir(), fencedBackend(storeB, lockB));
  expect((await b.load(RUN)).driver.pid).toBe(1);
  await b.save(journal('2026-11-27T00:00:02Z', 2));
  return { storeA, storeB, lockA, lockB, a, b };
}

describe('journal mirror after a takeover', () => {
  test("a zombie driver's save fails with E_LOCK_LOST and leaves the new driver's journal", async () => {
    const { storeB, lockB, a, b } = await takeover();
    await expect(a.save(journal('2026-11-27T00:00:03Z', 1))).rejects.toMatchObject({ code: 'E_LOCK_LOST' });
    expect(JSON.parse((await storeB.get(`runs/${RUN}`))!.value).driver.pid).toBe(2);
    expect((await b.load(RUN)).driver.pid).toBe(2);
    await b.save(journal('2026-11-27T00:00:04Z', 2));
    await lockB.release();
  });

  test('without a fence, a save still follows its own previous save, not a fresh read', async () => {
    const storeDir = tempDir();
    const a = new JournalStore(tempDir(), await new FileBackend(storeDir).open());
    const b = new JournalStore(tempDir(), await new FileBackend(storeDir).open());
    await a.save(journal('2026-11-27T00:00:01Z', 1));
    await b.load(RUN);
    await b.save(journal('2026-11-27T00:00:02Z', 2));
    await expect(a.save(journal('2026-11-27T00:00:03Z', 1))).rejects.toMatchObject({ code: 'E_STATE' });
    expect((await b.load(RUN)).driver.pid).toBe(2);
    await b.save(journal('2026-11-27T00:00:04Z', 2));
  });

  test("a zombie's store writes (the record step's) fail with E_LOCK_LOST", async () => {
    const { storeA, storeB, lockA, lockB } = await takeover();
    const zombie = fencedBackend(storeA, lockA);
    await expect(
      zombie.txn({ puts: [{ key: 'assignments/app', value: '{"host":"h9"}' }] }),
    ).rejects.toMatchObject({ code: 'E_LOCK_LOST' });
    expect(await storeB.get('assignments/app')).toBeUndefined();
    expect(
      await fencedBackend(storeB, lockB).txn({ puts: [{ key: 'assignments/app', value: '{}' }] }),
    ).toEqual({
      ok: true,
    });
    await lockB.release();
  });
});
