/**
 * `persona recover` with `traffic.method: dns` end to end in the lab (issue 12): the built CLI, real hosts over SSH,
 * real rsync, and a real Knot DNS server on loopback that clients resolve demo-web.lab.test through. The fence
 * deletes lab-1's A record and the switch adds the new host's, with RFC 2136 updates signed with TSIG; the key's
 * secret reaches persona only as `env:` and is nowhere in its output, journal or store.
 */

import type { LookupAddress } from 'node:dns';
import { Resolver } from 'node:dns/promises';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { requireBinaries } from '../helpers/binaries.js';
import { jsonLines } from '../helpers/cli.js';
import { type Knot, startKnot } from '../helpers/knot.js';
import { fail, type HttpResult, httpGet, type LabState, labState, releaseLab } from '../lab/lab.js';
import {
  expectEveryStepSucceeded,
  freshLab,
  haproxyAdminStates,
  journal,
  persona,
  type Workspace,
  workspace,
} from './lab-helpers.js';

const ZONE = 'lab.test';
const NAME = 'demo-web.lab.test';
const TTL = 30;
/** The variable the TSIG secret travels in: the profile says only `env:` and this name. */
const SECRET_VAR = 'PERSONA_LAB_TSIG_SECRET';

let lab: LabState;
let knot: Knot | undefined;
let ws: Workspace;
let lab1: string;
/** lab-1's data checksum as demo-web served it before the failure. */
let originalChecksum: string;
let haproxyBefore: Record<string, number>;
let changed = false;

const withSecret = () => ({ [SECRET_VAR]: knot!.key.secret });

/** What the Knot server answers for the name, through c-ares (node:dns), not persona's DNS code. */
async function served(): Promise<Array<{ address: string; ttl: number }>> {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([knot!.server]);
  try {
    return (await resolver.resolve4(NAME, { ttl: true })).sort((a, b) => a.address.localeCompare(b.address));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENODATA') return [];
    throw error;
  }
}

async function soaSerial(): Promise<number> {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([knot!.server]);
  return (await resolver.resolveSoa(ZONE)).serial;
}

/**
 * A client that finds demo-web by name: http://demo-web.lab.test:8080/PATH, the name resolved by the Knot server
 * (a lookup function in place of the system resolver), then a plain GET to the address it answered.
 */
function getByName(path: string): Promise<HttpResult & { address: string }> {
  let connected = '';
  return new Promise((resolve, reject) => {
    const req = http.get(
      `http://${NAME}:8080${path}`,
      {
        agent: false,
        timeout: 5000,
        lookup: (hostname, options, callback) => {
          const resolver = new Resolver({ timeout: 2000, tries: 1 });
          resolver.setServers([knot!.server]);
          resolver.resolve4(hostname).then(
            (addresses) => {
              const all: LookupAddress[] = addresses.map((address) => ({ address, family: 4 }));
              if (options.all) (callback as (e: null, a: LookupAddress[]) => void)(null, all);
              else callback(null, all[0]!.address, 4);
            },
            (error: NodeJS.ErrnoException) => callback(error, '', 4),
          );
        },
      },
      (res) => {
        connected = res.socket.remoteAddress ?? '';
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers, address: connected }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET http://${NAME}:8080${path} timed out`)));
    req.on('error', reject);
  });
}

/** Every file under dir, with its text. */
function filesUnder(dir: string): Array<{ path: string; text: string }> {
  const out: Array<{ path: string; text: string }> = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push({ path: p, text: readFileSync(p, 'latin1') });
  }
  return out;
}

