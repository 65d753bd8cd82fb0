/**
 * Jump hosts with real OpenSSH on loopback: a bastion sshd on 127.0.0.1 and a target sshd on 127.0.0.2. The user's
 * ssh_config matches the target's ADDRESS (`Host 127.0.0.*`, as under Ansible) and gives it User and ProxyJump;
 * persona's options (strict host keys, BatchMode, timeouts) apply to the bastion too, and a bastion failure names
 * the bastion. The bastion's sshd log (DEBUG1) proves that each connection went through it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SshError, type SshTarget, SshTransport } from '../../src/hosts/ssh.js';
import { runInProcess } from '../helpers/cli.js';
import { freePort, startSshd, type TestSshd } from '../helpers/sshd.js';
import { startSilentServer } from '../stores/silent-server.js';

let bastion: TestSshd;
let target: TestSshd;
let dir: string;
let key: string;
let user: string;
/** known_hosts with both host keys. */
let known: string;

const db1 = (): SshTarget => ({ name: 'db1', address: '127.0.0.2', port: target.port });

/** The user's ssh_config: `Host bastion` (its own settings), then `Host 127.0.0.*` with User and ProxyJump. */
function config(
  name: string,
  opts: { bastion?: string; bastionPort?: number; knownHosts?: string; jump?: string },
) {
  const file = join(dir, name);
  writeFileSync(
    file,
    [
      'Host bastion',
      `  HostName ${opts.bastion ?? '127.0.0.1'}`,
      `  Port ${opts.bastionPort ?? bastion.port}`,
      `  User ${user}`,
      // What real configs often say for the bastion; persona must not inherit it.
      '  StrictHostKeyChecking no',
      `  IdentityFile ${key}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${opts.knownHosts ?? known}`,
      'Host 127.0.0.*',
      `  User ${user}`,
      `  ProxyJump ${opts.jump ?? 'bastion'}`,
      `  IdentityFile ${key}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${opts.knownHosts ?? known}`,
      '',
    ].join('\n'),
  );
  return file;
}

/** An ssh_config with no jump: the inventory gives it. */
function plainConfig(): string {
  const file = join(dir, 'cfg_plain');
  writeFileSync(
    file,
    `Host *\n  User ${user}\n  IdentityFile ${key}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${known}\n`,
  );
  return file;
}

/** Lines of the bastion's log (DEBUG1) that forwarded a connection to the target. */
const forwards = () =>
  bastion
    .log()
    .split('\n')
    .filter((l) => /direct_tcpip/.test(l) && l.includes(`target 127.0.0.2 port ${target.port}`));

async function failure(p: Promise<unknown>): Promise<SshError> {
  try {
    await p;
  } catch (error) {
    if (error instanceof SshError) return error;
    throw error;
  }
  throw new Error('expected an SshError');
}

beforeAll(async () => {
  bastion = await startSshd({ logLevel: 'DEBUG1' });

  key = bastion.clientKey;
  user = bastion.user;
  target = await startSshd({
    address: '127.0.0.2',
    authorize: [readFileSync(`${key}.pub`, 'utf8').trim()],
  });
  dir = bastion.dir;
  known = join(dir, 'known_both');
  writeFileSync(
    known,
    `[127.0.0.1]:${bastion.port} ${bastion.hostKey}\n[127.0.0.2]:${target.port} ${target.hostKey}\n`,
  );
});
afterAll(async () => {
  await target?.stop();
  await bastion?.stop();
});

