// The lab from tests: bring it up, read its state, inject and heal faults, reach its hosts.
// Everything here drives test/lab/lab (bash) or reads what it wrote; see test/lab/README.md.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { shellJoin } from '../../src/hosts/shell-quote.js';
import type { PowerFence } from '../../src/profile/schema.js';

export const LAB_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lab');
export const DEFAULT_SPEC = path.join(path.dirname(LAB_SCRIPT), 'spec', 'default.json');
/** The default lab with a btrfs /srv on lab-1 and lab-2 (demo-web's data path a subvolume); lab-3/4 ext4. */
export const BTRFS_SPEC = path.join(path.dirname(LAB_SCRIPT), 'spec', 'btrfs.json');
/** A host spec for `lab add-host`: 2 CPUs, 6 GiB, a 2 GiB /srv. */
export const PROVISIONED_SPEC = path.join(path.dirname(LAB_SCRIPT), 'spec', 'provisioned.json');

/**
 * The lab script that brings the lab up and takes it down: this checkout's, unless PERSONA_LAB_SCRIPT names another
 * checkout's. `up` refuses a lab that another checkout brought up (the spec's hash covers the repository's path), so
 * tests run from a second worktree while the main checkout's lab is up set it to that checkout's test/lab/lab. Every
 * other command acts on the running lab whichever checkout made it, and is this checkout's (add-host, say).
 */
const upDownScript = () => process.env.PERSONA_LAB_SCRIPT || LAB_SCRIPT;
export const FAULT_MODES = ['app', 'sshd', 'hang', 'partition', 'poweroff'] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

export interface LabOptions {
  /** PERSONA_LAB_DIR; default: the environment's, else /var/lib/persona-lab */
  labDir?: string;
  /** spec file for `up` (and for `down` when the lab left no record); default: PERSONA_LAB_SPEC, else
   * spec/default.json */
  spec?: string;
}

export const specOf = (opts: LabOptions = {}): string =>
  opts.spec ?? process.env.PERSONA_LAB_SPEC ?? DEFAULT_SPEC;

export interface LabHost {
  name: string;
  address: string;
  addresses: string[];
  endpoints: { name: string; address: string }[];
  netns: string;
  veth: string;
  init_pid: number | null;
  cgroups: Record<string, string>;
  overlay: { lower: string; upper: string; work: string; merged: string };
  srv_image: string;
  /** The filesystem of its /srv image (spec field srv_fs); absent in labs brought up before it existed: ext4. */
  srv_fs?: 'ext4' | 'btrfs';
  labels: Record<string, string>;
  apps: string[];
  expected: { cpus: number; cpu_list: string; memory_bytes: number; srv_bytes: number; packages: string[] };
  fault: FaultMode | null;
}

export interface LabApp {
  host: string;
  hosts: string[];
  port: number;
  data_path: string;
  data_checksum: string;
  backup_path: string;
  secrets: string[];
  profile: string;
}

export interface LabState {
  version: 1;
  name: string;
  spec_file: string;
  spec_hash: string;
  lab_dir: string;
  cache_dir: string;
  bridge: string;
  bridge_address: string;
  subnet: string;
  cgroup_mode: 'v1' | 'v2';
  up_at: string;
  hosts: Record<string, LabHost>;
  haproxy: {
    admin_socket: string;
    frontend_url: string;
    backend: string;
    config: string;
    pid_file: string;
    /** HAProxy's server-state-file, which persona rewrites after each change (absent in labs up before it). */
    state_file?: string;
  };
  etcd: { endpoint: string; data_dir: string };
  apt_proxy: { url: string };
  ssh: { config: string; key: string; known_hosts: string };
  inventory: string;
  /** `lab bastion on HOST`: the other hosts take ssh only from HOST; null (or absent, in older labs) otherwise. */
  bastion?: LabBastion | null;
  apps: Record<string, LabApp>;
}

export interface LabBastion {
  host: string;
  addresses: string[];
  /** The lab's ssh config with ProxyJump through the bastion for every other host. */
  ssh_config: string;
  /** The hosts whose sshd takes connections only from the bastion. */
  behind: string[];
  /** The nftables table (inet) in each of their network namespaces. */
  nft_table: string;
}

export const labDirOf = (opts: LabOptions = {}): string =>
  opts.labDir ?? process.env.PERSONA_LAB_DIR ?? '/var/lib/persona-lab';

