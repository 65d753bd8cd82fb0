/**
 * persona doctor in-process, with a fake `ssh` first on PATH that logs its arguments and passes -V / -G on to the
 * real ssh (or fails -G when told to): proof that doctor never asks ssh to connect.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { repoRoot, runInProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

function setup() {
  const dir = tempDir('persona-doctor-');
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const log = join(dir, 'ssh.log');
  writeFileSync(
    join(bin, 'ssh'),
    `#!/bin/sh\necho "$*" >> ${log}\nif [ -n "$FAKE_SSH_G_FAIL" ]; then echo "$2: line 1: Bad configuration option: bogus" >&2; exit 255; fi\nexec /usr/bin/ssh "$@"\n`,
  );
  chmodSync(join(bin, 'ssh'), 0o755);
  mkdirSync(join(dir, 'profiles'));
  mkdirSync(join(dir, 'state'), { mode: 0o700 });
  writeFileSync(
    join(dir, 'inventory.json'),
    JSON.stringify({ hosts: [{ name: 'db-1', address: '127.0.0.1', port: 2201 }] }),
  );
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(
    knownHosts,
    '[127.0.0.1]:2201 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n',
  );
  writeFileSync(
    join(dir, 'ssh_config'),
    `Host *\n  UserKnownHostsFile ${knownHosts}\n  GlobalKnownHostsFile none\n`,
  );
  writeFileSync(join(dir, 'persona.yaml'), 'store: ./profiles\nssh_config: ssh_config\nstate_dir: ./state\n');
  const env = { PATH: `${bin}:${process.env.PATH}`, XDG_CONFIG_HOME: join(dir, 'xdg') };
  return { dir, env, log };
}

describe('persona doctor', () => {
  test('all checks pass: exit 0, one line per check; ssh only ever ran with -V or -G', async () => {
    const { dir, env, log } = setup();
    const r = await runInProcess(['doctor'], { cwd: dir, env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.map((l) => l.split(/\s+/).slice(0, 2).join(' '))).toEqual([
      'ok config',
      'ok openssh',
      'ok rsync',
      'ok ssh-config',
      'ok store',
      'ok lock-ttl',
      'ok inventory',
      'ok state-dir',
      'ok known-hosts',
      'ok provision',
      '10 ok,',
    ]);
    for (const call of readFileSync(log, 'utf8').trim().split('\n')) expect(call).toMatch(/^-V$|(^| )-G /);
  });

  test('a 0755 state dir alone is a warning: exit 0, and --json carries it with the fix', async () => {
    const { dir, env } = setup();
    chmodSync(join(dir, 'state'), 0o755);
    const r = await runInProcess(['doctor', '--json'], { cwd: dir, env });
    expect(r.code).toBe(0);
    const data = JSON.parse(r.stdout);
    expect(data.checks.find((c: { id: string }) => c.id === 'state-dir')).toMatchObject({
      status: 'warn',
      fix: `chmod 700 ${join(dir, 'state')}`,
    });
    expect(data.summary).toEqual({ ok: 9, warn: 1, fail: 0, skip: 0 });
  });

  test('ssh -G refusing the config: FAIL line with the fix, exit 4', async () => {
    const { dir, env } = setup();
    const r = await runInProcess(['doctor'], { cwd: dir, env: { ...env, FAKE_SSH_G_FAIL: '1' } });
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(
      /^FAIL {2}ssh-config {3}ssh cannot read .*ssh_config: .*Bad configuration option.* — fix: /m,
    );
  });

  test('doctor is registered and documented in --help', async () => {
    const r = await runInProcess(['--help'], { cwd: repoRoot });
    expect(r.stdout).toMatch(/doctor\s+check this machine is ready/);
    expect(r.stdout).toMatch(/config\s+show every setting/);
  });
});
