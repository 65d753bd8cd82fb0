/**
 * One timed run of each tool over the same endpoints. Each returns the wall time and which hosts answered, and
 * never hides a failure. Connections are cold in every run: a fresh SshTransport (own control directory) for
 * persona, no ControlMaster for plain ssh, a fresh ControlPath directory for Ansible.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { InventoryHost } from '../src/hosts/inventory.js';
import { DEFAULT_PROBE_CONCURRENCY, probeHosts } from '../src/hosts/probe.js';
import { SshTransport } from '../src/hosts/ssh.js';
import { mapPool } from '../src/util/pool.js';
import { run } from './lab.js';

export interface Sample {
  ms: number;
  ok: number;
  /** `host: reason` for every host that did not answer. */
  failures: string[];
}

/** The SshTransport persona's CLI builds (src/main.ts) for an inventory with an ssh config. */
export function personaTransport(sshConfig: string, multiplex = true): SshTransport {
  const ssh = new SshTransport({
    configFile: sshConfig,
    connectTimeoutSec: 5,
    hostKeyChecking: 'yes',
    multiplex,
    ...(process.env.XDG_RUNTIME_DIR ? { runtimeDir: process.env.XDG_RUNTIME_DIR } : {}),
  });
  return ssh;
}

/** probeHosts with its defaults; close() (tearing down the master connections) is not timed. */
export async function timePersona(hosts: readonly InventoryHost[], sshConfig: string): Promise<Sample> {
  const ssh = personaTransport(sshConfig);
  const started = performance.now();
  const results = await probeHosts(ssh, hosts);
  const ms = performance.now() - started;
  await ssh.close();
  const failures = results.flatMap((r) => (r.ok ? [] : [`${r.host.name}: ${r.failure.message}`]));
  return { ms, ok: results.length - failures.length, failures };
}

function exitOf(cmd: string, args: readonly string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (e) => resolve({ code: 255, stderr: e.message }));
    child.on('close', (code) => resolve({ code: code ?? 255, stderr }));
  });
}

/**
 * OpenSSH running `true` on every host, as many at once as persona probes: persona's own ssh arguments (same
 * config, options and key exchange) minus multiplexing, spawned directly with no output kept.
 */
export async function timePlainSsh(
  hosts: readonly InventoryHost[],
  sshConfig: string,
  concurrency = DEFAULT_PROBE_CONCURRENCY,
): Promise<Sample> {
  const ssh = personaTransport(sshConfig, false);
  const argvs = await Promise.all(hosts.map((h) => ssh.argv(h, 'true')));
  const started = performance.now();
  const exits = await mapPool(argvs, concurrency, (argv) => exitOf('ssh', argv));
  const ms = performance.now() - started;
  const failures = exits.flatMap((e, i) =>
    e.code === 0 ? [] : [`${hosts[i]!.name}: exit ${e.code} ${e.stderr.trim().split('\n').pop() ?? ''}`],
  );
  return { ms, ok: hosts.length - failures.length, failures };
}

/** An INI inventory for Ansible: the same names, addresses, ports and ssh config as persona's. */
export async function writeAnsibleInventory(
  dir: string,
  hosts: readonly InventoryHost[],
  sshConfig: string,
): Promise<string> {
  const file = join(dir, `inventory-${hosts.length}.ini`);
  const lines = hosts.map((h) => `${h.name} ansible_host=${h.address} ansible_port=${h.port ?? 22}`);
  await writeFile(
    file,
    [
      '[all]',
      ...lines,
      '',
      '[all:vars]',
      'ansible_user=root',
      `ansible_ssh_common_args='-F ${sshConfig}'`,
      // Named, not discovered: discovery would cost Ansible one more round trip per host.
      'ansible_python_interpreter=/usr/bin/python3',
      '',
    ].join('\n'),
  );
  return file;
}

/**
 * `ansible all -m setup` with default settings, host key checking on. stdout is read and dropped line by line
 * (as /dev/null would, but the `host | SUCCESS` headers are counted).
 */
export async function timeAnsible(
  hosts: readonly InventoryHost[],
  inventoryFile: string,
  forks: number,
  workDir: string,
): Promise<Sample> {
  const controlDir = await mkdtemp(join(workDir, 'cp-'));
  const env = {
    ...process.env,
    ANSIBLE_CONFIG: join(workDir, 'ansible.cfg'),
    ANSIBLE_HOST_KEY_CHECKING: 'True',
    ANSIBLE_SSH_CONTROL_PATH_DIR: controlDir,
    ANSIBLE_NOCOLOR: '1',
  };
  await writeFile(env.ANSIBLE_CONFIG, '[defaults]\n');
  const status = new Map<string, string>();
  const started = performance.now();
  const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) => {
    const child = spawn('ansible', ['all', '-i', inventoryFile, '-m', 'setup', '-f', String(forks)], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let rest = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        const m = /^(\S+) \| ([A-Z]+)!?(?: =>|:)/.exec(line);
        if (m) status.set(m[1]!, m[2]!);
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (e) => resolve({ code: 255, stderr: e.message }));
    child.on('close', (c) => resolve({ code: c ?? 255, stderr }));
  });
  const ms = performance.now() - started;
  await closeMasters(controlDir);
  const failures = hosts.flatMap((h) => {
    const s = status.get(h.name);
    return s === 'SUCCESS'
      ? []
      : [`${h.name}: ${s ?? `no result (ansible exit ${code}) ${stderr.slice(-200)}`}`];
  });
  return { ms, ok: hosts.length - failures.length, failures };
}

/** Ansible leaves its ControlPersist masters running; they must not load the next measurement. */
async function closeMasters(dir: string): Promise<void> {
  const sockets = await readdir(dir).catch(() => [] as string[]);
  await mapPool(sockets, 32, (s) => run('ssh', ['-o', `ControlPath=${join(dir, s)}`, '-O', 'exit', 'x']));
  await rm(dir, { recursive: true, force: true });
}
