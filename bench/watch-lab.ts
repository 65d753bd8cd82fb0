/**
 * What the watch benches share (bench/watch.ts, bench/soak.ts): the default lab (demo-web on lab-1), a private
 * store with demo-web's assignment recorded an hour ago (so no grace period applies), the built CLI's
 * `persona watch` running in the background with an events file, and that file read back.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastLine, ScriptError } from '../scripts/script-main.js';
import { openBackend } from '../src/stores/open.js';
import { run } from './lab.js';

export const LAB_DIR = process.env.PERSONA_LAB_DIR ?? '/var/lib/persona-lab';
export const HOST = 'lab-1';
export const APP = 'demo-web';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The lab script (test/lab/lab) on the default lab; throws with its last line when it fails. */
export async function lab(repo: string, ...args: string[]): Promise<void> {
  const r = await run(process.env.PERSONA_LAB_SCRIPT ?? join(repo, 'test/lab/lab'), args);
  if (r.code !== 0)
    throw new ScriptError(
      `lab ${args.join(' ')} failed (exit ${r.code}): ${lastLine(r.stderr)}`,
      r.code || 1,
    );
}

export interface WatchWork {
  dir: string;
  env: Record<string, string>;
}

/** The default lab up (as `lab up` leaves it) and a private store and state directory for watch. */
export async function prepareWatchLab(repo: string, name: string): Promise<WatchWork> {
  // As the e2e tests do: a fresh lab (whatever lab was up, from any checkout, goes down first).
  await lab(repo, 'down', '--spec', join(repo, 'test/lab/spec/default.json'));
  await lab(repo, 'up', '--spec', join(repo, 'test/lab/spec/default.json'));
  const state = JSON.parse(readFileSync(join(LAB_DIR, 'state.json'), 'utf8')) as { inventory: string };
  const dir = join(tmpdir(), `persona-bench-${name}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  cpSync(join(repo, 'profiles'), join(dir, 'store'), { recursive: true });
  const backend = await openBackend(`file:${join(dir, 'store')}`, {}, repo);
  const at = new Date(Date.now() - 3_600_000).toISOString();
  await backend.txn({
    puts: [{ key: `assignments/${APP}`, value: JSON.stringify({ app: APP, host: HOST, at }) }],
  });
  await backend.close();
  return {
    dir,
    env: {
      PERSONA_STORE: `file:${join(dir, 'store')}`,
      PERSONA_STATE_DIR: join(dir, 'state'),
      PERSONA_INVENTORY: state.inventory,
      NO_COLOR: '1',
    },
  };
}

export interface RunningWatch {
  child: ChildProcess;
  stderr: () => string;
  /** Ends it (SIGTERM) and waits for it to exit. */
  stop: () => Promise<void>;
}

/** `persona watch --interval 1 --json --events FILE [extra]` in the background, once it said what it watches. */
export async function startWatch(
  repo: string,
  work: WatchWork,
  events: string,
  extra: string[] = [],
): Promise<RunningWatch> {
  const args = ['watch', '--interval', '1', '--app', APP, '--events', events, '--json', ...extra];
  const child = spawn(join(repo, 'bin/persona'), args, {
    cwd: repo,
    env: { ...process.env, ...work.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  const deadline = Date.now() + 30_000;
  while (!stderr.includes('watching ')) {
    if (child.exitCode !== null || Date.now() > deadline)
      throw new ScriptError(`persona watch did not start: ${lastLine(stderr) || 'no output in 30 s'}`, 1);
    await sleep(50);
  }
  return {
    child,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface EventLine {
  at: string;
  kind: string;
  app: string;
  host: string;
  vantages?: string[];
  reason?: string;
}

export function readEvents(file: string): EventLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as EventLine);
}

/** The first event of `kind` in the file, waited for up to `timeoutMs`. */
export async function waitForEvent(
  file: string,
  kind: string,
  timeoutMs: number,
): Promise<EventLine | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = readEvents(file).find((x) => x.kind === kind);
    if (e || Date.now() > deadline) return e;
    await sleep(100);
  }
}
