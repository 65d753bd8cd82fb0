/**
 * The `dns` traffic method against a real Knot DNS server on loopback: RFC 2136 updates signed with TSIG, each
 * change checked by a query through node:dns (c-ares, not persona's codec), wrong keys refused by the server.
 */
import { Resolver } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PersonaError } from '../../src/errors.js';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { SshError } from '../../src/hosts/ssh.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import { resolveSecret } from '../../src/runbook/secrets.js';
import type { StepContext } from '../../src/runbook/types.js';
import { fenceStep } from '../../src/steps/fence.js';
import { switchStep } from '../../src/steps/switch.js';
import type { KvBackend } from '../../src/stores/kv.js';
import { exchange } from '../../src/traffic/dns-client.js';
import { DnsRouter } from '../../src/traffic/dns-router.js';
import { decodeMessage, OPCODE } from '../../src/traffic/dns-wire.js';
import { routerFor, type TrafficRouter } from '../../src/traffic/router.js';
import { Redactor } from '../../src/ui/redact.js';
import { repoRoot } from '../helpers/cli.js';
import { type Knot, startKnot } from '../helpers/knot.js';
import { runSteps } from '../helpers/run-step.js';

const ZONE = 'example.test';
let knot: Knot;

beforeAll(async () => {
  knot = await startKnot(
    ZONE,
    [
      'web 120 A 10.0.0.1',
      'web 120 A 10.0.0.9',
      'api 300 A 10.0.0.1',
      'v6 90 AAAA 2001:db8::1',
      'race 200 A 10.0.0.1',
      'guarded 100 A 10.0.0.1',
      'keys 100 A 10.0.0.1',
      'demo-web 150 A 10.0.0.1',
    ].join('\n'),
  );
});
afterAll(async () => {
  await knot?.stop();
});

const host = (name: string, address: string): InventoryHost => ({ name, address, labels: {}, apps: [] });
const signal = new AbortController().signal;
const failed = host('web-1', '10.0.0.1');
const target = host('web-2', '10.0.0.2');

/** The demo profile with the dns method on `name`; its key from env:DNS_KEY. */
function profile(name: string, key: Partial<{ name: string; algorithm: string }> = {}) {
  const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
  raw.traffic = {
    method: 'dns',
    server: knot.server,
    zone: ZONE,
    name,
    key: { name: knot.key.name, secret: 'env:DNS_KEY', ...key },
    timeout_ms: 2000,
  };
  return validateProfileValue('demo-web.json', raw, 'demo-web');
}

function router(
  name: string,
  opts: { secret?: string; key?: Partial<{ name: string; algorithm: string }>; guard?: () => void } = {},
) {
  const redactor = new Redactor();
  const r = routerFor(profile(name, opts.key), {
    secret: (ref, where) =>
      resolveSecret(ref, where, {
        env: { DNS_KEY: opts.secret ?? knot.key.secret },
        backend: {} as KvBackend,
        redactor,
      }),
    guard: opts.guard ?? (() => {}),
  });
  return { router: r, redactor };
}

/** The name's A (or AAAA) addresses through c-ares, straight from the server: an independent look. */
async function served(name: string, family: 4 | 6 = 4): Promise<Array<{ address: string; ttl: number }>> {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([knot.server]);
  const fqdn = `${name}.${ZONE}`;
  try {
    const records =
      family === 4
        ? await resolver.resolve4(fqdn, { ttl: true })
        : await resolver.resolve6(fqdn, { ttl: true });
    return records.sort((a, b) => a.address.localeCompare(b.address));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENODATA') return [];
    throw error;
  }
}

const json = (r: TrafficRouter, e: unknown) => JSON.stringify({ method: r.method, e });

