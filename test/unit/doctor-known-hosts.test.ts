/**
 * known_hosts lookups with the real ssh -G and ssh-keygen -F on temporary files; nothing connects anywhere.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { resolveSettings } from '../../src/cli/settings.js';
import type { DoctorInput, DoctorPorts } from '../../src/doctor/check.js';
import { sharedFor } from '../../src/doctor/doctor.js';
import { checkKnownHosts, lookupFrom } from '../../src/doctor/known-hosts.js';
import { localPorts } from '../../src/doctor/local-ports.js';
import { parseSshG } from '../../src/doctor/tools.js';
import type { Inventory } from '../../src/hosts/inventory.js';
import { tempDir } from '../helpers/tmp.js';

const host = (name: string, port: number) => ({ name, address: '127.0.0.1', port, labels: {}, apps: [] });

/** An ssh config whose UserKnownHostsFile holds entries for the given ports (hashed when asked). */
function setup(
  known: number[],
  hash = false,
  hosts: Inventory['hosts'] = [host('db-1', 2201), host('web-1', 2202)],
  extraConfig = '',
) {
  const dir = tempDir('persona-kh-');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'key')]);
  const pub = readFileSync(join(dir, 'key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, known.map((p) => `[127.0.0.1]:${p} ${pub}\n`).join(''));
  if (hash) execFileSync('ssh-keygen', ['-q', '-H', '-f', knownHosts]);
  const config = join(dir, 'ssh_config');
  writeFileSync(
    config,
    `${extraConfig}Host *\n  UserKnownHostsFile ${knownHosts}\n  GlobalKnownHostsFile none\n`,
  );
  const inventory: Inventory = {
    source: 'test',
    sshConfig: config,
    hosts,
    warnings: [],
  };
  const calls: string[][] = [];
  const local = localPorts({ PATH: process.env.PATH });
  const ports: DoctorPorts = {
    ...local,
    exec: (file, args) => {
      calls.push([file, ...args]);
      return local.exec(file, args);
    },
    openStore: () => Promise.reject(new Error('unused')),
    loadInventory: async () => inventory,
  };
  return { ports, calls, knownHosts };
}

function input(acceptNewHostKeys = false): DoctorInput {
  return {
    settings: resolveSettings({}, {}, '/work', undefined),
    configFile: undefined,
    configCandidates: [],
    env: {},
    cwd: '/work',
    acceptNewHostKeys,
  };
}

describe('known_hosts', () => {
  test('every host has an entry: ok', async () => {
    const { ports } = setup([2201, 2202]);
    const r = await checkKnownHosts(input(), ports, sharedFor(input(), ports));
    expect(r).toMatchObject({ status: 'ok', summary: 'all 2 inventory hosts have a known_hosts entry' });
  });

  test('hashed entries are found too (ssh-keygen -F, not a text search)', async () => {
    const { ports } = setup([2201, 2202], true);
    expect((await checkKnownHosts(input(), ports, sharedFor(input(), ports))).status).toBe('ok');
  });

  test('one host missing: fail naming it, the file and the name looked up; only ssh -G and ssh-keygen ran', async () => {
    const { ports, calls, knownHosts } = setup([2201]);
    const r = await checkKnownHosts(input(), ports, sharedFor(input(), ports));
    expect(r.status).toBe('fail');
    expect(r.summary).toBe(
      `1 of 2 hosts without a known_hosts entry in ${knownHosts}: web-1 ([127.0.0.1]:2202)`,
    );
    expect(r.fix).toMatch(/--accept-new-host-keys/);
    for (const call of calls) expect(call[0] === 'ssh-keygen' || call.includes('-G')).toBe(true);
  });

  test('with --accept-new-host-keys a missing entry is a warning', async () => {
    const { ports } = setup([2201]);
    expect((await checkKnownHosts(input(true), ports, sharedFor(input(true), ports))).status).toBe('warn');
  });

  test('a local host (connection: local) needs no entry and is not looked up', async () => {
    const here = { ...host('here', 2209), connection: 'local' as const };
    const { ports, calls } = setup([2201], false, [host('db-1', 2201), here]);
    const r = await checkKnownHosts(input(), ports, sharedFor(input(), ports));
    expect(r).toMatchObject({
      status: 'ok',
      summary: 'the 1 inventory host has a known_hosts entry; 1 local host reached without ssh',
    });
    expect(calls.some((c) => c.includes('[127.0.0.1]:2209') || c.includes('2209'))).toBe(false);
  });

  test('bastions are looked up too: the inventory jump, else the ssh_config ProxyJump', async () => {
    // db-1 goes through the inventory's jump (known: 2299); web-1 through the config's ProxyJump (unknown: 2298).
    const hosts = [{ ...host('db-1', 2201), jump: 'root@127.0.0.1:2299' }, host('web-1', 2202)];
    const proxy = 'Host 127.0.0.1\n  ProxyJump ops@localhost:2298\n';
    const { ports, calls } = setup([2201, 2202, 2299], false, hosts, proxy);
    const r = await checkKnownHosts(input(), ports, sharedFor(input(), ports));
    expect(r.status).toBe('fail');
    expect(r.summary).toMatch(
      /^1 of 2 hosts and 2 bastions without a known_hosts entry in .*: bastion ops@localhost:2298 \(\[localhost\]:2298\)$/,
    );
    expect(calls.some((c) => c.includes('-G') && c.includes('root') && c.includes('2299'))).toBe(true);
    for (const call of calls) expect(call[0] === 'ssh-keygen' || call.includes('-G')).toBe(true);
  });

  test('the name looked up: HostKeyAlias, else [host]:port off port 22', () => {
    const g = (text: string) => lookupFrom(parseSshG(text));
    expect(g('hostname 10.0.0.5\nport 22\nuserknownhostsfile /a /b\nglobalknownhostsfile none\n')).toEqual({
      lookup: '10.0.0.5',
      files: ['/a', '/b'],
    });
    expect(g('hostname 10.0.0.5\nport 2222\n').lookup).toBe('[10.0.0.5]:2222');
    expect(g('hostname 10.0.0.5\nport 2222\nhostkeyalias web\n').lookup).toBe('web');
  });
});
