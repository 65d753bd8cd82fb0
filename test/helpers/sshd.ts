/**
 * A real OpenSSH server on 127.0.0.1 for transport tests: its own host key, an authorized client key, a known_hosts
 * file and an ssh_config that uses them with strict host-key checking. Runs as the current user (root in CI).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { requireBinaries } from './binaries.js';

export interface TestSshd {
  dir: string;
  port: number;
  user: string;
  configFile: string;
  knownHosts: string;
  clientKey: string;
  process: ChildProcess;
  stop(): Promise<void>;
  /** Suspends sshd (SIGSTOP): connections are accepted by the kernel but never answered. */
  freeze(): void;
  thaw(): void;
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function keygen(path: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path]);
}

/** The sshd binary the tests start (PERSONA_SSHD_BIN overrides, e.g. to prove a missing one fails fast). */
export const SSHD_BIN = process.env.PERSONA_SSHD_BIN ?? '/usr/sbin/sshd';

export async function startSshd(): Promise<TestSshd> {
  requireBinaries(SSHD_BIN, 'ssh', 'ssh-keygen');
  const dir = mkdtempSync(join(tmpdir(), 'persona-sshd-'));
  const port = await freePort();
  const user = userInfo().username;
  keygen(join(dir, 'host_key'));
  keygen(join(dir, 'client_key'));
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
  const hostPub = readFileSync(join(dir, 'host_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostPub}\ntest-host ${hostPub}\n`);
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'MaxStartups 200:30:400',
      'MaxSessions 100',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'ssh_config'),
    [
      'Host test-host 127.0.0.1',
      '  HostName 127.0.0.1',
      `  Port ${port}`,
      `  User ${user}`,
      `  IdentityFile ${join(dir, 'client_key')}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${join(dir, 'known_hosts')}`,
      '  StrictHostKeyChecking yes',
      '',
    ].join('\n'),
  );
  execFileSync('mkdir', ['-p', '/run/sshd']);
  const child = spawn(SSHD_BIN, ['-D', '-e', '-f', join(dir, 'sshd_config')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let errors = '';
  child.stderr?.on('data', (d: Buffer) => {
    errors += d.toString();
  });
  await waitForPort(port, () => errors);
  return {
    dir,
    port,
    user,
    configFile: join(dir, 'ssh_config'),
    knownHosts: join(dir, 'known_hosts'),
    clientKey: join(dir, 'client_key'),
    process: child,
    freeze: () => child.kill('SIGSTOP'),
    thaw: () => child.kill('SIGCONT'),
    async stop() {
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPort(port: number, errors: () => string): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port}: ${errors()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
