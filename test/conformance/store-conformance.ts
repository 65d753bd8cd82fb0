/**
 * One conformance suite for every store backend (file, etcd, Consul): versioned reads, compare-and-set,
 * atomic transactions, history, and writes racing from the same read version.
 * A backend test file calls `storeConformance(name, open)` with a factory that returns a fresh, empty store.
 */

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { afterEach, describe, expect, test } from 'vitest';
import type { HeldLock, KvBackend, LockInfo } from '../../src/stores/kv.js';
import { ProfileStore } from '../../src/stores/profile-store.js';
import { repoRoot } from '../helpers/cli.js';

/**
 * Opens a store. Each new `namespace` is a fresh, empty store; the same namespace opens the same store again
 * (a second process, or a second machine).
 */
export type OpenBackend = (namespace: string) => Promise<KvBackend>;

let namespaces = 0;
const newNamespace = () => `ns${process.pid}x${++namespaces}x${Date.now().toString(36)}`;

export interface ConformanceOptions {
  /** The shortest lock TTL the backend honours (Consul: 10 s unless the server allows less). */
  lockTtlMs?: number;
  /** How long after its TTL a dead holder's lock may still block (Consul: up to 2x TTL plus lock-delay). */
  lockExpiryGraceMs?: number;
}

const lockInfo = (holder: string, pid = process.pid, run_id = `run-${holder}`): LockInfo => ({
  holder,
  host: hostname(),
  pid,
  run_id,
  started_at: new Date().toISOString(),
});

/** A pid that no process has any more. */
function deadPid(): number {
  return Number(spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim());
}

const demo = readFileSync(`${repoRoot}profiles/demo-web.json`, 'utf8');
const withCores = (n: number) => demo.replace('"required_cores": 1', `"required_cores": ${n}`);
const meta = (message?: string) => ({
  author: 'tester@lab',
  at: new Date().toISOString(),
  ...(message ? { message } : {}),
});

