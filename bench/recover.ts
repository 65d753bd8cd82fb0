/**
 * `npm run bench -- recover`: the demo's recovery (lab-1 loses power, demo-web moves to lab-2, the data comes back
 * from its backup), R times with the steps overlapping (persona's default) and R times with `--serial` (one step at
 * a time, the order before the step graph), interleaved, each on a freshly started lab, in one process.
 *
 * Measured from this process, around the built CLI: command start (just before the spawn) → traffic switched (the
 * switch step's end in the journal, on the same clock) and command start → done (the process exited). A run counts
 * only when persona exited 0 and HAProxy then serves lab-2 with the data lab-1 served (the sha256 manifest).
 */
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { getText, lastLine, ScriptError } from '../scripts/script-main.js';
import { startProber } from '../src/traffic/prober.js';
import { run, settle } from './lab.js';
import { loadAverage, machineInfo, median, updateResults } from './report.js';

const USAGE = `usage: npm run bench -- recover [OPTIONS]   (as root: it drives the default lab)
  --runs R     recoveries per order (default 5); the median is reported
  --quick      smoke run: 1 recovery per order, bench/RESULTS.md left alone
  --json       print the results as JSON instead of a table
  --down       take the lab down at the end
exit code: 0 every recovery succeeded with the data checked (goal met or not: see the verdict), 1 some did not, 2 usage`;

/** The goal of issue 12 §6: command start → traffic switched, for the demo profile. */
export const SWITCH_GOAL_MS = 10_000;

const LAB_DIR = process.env.PERSONA_LAB_DIR ?? '/var/lib/persona-lab';
const WORK = join(LAB_DIR, 'bench-recover');

type Order = 'overlapping' | 'serial';
const ORDERS: readonly Order[] = ['overlapping', 'serial'];

interface Recovery {
  order: Order;
  ok: boolean;
  /** Command start → the switch step's end. */
  switched_ms?: number;
  /** Command start → the first answer from lab-2 a client got through HAProxy (the 20 Hz prober). */
  served_ms?: number;
  /** The longest gap a client saw: its last good answer (lab-1, before the failure) to its first (lab-2). */
  outage_ms?: number;
  /** Command start → the process exited. */
  done_ms: number;
  /** When each step started and how long it took, from command start. */
  steps: Array<{ kind: string; from_ms: number; took_ms: number }>;
  failure?: string;
}

const log = (line: string) => process.stderr.write(`bench recover: ${line}\n`);
const s = (ms?: number) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);

async function lab(repo: string, ...args: string[]): Promise<void> {
  const r = await run(join(repo, 'test/lab/lab'), args);
  if (r.code !== 0)
    throw new ScriptError(`\`lab ${args.join(' ')}\` failed (exit ${r.code}): ${lastLine(r.stderr)}`, 1);
}

