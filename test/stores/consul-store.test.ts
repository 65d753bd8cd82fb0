import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { PersonaError } from '../../src/errors.js';
import type { KvBackend, LockInfo } from '../../src/stores/kv.js';
import { openBackend } from '../../src/stores/open.js';
import { storeConformance } from '../conformance/store-conformance.js';
import { type ConsulServer, startConsulServer } from '../fakes/consul-server.js';
import { repoRoot } from '../helpers/cli.js';
import { selfSignedCert } from '../helpers/tls.js';
import { tempDir } from '../helpers/tmp.js';
import { startSilentServer } from './silent-server.js';

const REAL = (process.env.CONSUL_HTTP_ADDR ?? '') !== '';
const run = `t${process.pid}x${Date.now().toString(36)}`;
const root = `persona-test/${run}`;
let fake: ConsulServer | undefined;

// A real agent: sessions of at least 10 s, invalidated within 2x TTL, then a lock-delay of up to 10 s.
const lockTtlMs = REAL ? 10_000 : 1000;
const lockExpiryGraceMs = REAL ? 25_000 : 1500;
if (REAL) vi.setConfig({ testTimeout: 120_000 });

beforeAll(async () => {
  if (!REAL) fake = await startConsulServer({ sessionTtlMinMs: 1000, sessionTtlMultiplier: 1 });
});

afterAll(async () => {
  if (REAL) {
    // Through the store itself, so TLS and ACL settings apply to the clean-up too; 60 deletes per transaction.
    const kv = await openBackend(`consul:///${root}`, process.env, repoRoot);
    const keys = (await kv.list('')).map((e) => e.key);
    for (let i = 0; i < keys.length; i += 60) await kv.txn({ deletes: keys.slice(i, i + 60) });
    await kv.close();
  }
  await fake?.close();
});

/** A store under this run's prefix: the fake (with an empty environment) or the real agent (with the caller's). */
const open = (namespace: string): Promise<KvBackend> =>
  REAL
    ? openBackend(`consul:///${root}/${namespace}`, process.env, repoRoot)
    : openBackend(`consul://127.0.0.1:${fake!.port}/${root}/${namespace}`, {}, repoRoot);

storeConformance('consul', open, { lockTtlMs, lockExpiryGraceMs });

const info = (holder: string): LockInfo => ({
  holder,
  host: hostname(),
  pid: process.pid,
  run_id: `run-${holder}`,
  started_at: new Date().toISOString(),
});

async function rejection(promise: Promise<unknown>): Promise<PersonaError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(PersonaError);
    return error as PersonaError;
  }
  throw new Error('expected a rejection');
}

/** Everything a person or a script could see of an error. */
const shown = (e: PersonaError) => `${e.message}\n${e.hint ?? ''}\n${JSON.stringify(e.toJSON())}`;

describe('consul store specifics', () => {
  test('values over 512 KiB are refused before sending, naming the key and the limit', async () => {
    const kv = await open('big');
    try {
      const big = 'x'.repeat(512 * 1024 + 1);
      const error = await rejection(kv.txn({ puts: [{ key: 'runs/big', value: big }] }));
      expect(error.code).toBe('E_INPUT_TOO_LARGE');
      expect(error.message).toMatch(/runs\/big .*512 KiB/);
      expect(await kv.get('runs/big')).toBeUndefined();
      // A value under the limit whose base64 transaction would exceed Consul's request limit is refused too.
      const error2 = await rejection(kv.txn({ puts: [{ key: 'runs/big', value: 'y'.repeat(400 * 1024) }] }));
      expect(error2).toMatchObject({
        code: 'E_INPUT_TOO_LARGE',
        message: expect.stringContaining('txn_max_req_len'),
      });
      expect(await kv.get('runs/big')).toBeUndefined();
    } finally {
      await kv.close();
    }
  });

  test('a destroyed session aborts handle.lost with E_LOCK_LOST', async () => {
    const kv = await open('lost');
    try {
      const lock = await kv.acquireLock('app-lost', info('alice'), { ttlMs: lockTtlMs });
      const base = REAL ? null : fake!.url;
      if (!base) return; // needs the session id, which only the fake lets us find without ACL privileges
      const sessions = (await (await fetch(`${base}/v1/session/list`)).json()) as Array<{
        ID: string;
        Name: string;
      }>;
      const mine = sessions.filter((s) => s.Name === 'persona lock app-lost');
      expect(mine).toHaveLength(1);
      await fetch(`${base}/v1/session/destroy/${mine[0]!.ID}`, { method: 'PUT' });
      await new Promise<void>((resolve) =>
        lock.lost.addEventListener('abort', () => resolve(), { once: true }),
      );
      expect(lock.lost.reason).toMatchObject({
        code: 'E_LOCK_LOST',
        message: expect.stringContaining('app-lost'),
      });
      await lock.release();
    } finally {
      await kv.close();
    }
  });

  test('release() leaves no held lock and is not reported as a takeover', async () => {
    const kv = await open('release');
    try {
      const lock = await kv.acquireLock('app-r', info('alice'), { ttlMs: lockTtlMs });
      await lock.release();
      await lock.release();
      expect(await kv.listLocks()).toEqual([]);
      const takeovers: string[] = [];
      const again = await kv.acquireLock('app-r', info('bob'), {
        ttlMs: lockTtlMs,
        onTakeover: (p) => takeovers.push(p.info.holder),
      });
      expect(takeovers).toEqual([]);
      expect((await kv.listLocks()).map((l) => l.info.holder)).toEqual(['bob']);
      await again.release();
    } finally {
      await kv.close();
    }
  });
});