describe('ssh through a bastion', () => {
  test('the config block for the address (Host 127.0.0.*) gives User and ProxyJump; the bastion forwarded it', async () => {
    const ssh = new SshTransport({
      configFile: config('cfg_ok', {}),
      connectTimeoutSec: 2,
      multiplex: false,
    });
    const argv = await ssh.argv(db1(), 'true');
    expect(argv.slice(-2)).toEqual(['127.0.0.2', 'true']);
    expect(argv.join(' ')).not.toContain('HostName=');
    const before = forwards().length;
    const r = await ssh.exec(db1(), ['sh', '-c', 'echo "$SSH_CONNECTION"']);
    expect(r.exitCode).toBe(0);
    // The target saw the connection come from the bastion's side of loopback, on its own address.
    expect(r.stdout).toMatch(new RegExp(`^127\\.0\\.0\\.1 \\d+ 127\\.0\\.0\\.2 ${target.port}\\n$`));
    expect(forwards().length).toBe(before + 1);
  });

  test('persona hosts probe: the host answers through the bastion its address matched in the config', async () => {
    const inventory = join(dir, 'inventory.json');
    writeFileSync(
      inventory,
      JSON.stringify({ hosts: [{ name: 'db1', address: '127.0.0.2', port: target.port }] }),
    );
    const before = forwards().length;
    const r = await runInProcess([
      'hosts',
      'probe',
      '--inventory',
      inventory,
      '--ssh-config',
      config('cfg_probe', {}),
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('"db1"');
    expect(forwards().length).toBeGreaterThan(before);
  });

  test('an inventory jump (user@host:port) and two hops (nested ProxyCommands) reach it too', async () => {
    const ssh = new SshTransport({ configFile: plainConfig(), connectTimeoutSec: 2, multiplex: false });
    const hop = `${user}@127.0.0.1:${bastion.port}`;
    const before = forwards().length;
    expect((await ssh.exec({ ...db1(), jump: hop }, ['true'])).exitCode).toBe(0);
    expect(forwards().length).toBe(before + 1);
    expect((await ssh.exec({ ...db1(), jump: `${hop},${hop}` }, ['true'])).exitCode).toBe(0);
    const hopToHop = bastion
      .log()
      .split('\n')
      .filter((l) => /direct_tcpip/.test(l) && l.includes(`target 127.0.0.1 port ${bastion.port}`));
    expect(hopToHop.length).toBeGreaterThanOrEqual(1);
    expect(forwards().length).toBe(before + 2);
  });

  test('a config file whose path has a space, a quote and a % reaches the hop intact', async () => {
    const odd = join(dir, "it's 100% odd");
    mkdirSync(odd);
    const file = join(odd, 'config');
    writeFileSync(file, readFileSync(config('cfg_for_odd', {}), 'utf8'));
    const ssh = new SshTransport({ configFile: file, connectTimeoutSec: 2, multiplex: false });
    expect((await ssh.exec(db1(), ['true'])).exitCode).toBe(0);
  });

  test('a bastion whose host key is unknown is refused, though the config says StrictHostKeyChecking no', async () => {
    const targetOnly = join(dir, 'known_target_only');
    writeFileSync(targetOnly, `[127.0.0.2]:${target.port} ${target.hostKey}\n`);
    const cfg = config('cfg_unknown_bastion', { knownHosts: targetOnly });
    const ssh = new SshTransport({ configFile: cfg, connectTimeoutSec: 2, multiplex: false });
    const e = await failure(ssh.exec(db1(), ['true']));
    expect(e.kind).toBe('bastion');
    expect(e.bastionFailure).toBe('host-key-unknown');
    expect(e.bastion).toBe('bastion');
    expect(e.message).toMatch(/^bastion bastion: its host key is not known/);
    expect(e.message).toContain('db1 (127.0.0.2');
    expect(e.details).toMatchObject({ bastion: 'bastion', bastion_failure: 'host-key-unknown' });
    // Nothing was learnt: persona's StrictHostKeyChecking=yes won over the config's "no".
    expect(readFileSync(targetOnly, 'utf8')).not.toContain('127.0.0.1');
    // What plain ssh with the same config does: it trusts (and records) the unknown bastion.
    const plain = ['-F', cfg, '-o', 'BatchMode=yes', '-p', String(target.port), '127.0.0.2', 'true'];
    execFileSync('ssh', plain, { stdio: 'ignore' });
    expect(readFileSync(targetOnly, 'utf8')).toContain(`[127.0.0.1]:${bastion.port}`);
  });

  test('a bastion that never answers (silent listener): a timeout naming the bastion, not the target', async () => {
    const silent = await startSilentServer();
    try {
      const cfg = config('cfg_silent', { bastionPort: silent.port });
      const ssh = new SshTransport({ configFile: cfg, connectTimeoutSec: 1, multiplex: false });
      const e = await failure(ssh.exec(db1(), ['true'], { timeoutMs: 10_000 }));
      expect(e.kind).toBe('bastion');
      expect(e.bastionFailure).toBe('timeout');
      expect(e.message).toMatch(
        /^bastion bastion: connection timed out — on the way to db1 \(127\.0\.0\.2:\d+\)/,
      );
    } finally {
      await silent.close();
    }
  });

  test('a bastion that refuses (nothing listens): refused, naming the bastion', async () => {
    const port = await freePort();
    const ssh = new SshTransport({ configFile: plainConfig(), connectTimeoutSec: 2, multiplex: false });
    const e = await failure(ssh.exec({ ...db1(), jump: `${user}@127.0.0.1:${port}` }, ['true']));
    expect(e.kind).toBe('bastion');
    expect(e.bastionFailure).toBe('refused');
    expect(e.bastion).toBe(`${user}@127.0.0.1:${port}`);
  });

  test('a target that refuses behind a working bastion is the target refusing (the bastion said so)', async () => {
    const port = await freePort();
    const ssh = new SshTransport({
      configFile: config('cfg_ok2', {}),
      connectTimeoutSec: 2,
      multiplex: false,
    });
    const e = await failure(ssh.exec({ name: 'db2', address: '127.0.0.2', port }, ['true']));
    expect(e.kind).toBe('refused');
    expect(e.message).toMatch(/^db2 \(127\.0\.0\.2:\d+\): connection refused.*the bastion bastion answered/);
  });

  test("with multiplexing (the default), whose ControlPersist sends the hop's stderr to /dev/null, a failure is still named: the target refusing behind the bastion, or the bastion itself", async () => {
    const port = await freePort();
    const ssh = new SshTransport({ configFile: config('cfg_mux', {}), connectTimeoutSec: 2 });
    try {
      const e = await failure(ssh.exec({ name: 'db2', address: '127.0.0.2', port }, ['true']));
      expect(e.kind).toBe('refused');
      expect(e.message).toMatch(
        /^db2 \(127\.0\.0\.2:\d+\): connection refused.*the bastion bastion answered/,
      );
      const down = await freePort();
      const plain = new SshTransport({ configFile: plainConfig(), connectTimeoutSec: 2 });
      try {
        const b = await failure(plain.exec({ ...db1(), jump: `${user}@127.0.0.1:${down}` }, ['true']));
        expect(b.kind).toBe('bastion');
        expect(b.bastionFailure).toBe('refused');
      } finally {
        await plain.close();
      }
      // The hops' log files are read and removed with each call.
      expect((await ssh.exec(db1(), ['true'])).exitCode).toBe(0);
      const control = (await ssh.argv(db1(), 'true')).find((a) => a.startsWith('ControlPath='))!;
      const dir = control.slice('ControlPath='.length).replace(/\/%C$/, '');
      expect(readdirSync(dir).filter((f) => f.startsWith('hop-'))).toEqual([]);
    } finally {
      await ssh.close();
    }
  });

  test('rsync goes through the bastion with the same options (rsyncShell)', async () => {
    const ssh = new SshTransport({ configFile: config('cfg_rsync', {}), connectTimeoutSec: 2 });
    try {
      const src = join(dir, 'tiny');
      mkdirSync(src);
      writeFileSync(join(src, 'a.txt'), 'hello through the bastion\n');
      const dest = join(target.dir, 'copied');
      const { rsh, host } = await ssh.rsyncShell(db1());
      expect(host).toBe('127.0.0.2');
      const before = forwards().length;
      execFileSync('rsync', ['-a', '-e', rsh, `${src}/`, `${host}:${dest}/`], { stdio: 'pipe' });
      expect(readFileSync(join(dest, 'a.txt'), 'utf8')).toBe('hello through the bastion\n');
      // execFileSync held the event loop: let the bastion's log in before counting.
      for (let i = 0; i < 40 && forwards().length === before; i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(forwards().length).toBe(before + 1);
    } finally {
      await ssh.close();
    }
  });
});