export function storeConformance(name: string, open: OpenBackend, options: ConformanceOptions = {}): void {
  const ttl = options.lockTtlMs ?? 1000;
  const grace = options.lockExpiryGraceMs ?? 0;
  describe(`store conformance: ${name}`, () => {
    const opened: KvBackend[] = [];
    const fresh = async (namespace = newNamespace()) => {
      const backend = await open(namespace);
      opened.push(backend);
      return backend;
    };
    afterEach(async () => {
      for (const b of opened.splice(0)) await b.close();
    });

    test('a missing key reads as undefined', async () => {
      const kv = await fresh();
      expect(await kv.get('assignments/none')).toBeUndefined();
    });

    test('create-only writes refuse when the key exists', async () => {
      const kv = await fresh();
      expect(
        await kv.txn({ checks: [{ key: 'runs/a', token: null }], puts: [{ key: 'runs/a', value: '1' }] }),
      ).toEqual({ ok: true });
      const again = await kv.txn({
        checks: [{ key: 'runs/a', token: null }],
        puts: [{ key: 'runs/a', value: '2' }],
      });
      expect(again.ok).toBe(false);
      expect((await kv.get('runs/a'))?.value).toBe('1');
    });

    test('versions move forward and a stale token is refused', async () => {
      const kv = await fresh();
      await kv.txn({ puts: [{ key: 'runs/v', value: 'one' }] });
      const first = (await kv.get('runs/v'))!;
      await kv.txn({
        checks: [{ key: 'runs/v', token: first.token }],
        puts: [{ key: 'runs/v', value: 'two' }],
      });
      const second = (await kv.get('runs/v'))!;
      expect(second.version).toBeGreaterThan(first.version);
      const stale = await kv.txn({
        checks: [{ key: 'runs/v', token: first.token }],
        puts: [{ key: 'runs/v', value: 'three' }],
      });
      expect(stale).toEqual({ ok: false, failed: ['runs/v'] });
      expect((await kv.get('runs/v'))?.value).toBe('two');
    });

    test('a transaction with one failed check writes nothing', async () => {
      const kv = await fresh();
      await kv.txn({ puts: [{ key: 'assignments/x', value: 'h1' }] });
      const result = await kv.txn({
        checks: [{ key: 'assignments/x', token: 'not-the-token' }],
        puts: [
          { key: 'assignments/y', value: 'h2' },
          { key: 'assignments/x', value: 'h3' },
        ],
        deletes: ['assignments/x'],
      });
      expect(result.ok).toBe(false);
      expect((await kv.get('assignments/x'))?.value).toBe('h1');
      expect(await kv.get('assignments/y')).toBeUndefined();
    });

    test("a transaction whose second check fails leaves the first check's key unchanged", async () => {
      const kv = await fresh();
      await kv.txn({
        puts: [
          { key: 'assignments/a', value: 'a1' },
          { key: 'assignments/b', value: 'b1' },
        ],
      });
      const a = (await kv.get('assignments/a'))!;
      const result = await kv.txn({
        checks: [
          { key: 'assignments/a', token: a.token },
          { key: 'assignments/b', token: null },
        ],
        puts: [
          { key: 'assignments/a', value: 'a2' },
          { key: 'assignments/b', value: 'b2' },
        ],
      });
      expect(result).toEqual({ ok: false, failed: ['assignments/b'] });
      expect((await kv.get('assignments/a'))?.value).toBe('a1');
      expect((await kv.get('assignments/a'))?.token).toBe(a.token);
      expect((await kv.get('assignments/b'))?.value).toBe('b1');
    });

    test('a transaction applies all its writes or none, even when a later write cannot be made', async () => {
      const kv = await fresh();
      await kv.txn({
        puts: [
          { key: 'runs/first', value: 'old' },
          { key: 'runs/file', value: 'f' },
        ],
      });
      const before = (await kv.get('runs/first'))!;
      // Keys are flat in Consul and etcd; in a directory store runs/file/sub cannot sit under the file runs/file.
      const outcome = await kv
        .txn({
          puts: [
            { key: 'runs/first', value: 'new' },
            { key: 'runs/file/sub', value: 's' },
          ],
        })
        .catch((error: unknown) => error);
      if ((outcome as { ok?: boolean }).ok === true) {
        expect((await kv.get('runs/first'))?.value).toBe('new');
        expect((await kv.get('runs/file/sub'))?.value).toBe('s');
      } else {
        expect(outcome).toMatchObject({ code: 'E_STORE' });
        expect(await kv.get('runs/first')).toEqual(before);
        expect(await kv.get('runs/file/sub')).toBeUndefined();
        expect((await kv.get('runs/file'))?.value).toBe('f');
        // And the store goes on working.
        expect(await kv.txn({ puts: [{ key: 'runs/first', value: 'next' }] })).toEqual({ ok: true });
        expect((await kv.get('runs/first'))?.version).toBeGreaterThan(before.version);
      }
    });

    test('list returns the keys under a prefix, sorted, with values', async () => {
      const kv = await fresh();
      await kv.txn({
        puts: [
          { key: 'locks/b', value: 'B' },
          { key: 'locks/a', value: 'A' },
          { key: 'lockz/c', value: 'C' },
        ],
      });
      const listed = await kv.list('locks/');
      expect(listed.map((e) => [e.key, e.value])).toEqual([
        ['locks/a', 'A'],
        ['locks/b', 'B'],
      ]);
    });

    test('delete with a check removes the key', async () => {
      const kv = await fresh();
      await kv.txn({ puts: [{ key: 'runs/d', value: 'x' }] });
      const entry = (await kv.get('runs/d'))!;
      expect(await kv.txn({ checks: [{ key: 'runs/d', token: entry.token }], deletes: ['runs/d'] })).toEqual({
        ok: true,
      });
      expect(await kv.get('runs/d')).toBeUndefined();
    });

    test('profiles: write, read back, history holds the previous version', async () => {
      const store = new ProfileStore(await fresh());
      const v1 = await store.put('demo-web', demo, { create: true }, meta('first'));
      const v2 = await store.put('demo-web', withCores(2), { token: v1.token }, meta('more cores'));
      expect(v2.version).toBeGreaterThan(v1.version);
      expect((await store.get('demo-web'))?.text).toBe(withCores(2));
      const history = await store.history('demo-web');
      expect(history.map((h) => h.version)).toEqual([v2.version, v1.version]);
      expect(history[0]).toMatchObject({ current: true, meta: { message: 'more cores' } });
      expect(history[1]).toMatchObject({ current: false, text: demo, meta: { message: 'first' } });
      expect((await store.version('demo-web', v1.version))?.text).toBe(demo);
    });

    test('profiles: a write from a stale read is refused and nothing changes', async () => {
      const store = new ProfileStore(await fresh());
      const v1 = await store.put('demo-web', demo, { create: true }, meta());
      await store.put('demo-web', withCores(2), { token: v1.token }, meta());
      await expect(store.put('demo-web', withCores(3), { token: v1.token }, meta())).rejects.toMatchObject({
        code: 'E_CONFLICT',
      });
      await expect(
        store.put('demo-web', withCores(3), { version: v1.version }, meta()),
      ).rejects.toMatchObject({
        code: 'E_CONFLICT',
      });
      expect((await store.get('demo-web'))?.text).toBe(withCores(2));
    });

    test('profiles: an invalid profile is refused before anything is written', async () => {
      const store = new ProfileStore(await fresh());
      await expect(
        store.put('demo-web', '{"id": "demo-web"}', { create: true }, meta()),
      ).rejects.toMatchObject({
        code: 'E_INVALID_PROFILE',
      });
      await expect(store.put('other', demo, { create: true }, meta())).rejects.toMatchObject({
        code: 'E_INVALID_PROFILE',
      });
      expect(await store.list()).toEqual([]);
    });

    test('profiles: delete keeps the history', async () => {
      const store = new ProfileStore(await fresh());
      const v1 = await store.put('demo-web', demo, { create: true }, meta());
      await store.delete('demo-web', { token: v1.token }, meta());
      expect(await store.get('demo-web')).toBeUndefined();
      expect((await store.history('demo-web')).map((h) => h.text)).toEqual([demo]);
    });

    test('profiles: 50 writers from the same read version: exactly one wins each round, no update lost', async () => {
      const store = new ProfileStore(await fresh());
      let current = await store.put('demo-web', demo, { create: true }, meta());
      for (let round = 0; round < 3; round++) {
        const results = await Promise.allSettled(
          Array.from({ length: 50 }, (_, i) =>
            store.put('demo-web', withCores(100 + round * 50 + i), { token: current.token }, meta(`w${i}`)),
          ),
        );
        const won = results.filter((r) => r.status === 'fulfilled');
        expect(won).toHaveLength(1);
        for (const r of results)
          if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'E_CONFLICT' });
        const winner = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<ProfileStore['put']>>>).value;
        expect((await store.get('demo-web'))?.text).toBe(winner.text);
        current = winner;
      }
      expect(await store.history('demo-web')).toHaveLength(4);
    });

    test('locks: a second holder is refused with the first holder named', async () => {
      const kv = await fresh();
      const first = await kv.acquireLock('app-demo-web', lockInfo('alice'), { ttlMs: ttl });
      try {
        await expect(kv.acquireLock('app-demo-web', lockInfo('bob'), { ttlMs: ttl })).rejects.toMatchObject({
          code: 'E_LOCK_HELD',
          message: expect.stringContaining('alice'),
        });
        const held = await kv.listLocks();
        expect(held.map((l) => [l.name, l.info.holder, l.info.run_id])).toEqual([
          ['app-demo-web', 'alice', 'run-alice'],
        ]);
      } finally {
        await first.release();
      }
      const second = await kv.acquireLock('app-demo-web', lockInfo('bob'), { ttlMs: ttl });
      await second.release();
      expect(await kv.listLocks()).toEqual([]);
    });

    test('locks: held while renewed, beyond its TTL', async () => {
      const kv = await fresh();
      const lock = await kv.acquireLock('app-renewed', lockInfo('alice'), { ttlMs: ttl });
      await new Promise((r) => setTimeout(r, ttl * 2 + grace));
      await expect(kv.acquireLock('app-renewed', lockInfo('bob'), { ttlMs: ttl })).rejects.toMatchObject({
        code: 'E_LOCK_HELD',
      });
      expect(lock.lost.aborted).toBe(false);
      await lock.release();
    });

    test('locks: a lock whose holder is gone is taken over, naming the old holder', async () => {
      const namespace = newNamespace();
      const kv = await fresh(namespace);
      const other = await open(namespace);
      // The holder is a process that no longer exists and stopped renewing: close() stops renewal without
      // releasing, as a SIGKILL would.
      await other.acquireLock('app-orphan', lockInfo('ghost', deadPid()), { ttlMs: ttl });
      await other.close();
      const takeovers: Array<[HeldLock, string]> = [];
      const deadline = Date.now() + ttl * 3 + grace + 5000;
      let lock: Awaited<ReturnType<KvBackend['acquireLock']>> | undefined;
      while (!lock) {
        try {
          lock = await kv.acquireLock('app-orphan', lockInfo('bob'), {
            ttlMs: ttl,
            onTakeover: (p, why) => takeovers.push([p, why]),
          });
        } catch (error) {
          if ((error as { code?: string }).code !== 'E_LOCK_HELD' || Date.now() > deadline) throw error;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      expect((await kv.listLocks()).map((l) => l.info.holder)).toEqual(['bob']);
      expect(takeovers.map(([previous]) => previous.info.holder)).toEqual(['ghost']);
      await lock.release();
    });

    test('fencing: a holder whose lock was taken over can write nothing, and the new holder is untouched', async () => {
      const namespace = newNamespace();
      const kv = await fresh(namespace);
      const holderA = await open(namespace);
      const a = await holderA.acquireLock('app-fenced', lockInfo('alice', deadPid()), { ttlMs: ttl });
      expect(a.fence.lock).toBe('app-fenced');
      expect(await holderA.txn({ fence: a.fence, puts: [{ key: 'runs/fenced', value: 'A1' }] })).toEqual({
        ok: true,
      });
      // A stops renewing (a SIGKILL, a suspend): its lease / session / record lapses, and B takes the lock over.
      await holderA.close();
      const deadline = Date.now() + ttl * 3 + grace + 5000;
      let b: Awaited<ReturnType<KvBackend['acquireLock']>> | undefined;
      while (!b) {
        try {
          b = await kv.acquireLock('app-fenced', lockInfo('bob'), { ttlMs: ttl });
        } catch (error) {
          if ((error as { code?: string }).code !== 'E_LOCK_HELD' || Date.now() > deadline) throw error;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      expect(b.fence.token).not.toBe(a.fence.token);
      expect(await kv.txn({ fence: b.fence, puts: [{ key: 'runs/fenced', value: 'B' }] })).toEqual({
        ok: true,
      });
      // The zombie still has A's fence, and a perfectly fresh compare-and-set token: the fence alone refuses it.
      const zombie = await fresh(namespace);
      const current = (await zombie.get('runs/fenced'))!;
      await expect(
        zombie.txn({
          fence: a.fence,
          checks: [{ key: 'runs/fenced', token: current.token }],
          puts: [
            { key: 'runs/fenced', value: 'A2' },
            { key: 'runs/zombie', value: 'A2' },
          ],
        }),
      ).rejects.toMatchObject({ code: 'E_LOCK_LOST', message: expect.stringContaining('app-fenced') });
      expect((await kv.get('runs/fenced'))?.value).toBe('B');
      expect(await kv.get('runs/zombie')).toBeUndefined();
      await b.release();
      // Released: even the last holder's fence no longer writes.
      await expect(
        kv.txn({ fence: b.fence, puts: [{ key: 'runs/fenced', value: 'late' }] }),
      ).rejects.toMatchObject({ code: 'E_LOCK_LOST' });
      expect((await kv.get('runs/fenced'))?.value).toBe('B');
    });
  });
}
