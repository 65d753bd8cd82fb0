/**
 * `npm run bench`: persona's probe against `ansible all -m setup` and plain parallel OpenSSH on the same N endpoints
 * of the bench lab, in one process, R runs each, interleaved. See bench/RESULTS.md for the method and the figures.
 * `recover`, `migrate`, `decision` and `watch` are benches of their own (bench/recover.ts, migrate.ts, decision.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runScript } from '../scripts/script-main.js';
import { type InventoryHost, loadInventory } from '../src/hosts/inventory.js';
import { decisionBench } from './decision.js';
import { BENCH_LAB_DIR, benchLabDown, benchLabUp, machineBusyShare, settle } from './lab.js';
import { migrateBench } from './migrate.js';
import { recoverBench } from './recover.js';
import {
  loadAverage,
  machineInfo,
  type RunInfo,
  resultsBlock,
  type SizeResult,
  type Summary,
  summarise,
  TOOLS,
  terminalTable,
  updateResults,
  verdicts,
} from './report.js';
import { type Sample, timeAnsible, timePersona, timePlainSsh, writeAnsibleInventory } from './tools.js';
import { watchBench } from './watch.js';

const USAGE = `usage: npm run bench [-- OPTIONS]   (as root: it drives the bench lab)
       npm run bench -- recover [--runs R] [--quick] [--json] [--down]   (recoveries: see bench/recover.ts)
       npm run bench -- migrate [--runs R] [--size-mib N] [--quick] [--json] [--down]   (planned moves: bench/migrate.ts)
       npm run bench -- decision [--runs R] [--hosts N] [--quick] [--json] [--down]   (recover's decision, cold vs warm fact cache: bench/decision.ts)
       npm run bench -- watch [--runs R] [--quick] [--json] [--down]   (persona watch's time to detect a failure: bench/watch.ts)
  --runs R          repetitions per tool and N (default 3); the median is reported
  --sizes A,B,...   numbers of endpoints, the first N of the bench inventory (default 10,50,200; at most 208)
  --forks F         Ansible forks (default min(N, 50))
  --json            print the results as JSON instead of a table
  --quick           smoke run: N=10, 1 run, bench/RESULTS.md left alone
  --down            take the bench lab down at the end (default: leave it up for the next run)
exit code: 0 every host answered in every run (targets met or not: see the verdicts), 1 some did not, 2 usage`;

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
const secs = (x: Sample) => `${(x.ms / 1000).toFixed(2)} s (${x.ok} ok)`;

interface Options {
  runs: number;
  sizes: number[];
  forks?: number;
  json: boolean;
  quick: boolean;
  down: boolean;
}

function parseOptions(argv: string[]): Options | string {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string' },
      sizes: { type: 'string' },
      forks: { type: 'string' },
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      down: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (v.help) return USAGE;
  const runs = v.quick ? 1 : Number(v.runs ?? 3);
  const sizes = v.quick ? [10] : (v.sizes ?? '10,50,200').split(',').map(Number);
  const forks = v.forks === undefined ? undefined : Number(v.forks);
  if (!Number.isInteger(runs) || runs < 1 || sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 208))
    return `bench: --runs must be ≥ 1 and --sizes between 1 and 208\n${USAGE}`;
  if (forks !== undefined && !(Number.isInteger(forks) && forks >= 1))
    return `bench: --forks must be ≥ 1\n${USAGE}`;
  return { runs, sizes, ...(forks ? { forks } : {}), json: v.json, quick: v.quick, down: v.down };
}

/** Highest RSS of this process, sampled every 10 ms until stopped. */
function rssSampler(): () => number {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 10);
  return () => {
    clearInterval(timer);
    return Math.round(Math.max(peak, process.memoryUsage.rss()) / 2 ** 20);
  };
}

