/**
 * What the torture suite (scripts/torture.ts) needs around the built CLI: the lab (down/up through test/lab/lab),
 * persona as a child in its own process group (so a kill or a stop takes the whole "machine": node, ssh, rsync),
 * an `ssh` wrapper that logs every remote command with the persona process that started it, manifests of the
 * data on the lab hosts, HAProxy's runtime state and a grep for secret values. Nothing here imports persona's
 * internals: the suite drives the CLI only.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lastLine, ScriptError } from './script-main.js';

export const repo = fileURLToPath(new URL('../..', import.meta.url));
export const labScript = join(repo, 'test/lab/lab');
export const personaBin = join(repo, 'bin/persona');
export const labDir = process.env.PERSONA_LAB_DIR ?? '/var/lib/persona-lab';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const log = (line: string) => process.stderr.write(`torture: ${line}\n`);

/** Fails at once (exit 2) naming every missing command and the Debian package that provides it. */
export function requireBinaries(...commands: string[]): void {
  const onPath = (c: string) =>
    (process.env.PATH ?? '').split(delimiter).some((dir) => {
      try {
        accessSync(join(dir, c), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  const list = readFileSync(join(repo, 'scripts/debian-packages.txt'), 'utf8').split('\n');
  const packageOf = (c: string) =>
    list
      .map((l) => l.replace(/#.*/, '').trim().split(/\s+/))
      .find(([pkg, ...cmds]) => pkg && cmds.includes(c))?.[0];
  const missing = commands.filter((c) => !onPath(c));
  if (missing.length)
    throw new ScriptError(
      `missing ${missing.map((c) => `${c} (Debian package ${packageOf(c) ?? '?'})`).join(', ')}: run \`npm run setup\``,
      2,
    );
}

export interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A command to completion, output kept. */
export function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Done> {
  return start(cmd, args, env, false).done;
}

export interface Proc {
  pid: number;
  child: ChildProcess;
  done: Promise<Done>;
  exited: () => boolean;
  out: () => string;
  err: () => string;
  /** Signal the whole process group (persona and its ssh/rsync children). */
  group: (signal: NodeJS.Signals) => void;
}

export function start(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, detached = true): Proc {
  const started = Date.now();
  const child = spawn(cmd, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
    cwd: repo,
  });
  let stdout = '';
  let stderr = '';
  let exited = false;
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Done>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      exited = true;
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  return {
    pid: child.pid!,
    child,
    done,
    exited: () => exited,
    out: () => stdout,
    err: () => stderr,
    group: (signal) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // already gone
      }
    },
  };
}

/** Resolves with the result, or undefined after ms. */
export async function within(p: Proc, ms: number): Promise<Done | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((res) => {
    timer = setTimeout(() => res(undefined), ms);
  });
  const r = await Promise.race([p.done, timeout]);
  clearTimeout(timer);
  return r;
}

async function lab(...args: string[]): Promise<void> {
  const r = await run(labScript, args, { PERSONA_LAB_DIR: labDir });
  if (r.code !== 0)
    throw new ScriptError(
      `lab ${args.join(' ')} failed (exit ${r.code}): ${lastLine(r.stderr)}`,
      r.code ?? 1,
    );
}

/** The starting state: `lab down` then `lab up` (what the end-to-end tests' freshLab does). */
export async function labReset(): Promise<void> {
  await lab('down');
  await lab('up');
}
export const labDown = () => lab('down');
export const labFail = (host: string, mode: string) => lab('fail', host, `--mode=${mode}`);

export interface LabState {
  inventory: string;
  ssh: { config: string };
  haproxy: { admin_socket: string; backend: string; frontend_url: string };
  etcd: { endpoint: string; data_dir: string };
}
export const labState = (): LabState => JSON.parse(readFileSync(join(labDir, 'state.json'), 'utf8'));

/** A shell script on a lab host over real ssh (the lab's config, host keys checked). */
export async function onHost(host: string, script: string): Promise<Done> {
  return run('ssh', ['-F', join(labDir, 'ssh/config'), '-o', 'ConnectTimeout=5', host, '--', script]);
}

/** Owner, group, mode, size and path of everything under dir, and the sha256 of every file, sorted. */
export async function manifest(host: string, dir: string): Promise<string> {
  const r = await onHost(
    host,
    `cd ${dir} && find . -printf '%m %u:%g %s %y %p\\n' | LC_ALL=C sort && ` +
      `find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum`,
  );
  if (r.code !== 0) return `(no manifest: ssh ${host} exited ${r.code}: ${lastLine(r.stderr)})`;
  return r.stdout;
}

/** One command on HAProxy's admin socket. */
export function haproxyCommand(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(socket);
    let text = '';
    c.on('connect', () => c.end(`${command}\n`));
    c.on('data', (d) => (text += d));
    c.on('end', () => resolve(text));
    c.on('error', reject);
  });
}

