/**
 * `npm run bench -- migrate`: a planned move of demo-web from lab-1 to lab-2 with 1 GiB of data, 1% of it changing
 * all through the move (the application's own writer rewrites 10 of its 1024 one-MiB files in turn, every 50 ms,
 * for as long as it runs), R times as persona migrates by default (copy while it serves, then the final delta) and
 * R times `--stop-copy-start` (stop, copy everything, start), interleaved, each on a freshly started lab, in one
 * process.
 *
 * Downtime is what a client sees: a 20 Hz prober of this process GETs /whoami through HAProxy from before the move
 * to its end, and the longest gap between good answers is the move's downtime (persona's own prober, in the journal,
 * is reported beside it). A move counts only when persona exited 0, HAProxy serves lab-2, and lab-2's data equals
 * lab-1's after the stop (sha256 over every file, both hosts).
 */
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { getText, lastLine, ScriptError } from '../scripts/script-main.js';
import { startProber } from '../src/traffic/prober.js';
import { run, settle } from './lab.js';
import { loadAverage, machineInfo, median, updateResults } from './report.js';

const USAGE = `usage: npm run bench -- migrate [OPTIONS]   (as root: it drives the lab with test/lab/spec/migrate.json)
  --runs R       moves per mode (default 3); the median is reported
  --size-mib N   the data, in one-MiB files (default 1024); 1% of the files change during the move
  --quick        smoke run: 1 move per mode, 256 MiB, bench/RESULTS.md left alone
  --json         print the results as JSON instead of a table
  --down         take the lab down at the end
exit code: 0 every move succeeded with the data checked (goal met or not: see the verdict), 1 some did not, 2 usage`;

/** The goal of issue 12 §1: a planned move's downtime at most 5% of stop-copy-start's. */
export const DOWNTIME_GOAL_RATIO = 0.05;

const LAB_DIR = process.env.PERSONA_LAB_DIR ?? '/var/lib/persona-lab';
const WORK = join(LAB_DIR, 'bench-migrate');
const DATA = '/srv/demo-web/data';

type Mode = 'precopy' | 'stop-copy-start';
const MODES: readonly Mode[] = ['precopy', 'stop-copy-start'];

interface Move {
  mode: Mode;
  ok: boolean;
  /** The longest gap between good answers this process's prober saw through HAProxy. */
  downtime_ms?: number;
  /** The same, as persona's own prober measured it (the journal's monitor outputs). */
  persona_downtime_ms?: number;
  /** Command start → exit. */
  done_ms: number;
  /** precopy: the passes made while serving; the final copy's bytes. */
  passes?: Array<{ n: number; bytes: number; ms: number }>;
  final_bytes?: number;
  failure?: string;
}

const log = (line: string) => process.stderr.write(`bench migrate: ${line}\n`);
const s = (ms?: number) => (ms === undefined || Number.isNaN(ms) ? '-' : `${(ms / 1000).toFixed(2)} s`);
const mib = (b?: number) => (b === undefined ? '-' : `${(b / 1024 ** 2).toFixed(1)} MiB`);

async function lab(repo: string, ...args: string[]): Promise<void> {
  const r = await run(join(repo, 'test/lab/lab'), args);
  if (r.code !== 0)
    throw new ScriptError(`\`lab ${args.join(' ')}\` failed (exit ${r.code}): ${lastLine(r.stderr)}`, 1);
}

async function onHost(host: string, script: string): Promise<string> {
  const r = await run('ssh', [
    '-F',
    join(LAB_DIR, 'ssh/config'),
    '-o',
    'ConnectTimeout=5',
    host,
    '--',
    script,
  ]);
  if (r.code !== 0) throw new ScriptError(`ssh ${host} failed (exit ${r.code}): ${lastLine(r.stderr)}`, 1);
  return r.stdout.trim();
}

const CHECKSUM = `cd ${DATA} && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum | sha256sum | cut -d" " -f1`;

/**
 * N one-MiB files of random data under DATA/bulk, and the writer: while demo-web runs (its pidfile), it rewrites
 * the first 1% of them (at least one) in turn, one every 50 ms, in place.
 */
function seedScript(n: number): string {
  const churn = Math.max(1, Math.round(n / 100));
  return [
    'set -e',
    `mkdir -p ${DATA}/bulk`,
    `i=0; while [ $i -lt ${n} ]; do head -c 1048576 /dev/urandom > ${DATA}/bulk/$(printf %05d $i); i=$((i+1)); done`,
    `nohup sh -c 'i=0; while [ -e /run/demo-web.pid ]; do dd if=/dev/urandom of=${DATA}/bulk/$(printf %05d $((i % ${churn}))) bs=1M count=1 conv=notrunc status=none; i=$((i+1)); sleep 0.05; done' >/dev/null 2>&1 &`,
  ].join('\n');
}

