/**
 * The bench lab (test/lab/spec/bench.json in its own lab dir): up, made ready for every tool, down.
 * Never the default lab: every call passes PERSONA_LAB_DIR explicitly.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lastLine, ScriptError } from '../scripts/script-main.js';

export const BENCH_LAB_DIR = '/var/lib/persona-lab-bench';
const SPEC = 'test/lab/spec/bench.json';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; output is kept (small commands only). */
export function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 255, stdout, stderr }));
  });
}

/** CPU-seconds the whole machine has been busy (not idle, not waiting for I/O) since boot, from /proc/stat. */
export async function machineBusySeconds(): Promise<number> {
  const [, ...f] = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / 100;
}

/** How busy the machine's CPUs were over the next `ms` (0..1): someone else's load makes every figure slower. */
export async function machineBusyShare(ms: number, cpus: number): Promise<number> {
  const before = await machineBusySeconds();
  await new Promise((r) => setTimeout(r, ms));
  return ((await machineBusySeconds()) - before) / ((ms / 1000) * cpus);
}

/** A pause between timed runs, so the teardown of one (sshd sessions ending) does not land in the next. */
export const settle = () => new Promise((r) => setTimeout(r, 1000));

function lab(repo: string, ...args: string[]): Promise<RunResult> {
  return run(join(repo, 'test/lab/lab'), args, { PERSONA_LAB_DIR: BENCH_LAB_DIR });
}

/** `lab up` brings it up, or checks and repairs it when it is up already. */
export async function benchLabUp(repo: string): Promise<'started' | 'was up'> {
  const wasUp = await readFile(join(BENCH_LAB_DIR, 'state.json')).then(
    () => true,
    () => false,
  );
  const r = await lab(repo, 'up', '--spec', join(repo, SPEC));
  if (r.code !== 0)
    throw new ScriptError(`bench lab up failed (exit ${r.code}): ${lastLine(r.stderr)}`, r.code || 1);
  return wasUp ? 'was up' : 'started';
}

export async function benchLabDown(repo: string): Promise<void> {
  const r = await lab(repo, 'down');
  if (r.code !== 0)
    throw new ScriptError(`bench lab down failed (exit ${r.code}): ${lastLine(r.stderr)}`, r.code || 1);
}
