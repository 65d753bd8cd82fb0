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
  /** The ListenAddress (127.0.0.1 unless asked). */
  address: string;
  /** The host key's public half, "type base64". */
  hostKey: string;
  /** What sshd logged so far (stderr, at the LogLevel asked for). */
  log(): string;
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

export interface SshdOptions {
  /** A loopback address to listen on (127.0.0.0/8 only). */
  address?: string;
  /** sshd's LogLevel: VERBOSE or DEBUG1 to see connections and forwards in log(). */
  logLevel?: string;
  /** More public keys to authorize (another sshd's client key). */
  authorize?: string[];
  /**
   * A command that ends by running the sshd command line appended to it (`unshare -m … sh -c '…; exec "$@"'`):
   * an sshd in a mount namespace of its own serves a "host" whose paths hold other filesystems.
   */
  wrap?: readonly string[];
}

export async function startSshd(options: SshdOptions = {}): Promise<TestSshd> {
  requireBinaries(SSHD_BIN, 'ssh', 'ssh-keygen');
  const address = options.address ?? '127.0.0.1';
  if (!address.startsWith('127.')) throw new Error(`test sshd: ${address} is not a loopback address`);
  const dir = mkdtempSync(join(tmpdir(), 'persona-sshd-'));
  const port = await freePort();
  const user = userInfo().username;
  keygen(join(dir, 'host_key'));
  keygen(join(dir, 'client_key'));
  writeFileSync(
    join(dir, 'authorized_keys'),
    [readFileSync(join(dir, 'client_key.pub'), 'utf8').trim(), ...(options.authorize ?? []), ''].join('\n'),
  );
  const hostPub = readFileSync(join(dir, 'host_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  writeFileSync(join(dir, 'known_hosts'), `[${address}]:${port} ${hostPub}\ntest-host ${hostPub}\n`);
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `ListenAddress ${address}:${port}`,
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
      `LogLevel ${options.logLevel ?? 'ERROR'}`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'ssh_config'),
    [
      `Host test-host ${address}`,
      `  HostName ${address}`,
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
  const command = [...(options.wrap ?? []), SSHD_BIN, '-D', '-e', '-f', join(dir, 'sshd_config')];
  const child = spawn(command[0]!, command.slice(1), {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let errors = '';
  child.stderr?.on('data', (d: Buffer) => {
    errors += d.toString();
  });
  await waitForPort(address, port, () => errors);
  return {
    dir,
    port,
    address,
    hostKey: hostPub,
    log: () => errors,
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

async function waitForPort(address: string, port: number, errors: () => string): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, address);
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