describe.skipIf(REAL)('consul store against the fake agent: environment, TLS, ACL, outages', () => {
  test('CONSUL_HTTP_ADDR is used when the URL names no host', async () => {
    const kv = await openBackend(
      'consul:///envprefix',
      { CONSUL_HTTP_ADDR: `127.0.0.1:${fake!.port}` },
      repoRoot,
    );
    expect(kv.describe).toBe(`consul://127.0.0.1:${fake!.port}/envprefix`);
    expect(await kv.txn({ puts: [{ key: 'runs/x', value: '1' }] })).toEqual({ ok: true });
    await kv.close();
  });

  test('ACL: a missing token and a wrong token are clear errors; the token never shows', async () => {
    const token = 'b7f1c2d4-secret-token-0042';
    const server = await startConsulServer({ aclToken: token });
    const url = `consul://127.0.0.1:${server.port}/acl`;
    try {
      const none = await openBackend(url, {}, repoRoot);
      const missing = await rejection(none.get('profiles/x'));
      expect(missing.code).toBe('E_STORE');
      expect(missing.message).toContain(`store ${url} needs an ACL token to read profiles/x`);
      expect(missing.hint).toContain('CONSUL_HTTP_TOKEN');

      const wrong = await openBackend(url, { CONSUL_HTTP_TOKEN: 'not-the-token-at-all' }, repoRoot);
      const unknown = await rejection(wrong.txn({ puts: [{ key: 'runs/x', value: '1' }] }));
      expect(unknown.message).toContain('does not know the ACL token in CONSUL_HTTP_TOKEN');
      expect(shown(unknown)).not.toContain('not-the-token-at-all');

      const right = await openBackend(url, { CONSUL_HTTP_TOKEN: token }, repoRoot);
      expect(right.describe).toBe(url);
      await right.txn({ puts: [{ key: 'runs/x', value: '1' }] });
      const lock = await right.acquireLock('app', info('alice'), { ttlMs: 10_000 });
      expect((await right.listLocks()).map((l) => l.info.holder)).toEqual(['alice']);
      await server.stop();
      for (const attempt of [
        right.get('runs/x'),
        right.listLocks(),
        right.acquireLock('b', info('bob'), { ttlMs: 1000 }),
      ]) {
        const down = await rejection(attempt);
        expect(down.code).toBe('E_STORE_UNAVAILABLE');
        expect(shown(down)).not.toContain(token);
      }
      await lock.release();
      for (const kv of [none, wrong, right]) await kv.close();
    } finally {
      await server.close();
    }
  });

  test('TLS: https with CONSUL_CACERT works; without it the error says to set it', async () => {
    const dir = tempDir('persona-consul-tls-');
    const { cert, key } = selfSignedCert(dir);
    const server = await startConsulServer({ tls: { cert, key } });
    try {
      const url = `consul://127.0.0.1:${server.port}/tls?tls=1`;
      const kv = await openBackend(url, { CONSUL_CACERT: join(dir, 'cert.pem') }, repoRoot);
      expect(kv.describe).toBe(url);
      expect(await kv.txn({ puts: [{ key: 'runs/t', value: 'secure' }] })).toEqual({ ok: true });
      expect((await kv.get('runs/t'))?.value).toBe('secure');
      await kv.close();

      const viaEnv = await openBackend(
        'consul:///tls',
        { CONSUL_HTTP_ADDR: `https://127.0.0.1:${server.port}`, CONSUL_CACERT: join(dir, 'cert.pem') },
        repoRoot,
      );
      expect((await viaEnv.get('runs/t'))?.value).toBe('secure');
      await viaEnv.close();

      const untrusted = await openBackend(url, {}, repoRoot);
      const error = await rejection(untrusted.get('runs/t'));
      expect(error.code).toBe('E_STORE_UNAVAILABLE');
      expect(error.hint).toContain('CONSUL_CACERT');
      await untrusted.close();

      await expect(
        openBackend(url, { CONSUL_CACERT: join(dir, 'missing.pem') }, repoRoot),
      ).rejects.toMatchObject({
        code: 'E_USAGE',
        message: expect.stringContaining('CONSUL_CACERT'),
      });
    } finally {
      await server.close();
    }
  });

  test('store down: E_STORE_UNAVAILABLE naming the store and the action; nothing half-written', async () => {
    const server = await startConsulServer();
    const url = `consul://127.0.0.1:${server.port}/down`;
    try {
      const kv = await openBackend(url, {}, repoRoot);
      await kv.txn({ puts: [{ key: 'runs/a', value: 'before' }] });
      const before = (await kv.get('runs/a'))!;
      await server.stop();
      const read = await rejection(kv.get('runs/a'));
      expect(read.code).toBe('E_STORE_UNAVAILABLE');
      expect(read.message).toContain(`store ${url} is unavailable: cannot read runs/a`);
      const write = await rejection(
        kv.txn({
          checks: [{ key: 'runs/a', token: before.token }],
          puts: [
            { key: 'runs/a', value: 'after' },
            { key: 'runs/b', value: 'new' },
          ],
        }),
      );
      expect(write.message).toContain(`store ${url} is unavailable: cannot write runs/a, runs/b`);
      await server.start();
      expect((await kv.get('runs/a'))?.value).toBe('before');
      expect(await kv.get('runs/b')).toBeUndefined();
      await kv.close();
    } finally {
      await server.close();
    }
  });

  test("a TTL under the agent's minimum is raised to it (Consul: 10 s)", async () => {
    const server = await startConsulServer(); // session_ttl_min 10 s, as in Consul
    try {
      const kv = await openBackend(`consul://127.0.0.1:${server.port}/ttl`, {}, repoRoot);
      const lock = await kv.acquireLock('app-ttl', info('alice'), { ttlMs: 1000 });
      const sessions = (await (await fetch(`${server.url}/v1/session/list`)).json()) as Array<{
        TTL: string;
        LockDelay: number;
        Behavior: string;
      }>;
      expect(sessions).toEqual([
        expect.objectContaining({ TTL: '10s', LockDelay: 10e9, Behavior: 'release' }),
      ]);
      await lock.release();
      expect(await (await fetch(`${server.url}/v1/session/list`)).json()).toEqual([]);
      await kv.close();
    } finally {
      await server.close();
    }
  });

  test('a hung agent: the request times out after ?timeout= with E_STORE_UNAVAILABLE', async () => {
    const silent = await startSilentServer();
    try {
      const kv = await openBackend(`consul://127.0.0.1:${silent.port}/hung?timeout=300ms`, {}, repoRoot);
      const started = Date.now();
      const error = await rejection(kv.get('runs/a'));
      expect(Date.now() - started).toBeLessThan(3000);
      expect(error.code).toBe('E_STORE_UNAVAILABLE');
      expect(error.message).toContain(
        `store consul://127.0.0.1:${silent.port}/hung?timeout=300ms is unavailable`,
      );
      await kv.close();
    } finally {
      await silent.close();
    }
  });

  test('a lock in its lock-delay is refused as held, naming the old holder', async () => {
    const server = await startConsulServer({ sessionTtlMinMs: 1000, sessionTtlMultiplier: 1 });
    try {
      const holder = await openBackend(`consul://127.0.0.1:${server.port}/delay`, {}, repoRoot);
      const kv = await openBackend(`consul://127.0.0.1:${server.port}/delay`, {}, repoRoot);
      // 3 s TTL, so a 3 s lock-delay: long enough to observe it.
      await holder.acquireLock('app-d', info('ghost'), { ttlMs: 3000 });
      await holder.close();
      const seen = new Set<string>();
      let taken = false;
      const deadline = Date.now() + 15_000;
      while (!taken && Date.now() < deadline) {
        try {
          const lock = await kv.acquireLock('app-d', info('bob'), { ttlMs: 1000 });
          taken = true;
          await lock.release();
        } catch (error) {
          expect(error).toMatchObject({ code: 'E_LOCK_HELD', message: expect.stringContaining('ghost') });
          seen.add(/lock-delay/.test((error as Error).message) ? 'delay' : 'held');
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      expect(taken).toBe(true);
      expect([...seen].sort()).toEqual(['delay', 'held']);
      await kv.close();
    } finally {
      await server.close();
    }
  });
});
