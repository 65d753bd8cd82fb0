/**
 * When a holder stops trusting its lock: a TTL (minus a margin) after its last confirmed renewal was sent, on the
 * monotonic clock, or on the wall clock when that ran ahead (a suspend). A fake clock plays both.
 */
import { hostname } from 'node:os';
import { describe, expect, test } from 'vitest';
import { fencedBackend } from '../../src/stores/fenced-backend.js';
import { FileBackend } from '../../src/stores/file-backend.js';
import { startRenewal } from '../../src/stores/lock-renewal.js';
import { type LockClock, LockValidity } from '../../src/stores/lock-validity.js';
import { tempDir } from '../helpers/tmp.js';

/** Both clocks advance together unless the machine sleeps: then only the wall clock moves. */
function fakeClock(): LockClock & { advance(ms: number): void; suspend(ms: number): void } {
  let mono = 1_000;
  let wall = Date.parse('2026-11-27T12:00:00Z');
  return {
    monotonicMs: () => mono,
    wallMs: () => wall,
    advance(ms) {
      mono += ms;
      wall += ms;
    },
    suspend(ms) {
      wall += ms;
    },
  };
}

function thrown(run: () => void): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('lock validity', () => {
  test('counts from when the last confirmed renewal was sent, not when its answer came', () => {
    const clock = fakeClock();
    const validity = new LockValidity(10_000, clock);
    expect(validity.marginMs).toBe(1000);
    clock.advance(3000);
    const sent = validity.stamp();
    clock.advance(4000); // a slow store: the answer comes 4 s later
    validity.renewed(sent);
    clock.advance(4900); // 8.9 s after the renewal was sent
    expect(validity.problem()).toBeUndefined();
    clock.advance(200); // 9.1 s: past TTL - margin from the send, though only 5.1 s after the answer
    expect(validity.problem()).toMatch(/no renewal confirmed for 9\.1 s/);
  });

  test('a suspend counts: the wall clock ran ahead of the stopped monotonic clock', () => {
    const clock = fakeClock();
    const validity = new LockValidity(10_000, clock);
    clock.advance(1000);
    clock.suspend(2000); // short: the lock still has time left
    expect(validity.problem()).toBeUndefined();
    clock.suspend(60_000);
    expect(validity.problem()).toMatch(/suspended/);
  });

  test('a clock stepped back does not extend the lock', () => {
    const clock = fakeClock();
    const validity = new LockValidity(10_000, clock);
    clock.advance(9500);
    clock.suspend(-3_600_000);
    expect(validity.problem()).toMatch(/no renewal confirmed/);
  });

  test('loss is signalled at the deadline even while a renewal hangs', async () => {
    let calls = 0;
    const start = performance.now();
    const renewal = startRenewal('app-hang', 'test-store', 150, new LockValidity(600), () => {
      calls++;
      // The first renewal succeeds; the next one hangs, as against a store that answers only at its timeout.
      return calls === 1 ? Promise.resolve(undefined) : new Promise<undefined>(() => {});
    });
    try {
      await new Promise<void>((resolve, reject) => {
        renewal.lost.addEventListener('abort', () => resolve(), { once: true });
        setTimeout(() => reject(new Error('loss not signalled within 2 s')), 2000);
      });
      // Deadline: first renewal sent at ~150 ms, + TTL 600 - margin 100 = ~650 ms.
      expect(performance.now() - start).toBeLessThan(900);
      expect(renewal.lost.reason).toMatchObject({
        code: 'E_LOCK_LOST',
        message: expect.stringContaining('app-hang'),
      });
    } finally {
      renewal.stop();
    }
  });

  test('a suspended holder stops trusting its lock on waking, before any timer runs, and writes nothing', async () => {
    const clock = fakeClock();
    const kv = await new FileBackend(tempDir()).open();
    const info = {
      holder: 'alice',
      host: hostname(),
      pid: process.pid,
      started_at: new Date().toISOString(),
    };
    const lock = await kv.acquireLock('app-sleepy', info, { ttlMs: 10_000, clock });
    try {
      expect(lock.lockValid()).toBe(true);
      lock.assertHeld();
      clock.suspend(30_000);
      expect(lock.lockValid()).toBe(false);
      expect(thrown(() => lock.assertHeld())).toMatchObject({ code: 'E_LOCK_LOST' });
      expect(lock.lost.aborted).toBe(true);
      await expect(
        fencedBackend(kv, lock).txn({ puts: [{ key: 'assignments/app', value: 'x' }] }),
      ).rejects.toMatchObject({ code: 'E_LOCK_LOST' });
      expect(await kv.get('assignments/app')).toBeUndefined();
    } finally {
      await lock.release();
      await kv.close();
    }
  });

  test('a released lock is no longer valid', async () => {
    const kv = await new FileBackend(tempDir()).open();
    const info = {
      holder: 'alice',
      host: hostname(),
      pid: process.pid,
      started_at: new Date().toISOString(),
    };
    const lock = await kv.acquireLock('app-done', info, { ttlMs: 10_000 });
    expect(lock.lockValid()).toBe(true);
    await lock.release();
    expect(lock.lockValid()).toBe(false);
    expect(thrown(() => lock.assertHeld())).toMatchObject({ code: 'E_LOCK_LOST' });
    await kv.close();
  });
});
