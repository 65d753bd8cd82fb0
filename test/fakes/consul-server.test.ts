import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Consul from 'consul';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCert } from '../helpers/tls.js';
import { type ConsulServer, startConsulServer } from './consul-server.js';

const REAL_ADDR = process.env.CONSUL_HTTP_ADDR;
const REAL = REAL_ADDR !== undefined && REAL_ADDR !== '';
const TOKEN = process.env.CONSUL_HTTP_TOKEN ?? '';
/** Real Consul: TTL >= 10s and invalidation within 2x TTL. The fake is configured for 1s and 1x. */
const TTL = REAL ? '10s' : '1s';
const TTL_EXPIRY_MS = REAL ? 25_000 : 1_500;
const SLOW = REAL ? 90_000 : 15_000;

const run = randomUUID().slice(0, 8);
const prefix = `persona-test/${run}/`;
const createdSessions: string[] = [];
const createdNodes: string[] = [];
let base = '';
let fake: ConsulServer | undefined;

function realBase(addr: string): string {
  if (/^https?:\/\//.test(addr)) return addr.replace(/\/$/, '');
  return `${process.env.CONSUL_HTTP_SSL === 'true' ? 'https' : 'http'}://${addr}`;
}

interface Res {
  status: number;
  headers: Headers;
  body: string;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  json(): any;
}

async function call(
  method: string,
  path: string,
  body?: string | Buffer | object,
  headers: Record<string, string> = {},
): Promise<Res> {
  const auth: Record<string, string> = TOKEN ? { 'X-Consul-Token': TOKEN } : {};
  const payload =
    body === undefined || typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const res = await fetch(`${base}${path}`, { method, headers: { ...auth, ...headers }, body: payload });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text, json: () => JSON.parse(text) };
}

const k = (name: string): string => `${prefix}${name}`;
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const index = (res: Res): number => Number(res.headers.get('x-consul-index'));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(100);
  }
}

async function createSession(body: object = {}): Promise<string> {
  const res = await call('PUT', '/v1/session/create', body);
  expect(res.status, res.body).toBe(200);
  const id: string = res.json().ID;
  createdSessions.push(id);
  return id;
}

async function registerNode(extra: object = {}): Promise<string> {
  const node = `persona-test-${run}-${createdNodes.length}`;
  createdNodes.push(node);
  const res = await call('PUT', '/v1/catalog/register', { Node: node, Address: '10.99.0.1', ...extra });
  expect(res.status, res.body).toBe(200);
  return node;
}

beforeAll(async () => {
  if (REAL_ADDR) base = realBase(REAL_ADDR);
  else {
    fake = await startConsulServer({ sessionTtlMultiplier: 1, sessionTtlMinMs: 1000 });
    base = fake.url;
  }
});

afterAll(async () => {
  if (base !== '') {
    for (const id of createdSessions) await call('PUT', `/v1/session/destroy/${id}`);
    for (const node of createdNodes) await call('PUT', '/v1/catalog/deregister', { Node: node });
    await call('DELETE', `/v1/kv/${prefix}?recurse`);
  }
  await fake?.close();
});

