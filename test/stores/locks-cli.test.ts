/**
 * `persona locks list`, in-process, against a file store and the fake Consul agent.
 */
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { LockInfo } from '../../src/stores/kv.js';
import { openBackend } from '../../src/stores/open.js';
import { type ConsulServer, startConsulServer } from '../fakes/consul-server.js';
import { repoRoot, runInProcess } from '../helpers/cli.js';
import { copyOfProfiles } from '../helpers/tmp.js';

const info = (holder: string): LockInfo => ({
  holder,
  host: hostname(),
  pid: process.pid,
  run_id: 'run-42',
  started_at: '2026-11-27T10:00:00.000Z',
});

describe('persona locks list', () => {
  let consul: ConsulServer;
  const token = 'c0ffee00-locks-cli-secret';
  beforeAll(async () => {
    consul = await startConsulServer({ aclToken: token });
  });
  afterAll(async () => {
    await consul.close();
  });

  test('file store: nothing held, then the holder, its run and since when', async () => {
    const dir = copyOfProfiles();
    const env = { PERSONA_STORE: `file:${dir}` };
    const empty = await runInProcess(['locks', 'list'], { env });
    expect(empty).toMatchObject({ code: 0, stdout: expect.stringContaining('no locks held in file:') });
    const kv = await openBackend(`file:${dir}`, {}, repoRoot);
    const lock = await kv.acquireLock('app-demo-web', info('alice@laptop'), { ttlMs: 30_000 });
    try {
      const human = await runInProcess(['locks', 'list'], { env });
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(/app-demo-web .*alice@laptop .*run-42/);
      const json = JSON.parse((await runInProcess(['locks', 'list', '--json'], { env })).stdout);
      expect(json.locks).toEqual([
        { name: 'app-demo-web', info: info('alice@laptop'), expires_at: expect.any(String) },
      ]);
    } finally {
      await lock.release();
      await kv.close();
    }
  });

  test('consul store with an ACL token: lists the lock; the token appears nowhere', async () => {
    const url = `consul://127.0.0.1:${consul.port}/cli`;
    const env = { PERSONA_STORE: url, CONSUL_HTTP_TOKEN: token };
    const kv = await openBackend(url, env, repoRoot);
    const lock = await kv.acquireLock('app-orders-db', info('bob@ci'), { ttlMs: 10_000 });
    try {
      const json = await runInProcess(['locks', 'list', '--json'], { env });
      expect(json.code).toBe(0);
      const data = JSON.parse(json.stdout);
      expect(data.store).toBe(url);
      expect(data.locks.map((l: { name: string; info: LockInfo }) => [l.name, l.info.holder])).toEqual([
        ['app-orders-db', 'bob@ci'],
      ]);
      const human = await runInProcess(['locks', 'list'], { env });
      expect(human.stdout).toMatch(/app-orders-db .*bob@ci .*while renewed/);
      const denied = await runInProcess(['locks', 'list', '--json'], { env: { PERSONA_STORE: url } });
      expect(denied.code).toBe(4);
      expect(denied.stderr).toContain('needs an ACL token');
      for (const r of [json, human, denied]) expect(`${r.stdout}${r.stderr}`).not.toContain(token);
    } finally {
      await lock.release();
      await kv.close();
    }
  });

  test('store down: exit 4 and a message naming the store', async () => {
    const server = await startConsulServer();
    const url = `consul://127.0.0.1:${server.port}/gone`;
    await server.close();
    const r = await runInProcess(['locks', 'list'], { env: { PERSONA_STORE: url } });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`store ${url} is unavailable: cannot list locks`);
  });
});