/** server → admin state and operational state (the runtime's own numbers). */
export async function haproxyServers(state: LabState): Promise<Record<string, string>> {
  const text = await haproxyCommand(
    state.haproxy.admin_socket,
    `show servers state ${state.haproxy.backend}`,
  );
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    // be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...
    if (f.length > 7 && /^\d+$/.test(f[0]!)) out[f[3]!] = `op=${f[5]} admin=${f[6]}`;
  }
  return out;
}

/**
 * A PATH directory whose `ssh` logs "<ms> <ppid> <grandparent pid>" per invocation, then execs the real ssh, so
 * every remote command (rsync's too) is attributed to the persona process that caused it.
 */
export function sshWrapper(dir: string, logFile: string, realSsh: string): void {
  writeFileSync(
    join(dir, 'ssh'),
    [
      '#!/bin/bash',
      'read -r _ _ _ gp _ < /proc/$PPID/stat 2>/dev/null',
      `printf '%s %s %s %s\\n' "$(date +%s%3N)" "$PPID" "$gp" "$(printf '%q ' "$@" | tr -d '\\n' | head -c 300)" >> '${logFile}'`,
      `exec '${realSsh}' "$@"`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
}

export interface SshCall {
  at: number;
  ppid: number;
  gppid: number;
  args: string;
  /** `ssh -O exit|check`: talks to the local master connection only, runs nothing remotely */
  control: boolean;
}
export function sshCalls(logFile: string): SshCall[] {
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [at, ppid, gppid, ...args] = l.split(' ');
      const argv = args.join(' ');
      return {
        at: Number(at),
        ppid: Number(ppid),
        gppid: Number(gppid),
        args: argv,
        control: / -O (exit|check) /.test(` ${argv}`),
      };
    });
}
/** The calls made by persona process pid (directly, or by its rsync). */
export const callsOf = (calls: SshCall[], pid: number) =>
  calls.filter((c) => !c.control && (c.ppid === pid || c.gppid === pid));

/** Every file under dir with its text (files up to 8 MiB). */
export function filesUnder(dir: string): Array<{ where: string; text: string }> {
  const out: Array<{ where: string; text: string }> = [];
  const walk = (d: string) => {
    let names: string[] = [];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      const s = statSync(p, { throwIfNoEntry: false });
      if (!s) continue;
      if (s.isDirectory()) walk(p);
      else if (s.isFile() && s.size <= 8 * 2 ** 20) out.push({ where: p, text: readFileSync(p, 'latin1') });
    }
  };
  walk(dir);
  return out;
}

/** The forms in which a secret value could leak: itself, JSON-escaped, and each line of a multi-line one. */
export function leakForms(value: string): string[] {
  const forms = new Set([value, JSON.stringify(value).slice(1, -1)]);
  for (const line of value.split('\n')) if (line.length >= 16 && !line.startsWith('-----')) forms.add(line);
  return [...forms];
}

/** "secret NAME in WHERE" for every hit. */
export function secretHits(
  secrets: Record<string, string>,
  texts: Array<{ where: string; text: string }>,
): string[] {
  const hits: string[] = [];
  for (const [name, value] of Object.entries(secrets))
    for (const form of leakForms(value))
      for (const t of texts) if (t.text.includes(form)) hits.push(`secret ${name} in ${t.where}`);
  return [...new Set(hits)];
}
