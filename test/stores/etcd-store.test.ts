/**
 * The etcd store against a real etcd 3.4 (Debian's etcd-server) started on loopback for this file.
 */
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { HeldLock, KvBackend, LockInfo } from '../../src/stores/kv.js';
import { openBackend } from '../../src/stores/open.js';
import { storeConformance } from '../conformance/store-conformance.js';
import { repoRoot } from '../helpers/cli.js';
import { type EtcdServer, freePort, startEtcd } from './etcd-server.js';
import { startSilentServer } from './silent-server.js';

let etcd: EtcdServer;
const run = `t${process.pid}x${Date.now().toString(36)}`;

beforeAll(async () => {
  etcd = await startEtcd();
});

afterAll(async () => {
  await etcd?.close();
});

const open = (namespace: string, env: NodeJS.ProcessEnv = {}) =>
  openBackend(`etcd://127.0.0.1:${etcd.port}/persona-test/${run}/${namespace}`, env, repoRoot);

// etcd's smallest lease TTL here is 2 s (1.5 x the election timeout, rounded up); expiry is checked every 0.5 s.
storeConformance('etcd', (namespace) => open(namespace), { lockTtlMs: 2000, lockExpiryGraceMs: 1500 });

const info = (holder: string, pid = process.pid): LockInfo => ({
  holder,
  host: hostname(),
  pid,
  run_id: `run-${holder}`,
  started_at: new Date().toISOString(),
});