/** One recovery on a fresh lab: down, up, lab-1 powered off, `persona recover lab-1 --yes` timed. */
async function recoverOnce(repo: string, order: Order): Promise<Recovery> {
  await lab(repo, 'down');
  await lab(repo, 'up');
  const state = JSON.parse(readFileSync(join(LAB_DIR, 'state.json'), 'utf8'));
  const front = state.haproxy.frontend_url as string;
  const checksum = state.apps['demo-web'].data_checksum as string;
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true, mode: 0o700 });
  cpSync(join(repo, 'profiles'), join(WORK, 'store'), { recursive: true });
  const env = {
    PERSONA_STORE: `file:${join(WORK, 'store')}`,
    PERSONA_STATE_DIR: join(WORK, 'state'),
    PERSONA_INVENTORY: state.inventory as string,
    CI: 'true',
  };
  // A client behind HAProxy, 20 times a second, from before the failure to after the recovery.
  const proberStart = performance.now();
  const prober = startProber(`${front}/whoami`, { hz: 20, timeoutMs: 1000 });
  const byLab2 = prober.firstGood((said) => said === '200 lab-2');
  await lab(repo, 'fail', 'lab-1', '--mode=poweroff');
  await settle();
  const args = ['recover', 'lab-1', '--yes', ...(order === 'serial' ? ['--serial'] : [])];
  const t0 = Date.now();
  const commandStart = performance.now();
  const r = await run(join(repo, 'bin/persona'), args, env);
  const done = Date.now() - t0;
  await new Promise((resolve) => setTimeout(resolve, 500));
  const seen = await prober.stop();
  const servedAt = await byLab2;
  const clientGotLab2 = servedAt === undefined ? undefined : servedAt + proberStart - commandStart;
  const runs = join(WORK, 'state', 'runs');
  const file = readdirSync(runs).find((f) => f.endsWith('.json'));
  const journal = file
    ? (JSON.parse(readFileSync(join(runs, file), 'utf8')) as {
        steps: Array<{ kind: string; started_at?: string; finished_at?: string; duration_ms?: number }>;
      })
    : undefined;
  const steps = (journal?.steps ?? [])
    .filter((x) => x.started_at)
    .map((x) => ({ kind: x.kind, from_ms: Date.parse(x.started_at!) - t0, took_ms: x.duration_ms ?? 0 }));
  const sw = journal?.steps.find((x) => x.kind === 'switch')?.finished_at;
  const served = await getText(`${front}/whoami`);
  const data = await getText(`${front}/checksum`);
  const failure =
    r.code !== 0
      ? `persona exited ${r.code}: ${r.stderr.trim().split('\n').at(-1)}`
      : served !== '200 lab-2'
        ? `HAProxy serves ${served}, not lab-2`
        : data !== `200 ${checksum}`
          ? `the data served differs from lab-1's (${data.slice(0, 40)})`
          : undefined;
  return {
    order,
    ok: failure === undefined,
    ...(sw ? { switched_ms: Date.parse(sw) - t0 } : {}),
    ...(clientGotLab2 !== undefined ? { served_ms: Math.round(clientGotLab2) } : {}),
    ...(seen.longest ? { outage_ms: Math.round(seen.longest.ms) } : {}),
    done_ms: done,
    steps,
    ...(failure ? { failure } : {}),
  };
}

interface OrderSummary {
  order: Order;
  runs: number;
  ok: number;
  switched_median_ms: number;
  done_median_ms: number;
  switched_ms: number[];
  done_ms: number[];
  served_median_ms: number;
}

function summariseOrder(order: Order, all: readonly Recovery[]): OrderSummary {
  const mine = all.filter((r) => r.order === order);
  const good = mine.filter((r) => r.ok);
  const switched = good.map((r) => r.switched_ms!).filter((x) => x !== undefined);
  const done = good.map((r) => r.done_ms);
  return {
    order,
    runs: mine.length,
    ok: good.length,
    switched_median_ms: switched.length ? median(switched) : Number.NaN,
    done_median_ms: done.length ? median(done) : Number.NaN,
    switched_ms: switched,
    done_ms: done,
    served_median_ms: (() => {
      const served = good.map((r) => r.served_ms).filter((x): x is number => x !== undefined);
      return served.length ? median(served) : Number.NaN;
    })(),
  };
}

function verdict(rows: readonly OrderSummary[]): string[] {
  const [o, sr] = [rows.find((r) => r.order === 'overlapping')!, rows.find((r) => r.order === 'serial')!];
  return [
    `command start → traffic switched, median: ${s(o.switched_median_ms)} overlapping, ${s(sr.switched_median_ms)} serial (serial/overlapping ${(sr.switched_median_ms / o.switched_median_ms).toFixed(2)}×)`,
    `command start → done, median: ${s(o.done_median_ms)} overlapping, ${s(sr.done_median_ms)} serial (serial/overlapping ${(sr.done_median_ms / o.done_median_ms).toFixed(2)}×)`,
    `a client behind HAProxy (20 Hz) got lab-2's first answer, median: ${s(o.served_median_ms)} overlapping, ${s(sr.served_median_ms)} serial after command start`,
    `goal: switched ≤ ${s(SWITCH_GOAL_MS)} for the demo profile: ${o.switched_median_ms <= SWITCH_GOAL_MS ? 'met' : 'MISSED'} (${s(o.switched_median_ms)})`,
  ];
}