/** R interleaved runs of the three tools over the same hosts, with a pause between runs. */
async function measureSize(
  hosts: InventoryHost[],
  sshConfig: string,
  runs: number,
  forks: number,
  workDir: string,
): Promise<SizeResult> {
  const inventoryFile = await writeAnsibleInventory(workDir, hosts, sshConfig);
  const samples: SizeResult['samples'] = { persona: [], ansible: [], plain: [] };
  let personaPeakRssMb = 0;
  for (let i = 1; i <= runs; i++) {
    const stop = rssSampler();
    samples.persona.push(await timePersona(hosts, sshConfig));
    personaPeakRssMb = Math.max(personaPeakRssMb, stop());
    await settle();
    samples.plain.push(await timePlainSsh(hosts, sshConfig));
    await settle();
    samples.ansible.push(await timeAnsible(hosts, inventoryFile, forks, workDir));
    await settle();
    const last = (t: keyof typeof samples) => secs(samples[t].at(-1)!);
    log(
      `N=${hosts.length} run ${i}/${runs}: persona ${last('persona')}, plain ssh ${last('plain')}, ansible ${last('ansible')}`,
    );
  }
  const maxRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  return { n: hosts.length, forks, samples, personaPeakRssMb, maxRssMb };
}

/** The bench lab up (its spec gives python3 and 1 GiB per host), its inventory, and one untimed warm-up pass. */
async function prepare(repo: string, maxN: number) {
  log(`bench lab ${await benchLabUp(repo)} (${BENCH_LAB_DIR})`);
  const inventory = await loadInventory(join(BENCH_LAB_DIR, 'inventory.json'));
  const busy = await machineBusyShare(3000, availableParallelism());
  const warm = await timePlainSsh(inventory.hosts.slice(0, maxN), inventory.sshConfig!);
  const failed = warm.failures.length ? `; failed: ${warm.failures.join('; ')}` : '';
  log(`warm-up (plain ssh, untimed): ${secs(warm)}${failed}`);
  return {
    hosts: inventory.hosts,
    sshConfig: inventory.sshConfig!,
    busyBefore: `${Math.round(busy * 100)}%`,
  };
}

function print(rows: Summary[], info: RunInfo, json: boolean): void {
  if (json) {
    console.log(JSON.stringify({ ...info, results: rows, verdicts: verdicts(rows) }, null, 2));
    return;
  }
  console.log(terminalTable(rows));
  for (const v of verdicts(rows)) console.log(v);
  for (const r of rows)
    for (const t of TOOLS) for (const f of r.failures[t]!) console.log(`N=${r.n} ${t} failed: ${f}`);
  console.log(`persona process maxRSS over the whole run: ${Math.max(...rows.map((r) => r.max_rss_mb))} MB`);
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'recover' || argv[0] === 'migrate' || argv[0] === 'decision' || argv[0] === 'watch') {
    if (process.getuid?.() !== 0) {
      console.error('bench: must run as root (it drives the lab)');
      return 2;
    }
    const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
    if (argv[0] === 'decision') return await decisionBench(repo, argv.slice(1));
    if (argv[0] === 'watch') return await watchBench(repo, argv.slice(1));
    return argv[0] === 'recover'
      ? await recoverBench(repo, argv.slice(1))
      : await migrateBench(repo, argv.slice(1));
  }
  const options = parseOptions(argv);
  if (options === USAGE) console.log(USAGE);
  if (typeof options === 'string') {
    if (options !== USAGE) console.error(options);
    return options === USAGE ? 0 : 2;
  }
  if (process.getuid?.() !== 0) {
    console.error('bench: must run as root (it brings up and drives the bench lab)');
    return 2;
  }
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const started = { date: new Date().toISOString(), load_start: loadAverage() };
  const lab = await prepare(repo, Math.max(...options.sizes));
  const workDir = await mkdtemp(join(tmpdir(), 'persona-bench-'));
  const rows: Summary[] = [];
  try {
    for (const n of options.sizes) {
      const forks = options.forks ?? Math.min(n, 50);
      rows.push(
        summarise(await measureSize(lab.hosts.slice(0, n), lab.sshConfig, options.runs, forks, workDir)),
      );
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  const command = `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
  const info: RunInfo = {
    command,
    ...started,
    machine: machineInfo(),
    busy_before: lab.busyBefore,
    load_end: loadAverage(),
  };
  print(rows, info, options.json);
  if (!options.quick) {
    await updateResults(join(repo, 'bench/RESULTS.md'), resultsBlock(rows, info));
    log('bench/RESULTS.md updated');
  }
  if (options.down) {
    await benchLabDown(repo);
    log('bench lab down');
  } else log(`bench lab left up (${BENCH_LAB_DIR}); pass --down to take it down`);
  return rows.every((r) => r.all_reached) ? 0 : 1;
}

process.exitCode = await runScript('bench', () => main(process.argv.slice(2)));