/** Run test/lab/lab; a failure throws with the command's own last lines (it names the step and host). */
export async function runLab(args: string[], opts: LabOptions = {}, script = LAB_SCRIPT): Promise<string> {
  const r = await execa(script, args, {
    env: { PERSONA_LAB_DIR: labDirOf(opts) },
    reject: false,
    stdin: 'ignore',
    all: true,
  });
  if (r.exitCode !== 0) {
    const tail = String(r.all ?? '')
      .split('\n')
      .slice(-15)
      .join('\n');
    throw new Error(`lab ${args.join(' ')} exited ${r.exitCode}:\n${tail}`);
  }
  return String(r.stdout);
}

/** Bring the lab up, or check and reuse the one that is up with the same spec. Registers a lease. */
export async function labUp(opts: LabOptions = {}): Promise<LabState> {
  takeLease(opts);
  await runLab(['up', '--spec', specOf(opts)], opts, upDownScript());
  return labState(opts);
}

export async function labDown(opts: LabOptions = {}): Promise<void> {
  await runLab(['down', '--spec', specOf(opts)], opts, upDownScript());
}

export function labState(opts: LabOptions = {}): LabState {
  const file = path.join(labDirOf(opts), 'state.json');
  if (!existsSync(file)) throw new Error(`the lab is not up: no ${file}`);
  return JSON.parse(readFileSync(file, 'utf8')) as LabState;
}

export function labHost(state: LabState, name: string): LabHost {
  const host = state.hosts[name];
  if (!host) throw new Error(`no host ${name} in the lab (hosts: ${Object.keys(state.hosts).join(', ')})`);
  return host;
}

export async function fail(host: string, mode: FaultMode, opts: LabOptions = {}): Promise<void> {
  await runLab(['fail', host, `--mode=${mode}`], opts);
}

export async function heal(host: string, opts: LabOptions = {}): Promise<void> {
  await runLab(['heal', host], opts);
}

export interface FenceAgentResult {
  exitCode: number | undefined;
  /** status prints on or off */
  stdout: string;
  stderr: string;
}

/**
 * The lab's fence agent, `lab fence off|on|status HOST` (see README.md, "The fence agent"): status exits 0 = on,
 * 2 = off, 1 = error (a refused name included). Never throws for what the agent does.
 */
export async function fenceAgent(
  action: string,
  host: string,
  opts: LabOptions = {},
): Promise<FenceAgentResult> {
  const r = await execa(LAB_SCRIPT, ['fence', action, host], {
    env: { PERSONA_LAB_DIR: labDirOf(opts) },
    reject: false,
    stdin: 'ignore',
    timeout: 120_000,
  });
  return { exitCode: r.exitCode, stdout: String(r.stdout).trim(), stderr: String(r.stderr) };
}

/**
 * The lab's fence agent as a profile's power fence (`fencing.power`). persona runs it on this machine with a minimal
 * environment, hence the lab dir on the command line.
 */
export function labPowerFence(opts: LabOptions = {}): PowerFence {
  const agent = (action: string) => [
    'env',
    `PERSONA_LAB_DIR=${labDirOf(opts)}`,
    LAB_SCRIPT,
    'fence',
    action,
    '{failed}',
  ];
  return { off: agent('off'), status: agent('status'), timeout_ms: 120_000 };
}

/** `lab add-host --spec SPEC`: one more host in the running lab; its inventory entry (what the command prints). */
export async function labAddHost(
  spec: string,
  opts: LabOptions = {},
): Promise<{ name: string; address: string; port: number; user: string; labels: Record<string, string> }> {
  return JSON.parse(await runLab(['add-host', '--spec', spec], opts));
}

/**
 * The lab as a provisioner (`lab add-host --spec SPEC`, see README.md, "Adding a host"): the command persona runs
 * to create a host when none fits. persona gives it a minimal environment, hence the lab dir on the command line.
 */
export function labProvisioner(spec: string, opts: LabOptions = {}): string[] {
  return ['env', `PERSONA_LAB_DIR=${labDirOf(opts)}`, LAB_SCRIPT, 'add-host', '--spec', spec];
}

/**
 * `lab bastion on HOST` (the other hosts take ssh only from HOST, so this machine reaches them only through it),
 * `lab bastion off`. See README.md, "The bastion".
 */
export async function bastionOn(host: string, opts: LabOptions = {}): Promise<LabBastion> {
  await runLab(['bastion', 'on', host], opts);
  const b = labState(opts).bastion;
  if (!b) throw new Error(`lab bastion on ${host} left no bastion in state.json`);
  return b;
}

export async function bastionOff(opts: LabOptions = {}): Promise<void> {
  await runLab(['bastion', 'off'], opts);
}