function table(rows: readonly OrderSummary[]): string {
  const head = [
    'order',
    'recoveries ok',
    'start → switched (median)',
    'start → a client gets lab-2 (median)',
    'start → done (median)',
    'each run: switched / done',
  ];
  const line = (xs: readonly string[]) => `| ${xs.join(' | ')} |`;
  return [
    line(head),
    line(head.map(() => '---')),
    ...rows.map((r) =>
      line([
        r.order === 'serial' ? 'serial (`--serial`)' : 'overlapping (default)',
        `${r.ok}/${r.runs}`,
        s(r.switched_median_ms),
        s(r.served_median_ms),
        s(r.done_median_ms),
        r.switched_ms.map((x, i) => `${s(x)} / ${s(r.done_ms[i])}`).join(', '),
      ]),
    ),
  ].join('\n');
}

/** The timeline of the median overlapping run: which steps overlapped. */
function timeline(all: readonly Recovery[]): string {
  const good = all.filter((r) => r.ok && r.order === 'overlapping' && r.switched_ms !== undefined);
  if (good.length === 0) return '';
  const mid = [...good].sort((a, b) => a.switched_ms! - b.switched_ms!)[Math.floor((good.length - 1) / 2)]!;
  return [
    'The median overlapping run, step by step (from command start):',
    '',
    '| step | from | took |',
    '| --- | --- | --- |',
    ...mid.steps.map((x) => `| ${x.kind} | ${s(x.from_ms)} | ${s(x.took_ms)} |`),
  ].join('\n');
}

export async function recoverBench(repo: string, argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      down: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const runs = v.quick ? 1 : Number(v.runs ?? 5);
  if (!Number.isInteger(runs) || runs < 1) {
    console.error(`bench recover: --runs must be ≥ 1\n${USAGE}`);
    return 2;
  }
  const date = new Date().toISOString();
  const loadStart = loadAverage();
  const all: Recovery[] = [];
  for (let i = 0; i < runs; i++) {
    // Interleaved, and the first order alternates: a slow minute of the machine hits both orders alike.
    for (const order of i % 2 ? [...ORDERS].reverse() : ORDERS) {
      const r = await recoverOnce(repo, order);
      all.push(r);
      log(
        `run ${i + 1}/${runs} ${order}: switched ${s(r.switched_ms)}, done ${s(r.done_ms)}${r.failure ? `; FAILED: ${r.failure}` : ''}`,
      );
    }
  }
  if (v.down) await lab(repo, 'down');
  const rows = ORDERS.map((o) => summariseOrder(o, all));
  const command = `npm run bench -- recover${argv.length ? ` ${argv.join(' ')}` : ''}`;
  if (v.json) {
    console.log(
      JSON.stringify({ command, date, results: rows, verdict: verdict(rows), recoveries: all }, null, 2),
    );
  } else {
    console.log(table(rows));
    for (const line of verdict(rows)) console.log(line);
    for (const r of all) if (r.failure) console.log(`${r.order} run failed: ${r.failure}`);
  }
  if (!v.quick) {
    const m = machineInfo();
    const block = [
      `Measured ${date} with \`${command}\`.`,
      '',
      `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memory_gib} GiB RAM, Linux ${m.kernel}; ${m.node}. Load average (1/5/15 min) at start ${loadStart}, at end ${loadAverage()}.`,
      '',
      table(rows),
      '',
      ...verdict(rows).map((x) => `- ${x}`),
      '',
      timeline(all),
    ].join('\n');
    await updateResults(join(repo, 'bench/RESULTS.md'), block, 'bench-recover');
    log('bench/RESULTS.md updated');
  }
  return all.every((r) => r.ok) ? 0 : 1;
}