describe('KV', () => {
  it('answers 404 with an index for a missing key', async () => {
    const res = await call('GET', `/v1/kv/${k('missing')}`);
    expect(res.status).toBe(404);
    expect(res.body).toBe('');
    expect(index(res)).toBeGreaterThan(0);
    expect(res.headers.get('x-consul-knownleader')).toBe('true');
  });

  it('stores a value and reads it back with its indexes', async () => {
    const put = await call('PUT', `/v1/kv/${k('a')}?flags=42`, 'hello');
    expect(put.status).toBe(200);
    expect(put.json()).toBe(true);
    const res = await call('GET', `/v1/kv/${k('a')}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/json');
    const [entry] = res.json();
    expect(entry).toMatchObject({ Key: k('a'), Value: b64('hello'), Flags: 42, LockIndex: 0 });
    expect(entry.Session).toBeUndefined();
    expect(entry.CreateIndex).toBe(entry.ModifyIndex);
    expect(index(res)).toBe(entry.ModifyIndex);
    const raw = await call('GET', `/v1/kv/${k('a')}?raw`);
    expect(raw.body).toBe('hello');
    expect(raw.headers.get('content-type')).toContain('text/plain');
  });

  it('uses one index, strictly increasing across all writes', async () => {
    const seen: number[] = [];
    for (const name of ['i1', 'i2', 'i1', 'i3']) {
      await call('PUT', `/v1/kv/${k(name)}`, `v${seen.length}`);
      seen.push((await call('GET', `/v1/kv/${k(name)}`)).json()[0].ModifyIndex);
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1] as number);
  });

  it('compares and sets: cas=0 creates only, a stale index loses', async () => {
    expect((await call('PUT', `/v1/kv/${k('cas')}?cas=0`, 'one')).json()).toBe(true);
    expect((await call('PUT', `/v1/kv/${k('cas')}?cas=0`, 'two')).json()).toBe(false);
    const first = (await call('GET', `/v1/kv/${k('cas')}`)).json()[0];
    expect((await call('PUT', `/v1/kv/${k('cas')}?cas=${first.ModifyIndex}`, 'two')).json()).toBe(true);
    expect((await call('PUT', `/v1/kv/${k('cas')}?cas=${first.ModifyIndex}`, 'three')).json()).toBe(false);
    const second = (await call('GET', `/v1/kv/${k('cas')}`)).json()[0];
    expect(Buffer.from(second.Value, 'base64').toString()).toBe('two');
    expect(second.CreateIndex).toBe(first.CreateIndex);
  });

  it('lets exactly one of 50 concurrent writers from the same index win', async () => {
    await call('PUT', `/v1/kv/${k('race')}`, 'start');
    const from = (await call('GET', `/v1/kv/${k('race')}`)).json()[0].ModifyIndex;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => call('PUT', `/v1/kv/${k('race')}?cas=${from}`, `w${i}`)),
    );
    expect(results.filter((r) => r.json() === true)).toHaveLength(1);
  });

  it('lists recursively, lists keys, and cuts keys at a separator', async () => {
    for (const name of ['tree/b', 'tree/a', 'tree/sub/x', 'tree/sub/y'])
      await call('PUT', `/v1/kv/${k(name)}`, name);
    const list = await call('GET', `/v1/kv/${k('tree/')}?recurse`);
    expect(list.json().map((e: { Key: string }) => e.Key)).toEqual(
      ['tree/a', 'tree/b', 'tree/sub/x', 'tree/sub/y'].map(k),
    );
    expect(index(list)).toBe(Math.max(...list.json().map((e: { ModifyIndex: number }) => e.ModifyIndex)));
    expect((await call('GET', `/v1/kv/${k('tree/')}?keys`)).json()).toHaveLength(4);
    const cut = await call('GET', `/v1/kv/${k('tree/')}?keys&separator=/`);
    expect(cut.json()).toEqual(['tree/a', 'tree/b', 'tree/sub/'].map(k));
    expect((await call('GET', `/v1/kv/${k('nothing/')}?keys`)).status).toBe(404);
    expect((await call('GET', `/v1/kv/${k('nothing/')}?recurse`)).status).toBe(404);
  });

  it('deletes a key, with cas, and a whole prefix', async () => {
    await call('PUT', `/v1/kv/${k('del/one')}`, '1');
    await call('PUT', `/v1/kv/${k('del/two')}`, '2');
    const two = (await call('GET', `/v1/kv/${k('del/two')}`)).json()[0];
    expect((await call('DELETE', `/v1/kv/${k('del/two')}?cas=${two.ModifyIndex - 1}`)).json()).toBe(false);
    expect((await call('DELETE', `/v1/kv/${k('del/two')}?cas=${two.ModifyIndex}`)).json()).toBe(true);
    expect((await call('DELETE', `/v1/kv/${k('del/one')}`)).json()).toBe(true);
    await call('PUT', `/v1/kv/${k('del/sub/x')}`, 'x');
    expect((await call('DELETE', `/v1/kv/${k('del/')}?recurse`)).json()).toBe(true);
    expect((await call('GET', `/v1/kv/${k('del/')}?recurse`)).status).toBe(404);
  });

  it('refuses values over 512 KiB with 413 and keeps the old value', async () => {
    await call('PUT', `/v1/kv/${k('big')}`, 'small');
    const res = await call('PUT', `/v1/kv/${k('big')}`, Buffer.alloc(512 * 1024 + 1, 120));
    expect(res.status).toBe(413);
    expect(res.body).toContain('too large');
    expect((await call('GET', `/v1/kv/${k('big')}?raw`)).body).toBe('small');
    expect((await call('PUT', `/v1/kv/${k('big')}`, Buffer.alloc(512 * 1024, 120))).status).toBe(200);
  });

  it('rejects malformed requests as Consul does', async () => {
    const conflicting = await call('PUT', `/v1/kv/${k('x')}?cas=0&acquire=abc`, 'x');
    expect(conflicting.status).toBe(400);
    expect(conflicting.body).toContain('Conflicting flags');
    expect((await call('PUT', '/v1/kv/', 'x')).status).toBe(400);
    const wait = await call('GET', `/v1/kv/${k('a')}?index=1&wait=soon`);
    expect(wait.status).toBe(400);
    expect(wait.body).toBe('Invalid wait time');
  });
});

describe('blocking queries', () => {
  it('holds a read until the key changes, then returns the new index', async () => {
    await call('PUT', `/v1/kv/${k('watch')}`, 'v1');
    const current = index(await call('GET', `/v1/kv/${k('watch')}`));
    const started = Date.now();
    const pending = call('GET', `/v1/kv/${k('watch')}?index=${current}&wait=10s`);
    await sleep(300);
    await call('PUT', `/v1/kv/${k('elsewhere')}`, 'unrelated');
    await sleep(300);
    await call('PUT', `/v1/kv/${k('watch')}`, 'v2');
    const res = await pending;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    expect(index(res)).toBeGreaterThan(current);
    expect(Buffer.from(res.json()[0].Value, 'base64').toString()).toBe('v2');
  });

  it('returns the same index when the wait elapses without a change', async () => {
    const current = index(await call('GET', `/v1/kv/${k('watch')}`));
    const started = Date.now();
    const res = await call('GET', `/v1/kv/${k('watch')}?index=${current}&wait=1s`);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(1_000 + 1_000 / 16 + 1_000);
    expect(index(res)).toBe(current);
  });

  it('wakes a recursive watch for any key under the prefix, including deletes', async () => {
    await call('PUT', `/v1/kv/${k('watched/a')}`, 'a');
    const current = index(await call('GET', `/v1/kv/${k('watched/')}?recurse`));
    const pending = call('GET', `/v1/kv/${k('watched/')}?recurse&index=${current}&wait=10s`);
    await sleep(200);
    await call('DELETE', `/v1/kv/${k('watched/a')}`);
    const res = await pending;
    expect(res.status).toBe(404);
    expect(index(res)).toBeGreaterThan(current);
  });

  it('wakes a health watch when the service changes', async () => {
    const current = index(await call('GET', `/v1/health/service/persona-watch-${run}`));
    const pending = call('GET', `/v1/health/service/persona-watch-${run}?index=${current}&wait=10s`);
    await sleep(200);
    await registerNode({ Service: { Service: `persona-watch-${run}`, Port: 80 } });
    const res = await pending;
    expect(index(res)).toBeGreaterThan(current);
    expect(res.json()).toHaveLength(1);
  });
});

describe('transactions', () => {
  it('applies all operations at one index and returns their results', async () => {
    const res = await call('PUT', '/v1/txn', [
      { KV: { Verb: 'set', Key: k('txn/a'), Value: b64('A') } },
      { KV: { Verb: 'check-not-exists', Key: k('txn/b') } },
      { KV: { Verb: 'cas', Key: k('txn/b'), Value: b64('B'), Index: 0 } },
      { KV: { Verb: 'get', Key: k('txn/a') } },
    ]);
    expect(res.status, res.body).toBe(200);
    const { Results, Errors } = res.json();
    expect(Errors).toBeNull();
    expect(Results).toHaveLength(3);
    expect(Results[0].KV).toMatchObject({ Key: k('txn/a'), Value: null });
    expect(Results[2].KV).toMatchObject({ Key: k('txn/a'), Value: b64('A') });
    expect(Results[0].KV.ModifyIndex).toBe(Results[1].KV.ModifyIndex);
  });

  it('rolls everything back and answers 409 when a check fails', async () => {
    const a = (await call('GET', `/v1/kv/${k('txn/a')}`)).json()[0];
    const res = await call('PUT', '/v1/txn', [
      { KV: { Verb: 'set', Key: k('txn/a'), Value: b64('changed') } },
      { KV: { Verb: 'delete', Key: k('txn/b') } },
      { KV: { Verb: 'check-index', Key: k('txn/a'), Index: a.ModifyIndex } },
    ]);
    expect(res.status).toBe(409);
    const { Results, Errors } = res.json();
    expect(Results).toBeNull();
    expect(Errors).toEqual([{ OpIndex: 2, What: expect.stringContaining('failed index check') }]);
    expect((await call('GET', `/v1/kv/${k('txn/a')}?raw`)).body).toBe('A');
    expect((await call('GET', `/v1/kv/${k('txn/b')}`)).status).toBe(200);
  });

  it('supports get-tree, delete-cas and delete-tree', async () => {
    const tree = await call('PUT', '/v1/txn', [{ KV: { Verb: 'get-tree', Key: k('txn/') } }]);
    expect(tree.json().Results.map((r: { KV: { Key: string } }) => r.KV.Key)).toEqual([
      k('txn/a'),
      k('txn/b'),
    ]);
    expect(tree.headers.get('x-consul-knownleader')).toBe('true');
    const b = tree.json().Results[1].KV;
    const stale = await call('PUT', '/v1/txn', [
      { KV: { Verb: 'delete-cas', Key: k('txn/b'), Index: b.ModifyIndex + 1 } },
    ]);
    expect(stale.status).toBe(409);
    expect(stale.json().Errors[0].What).toContain('index is stale');
    const ok = await call('PUT', '/v1/txn', [
      { KV: { Verb: 'delete-cas', Key: k('txn/b'), Index: b.ModifyIndex } },
      { KV: { Verb: 'delete-tree', Key: k('txn/') } },
    ]);
    expect(ok.status).toBe(200);
    expect(ok.json().Results).toEqual([]);
    expect((await call('GET', `/v1/kv/${k('txn/')}?recurse`)).status).toBe(404);
  });

  it('refuses too many operations, bad JSON and bad base64', async () => {
    const ops = Array.from({ length: 129 }, (_, i) => ({ KV: { Verb: 'get', Key: k(`many/${i}`) } }));
    const many = await call('PUT', '/v1/txn', ops);
    expect(many.status).toBe(413);
    expect(many.body).toContain('Transaction contains too many operations');
    const bad = await call('PUT', '/v1/txn', '[{');
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('Failed to parse body');
    const b64bad = await call('PUT', '/v1/txn', [{ KV: { Verb: 'set', Key: k('x'), Value: 'not base64!' } }]);
    expect(b64bad.status).toBe(400);
  });
});

describe('sessions and locks', () => {
  it('creates a session with documented defaults and lists it', async () => {
    const id = await createSession({ Name: 'persona-defaults' });
    const info = await call('GET', `/v1/session/info/${id}`);
    expect(info.status).toBe(200);
    expect(index(info)).toBeGreaterThan(0);
    const [session] = info.json();
    expect(session).toMatchObject({
      ID: id,
      Name: 'persona-defaults',
      LockDelay: 15e9,
      Behavior: 'release',
      TTL: '',
    });
    expect(session.NodeChecks).toEqual(['serfHealth']);
    const list = (await call('GET', '/v1/session/list')).json();
    expect(list.map((s: { ID: string }) => s.ID)).toContain(id);
    const byNode = (await call('GET', `/v1/session/node/${session.Node}`)).json();
    expect(byNode.map((s: { ID: string }) => s.ID)).toContain(id);
    expect((await call('GET', `/v1/session/info/${randomUUID()}`)).json()).toEqual([]);
  });

  it('acquires and releases a lock; a second session cannot take it', async () => {
    const one = await createSession({ LockDelay: '1s' });
    const two = await createSession({ LockDelay: '1s' });
    expect((await call('PUT', `/v1/kv/${k('lock')}?acquire=${one}`, 'holder=one')).json()).toBe(true);
    let entry = (await call('GET', `/v1/kv/${k('lock')}`)).json()[0];
    expect(entry).toMatchObject({ Session: one, LockIndex: 1 });
    expect((await call('PUT', `/v1/kv/${k('lock')}?acquire=${one}`, 'holder=one again')).json()).toBe(true);
    expect((await call('GET', `/v1/kv/${k('lock')}`)).json()[0].LockIndex).toBe(1);
    expect((await call('PUT', `/v1/kv/${k('lock')}?acquire=${two}`, 'holder=two')).json()).toBe(false);
    expect((await call('PUT', `/v1/kv/${k('lock')}?release=${two}`)).json()).toBe(false);
    expect((await call('PUT', `/v1/kv/${k('lock')}?release=${one}`, 'released')).json()).toBe(true);
    entry = (await call('GET', `/v1/kv/${k('lock')}`)).json()[0];
    expect(entry.Session).toBeUndefined();
    expect(entry.LockIndex).toBe(1);
    expect((await call('PUT', `/v1/kv/${k('lock')}?acquire=${two}`, 'holder=two')).json()).toBe(true);
    expect((await call('GET', `/v1/kv/${k('lock')}`)).json()[0].LockIndex).toBe(2);
  });

  it('releases locks when a session is destroyed, then enforces the lock-delay', async () => {
    const one = await createSession({ LockDelay: '1s' });
    const two = await createSession({ LockDelay: '1s' });
    expect((await call('PUT', `/v1/kv/${k('delayed')}?acquire=${one}`, 'x')).json()).toBe(true);
    expect((await call('PUT', `/v1/session/destroy/${one}`)).json()).toBe(true);
    expect((await call('GET', `/v1/kv/${k('delayed')}`)).json()[0].Session).toBeUndefined();
    expect((await call('PUT', `/v1/kv/${k('delayed')}?acquire=${two}`, 'x')).json()).toBe(false);
    const txn = await call('PUT', '/v1/txn', [{ KV: { Verb: 'lock', Key: k('delayed'), Session: two } }]);
    expect(txn.status).toBe(409);
    expect(txn.json().Errors[0].What).toContain('due to lock delay');
    await sleep(1_100);
    expect((await call('PUT', `/v1/kv/${k('delayed')}?acquire=${two}`, 'x')).json()).toBe(true);
  });

  it('deletes held keys when a Behavior=delete session ends', async () => {
    const id = await createSession({ Behavior: 'delete', LockDelay: '0s' });
    expect((await call('PUT', `/v1/kv/${k('ephemeral')}?acquire=${id}`, 'x')).json()).toBe(true);
    await call('PUT', `/v1/session/destroy/${id}`);
    expect((await call('GET', `/v1/kv/${k('ephemeral')}`)).status).toBe(404);
  });

  it(
    'invalidates a session whose TTL runs out, releasing its lock',
    async () => {
      const id = await createSession({ TTL, LockDelay: '0s' });
      expect((await call('PUT', `/v1/kv/${k('ttl')}?acquire=${id}`, 'x')).json()).toBe(true);
      const renewed = await call('PUT', `/v1/session/renew/${id}`);
      expect(renewed.status).toBe(200);
      expect(renewed.json()[0].ID).toBe(id);
      await waitFor(
        async () => (await call('GET', `/v1/session/info/${id}`)).json().length === 0,
        TTL_EXPIRY_MS,
      );
      expect((await call('GET', `/v1/kv/${k('ttl')}`)).json()[0].Session).toBeUndefined();
      const renew = await call('PUT', `/v1/session/renew/${id}`);
      expect(renew.status).toBe(404);
      expect(renew.body).toContain('not found');
    },
    SLOW,
  );

  it(
    'keeps a renewed session alive past its TTL',
    async () => {
      const id = await createSession({ TTL });
      const ttlMs = REAL ? 10_000 : 1_000;
      for (let i = 0; i < 4; i++) {
        await sleep(ttlMs / 2);
        expect((await call('PUT', `/v1/session/renew/${id}`)).status).toBe(200);
      }
      expect((await call('GET', `/v1/session/info/${id}`)).json()).toHaveLength(1);
    },
    SLOW,
  );

  it('answers errors as Consul does', async () => {
    const ttl = await call('PUT', '/v1/session/create', { TTL: '100000s' });
    expect(ttl.status).toBe(500);
    expect(ttl.body).toContain('Invalid Session TTL');
    const behavior = await call('PUT', '/v1/session/create', { Behavior: 'explode' });
    expect(behavior.status).toBe(500);
    expect(behavior.body).toContain('Invalid Behavior');
    const decode = await call('PUT', '/v1/session/create', '{"Name":');
    expect(decode.status).toBe(400);
    const unknown = await call('PUT', `/v1/kv/${k('lock2')}?acquire=${randomUUID()}`, 'x');
    expect(unknown.status).toBe(500);
    expect(unknown.body).toContain('invalid session');
    expect((await call('PUT', `/v1/session/renew/${randomUUID()}`)).status).toBe(404);
    expect((await call('PUT', `/v1/session/destroy/${randomUUID()}`)).json()).toBe(true);
  });
});

describe('catalog and health', () => {
  const service = `persona-svc-${run}`;

  it('registers nodes, services and checks and reads them back', async () => {
    const node = await registerNode({
      NodeMeta: { rack: 'r1' },
      Service: { ID: `${service}-1`, Service: service, Tags: ['primary'], Port: 8080, Meta: { v: '1' } },
      Checks: [
        { CheckID: `${service}-alive`, Name: 'alive', Status: 'passing', ServiceID: `${service}-1` },
        { CheckID: 'node-ok', Name: 'node ok', Status: 'passing' },
      ],
    });
    const nodes = (await call('GET', '/v1/catalog/nodes')).json();
    expect(nodes.find((n: { Node: string }) => n.Node === node)).toMatchObject({
      Address: '10.99.0.1',
      Meta: { rack: 'r1' },
    });
    expect((await call('GET', '/v1/catalog/services')).json()[service]).toEqual(['primary']);
    const instances = (await call('GET', `/v1/catalog/service/${service}`)).json();
    expect(instances).toHaveLength(1);
    expect(instances[0]).toMatchObject({
      Node: node,
      ServiceID: `${service}-1`,
      ServiceName: service,
      ServicePort: 8080,
      ServiceTags: ['primary'],
    });
    const byNode = (await call('GET', `/v1/catalog/node/${node}`)).json();
    expect(byNode.Node.Node).toBe(node);
    expect(byNode.Services[`${service}-1`]).toMatchObject({ Service: service, Port: 8080 });
    const missing = await call('GET', `/v1/catalog/node/no-such-node-${run}`);
    expect(missing.status).toBe(200);
    expect(missing.json()).toBeNull();
    const checks = (await call('GET', `/v1/health/node/${node}`)).json();
    expect(checks.map((c: { CheckID: string }) => c.CheckID).sort()).toEqual(
      [`${service}-alive`, 'node-ok'].sort(),
    );
    const svcChecks = (await call('GET', `/v1/health/checks/${service}`)).json();
    expect(svcChecks).toHaveLength(1);
    expect(svcChecks[0]).toMatchObject({ ServiceName: service, ServiceTags: ['primary'] });
  });

  it('filters health by ?passing, counting node checks too', async () => {
    const node = await registerNode({
      Service: { ID: `${service}-2`, Service: service, Port: 8081 },
      Check: { CheckID: `${service}-2-alive`, Name: 'alive', Status: 'passing', ServiceID: `${service}-2` },
    });
    expect((await call('GET', `/v1/health/service/${service}?passing`)).json()).toHaveLength(2);
    await call('PUT', '/v1/catalog/register', {
      Node: node,
      Address: '10.99.0.1',
      Check: { CheckID: 'disk', Name: 'disk', Status: 'warning' },
    });
    const all = (await call('GET', `/v1/health/service/${service}`)).json();
    expect(all).toHaveLength(2);
    const entry = all.find((e: { Node: { Node: string } }) => e.Node.Node === node);
    expect(entry.Checks.map((c: { CheckID: string }) => c.CheckID).sort()).toEqual(
      [`${service}-2-alive`, 'disk'].sort(),
    );
    const passing = (await call('GET', `/v1/health/service/${service}?passing`)).json();
    expect(passing.map((e: { Service: { ID: string } }) => e.Service.ID)).toEqual([`${service}-1`]);
    expect((await call('GET', `/v1/health/service/${service}?tag=primary`)).json()).toHaveLength(1);
  });

  it('deregisters a service, then a node', async () => {
    const node = createdNodes[createdNodes.length - 1] as string;
    await call('PUT', '/v1/catalog/deregister', { Node: node, ServiceID: `${service}-2` });
    expect((await call('GET', `/v1/catalog/service/${service}`)).json()).toHaveLength(1);
    expect(
      (await call('GET', `/v1/health/node/${node}`)).json().map((c: { CheckID: string }) => c.CheckID),
    ).toEqual(['disk']);
    await call('PUT', '/v1/catalog/deregister', { Node: node });
    expect((await call('GET', `/v1/catalog/node/${node}`)).json()).toBeNull();
  });

  it('invalidates sessions tied to a check that turns critical', async () => {
    const node = await registerNode({
      Check: { CheckID: 'heartbeat', Name: 'heartbeat', Status: 'passing' },
    });
    const id = await createSession({ Node: node, Checks: ['heartbeat'], LockDelay: '0s' });
    expect((await call('PUT', `/v1/kv/${k('check-lock')}?acquire=${id}`, 'x')).json()).toBe(true);
    await call('PUT', '/v1/catalog/register', {
      Node: node,
      Address: '10.99.0.1',
      Check: { CheckID: 'heartbeat', Name: 'heartbeat', Status: 'critical' },
    });
    expect((await call('GET', `/v1/session/info/${id}`)).json()).toEqual([]);
    expect((await call('GET', `/v1/kv/${k('check-lock')}`)).json()[0].Session).toBeUndefined();
  });

  it('rejects bad registrations', async () => {
    expect((await call('PUT', '/v1/catalog/register', '{')).status).toBe(400);
    const noNode = await call('PUT', '/v1/catalog/register', { Address: '10.0.0.1' });
    expect(noNode.status).toBe(500);
    expect(noNode.body).toContain('Must provide node');
  });
});

describe('status, agent and routing', () => {
  it('reports a leader, peers and the agent identity', async () => {
    const leader = await call('GET', '/v1/status/leader');
    expect(typeof leader.json()).toBe('string');
    expect(leader.json()).not.toBe('');
    expect(Array.isArray((await call('GET', '/v1/status/peers')).json())).toBe(true);
    const self = (await call('GET', '/v1/agent/self')).json();
    expect(self.Config.Datacenter).toBeTruthy();
    expect(self.Config.NodeName).toBeTruthy();
  });

  it('answers 404 for unknown endpoints and 405 for wrong methods', async () => {
    const unknown = await call('GET', '/v1/no-such-endpoint');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toContain('Invalid URL path');
    const wrong = await call('POST', `/v1/kv/${k('a')}`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toContain('PUT');
  });
});

describe('the npm consul client against this API', () => {
  it('reads and writes with cas', async () => {
    const url = new URL(base);
    const client = new Consul({
      host: url.hostname,
      port: Number(url.port),
      secure: url.protocol === 'https:',
      ...(TOKEN ? { defaults: { token: TOKEN } } : {}),
    });
    expect(await client.kv.set({ key: k('client'), value: 'v1', cas: 0 })).toBe(true);
    const got = await client.kv.get(k('client'));
    expect(got?.Value).toBe('v1');
    const modifyIndex = got?.ModifyIndex ?? 0;
    expect(await client.kv.set({ key: k('client'), value: 'v2', cas: modifyIndex })).toBe(true);
    // The server answers `false`, but papi turns a false body into undefined: only `=== true` means written.
    expect(await client.kv.set({ key: k('client'), value: 'v3', cas: modifyIndex })).toBeUndefined();
    expect((await client.kv.get(k('client')))?.Value).toBe('v2');
    expect(await client.kv.get(k('client-missing'))).toBeUndefined();
    expect(await client.kv.keys(k(''))).toContain(k('client'));
  });
});

describe.skipIf(REAL)('fake-only: agent down, ACL tokens, TLS', () => {
  it('keeps its state across stop and start on the same port, and refuses connections meanwhile', async () => {
    const server = await startConsulServer();
    try {
      const url = `${server.url}/v1/kv/persist`;
      await fetch(url, { method: 'PUT', body: 'kept' });
      const before = Number((await fetch(url)).headers.get('x-consul-index'));
      const watch = fetch(`${url}?index=${before}&wait=30s`).then(
        () => 'answered',
        () => 'cut',
      );
      await sleep(100);
      const port = server.port;
      await server.stop();
      expect(await watch).toBe('cut');
      await expect(fetch(url)).rejects.toThrow();
      await server.start();
      expect(server.port).toBe(port);
      const res = await fetch(`${url}?raw`);
      expect(await res.text()).toBe('kept');
      await fetch(`${server.url}/v1/kv/other`, { method: 'PUT', body: 'x' });
      expect(
        Number((await fetch(`${server.url}/v1/kv/other`)).headers.get('x-consul-index')),
      ).toBeGreaterThan(before);
    } finally {
      await server.close();
    }
  });

  it('demands the ACL token, from any of the three places Consul reads it', async () => {
    const server = await startConsulServer({ aclToken: 's3cret' });
    try {
      const url = `${server.url}/v1/kv/guarded`;
      const anonymous = await fetch(url);
      expect(anonymous.status).toBe(403);
      expect(await anonymous.text()).toContain('Permission denied');
      const wrong = await fetch(url, { headers: { 'X-Consul-Token': 'nope' } });
      expect(wrong.status).toBe(403);
      expect(await wrong.text()).toBe('ACL not found');
      expect(
        (await fetch(url, { method: 'PUT', body: 'x', headers: { 'X-Consul-Token': 's3cret' } })).status,
      ).toBe(200);
      expect((await fetch(url, { headers: { Authorization: 'Bearer s3cret' } })).status).toBe(200);
      expect((await fetch(`${url}?token=s3cret`)).status).toBe(200);
      expect((await fetch(`${server.url}/v1/status/leader`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('serves https with the given certificate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'persona-consul-tls-'));
    try {
      const { cert, key } = selfSignedCert(dir);
      const server = await startConsulServer({ tls: { cert, key } });
      try {
        expect(server.url).toMatch(/^https:/);
        const body = await new Promise<string>((resolve, reject) => {
          const req = httpsRequest(`${server.url}/v1/status/leader`, { ca: cert }, (res) => {
            let data = '';
            res.on('data', (chunk) => {
              data += chunk;
            });
            res.on('end', () => resolve(data));
          });
          req.on('error', reject);
          req.end();
        });
        expect(JSON.parse(body)).toBe('127.0.0.1:8300');
      } finally {
        await server.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
