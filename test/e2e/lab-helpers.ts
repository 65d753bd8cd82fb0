/**
 * What the end-to-end tests of recover share: a fresh lab, a private store and state directory per test, the
 * built CLI, and checks of the end state through HAProxy, the data, the store and the hosts themselves.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, expect } from 'vitest';
import type { Journal } from '../../src/runbook/types.js';
import { HaproxyRuntime } from '../../src/traffic/haproxy.js';
import { bin, repoRoot, runBin } from '../helpers/cli.js';
import { httpGet, type LabState, labDown, labUp, sshExec } from '../lab/lab.js';

/** Every recovery test starts from the lab as `up` leaves it: demo-web on lab-1, behind HAProxy. */
export async function freshLab(): Promise<LabState> {
  await labDown();
  return await labUp();
}

export interface Workspace {
  store: string;
  state: string;
  env: Record<string, string>;
}

const roots: string[] = [];

/** Workspaces live as long as the test file that made them (a beforeAll's workspace serves all its tests). */
afterAll(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A private directory removed with the test file's workspaces. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  roots.push(dir);
  return dir;
}

export function workspace(lab: LabState, extra: Record<string, string> = {}): Workspace {
  const root = scratchDir('persona-e2e-');
  const store = join(root, 'store');
  cpSync(join(repoRoot, 'profiles'), store, { recursive: true });
  const state = join(root, 'state');
  return {
    store,
    state,
    env: {
      PERSONA_STORE: `file:${store}`,
      PERSONA_STATE_DIR: state,
      PERSONA_INVENTORY: lab.inventory,
      PERSONA_LOCK_TTL: '5',
      ...extra,
    },
  };
}

export const persona = (args: string[], ws: Workspace, env: Record<string, string> = {}) =>
  runBin(args, { env: { ...ws.env, ...env }, timeout: 300_000 });

/** persona in the background, for tests that kill it or race it. */
export function personaChild(args: string[], ws: Workspace, env: Record<string, string> = {}): ResultPromise {
  return execa(bin, args, {
    cwd: repoRoot,
    env: { NO_COLOR: '1', CI: 'true', ...ws.env, ...env },
    reject: false,
    stdin: 'ignore',
  });
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 120_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until the CLI stopped at its failpoint (it writes <state>/failpoint-reached). */
export async function failpointReached(ws: Workspace, child?: ResultPromise): Promise<void> {
  await waitFor('the failpoint', () => {
    if (child && child.exitCode !== null)
      throw new Error(`persona exited (${child.exitCode}) before its failpoint`);
    return existsSync(join(ws.state, 'failpoint-reached')) || undefined;
  });
}

export function runIdIn(output: string): string {
  const m = /--resume (\S+)/.exec(output) ?? /"run_id":"([^"]+)"/.exec(output);
  if (!m) throw new Error(`no run id in:\n${output}`);
  return m[1]!;
}

export function journal(ws: Workspace, runId: string): Journal {
  return JSON.parse(readFileSync(join(ws.state, 'runs', `${runId}.json`), 'utf8'));
}

export async function haproxyServers(lab: LabState): Promise<Record<string, { admin: number; op: number }>> {
  const servers = await new HaproxyRuntime(lab.haproxy.admin_socket).servers(lab.haproxy.backend);
  return Object.fromEntries(servers.map((s) => [s.server, { admin: s.adminState, op: s.opState }]));
}

/**
 * What persona may change in HAProxy: each server's administrative state. The operational state is HAProxy's own
 * health check, which follows a failed application on its own schedule.
 */
export async function haproxyAdminStates(lab: LabState): Promise<Record<string, number>> {
  const servers = await new HaproxyRuntime(lab.haproxy.admin_socket).servers(lab.haproxy.backend);
  return Object.fromEntries(servers.map((s) => [s.server, s.adminState]));
}

/**
 * Reloads the lab's HAProxy as an init script would (a new process with the same configuration, the old one told
 * to finish with -sf), without dumping its state first: only what persona saved to the server-state-file survives.
 */
export async function reloadHaproxy(lab: LabState): Promise<void> {
  const pidOf = () => readFileSync(lab.haproxy.pid_file, 'utf8').trim();
  const old = pidOf();
  const { execa } = await import('execa');
  await execa('haproxy', ['-f', lab.haproxy.config, '-sf', old]);
  const api = new HaproxyRuntime(lab.haproxy.admin_socket);
  for (let i = 0; i < 100; i++) {
    const now = pidOf();
    if (now !== old && new RegExp(`^Pid: ${now}$`, 'm').test(await api.command('show info').catch(() => '')))
      return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`HAProxy did not come back from a reload (config ${lab.haproxy.config})`);
}

/** The run's step events: every step of the runbook succeeded, in the runbook's order. */
export function expectEveryStepSucceeded(events: Array<Record<string, unknown>>): void {
  expect(events.filter((e) => e.type === 'step' && e.status === 'succeeded').map((e) => e.step)).toEqual([
    'fence',
    'configure',
    'migrate',
    'validate',
    'switch',
    'monitor',
    'record',
  ]);
}

/** The application answers through HAProxy from `host`, with the original data, and the store says so. */
export async function expectRecoveredOnto(lab: LabState, ws: Workspace, host: string): Promise<void> {
  const base = lab.haproxy.frontend_url;
  for (let i = 0; i < 5; i++) expect((await httpGet(`${base}/whoami`)).body.trim()).toBe(host);
  expect((await httpGet(`${base}/checksum`)).body.trim()).toBe(lab.apps['demo-web']!.data_checksum);
  const servers = await haproxyServers(lab);
  expect(servers['lab-1']!.admin & 0x01).toBe(1);
  expect(servers[host]!.admin & 0x23).toBe(0);
  expect(servers[host]!.op).toBe(2);
  const assignment = JSON.parse(
    readFileSync(join(ws.store, '.persona', 'data', 'assignments', 'demo-web'), 'utf8'),
  );
  expect(assignment).toMatchObject({ app: 'demo-web', host, previous: 'lab-1' });
  const onHost = await sshExec(host, [
    'sh',
    '-c',
    'cd /srv/demo-web/data && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum | sha256sum | cut -d" " -f1',
  ]);
  expect(onHost.stdout.trim()).toBe(lab.apps['demo-web']!.data_checksum);
}

/** The secret the demo profile references, read from where the lab put it. */
export function demoSecret(): string {
  return readFileSync('/var/lib/persona-lab/secrets/demo-web-session.key', 'utf8').trim();
}

export async function hostHasPackage(host: string, name: string): Promise<boolean> {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format syntax
  const r = await sshExec(host, ['dpkg-query', '-W', '-f=${db:Status-Abbrev}', name]);
  return r.stdout.startsWith('ii');
}

export { execa };

/** sha256 of every file under DIR (sorted by path), one digest: the same data on two hosts gives the same line. */
export const treeChecksum = (dir: string) =>
  `cd ${dir} && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum | sha256sum | cut -d" " -f1`;

/** On the host it runs on: a line into DIR/writes.log every 50 ms for as long as demo-web runs there (its pidfile). */
export const demoWriter = (dir: string) =>
  `nohup sh -c 'while [ -e /run/demo-web.pid ]; do date +%s%N >> ${dir}/writes.log; sleep 0.05; done' >/dev/null 2>&1 &`;