/** One move on a fresh lab: down, up, data seeded and changing, `persona migrate demo-web --to lab-2` timed. */
async function moveOnce(repo: string, mode: Mode, sizeMib: number): Promise<Move> {
  const spec = join(repo, 'test/lab/spec/migrate.json');
  await lab(repo, 'down', '--spec', spec);
  await lab(repo, 'up', '--spec', spec);
  const state = JSON.parse(readFileSync(join(LAB_DIR, 'state.json'), 'utf8'));
  const front = state.haproxy.frontend_url as string;
  await onHost('lab-1', seedScript(sizeMib));
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true, mode: 0o700 });
  cpSync(join(repo, 'profiles'), join(WORK, 'store'), { recursive: true });
  const env = {
    PERSONA_STORE: `file:${join(WORK, 'store')}`,
    PERSONA_STATE_DIR: join(WORK, 'state'),
    PERSONA_INVENTORY: state.inventory as string,
    CI: 'true',
  };
  await settle();
  const prober = startProber(`${front}/whoami`, { hz: 20, timeoutMs: 1000 });
  const args = [
    'migrate',
    'demo-web',
    '--to',
    'lab-2',
    '--yes',
    ...(mode === 'stop-copy-start' ? ['--stop-copy-start'] : []),
  ];
  const t0 = Date.now();
  const r = await run(join(repo, 'bin/persona'), args, env);
  const done = Date.now() - t0;
  await new Promise((resolve) => setTimeout(resolve, 500));
  const seen = await prober.stop();
  const runs = join(WORK, 'state', 'runs');
  const file = readdirSync(runs).find((f) => f.endsWith('.json'));
  const journal = file
    ? (JSON.parse(readFileSync(join(runs, file), 'utf8')) as {
        steps: Array<{ kind: string; outputs?: Record<string, unknown> }>;
      })
    : undefined;
  const out = (kind: string) => journal?.steps.find((x) => x.kind === kind)?.outputs;
  const precopy = out('precopy') as { passes?: Array<{ n: number; bytes: number; ms: number }> } | undefined;
  const final = out('migrate') as { transfers?: Array<{ transferred_bytes?: number }> } | undefined;
  const personaDowntime = (out('monitor') as { downtime?: { longest_ms?: number } } | undefined)?.downtime
    ?.longest_ms;
  const served = await getText(`${front}/whoami`);
  const [src, dst] =
    r.code === 0 ? await Promise.all([onHost('lab-1', CHECKSUM), onHost('lab-2', CHECKSUM)]) : ['', ''];
  const failure =
    r.code !== 0
      ? `persona exited ${r.code}: ${lastLine(r.stderr)}`
      : served !== '200 lab-2'
        ? `HAProxy serves ${served}, not lab-2`
        : src !== dst || src === ''
          ? `lab-2's data (${dst.slice(0, 12)}) differs from lab-1's after the stop (${src.slice(0, 12)})`
          : undefined;
  return {
    mode,
    ok: failure === undefined,
    ...(seen.longest ? { downtime_ms: Math.round(seen.longest.ms) } : {}),
    ...(personaDowntime !== undefined ? { persona_downtime_ms: personaDowntime } : {}),
    done_ms: done,
    ...(precopy?.passes ? { passes: precopy.passes.map(({ n, bytes, ms }) => ({ n, bytes, ms })) } : {}),
    ...(final?.transfers
      ? { final_bytes: final.transfers.reduce((a, t) => a + (t.transferred_bytes ?? 0), 0) }
      : {}),
    ...(failure ? { failure } : {}),
  };
}

interface ModeSummary {
  mode: Mode;
  runs: number;
  ok: number;
  downtime_median_ms: number;
  persona_downtime_median_ms: number;
  done_median_ms: number;
  downtime_ms: number[];
}

function summariseMode(mode: Mode, all: readonly Move[]): ModeSummary {
  const good = all.filter((m) => m.mode === mode && m.ok);
  const med = (xs: Array<number | undefined>) => {
    const v = xs.filter((x): x is number => x !== undefined);
    return v.length ? median(v) : Number.NaN;
  };
  return {
    mode,
    runs: all.filter((m) => m.mode === mode).length,
    ok: good.length,
    downtime_median_ms: med(good.map((m) => m.downtime_ms)),
    persona_downtime_median_ms: med(good.map((m) => m.persona_downtime_ms)),
    done_median_ms: med(good.map((m) => m.done_ms)),
    downtime_ms: good.map((m) => m.downtime_ms ?? Number.NaN),
  };
}

