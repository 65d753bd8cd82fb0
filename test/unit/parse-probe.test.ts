import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { ProbeParseError, parseProbeOutput } from '../../src/hosts/parse-probe.js';
import { repoRoot } from '../helpers/cli.js';

const fixture = (name: string) => readFileSync(`${repoRoot}test/fixtures/probe/${name}`, 'utf8');

describe('parse probe output', () => {
  test('a Debian 12 machine with cgroup v1 and no memory limit (recorded)', () => {
    const facts = parseProbeOutput(fixture('debian12-root-cgroup1.txt'), [
      'socat=1.7.4.4-2',
      'rsync',
      'nginx',
      'bash',
    ]);
    expect(facts.os).toEqual({ id: 'debian', version: '12', pretty: 'Debian GNU/Linux 12 (bookworm)' });
    expect(facts.cgroup).toBe('1');
    expect(facts.cores).toEqual({ online: 2, usable: 2 });
    // The v1 "unlimited" value (9223372036854771712) is no limit: usable memory is the machine's.
    expect(facts.memory.limitBytes).toBeUndefined();
    expect(facts.memory.usableBytes).toBe(24684096 * 1024);
    expect(facts.storage).toMatchObject({
      path: '/srv/demo',
      checked: '/srv',
      mount: '/',
      freeBytes: 81397536 * 1024,
    });
    // Recorded before the probe printed storage_fstype: the filesystem is unknown, not an error.
    expect(facts.storage.fsType).toBeUndefined();
    expect(facts.packages.requested).toEqual([
      { name: 'socat', wanted: '1.7.4.4-2', installed: '1.7.4.4-2' },
      { name: 'rsync', installed: '3.5.0+ds1-0+deb12u1' },
      { name: 'nginx', candidate: '1.22.1-9+deb12u11' },
      { name: 'bash', installed: '5.2.15-2+b8' },
    ]);
    expect(facts.load1).toBe(2.78);
  });

  test('a lab host with cgroup v1 limits inside its own cgroup namespace (recorded)', () => {
    const facts = parseProbeOutput(fixture('lab-host-cgroup1-limited.txt'), [
      'socat=9.9',
      'rsync',
      'nftables',
    ]);
    expect(facts.hostname).toBe('lab-4');
    expect(facts.cores).toEqual({ online: 1, usable: 1 });
    expect(facts.memory).toMatchObject({ limitBytes: 536870912, usableBytes: 536870912 });
    expect(facts.storage).toMatchObject({ mount: '/srv', freeBytes: 488392 * 1024, fsType: 'ext2/ext3' });
    expect(facts.packages.aptLists).toBe(1);
    // A pinned version the host's sources do not offer is told apart from one they do.
    expect(facts.packages.requested).toEqual([
      { name: 'socat', wanted: '9.9', candidate: '1.7.4.4-2', wantedAvailable: false },
      { name: 'rsync', candidate: '3.2.7-1+deb12u6' },
      { name: 'nftables', candidate: '1.0.6-2+deb12u2' },
    ]);
  });

  test('cgroup v2 limits and CPU quota win over the machine (and login noise is skipped)', () => {
    const facts = parseProbeOutput(fixture('constructed-cgroup2-rpm.txt'), ['postgresql-server', 'nginx']);
    expect(facts.cores).toEqual({ online: 8, quota: 2.5, usable: 2 });
    expect(facts.memory).toMatchObject({
      limitBytes: 4294967296,
      usableBytes: 4294967296,
      availableBytes: 3221225472,
    });
    expect(facts.packages.manager).toBe('rpm');
    expect(facts.packages.requested).toEqual([
      { name: 'postgresql-server', installed: '15.6-1.el9' },
      { name: 'nginx' },
    ]);
  });

  test('output without the marker or cut short is an error, not empty facts', () => {
    expect(() => parseProbeOutput('bash: sh: not found\n')).toThrow(ProbeParseError);
    expect(() => parseProbeOutput('persona-probe 1\nhostname\tx\n')).toThrow(/ended early/);
  });
});