beforeAll(async () => {
  // Fail fast, before the lab comes up, when a program is missing (knotd: Debian's knot).
  requireBinaries('knotd', 'ssh', 'rsync');
  lab = await freshLab();
  lab1 = lab.hosts['lab-1']!.address;
  knot = await startKnot(ZONE, `demo-web ${TTL} A ${lab1}`, { name: 'persona-lab-key' });
  ws = workspace(lab);
  const file = join(ws.store, 'demo-web.json');
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  profile.traffic = {
    method: 'dns',
    server: knot.server,
    zone: ZONE,
    name: '{app}',
    ttl: TTL,
    key: { name: knot.key.name, algorithm: 'hmac-sha256', secret: `env:${SECRET_VAR}` },
    timeout_ms: 2000,
  };
  writeFileSync(file, JSON.stringify(profile, null, 2));
  // Clients find lab-1 by name before the failure, and its data is the lab's.
  expect(await served()).toEqual([{ address: lab1, ttl: TTL }]);
  const before = await getByName('/checksum');
  expect(before).toMatchObject({ status: 200, address: lab1 });
  originalChecksum = before.body.trim();
  expect(originalChecksum).toBe(lab.apps['demo-web']!.data_checksum);
  haproxyBefore = await haproxyAdminStates(lab);
  changed = true;
  await fail('lab-1', 'app');
});

afterAll(async () => {
  try {
    await knot?.stop();
    // A recovery cannot be healed host by host (demo-web runs on the new host): a fresh lab, as `up` leaves it,
    // which heals lab-1.
    if (changed || Object.values(labState().hosts).some((h) => h.fault)) await freshLab();
  } finally {
    releaseLab();
  }
});

type Step = { kind: string; status: string; log: string[]; outputs: Record<string, unknown> };