function verdict(rows: readonly ModeSummary[]): string[] {
  const [p, scs] = [rows.find((r) => r.mode === 'precopy')!, rows.find((r) => r.mode === 'stop-copy-start')!];
  const ratio = p.downtime_median_ms / scs.downtime_median_ms;
  return [
    `downtime a client saw through HAProxy (20 Hz), median: ${s(p.downtime_median_ms)} copying while serving, ${s(scs.downtime_median_ms)} stop-copy-start: ${(ratio * 100).toFixed(1)}%`,
    `goal: downtime ≤ ${DOWNTIME_GOAL_RATIO * 100}% of stop-copy-start's: ${ratio <= DOWNTIME_GOAL_RATIO ? 'met' : 'MISSED'} (${(ratio * 100).toFixed(1)}%)`,
  ];
}

function table(rows: readonly ModeSummary[]): string {
  const head = [
    'mode',
    'moves ok',
    'downtime, client (median)',
    'downtime, persona (median)',
    'command (median)',
    'each run: downtime',
  ];
  const line = (xs: readonly string[]) => `| ${xs.join(' | ')} |`;
  return [
    line(head),
    line(head.map(() => '---')),
    ...rows.map((r) =>
      line([
        r.mode === 'precopy' ? 'copy while serving (default)' : '`--stop-copy-start`',
        `${r.ok}/${r.runs}`,
        s(r.downtime_median_ms),
        s(r.persona_downtime_median_ms),
        s(r.done_median_ms),
        r.downtime_ms.map((x) => s(x)).join(', '),
      ]),
    ),
  ].join('\n');
}

function passes(all: readonly Move[]): string {
  const lines = all
    .filter((m) => m.ok && m.mode === 'precopy')
    .map(
      (m, i) =>
        `- move ${i + 1}: ${(m.passes ?? []).map((p) => `pass ${p.n} ${mib(p.bytes)} in ${s(p.ms)}`).join(', ')}; final copy ${mib(m.final_bytes)}`,
    );
  return lines.length
    ? ['The passes while serving, and the final copy after the stop:', '', ...lines].join('\n')
    : '';
}

export async function migrateBench(repo: string, argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string' },
      'size-mib': { type: 'string' },
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
  const runs = v.quick ? 1 : Number(v.runs ?? 3);
  const size = v.quick ? 256 : Number(v['size-mib'] ?? 1024);
  if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(size) || size < 1 || size > 1536) {
    console.error(`bench migrate: --runs must be ≥ 1 and --size-mib between 1 and 1536\n${USAGE}`);
    return 2;
  }
  const date = new Date().toISOString();
  const loadStart = loadAverage();
  const all: Move[] = [];
  for (let i = 0; i < runs; i++) {
    for (const mode of i % 2 ? [...MODES].reverse() : MODES) {
      const m = await moveOnce(repo, mode, size);
      all.push(m);
      log(
        `run ${i + 1}/${runs} ${mode}: downtime ${s(m.downtime_ms)} (persona ${s(m.persona_downtime_ms)}), command ${s(m.done_ms)}${m.failure ? `; FAILED: ${m.failure}` : ''}`,
      );
    }
  }
  if (v.down) await lab(repo, 'down', '--spec', join(repo, 'test/lab/spec/migrate.json'));
  const rows = MODES.map((m) => summariseMode(m, all));
  const command = `npm run bench -- migrate${argv.length ? ` ${argv.join(' ')}` : ''}`;
  if (v.json) {
    console.log(
      JSON.stringify(
        { command, date, size_mib: size, results: rows, verdict: verdict(rows), moves: all },
        null,
        2,
      ),
    );
  } else {
    console.log(table(rows));
    for (const line of verdict(rows)) console.log(line);
    for (const m of all) if (m.failure) console.log(`${m.mode} run failed: ${m.failure}`);
  }
  if (!v.quick) {
    const m = machineInfo();
    const block = [
      `Measured ${date} with \`${command}\`: ${size} MiB of data in one-MiB files, ${Math.max(1, Math.round(size / 100))} of them rewritten in turn every 50 ms while the application runs.`,
      '',
      `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memory_gib} GiB RAM, Linux ${m.kernel}; ${m.node}. Load average (1/5/15 min) at start ${loadStart}, at end ${loadAverage()}.`,
      '',
      table(rows),
      '',
      ...verdict(rows).map((x) => `- ${x}`),
      '',
      passes(all),
    ].join('\n');
    await updateResults(join(repo, 'bench/RESULTS.md'), block, 'bench-migrate');
    log('bench/RESULTS.md updated');
  }
  return all.every((m) => m.ok) ? 0 : 1;
}