describe('traffic.method dns against a real Knot DNS', () => {
  test('the fence deletes only the failed address; the switch adds the target and keeps it out', async () => {
    const { router: r, redactor } = router('web');
    expect(await served('web')).toEqual([
      { address: '10.0.0.1', ttl: 120 },
      { address: '10.0.0.9', ttl: 120 },
    ]);
    expect(await r.isFenced(failed, signal)).toBe(false);

    const fenced = await r.fence(failed, signal);
    expect(fenced).toMatchObject({
      dns: {
        server: knot.server,
        name: 'web.example.test.',
        removed: [{ type: 'A', address: '10.0.0.1', ttl: 120 }],
        old_ttl: 120,
        served: [{ type: 'A', address: '10.0.0.9', ttl: 120 }],
      },
      caveats: ['clients may keep the old address for up to 120 s'],
    });
    expect(await served('web')).toEqual([{ address: '10.0.0.9', ttl: 120 }]);
    expect(await r.isFenced(failed, signal)).toBe(true);
    // Again: nothing to delete, no update sent.
    expect(await r.fence(failed, signal)).toMatchObject({ dns: { removed: [], note: expect.any(String) } });

    expect(await r.isSwitched(target, failed, signal)).toBe(false);
    const switched = await r.switchTo(target, failed, signal);
    expect(switched).toMatchObject({
      dns: { added: [{ type: 'A', address: '10.0.0.2', ttl: 60 }], removed: [] },
    });
    // The server applies one TTL to the RRset: the one of the update (60 s) now.
    expect((await served('web')).map((r) => r.address)).toEqual(['10.0.0.2', '10.0.0.9']);
    expect(await r.isSwitched(target, failed, signal)).toBe(true);
    expect(await r.isFenced(failed, signal)).toBe(true);
    const verified = await r.verify(target, ['web-2'], signal);
    expect(verified).toMatchObject({
      dns: { verified: true, answer: expect.stringMatching(/ A 10\.0\.0\.2$/) },
    });

    // The TSIG secret was registered with the redactor and appears nowhere in the evidence.
    expect(redactor.redact(`x ${knot.key.secret} y`)).toBe('x [redacted] y');
    for (const e of [fenced, switched, verified]) expect(json(r, e)).not.toContain(knot.key.secret);
  });

  test('a switch without a fence replaces the address in one update and reports the old TTL', async () => {
    const { router: r } = router('api');
    const seen: number[] = [];
    const counting = new DnsRouter('demo-web', profile('api').traffic as never, {
      secret: async () => knot.key.secret,
      guard: () => {},
      exchange: async (server, wire, opts) => {
        if (decodeMessage(wire).opcode === OPCODE.UPDATE) seen.push(wire.length);
        return await exchange(server, wire, opts);
      },
    });
    const evidence = await counting.switchTo(target, failed, signal);
    expect(seen).toHaveLength(1);
    expect(evidence).toMatchObject({
      dns: {
        added: [{ address: '10.0.0.2', ttl: 60 }],
        removed: [{ type: 'A', address: '10.0.0.1', ttl: 300 }],
        old_ttl: 300,
        served: [{ type: 'A', address: '10.0.0.2', ttl: 60 }],
      },
      caveats: ['clients may keep the old address for up to 300 s'],
    });
    expect(await served('api')).toEqual([{ address: '10.0.0.2', ttl: 60 }]);
    expect(await r.isSwitched(target, failed, signal)).toBe(true);
  });

  test('IPv6 hosts: the AAAA record is replaced', async () => {
    const { router: r } = router('v6');
    const from = host('web-1', '2001:db8:0:0::1');
    const to = host('web-2', '2001:db8::2');
    const evidence = await r.switchTo(to, from, signal);
    expect(evidence).toMatchObject({
      dns: { removed: [{ type: 'AAAA', address: '2001:db8::1', ttl: 90 }], old_ttl: 90 },
    });
    expect(await served('v6', 6)).toEqual([{ address: '2001:db8::2', ttl: 60 }]);
    expect(await r.verify(to, [], signal)).toMatchObject({ dns: { verified: true, ttl: 60 } });
    await expect(r.verify(from, [], signal)).rejects.toThrow(
      /answers v6\.example\.test\. with AAAA 2001:db8::2, not/,
    );
  });

  test('when the records change between the look and the update, the prerequisite fails and persona looks again', async () => {
    let injected = false;
    const r = new DnsRouter('demo-web', profile('race').traffic as never, {
      secret: async () => knot.key.secret,
      guard: () => {},
      exchange: async (server, wire, opts) => {
        if (!injected && decodeMessage(wire).opcode === OPCODE.UPDATE) {
          injected = true;
          // Someone else adds an address first: the RRset is no longer what persona saw.
          const other = router('race').router;
          await other.switchTo(host('web-3', '10.0.0.3'), host('web-3', '10.0.0.3'), signal);
        }
        return await exchange(server, wire, opts);
      },
    });
    const evidence = await r.fence(failed, signal);
    expect(injected).toBe(true);
    expect(evidence).toMatchObject({
      dns: { removed: [{ address: '10.0.0.1', ttl: 60 }], served: [{ address: '10.0.0.3' }] },
    });
    expect(await served('race')).toEqual([{ address: '10.0.0.3', ttl: 60 }]);
  });

  test('a wrong secret is refused with BADSIG, an unknown key with BADKEY; nothing changes', async () => {
    const wrong = router('keys', { secret: Buffer.alloc(32, 7).toString('base64') }).router;
    const badsig = await wrong.fence(failed, signal).catch((e: unknown) => e);
    expect(badsig).toBeInstanceOf(PersonaError);
    expect((badsig as Error).message).toMatch(
      new RegExp(`DNS ${knot.server.replaceAll('.', '\\.')}.*refused the update.*NOTAUTH, TSIG error BADSIG`),
    );
    expect((badsig as PersonaError).hint).toMatch(/another secret or algorithm/);
    expect((badsig as Error).message).not.toContain(knot.key.secret);

    const unknown = router('keys', { key: { name: 'nobody-key' } }).router;
    await expect(unknown.fence(failed, signal)).rejects.toThrow(/TSIG error BADKEY \(key nobody-key/);

    const algorithm = router('keys', { key: { algorithm: 'hmac-sha512' } }).router;
    await expect(algorithm.fence(failed, signal)).rejects.toThrow(/NOTAUTH, TSIG error BAD(KEY|SIG)/);
    expect(await served('keys')).toEqual([{ address: '10.0.0.1', ttl: 100 }]);
  });

  test('a run that lost its lock changes nothing', async () => {
    const { router: r } = router('guarded', {
      guard: () => {
        throw new PersonaError('E_LOCK_LOST', 'the lock is held by another run');
      },
    });
    await expect(r.fence(failed, signal)).rejects.toThrow(/held by another run/);
    await expect(r.switchTo(target, failed, signal)).rejects.toThrow(/held by another run/);
    expect(await served('guarded')).toEqual([{ address: '10.0.0.1', ttl: 100 }]);
  });

  test('a server that does not answer is named, after timeout_ms', async () => {
    const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
    raw.traffic = {
      method: 'dns',
      server: '127.0.0.1:9',
      zone: ZONE,
      name: 'web',
      key: { name: 'k', secret: 'env:DNS_KEY' },
      timeout_ms: 500,
    };
    const r = routerFor(validateProfileValue('demo-web.json', raw, 'demo-web'), {
      secret: async () => knot.key.secret,
    });
    const started = Date.now();
    await expect(r.isFenced(failed, signal)).rejects.toThrow(
      /DNS server 127\.0\.0\.1:9: no answer within 0\.5 s/,
    );
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

describe('the fence and switch steps with traffic.method dns', () => {
  test('fence then switch through the engine: the records, the TTLs in the log, no secret in the journal', async () => {
    const redactor = new Redactor();
    const ctx = {
      profile: profile('{app}'),
      failed,
      target,
      env: { DNS_KEY: knot.key.secret },
      backend: {} as KvBackend,
      redactor,
      hooks: [],
      ssh: {
        async exec(h: InventoryHost, argv: string[]) {
          // The failed host is gone; the target names itself.
          if (h.name === failed.name) throw new SshError('refused', h.name, 'Connection refused');
          return {
            exitCode: 0,
            stdout: argv.includes('/proc/sys/kernel/hostname') ? 'web-2\n' : '',
            stderr: '',
          };
        },
      },
    } as unknown as Partial<StepContext>;
    const run = await runSteps([fenceStep, switchStep], ctx);
    expect(run.error).toBeUndefined();

    const fence = run.record('fence');
    expect(fence.status).toBe('succeeded');
    expect(fence.outputs).toMatchObject({
      fenced: true,
      evidence: { method: 'dns', takenOut: true, reachable: false },
      traffic: { dns: { removed: [{ address: '10.0.0.1', ttl: 150 }], served: [], negative_ttl: 30 } },
    });
    expect(fence.log).toEqual(
      expect.arrayContaining([
        'clients may keep the old address for up to 150 s',
        'demo-web.example.test. has no address until the switch; resolvers may cache that answer for up to 30 s (SOA minimum)',
      ]),
    );

    const sw = run.record('switch');
    expect(sw.status).toBe('succeeded');
    expect(sw.outputs).toMatchObject({
      forced_without_fence: false,
      traffic: { dns: { added: [{ address: '10.0.0.2', ttl: 60 }], removed: [] } },
      verified: { dns: { verified: true, answer: 'demo-web.example.test. 60 A 10.0.0.2' } },
    });
    expect(sw.log).toContain(
      'resolvers that asked while demo-web.example.test. had no A record may keep that answer for up to 30 s (SOA minimum)',
    );
    expect(await served('demo-web')).toEqual([{ address: '10.0.0.2', ttl: 60 }]);
    expect(JSON.stringify(run.journal)).not.toContain(knot.key.secret);

    // Run again: both plans find the records as they should be and change nothing.
    const again = await runSteps([fenceStep, switchStep], ctx);
    expect(again.error).toBeUndefined();
    expect(again.record('fence').outputs).not.toHaveProperty('traffic');
    expect(again.record('switch').outputs).not.toHaveProperty('traffic');
  });
});
