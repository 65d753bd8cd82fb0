/**
 * `npm run bench -- decision`: recover's decision (facts, history, rank, and the chosen target probed again when
 * its facts were cached) with a cold cache, every one of N candidates probed, against a warm one, filled just
 * before by `persona hosts probe --cache` (untimed), where only the chosen target is probed. R runs of each,
 * interleaved (the first alternates), on the bench lab's endpoints; the median is reported.
 *
 * What is timed is `persona hosts rank --profile P --failed F --json`, recover's decision without the lock and the
 * runbook (the same code: recover/decide.ts): its `decision_ms`, measured by persona from before the facts are
 * gathered to the target confirmed (profile and inventory loaded, process started: not included), and the whole
 * command's wall time from here, which adds Node's start and the loads.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_LAB_DIR, benchLabDown, benchLabUp, run, settle } from './lab.js';
import { loadAverage, machineInfo, median, updateResults } from './report.js';

const USAGE = `usage: npm run bench -- decision [OPTIONS]   (as root, under flock -o /tmp/persona-lab.lock: it drives the bench lab)
  --runs R     decisions per cache state (default 5); the median is reported
  --hosts N    candidates (default 200, at most 207): the first N+1 endpoints of the bench lab, the first one failed
  --quick      smoke run: 20 candidates, 1 decision each, bench/RESULTS.md left alone
  --json       print the results as JSON instead of a table
  --down       take the bench lab down at the end
exit code: 0 every decision chose a target (goal met or not: see the verdict), 1 some did not, 2 usage`;

/** Issue 13: recover's decision with a warm cache. */
export const WARM_GOAL_MS = 300;
const PROFILE = 'bench-app';
const WORK = join(tmpdir(), 'persona-bench-decision');

type CacheState = 'cold' | 'warm';
const STATES: readonly CacheState[] = ['cold', 'warm'];

interface Decision {
  state: CacheState;
  ok: boolean;
  decision_ms: number;
  wall_ms: number;
  /** Hosts ranked from the cache. */
  from_cache: number;
  target?: string;
  failure?: string;
}

const log = (line: string) => process.stderr.write(`bench decision: ${line}\n`);
const s = (ms: number) => (Number.isNaN(ms) ? '-' : `${(ms / 1000).toFixed(3)} s`);

/** A small application every bench endpoint can take (1 GiB, python3 installed), so the ranking has a top. */
function benchProfile() {
  return {
    id: PROFILE,
    description: 'The bench lab application: only its requirements matter (ranking).',
    required_cores: 1,
    required_ram_gb: 0.25,
    required_storage_gb: 1,
    software_stack: ['python3'],
    network_configuration: { ip_ranges: [], vlans: [], firewall_rules: [] },
    security_profile: { users: [], encryption_keys: [] },
    application_dependencies: [],
    performance_metrics: { cpu_utilization_pct: { max: 90 }, memory_usage_pct: { max: 90 } },
    data: { paths: ['/var/lib/bench-app'], migration: 'rsync' },
    deploy: { port: 8080, files: [], install: [], start: ['true'], stop: ['true'] },
    health_checks: [{ name: 'up', type: 'command', command: ['true'] }],
    traffic: { method: 'command', fence: ['true'], switch: ['true'] },
  };
}

/** A store with the bench profile and an inventory of the first n+1 endpoints; the first is the failed host. */
function prepareWork(n: number): { env: Record<string, string>; failed: string } {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(join(WORK, 'store'), { recursive: true, mode: 0o700 });
  writeFileSync(join(WORK, 'store', `${PROFILE}.json`), `${JSON.stringify(benchProfile(), null, 2)}\n`);
  const inventory = JSON.parse(readFileSync(join(BENCH_LAB_DIR, 'inventory.json'), 'utf8'));
  const hosts = (inventory.hosts as Array<{ name: string }>).slice(0, n + 1);
  writeFileSync(join(WORK, 'inventory.json'), JSON.stringify({ ...inventory, hosts }));
  return {
    failed: hosts[0]!.name,
    env: {
      PERSONA_STORE: `file:${join(WORK, 'store')}`,
      PERSONA_STATE_DIR: join(WORK, 'state'),
      PERSONA_INVENTORY: join(WORK, 'inventory.json'),
      CI: 'true',
    },
  };
}

async function persona(repo: string, args: string[], env: Record<string, string>) {
  const started = performance.now();
  const r = await run(join(repo, 'bin/persona'), args, env);
  return { ...r, wall_ms: Math.round(performance.now() - started) };
}

async function decideOnce(
  repo: string,
  state: CacheState,
  w: { env: Record<string, string>; failed: string },
): Promise<Decision> {
  if (state === 'warm') {
    const fill = await persona(repo, ['hosts', 'probe', '--profile', PROFILE, '--cache', '--json'], w.env);
    if (fill.code !== 0)
      return {
        state,
        ok: false,
        decision_ms: NaN,
        wall_ms: NaN,
        from_cache: 0,
        failure: `fill: exit ${fill.code}`,
      };
    await settle();
  }
  const age = state === 'cold' ? '0' : '300';
  const r = await persona(
    repo,
    ['hosts', 'rank', '--profile', PROFILE, '--failed', w.failed, '--max-fact-age', age, '--json'],
    w.env,
  );
  let out: {
    decision_ms?: number;
    facts_from_cache?: number;
    hosts?: Array<{ host: string; verdict: string }>;
  } = {};
  try {
    out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
  } catch {
    // Reported below.
  }
  const top = out.hosts?.[0];
  const failure =
    r.code !== 0
      ? `persona exited ${r.code}: ${r.stderr.trim().split('\n').at(-1)}`
      : top?.verdict !== 'eligible'
        ? 'no eligible host'
        : out.decision_ms === undefined
          ? 'no decision_ms in the output'
          : undefined;
  return {
    state,
    ok: failure === undefined,
    decision_ms: out.decision_ms ?? NaN,
    wall_ms: r.wall_ms,
    from_cache: out.facts_from_cache ?? 0,
    ...(top ? { target: top.host } : {}),
    ...(failure ? { failure } : {}),
  };
}

