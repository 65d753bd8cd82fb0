/**
 * The SSH transport against a real sshd on 127.0.0.1: quoting, multiplexing, and each failure kind.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SshError, SshTransport } from '../../src/hosts/ssh.js';
import { freePort, startSshd, type TestSshd } from '../helpers/sshd.js';

let sshd: TestSshd;
let ssh: SshTransport;
const target = () => ({ name: 'test-host', address: '127.0.0.1', port: sshd.port });

beforeAll(async () => {
  sshd = await startSshd();
  ssh = new SshTransport({ configFile: sshd.configFile, connectTimeoutSec: 2 });
});
afterAll(async () => {
  await ssh?.close();
  await sshd?.stop();
});

async function failure(p: Promise<unknown>): Promise<SshError> {
  try {
    await p;
  } catch (error) {
    if (error instanceof SshError) return error;
    throw error;
  }
  throw new Error('expected an SshError');
}

describe('ssh transport', () => {
  test('runs an argument array and returns stdout and the exit code', async () => {
    const r = await ssh.exec(target(), ['sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  test('hostile arguments arrive unchanged and are never run', async () => {
    const marker = join(sshd.dir, 'pwned');
    const hostile = [
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `; touch ${marker}`,
      `' ; touch ${marker}; '`,
      'a\nb',
      '*',
      '~',
      '-n',
      'X=1',
      '',
    ];
    const r = await ssh.exec(target(), ['printf', '%s\\0', ...hostile]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(hostile);
    const check = await ssh.exec(target(), ['test', '-e', marker]);
    expect(check.exitCode).toBe(1);
  });

  test('scripts go on stdin with quoted arguments', async () => {
    const r = await ssh.script(target(), 'printf "%s|" "$@"; echo; echo "$#"', ['a b', "it's", '$HOME']);
    expect(r.stdout).toBe("a b|it's|$HOME|\n3\n");
  });

  test('run() turns a non-zero exit into a command error with the code and stderr tail', async () => {
    const e = await failure(ssh.run(target(), ['sh', '-c', 'echo boom >&2; exit 7']));
    expect(e.kind).toBe('command');
    expect(e.message).toMatch(/exited with code 7: boom/);
  });

  test('a remote exit code of 255 is not mistaken for an ssh failure', async () => {
    const r = await ssh.exec(target(), ['sh', '-c', 'exit 255']);
    expect(r.exitCode).toBe(255);
  });

  test('connections are multiplexed: later commands skip the handshake', async () => {
    await ssh.exec(target(), ['true']);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push((await ssh.exec(target(), ['true'])).durationMs);
    const cold = new SshTransport({ configFile: sshd.configFile, multiplex: false });
    const coldTime = (await cold.exec(target(), ['true'])).durationMs;
    expect(Math.min(...times)).toBeLessThan(coldTime);
  });

  test('refused: nothing listens on the port', async () => {
    const port = await freePort();
    const e = await failure(ssh.exec({ name: 'test-host', address: '127.0.0.1', port }, ['true']));
    expect(e.kind).toBe('refused');
    expect(e.message).toContain('connection refused');
  });

  test('unknown host key: refused with a hint on how to trust it', async () => {
    const config = join(sshd.dir, 'ssh_config_empty_known');
    writeFileSync(join(sshd.dir, 'empty_known'), '');
    writeFileSync(
      config,
      `Host *\n  User ${sshd.user}\n  IdentityFile ${sshd.clientKey}\n  UserKnownHostsFile ${join(sshd.dir, 'empty_known')}\n`,
    );
    const strict = new SshTransport({ configFile: config, multiplex: false });
    const e = await failure(strict.exec(target(), ['true']));
    expect(e.kind).toBe('host-key-unknown');
    expect(e.hint).toContain('ssh-keyscan');
  });

  test('changed host key: refused, naming a possible man-in-the-middle', async () => {
    const config = join(sshd.dir, 'ssh_config_wrong_known');
    const other = 'AAAAC3NzaC1lZDI1NTE5AAAAIMqs9n8x6cAFI4h7c4mJ9GmzZkXGmD2WcZs0Q3Vq8d1F';
    writeFileSync(
      join(sshd.dir, 'wrong_known'),
      `[127.0.0.1]:${sshd.port} ssh-ed25519 ${other}\ntest-host ssh-ed25519 ${other}\n`,
    );
    writeFileSync(
      config,
      `Host *\n  User ${sshd.user}\n  IdentityFile ${sshd.clientKey}\n  UserKnownHostsFile ${join(sshd.dir, 'wrong_known')}\n`,
    );
    const e = await failure(
      new SshTransport({ configFile: config, multiplex: false }).exec(target(), ['true']),
    );
    expect(e.kind).toBe('host-key-changed');
    expect(e.message).toContain('CHANGED');
    expect(e.hint).toContain('ssh-keygen -R');
  });

  test('auth failure: a key the server does not know', async () => {
    const config = join(sshd.dir, 'ssh_config_badkey');
    const { execFileSync } = await import('node:child_process');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(sshd.dir, 'stranger')]);
    writeFileSync(
      config,
      `Host *\n  User ${sshd.user}\n  IdentityFile ${join(sshd.dir, 'stranger')}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${sshd.knownHosts}\n`,
    );
    const e = await failure(
      new SshTransport({ configFile: config, multiplex: false, env: { PATH: process.env.PATH } }).exec(
        target(),
        ['true'],
      ),
    );
    expect(e.kind).toBe('auth');
  });

  test('hang: a frozen sshd times out instead of blocking', async () => {
    const fresh = new SshTransport({ configFile: sshd.configFile, connectTimeoutSec: 1, multiplex: false });
    sshd.freeze();
    try {
      const e = await failure(fresh.exec(target(), ['true'], { timeoutMs: 4000 }));
      expect(e.kind).toBe('timeout');
    } finally {
      sshd.thaw();
    }
  });

  test('cancellation stops a running command', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const e = await failure(ssh.exec(target(), ['sleep', '30'], { signal: controller.signal }));
    expect(e.kind).toBe('cancelled');
  });

  test('parallel first calls share one control directory, and close() removes it', async () => {
    const t = new SshTransport({ configFile: sshd.configFile });
    await Promise.all(Array.from({ length: 5 }, () => t.exec(target(), ['true'])));
    const dir = await (t as unknown as { controlDir: Promise<string> }).controlDir;
    const { readdirSync, existsSync } = await import('node:fs');
    expect(readdirSync(dir).length).toBeLessThanOrEqual(1);
    await t.close();
    expect(existsSync(dir)).toBe(false);
  });

  test('control directories left by a killed persona (dead pid) are removed by the next one', async () => {
    const { mkdirSync, existsSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { spawnSync } = await import('node:child_process');
    const dead = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim();
    const stale = join(tmpdir(), `persona-ssh-${dead}-AbCdEf`);
    const alive = join(tmpdir(), `persona-ssh-${process.ppid}-AbCdEf`);
    mkdirSync(stale, { recursive: true });
    mkdirSync(alive, { recursive: true });
    const t = new SshTransport({ configFile: sshd.configFile });
    await t.exec(target(), ['true']);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(alive)).toBe(true);
    await t.close();
    const { rmSync } = await import('node:fs');
    rmSync(alive, { recursive: true, force: true });
  });

  test('close() ends the master connections and removes the control directory', async () => {
    const t = new SshTransport({ configFile: sshd.configFile });
    await t.exec(target(), ['true']);
    const dir = await (t as unknown as { controlDir: Promise<string> }).controlDir;
    const { existsSync } = await import('node:fs');
    expect(existsSync(dir)).toBe(true);
    await t.close();
    expect(existsSync(dir)).toBe(false);
  });
});