describe('recover with traffic.method dns (built CLI, lab, real Knot)', () => {
  test('--dry-run plans the DNS updates and changes nothing: the name still answers lab-1', async () => {
    const r = await persona(['recover', 'lab-1', '--dry-run'], ws, withSecret());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Dry run: nothing was changed');
    expect(r.stdout).toContain(
      `DNS ${knot!.server}: delete ${NAME}. A ${lab1} in zone ${ZONE}. (RFC 2136 update, TSIG key persona-lab-key)`,
    );
    expect(r.stdout).toMatch(
      new RegExp(
        `in one update, add ${NAME.replaceAll('.', '\\.')}\\. ${TTL} A 10\\.251\\.72\\.\\d+ and delete A ${lab1.replaceAll('.', '\\.')}`,
      ),
    );
    // The plan looked at the server for real (a query), and sent it no update.
    expect(r.stdout).toContain('lab-1 out of rotation (dns): no');
    expect(await served()).toEqual([{ address: lab1, ttl: TTL }]);
    expect(await soaSerial()).toBe(1);
    expect(knot!.log()).not.toContain('DDNS');
    expect(await haproxyAdminStates(lab)).toEqual(haproxyBefore);
    expect(existsSync(join(ws.state, 'runs'))).toBe(false);
    expect(r.stdout + r.stderr).not.toContain(knot!.key.secret);
  });

  test('lab-1 fails: the name answers the new host only, clients reach it with lab-1 data, the TTL is in the evidence, the key is nowhere', async () => {
    const r = await persona(['recover', 'lab-1', '--yes', '--json'], ws, withSecret());
    expect(r.code, r.stderr).toBe(0);
    const events = jsonLines(r.stdout);
    const result = events.at(-1)!;
    expect(result).toMatchObject({ type: 'result', ok: true, exit_code: 0 });
    const [run] = result.runs as Array<{ app: string; status: string; target_host: string; run_id: string }>;
    expect(run).toMatchObject({ app: 'demo-web', status: 'succeeded' });
    const target = run!.target_host;
    expect(target).not.toBe('lab-1');
    const address = lab.hosts[target]!.address;
    expectEveryStepSucceeded(events);

    // The resolver: the new host's address only, with the profile's TTL; two updates (fence, switch) were applied.
    expect(await served()).toEqual([{ address, ttl: TTL }]);
    expect(await soaSerial()).toBe(3);
    expect(knot!.log().match(/DDNS, finished, serial \d+ -> \d+/g)).toEqual([
      'DDNS, finished, serial 1 -> 2',
      'DDNS, finished, serial 2 -> 3',
    ]);
    // A client that looks the name up reaches the new host, and the data is lab-1's (checksum over every file).
    for (let i = 0; i < 3; i++) {
      const whoami = await getByName('/whoami');
      expect(whoami).toMatchObject({ status: 200, address });
      expect(whoami.body.trim()).toBe(target);
    }
    const checksum = await getByName('/checksum');
    expect(checksum).toMatchObject({ status: 200, address });
    expect(checksum.body.trim()).toBe(originalChecksum);
    expect((await httpGet(`http://${address}:8080/checksum`)).body.trim()).toBe(originalChecksum);
    // Only DNS moved the traffic: persona did not touch the lab's HAProxy.
    expect(await haproxyAdminStates(lab)).toEqual(haproxyBefore);
    const assignment = JSON.parse(
      readFileSync(join(ws.store, '.persona', 'data', 'assignments', 'demo-web'), 'utf8'),
    );
    expect(assignment).toMatchObject({ app: 'demo-web', host: target, previous: 'lab-1' });

    // The journal: what each update removed and added, with the caveat that resolvers cache for the TTL.
    const steps = (journal(ws, run!.run_id) as unknown as { steps: Step[] }).steps;
    const fence = steps.find((s) => s.kind === 'fence')!;
    const oldAddress = `clients may keep the old address for up to ${TTL} s`;
    expect(fence.outputs).toMatchObject({
      fenced: true,
      evidence: { method: 'dns', takenOut: true, fenced: true },
      traffic: {
        dns: {
          server: knot!.server,
          zone: `${ZONE}.`,
          name: `${NAME}.`,
          removed: [{ type: 'A', address: lab1, ttl: TTL }],
          old_ttl: TTL,
          served: [],
          negative_ttl: 30,
        },
        caveats: [
          oldAddress,
          `${NAME}. has no address until the switch; resolvers may cache that answer for up to 30 s (SOA minimum)`,
        ],
      },
    });
    expect(fence.log).toContain(oldAddress);
    // The operator sees it as it happens (--json: a log event of the fence).
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'log', step: 'fence', message: oldAddress }),
    );
    const sw = steps.find((s) => s.kind === 'switch')!;
    const negative = `resolvers that asked while ${NAME}. had no A record may keep that answer for up to 30 s (SOA minimum)`;
    expect(sw.outputs).toMatchObject({
      forced_without_fence: false,
      traffic: {
        dns: {
          added: [{ type: 'A', address, ttl: TTL }],
          // The fence removed lab-1's record already: the switch only adds, so its caveat is the negative cache
          // (the old address's TTL is the fence's evidence, counted from the fence).
          removed: [],
          served: [{ type: 'A', address, ttl: TTL }],
          negative_ttl: 30,
        },
        caveats: [negative],
      },
      verified: { dns: { verified: true, answer: `${NAME}. ${TTL} A ${address}` } },
    });
    expect(sw.log).toContain(negative);

    // The TSIG secret (base64, and its bytes in hex) is nowhere: not in the output, the state directory (journal,
    // ranking, everything else) or the store.
    const secret = knot!.key.secret;
    const hex = Buffer.from(secret, 'base64').toString('hex');
    expect(r.stdout + r.stderr).not.toContain(secret);
    expect(r.stdout + r.stderr).not.toContain(hex);
    const files = [...filesUnder(ws.state), ...filesUnder(ws.store)];
    expect(files.some((f) => f.path.endsWith(`${run!.run_id}.json`))).toBe(true);
    for (const f of files) {
      expect(f.text, f.path).not.toContain(secret);
      expect(f.text, f.path).not.toContain(hex);
    }
    expect(statSync(join(ws.state, 'runs', `${run!.run_id}.json`)).mode & 0o777).toBe(0o600);
  });
});
