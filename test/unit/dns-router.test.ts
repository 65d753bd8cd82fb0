/**
 * The `dns` router's refusals, with a scripted server (the real one is in test/integration/dns-update.test.ts):
 * an rcode names the server and itself, an answer that is not signed is not trusted, a name outside the zone and
 * a host without an IP address are usage errors, a secret that is not base64 is named without its value.
 */
import { describe, expect, test } from 'vitest';
import { PersonaError } from '../../src/errors.js';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import type { Profile } from '../../src/profile/schema.js';
import { profileSchema } from '../../src/profile/schema.js';
import { DnsRouter } from '../../src/traffic/dns-router.js';
import { decodeMessage, encodeMessage, type Message, OPCODE, rr, TYPE } from '../../src/traffic/dns-wire.js';

type DnsTraffic = Extract<Profile['traffic'], { method: 'dns' }>;
const SECRET = Buffer.alloc(32, 1).toString('base64');
const signal = new AbortController().signal;
const host = (name: string, address: string): InventoryHost => ({ name, address, labels: {}, apps: [] });

function traffic(over: Partial<DnsTraffic> = {}): DnsTraffic {
  const t = profileSchema.shape.traffic.parse({
    method: 'dns',
    server: '192.0.2.53',
    zone: 'example.test',
    name: '{app}',
    key: { name: 'k', secret: 'env:K' },
    ...over,
  });
  return t as DnsTraffic;
}

/** A server that answers queries with web A 10.0.0.1 (authoritative) and updates with `rcode`, unsigned. */
function router(rcode: number, opts: { cfg?: Partial<DnsTraffic>; secret?: string } = {}) {
  const updates: Message[] = [];
  const r = new DnsRouter('web', traffic(opts.cfg), {
    secret: async () => opts.secret ?? SECRET,
    guard: () => {},
    exchange: async (_server, wire) => {
      const m = decodeMessage(wire);
      const reply: Message = { ...m, qr: true, aa: true, additional: [], rcode: 0 };
      if (m.opcode === OPCODE.UPDATE) {
        updates.push(m);
        return encodeMessage({ ...reply, answers: [], authority: [], rcode });
      }
      const q = m.questions[0]!;
      const answers = q.type === TYPE.A ? [rr.add(q.name, TYPE.A, 120, Buffer.from([10, 0, 0, 1]))] : [];
      return encodeMessage({ ...reply, answers });
    },
  });
  return { r, updates };
}

const failure = async (p: Promise<unknown>) => {
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(e).toBeInstanceOf(PersonaError);
  return e as PersonaError;
};

describe('the dns router refuses clearly', () => {
  test.each([
    [5, 'REFUSED', /acl with action update/],
    [9, 'NOTAUTH', /not authoritative for example\.test, or it is a secondary/],
    [10, 'NOTZONE', /not inside zone example\.test/],
    [2, 'SERVFAIL', /server’s log/],
  ])('rcode %i: the error names the server and %s', async (code, name, hint) => {
    const { r } = router(code);
    const e = await failure(r.fence(host('web-1', '10.0.0.1'), signal));
    expect(e.message).toBe(
      `DNS 192.0.2.53, zone example.test. refused the update of web.example.test.: ${name}`,
    );
    expect(e.hint).toMatch(hint);
  });

  test('a NOERROR that is not signed is not trusted', async () => {
    const { r, updates } = router(0);
    const e = await failure(r.fence(host('web-1', '10.0.0.1'), signal));
    expect(e.message).toMatch(/answered the update with NOERROR, but the response is not signed/);
    // It was one update: delete 10.0.0.1 if the A RRset is exactly {10.0.0.1}.
    expect(updates).toHaveLength(1);
    expect(updates[0]!.answers).toEqual([rr.exists('web.example.test', TYPE.A, Buffer.from([10, 0, 0, 1]))]);
    expect(updates[0]!.authority).toEqual([
      rr.delete('web.example.test', TYPE.A, Buffer.from([10, 0, 0, 1])),
    ]);
  });

  test('the secret must be base64; the error names the reference, not the value', async () => {
    const { r } = router(0, { secret: 'not base64 at all!' });
    const e = await failure(r.fence(host('web-1', '10.0.0.1'), signal));
    expect(e.code).toBe('E_SECRET');
    expect(e.message).toBe('secret env:K (traffic.key k): not a base64 TSIG secret');
  });

  test('a host without an IP address, a name outside the zone', async () => {
    const { r } = router(0);
    const e = await failure(r.isFenced(host('web-1', 'web-1.example'), signal));
    expect(e.message).toMatch(/needs web-1's IP address, and its inventory address is web-1\.example/);
    expect(() => router(0, { cfg: { name: 'www.other.test.' } })).toThrow(
      /traffic\.name www\.other\.test\. is not inside traffic\.zone example\.test\./,
    );
  });

  test('the name: relative, absolute, the apex, {app}', () => {
    const desc = (name: string) =>
      new DnsRouter('shop', traffic({ name }), { secret: async () => SECRET, guard: () => {} }).describeFence(
        host('a', '10.0.0.1'),
      );
    expect(desc('www')).toMatch(/delete www\.example\.test\. A 10\.0\.0\.1/);
    expect(desc('www.example.test.')).toMatch(/delete www\.example\.test\. A/);
    expect(desc('@')).toMatch(/delete example\.test\. A/);
    expect(desc('{app}.svc')).toMatch(/delete shop\.svc\.example\.test\. A/);
  });
});

describe('the profile schema of traffic.method dns', () => {
  test('defaults: port 53, TTL 60, hmac-sha256', () => {
    expect(traffic()).toMatchObject({ ttl: 60, timeout_ms: 5000, key: { algorithm: 'hmac-sha256' } });
  });

  test.each([
    [{ server: 'ns1; rm -rf /' }, 'server'],
    [{ zone: 'exa mple.test' }, 'zone'],
    [{ name: '$(id)' }, 'name'],
    [{ key: { name: 'k', secret: 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0' } }, 'key'],
    [{ key: { name: 'k', secret: 'env:K', algorithm: 'hmac-md5' } }, 'key'],
    [{ ttl: -1 }, 'ttl'],
  ])('%j is refused at %s', (over, path) => {
    const r = profileSchema.shape.traffic.safeParse({
      method: 'dns',
      server: '192.0.2.53',
      zone: 'example.test',
      name: 'www',
      key: { name: 'k', secret: 'env:K' },
      ...over,
    });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path[0]).toBe(path);
  });
});