async function raw(path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${etcd.clientUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
  return (await res.json()) as Record<string, unknown>;
}
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('etcd store specifics', () => {
  const opened: KvBackend[] = [];
  const fresh = async (namespace: string, env: NodeJS.ProcessEnv = {}) => {
    const backend = await open(namespace, env);
    opened.push(backend);
    return backend;
  };
  afterAll(async () => {
    for (const b of opened) await b.close();
  });

  test('version is the mod_revision and keys live under the prefix', async () => {
    const kv = await fresh('layout');
    await kv.txn({ puts: [{ key: 'runs/r1', value: 'hello' }] });
    const entry = (await kv.get('runs/r1'))!;
    const found = await raw('/v3/kv/range', { key: b64(`persona-test/${run}/layout/runs/r1`) });
    const [stored] = found.kvs as Array<{ mod_revision: string; value: string }>;
    expect(stored!.mod_revision).toBe(entry.token);
    expect(entry.version).toBe(Number(stored!.mod_revision));
    expect(Buffer.from(stored!.value, 'base64').toString()).toBe('hello');
    expect(kv.describe).toBe(`etcd://127.0.0.1:${etcd.port}/persona-test/${run}/layout`);
    expect(kv.shared).toBe(true);
  });

  test('ETCDCTL_ENDPOINTS: the first reachable endpoint is used when the URL names no host', async () => {
    const closed = await freePort();
    const env = { ETCDCTL_ENDPOINTS: `http://127.0.0.1:${closed},127.0.0.1:${etcd.port}` };
    const kv = await openBackend(`etcd:///persona-test/${run}/endpoints`, env, repoRoot);
    opened.push(kv);
    expect(kv.describe).toBe(
      `etcd://127.0.0.1:${closed},127.0.0.1:${etcd.port}/persona-test/${run}/endpoints`,
    );
    expect(await kv.txn({ puts: [{ key: 'runs/e', value: 'x' }] })).toEqual({ ok: true });
    expect((await kv.get('runs/e'))?.value).toBe('x');
  });

  test('a lock leaves a last-holder record that release() removes with the lock', async () => {
    const kv = await fresh('last');
    const lock = await kv.acquireLock('app-a', info('alice'), { ttlMs: 2000 });
    const last = await raw('/v3/kv/range', { key: b64(`persona-test/${run}/last/lock-last/app-a`) });
    expect(last.kvs).toHaveLength(1);
    const listed = await kv.listLocks();
    expect(listed.map((l) => l.info.holder)).toEqual(['alice']);
    expect(Date.parse(listed[0]!.expires_at!)).toBeGreaterThan(Date.now());
    await lock.release();
    await lock.release();
    expect(await kv.listLocks()).toEqual([]);
    const gone = await raw('/v3/kv/range', { key: b64(`persona-test/${run}/last/lock-last/app-a`) });
    expect(gone.kvs).toBeUndefined();
    // A clean release is not reported as a takeover.
    const takeovers: HeldLock[] = [];
    const again = await kv.acquireLock('app-a', info('bob'), {
      ttlMs: 2000,
      onTakeover: (p) => takeovers.push(p),
    });
    expect(takeovers).toEqual([]);
    await again.release();
  });

  test('a revoked lease aborts handle.lost with E_LOCK_LOST', async () => {
    const kv = await fresh('lost');
    const lock = await kv.acquireLock('app-lost', info('alice'), { ttlMs: 2000 });
    const key = await raw('/v3/kv/range', { key: b64(`persona-test/${run}/lost/locks/app-lost`) });
    const [stored] = key.kvs as Array<{ lease: string }>;
    await raw('/v3/lease/revoke', { ID: stored!.lease });
    await new Promise<void>((resolve) =>
      lock.lost.addEventListener('abort', () => resolve(), { once: true }),
    );
    expect(lock.lost.reason).toMatchObject({
      code: 'E_LOCK_LOST',
      message: expect.stringContaining('app-lost'),
    });
    await lock.release();
  });

  test('the takeover message names the holder whose lease expired', async () => {
    const kv = await fresh('takeover');
    const ghost = await open('takeover');
    await ghost.acquireLock('app-t', info('ghost'), { ttlMs: 2000 });
    await ghost.close();
    const reasons: string[] = [];
    let lock: Awaited<ReturnType<KvBackend['acquireLock']>> | undefined;
    const deadline = Date.now() + 10_000;
    while (!lock) {
      try {
        lock = await kv.acquireLock('app-t', info('bob'), {
          ttlMs: 2000,
          onTakeover: (previous, why) => reasons.push(`${previous.info.holder}: ${why}`),
        });
      } catch (error) {
        expect(error).toMatchObject({ code: 'E_LOCK_HELD', message: expect.stringContaining('ghost') });
        if (Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    expect(reasons).toEqual([expect.stringMatching(/^ghost: its lease expired/)]);
    await lock.release();
  });
});

describe('etcd store down', () => {
  test('a hung endpoint: the request times out after ?timeout= with E_STORE_UNAVAILABLE', async () => {
    const silent = await startSilentServer();
    try {
      const kv = await openBackend(`etcd://127.0.0.1:${silent.port}/hung?timeout=300ms`, {}, repoRoot);
      const started = Date.now();
      await expect(kv.get('runs/a')).rejects.toMatchObject({
        code: 'E_STORE_UNAVAILABLE',
        message: expect.stringMatching(
          /hung\?timeout=300ms is unavailable: cannot read runs\/a: .*no answer within 300 ms/,
        ),
      });
      const write = kv.txn({ puts: [{ key: 'runs/a', value: 'x' }] });
      await expect(write).rejects.toMatchObject({
        message: expect.stringContaining('may or may not have been applied'),
      });
      expect(Date.now() - started).toBeLessThan(5000);
      await kv.close();
    } finally {
      await silent.close();
    }
  });

  test('every operation fails with E_STORE_UNAVAILABLE naming the store, and nothing is half-written', async () => {
    const own = await startEtcd();
    const url = `etcd://127.0.0.1:${own.port}/persona-down`;
    try {
      const kv = await openBackend(url, {}, repoRoot);
      await kv.txn({ puts: [{ key: 'runs/a', value: 'before' }] });
      const before = (await kv.get('runs/a'))!;
      await own.kill();
      const down = { code: 'E_STORE_UNAVAILABLE', message: expect.stringContaining(url) };
      await expect(kv.get('runs/a')).rejects.toMatchObject({
        ...down,
        message: expect.stringMatching(/read runs\/a/),
      });
      await expect(kv.list('runs/')).rejects.toMatchObject(down);
      await expect(
        kv.txn({
          checks: [{ key: 'runs/a', token: before.token }],
          puts: [{ key: 'runs/a', value: 'after' }],
        }),
      ).rejects.toMatchObject({ ...down, message: expect.stringMatching(/write runs\/a/) });
      await expect(kv.acquireLock('app', info('alice'), { ttlMs: 2000 })).rejects.toMatchObject(down);
      await expect(kv.listLocks()).rejects.toMatchObject(down);
      await kv.close();
    } finally {
      await own.close();
    }
  });
});