interface StateSummary {
  state: CacheState;
  runs: number;
  ok: number;
  decision_median_ms: number;
  wall_median_ms: number;
  decision_ms: number[];
  from_cache: number;
}

function summarise(state: CacheState, all: readonly Decision[]): StateSummary {
  const mine = all.filter((d) => d.state === state);
  const good = mine.filter((d) => d.ok);
  const med = (xs: number[]) => (xs.length ? median(xs) : NaN);
  return {
    state,
    runs: mine.length,
    ok: good.length,
    decision_median_ms: med(good.map((d) => d.decision_ms)),
    wall_median_ms: med(good.map((d) => d.wall_ms)),
    decision_ms: good.map((d) => d.decision_ms),
    from_cache: Math.max(0, ...good.map((d) => d.from_cache)),
  };
}

function verdict(rows: readonly StateSummary[], n: number): string[] {
  const [cold, warm] = [rows.find((r) => r.state === 'cold')!, rows.find((r) => r.state === 'warm')!];
  return [
    `recover's decision for ${n} candidates, median: ${s(cold.decision_median_ms)} cold (every host probed), ${s(warm.decision_median_ms)} warm (${warm.from_cache} from the cache, the target probed again): cold/warm ${(cold.decision_median_ms / warm.decision_median_ms).toFixed(1)}×`,
    `the whole command (Node start, profile and inventory loads included), median: ${s(cold.wall_median_ms)} cold, ${s(warm.wall_median_ms)} warm`,
    `goal: warm decision ≤ ${s(WARM_GOAL_MS)}: ${warm.decision_median_ms <= WARM_GOAL_MS ? 'met' : 'MISSED'} (${s(warm.decision_median_ms)})`,
  ];
}

function table(rows: readonly StateSummary[]): string {
  const head = ['fact cache', 'decisions ok', 'decision (median)', 'command (median)', 'each run: decision'];
  const line = (xs: readonly string[]) => `| ${xs.join(' | ')} |`;
  return [
    line(head),
    line(head.map(() => '---')),
    ...rows.map((r) =>
      line([
        r.state === 'cold' ? 'cold (`--max-fact-age 0`)' : 'warm (filled by `hosts probe --cache`)',
        `${r.ok}/${r.runs}`,
        s(r.decision_median_ms),
        s(r.wall_median_ms),
        r.decision_ms.map(s).join(', '),
      ]),
    ),
  ].join('\n');
}

export async function decisionBench(repo: string, argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string' },
      hosts: { type: 'string' },
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
  const n = v.quick ? 20 : Number(v.hosts ?? 200);
  if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(n) || n < 1 || n > 207) {
    console.error(`bench decision: --runs must be ≥ 1 and --hosts from 1 to 207\n${USAGE}`);
    return 2;
  }
  const date = new Date().toISOString();
  const loadStart = loadAverage();
  log(`bench lab ${await benchLabUp(repo)} (${BENCH_LAB_DIR})`);
  const w = prepareWork(n);
  // Untimed: the first ssh connections to each endpoint (host keys, sshd warm).
  await persona(repo, ['hosts', 'probe', '--json'], w.env);
  const all: Decision[] = [];
  for (let i = 0; i < runs; i++) {
    for (const state of i % 2 ? [...STATES].reverse() : STATES) {
      await settle();
      const d = await decideOnce(repo, state, w);
      all.push(d);
      log(
        `run ${i + 1}/${runs} ${state}: decision ${s(d.decision_ms)}, command ${s(d.wall_ms)}, ${d.from_cache} from the cache${d.failure ? `; FAILED: ${d.failure}` : ''}`,
      );
    }
  }
  if (v.down) await benchLabDown(repo);
  rmSync(WORK, { recursive: true, force: true });
  const rows = STATES.map((x) => summarise(x, all));
  const command = `npm run bench -- decision${argv.length ? ` ${argv.join(' ')}` : ''}`;
  if (v.json)
    console.log(
      JSON.stringify({ command, date, results: rows, verdict: verdict(rows, n), decisions: all }, null, 2),
    );
  else {
    console.log(table(rows));
    for (const line of verdict(rows, n)) console.log(line);
    for (const d of all) if (d.failure) console.log(`${d.state} run failed: ${d.failure}`);
  }
  if (!v.quick) {
    const m = machineInfo();
    const block = [
      `Measured ${date} with \`${command}\`: ${n} candidates of the bench lab (the first endpoint is the failed host).`,
      '',
      `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memory_gib} GiB RAM, Linux ${m.kernel}; ${m.node}. Load average (1/5/15 min) at start ${loadStart}, at end ${loadAverage()}.`,
      '',
      table(rows),
      '',
      ...verdict(rows, n).map((x) => `- ${x}`),
    ].join('\n');
    await updateResults(join(repo, 'bench/RESULTS.md'), block, 'bench-decision');
    log('bench/RESULTS.md updated');
  }
  return all.every((d) => d.ok) ? 0 : 1;
}