/**
 * Per host behind the bastion, from its nftables counters (`lab bastion status`): the ssh connections it accepted
 * from the bastion, the bytes its sshd received from it and sent to it, and the ssh packets it dropped (from
 * anywhere else).
 */
export interface BastionCounters {
  connections: number;
  bytesIn: number;
  bytesOut: number;
  dropped: number;
}

export async function bastionCounters(opts: LabOptions = {}): Promise<Record<string, BastionCounters>> {
  const out = await runLab(['bastion', 'status'], opts);
  const rows: Record<string, BastionCounters> = {};
  for (const m of out.matchAll(/^(\S+)\s+\S+\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/gm))
    rows[m[1]!] = {
      connections: Number(m[2]),
      bytesIn: Number(m[3]),
      bytesOut: Number(m[4]),
      dropped: Number(m[5]),
    };
  return rows;
}

/** The ssh config that reaches every lab host now: through the bastion while there is one. */
export function labSshConfig(opts: LabOptions = {}): string {
  const bastion = path.join(labDirOf(opts), 'ssh', 'config-bastion');
  return existsSync(bastion) ? bastion : path.join(labDirOf(opts), 'ssh', 'config');
}

export interface SshResult {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

export interface SshOptions extends LabOptions {
  /** client-side kill after this long; default 20 s */
  timeoutMs?: number;
  /** ssh ConnectTimeout (TCP connect and banner), seconds; default 5 */
  connectTimeoutS?: number;
  /** a different known_hosts file (host key checking stays strict) */
  knownHostsFile?: string;
  /** a different ssh config; default: labSshConfig() (through the bastion while there is one) */
  sshConfig?: string;
}

/** Run argv on a lab host over real ssh with the lab's ssh config; never throws for a failed command. */
export async function sshExec(host: string, argv: string[], opts: SshOptions = {}): Promise<SshResult> {
  const config = opts.sshConfig ?? labSshConfig(opts);
  const extra = opts.knownHostsFile ? ['-o', `UserKnownHostsFile=${opts.knownHostsFile}`] : [];
  const started = Date.now();
  const r = await execa(
    'ssh',
    [
      '-F',
      config,
      '-o',
      `ConnectTimeout=${opts.connectTimeoutS ?? 5}`,
      ...extra,
      host,
      '--',
      shellJoin(argv),
    ],
    { reject: false, stdin: 'ignore', timeout: opts.timeoutMs ?? 20_000 },
  );
  return {
    exitCode: r.exitCode,
    stdout: String(r.stdout),
    stderr: String(r.stderr),
    timedOut: r.timedOut,
    ms: Date.now() - started,
  };
}

export interface HttpResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** One GET without keep-alive; rejects with the socket error (err.code ECONNREFUSED, ETIMEDOUT, ...). */
export function httpGet(url: string, { timeoutMs = 5000 } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error(`GET ${url} timed out`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
  });
}

// Leases: which processes use the lab right now, so that teardown.test.ts can wait for them.
const leaseDir = (opts: LabOptions) =>
  path.join(tmpdir(), 'persona-lab-leases', labDirOf(opts).replace(/[^A-Za-z0-9]+/g, '_'));
const leaseFile = (opts: LabOptions) => path.join(leaseDir(opts), String(process.pid));

function takeLease(opts: LabOptions): void {
  mkdirSync(leaseDir(opts), { recursive: true });
  writeFileSync(leaseFile(opts), `${process.pid}\n`);
}

/** Call in afterAll of every test file that called labUp. */
export function releaseLab(opts: LabOptions = {}): void {
  rmSync(leaseFile(opts), { force: true });
}

function liveLeases(opts: LabOptions): number[] {
  if (!existsSync(leaseDir(opts))) return [];
  return readdirSync(leaseDir(opts))
    .map(Number)
    .filter((pid) => pid !== process.pid && existsSync(`/proc/${pid}`));
}

/** Wait until no other process holds a lease, and none appeared for settleMs (files start at once). */
export async function waitForOtherLabUsers({ timeoutMs = 30 * 60_000, settleMs = 3000, ...opts } = {}) {
  const deadline = Date.now() + timeoutMs;
  let quietSince = Date.now();
  while (Date.now() < deadline) {
    if (liveLeases(opts).length > 0) quietSince = Date.now();
    else if (Date.now() - quietSince >= settleMs) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`other processes still use the lab: ${liveLeases(opts).join(', ')}`);
}

export { assertNoLabTraces, labIdentity, labTraces } from './traces.js';
