/**
 * `npm run soak -- [--minutes M]`: false positives of `persona watch` in the lab. The built CLI watches demo-web on
 * lab-1 at a 1 s interval with the default window (3 of 5 rounds) for M minutes (default 10) while, every 20 s,
 * a 2 s latency spike hits ONE vantage point only (netem on the lab bridge's root-side egress, for lab-1's address
 * alone: this machine's packets to lab-1 wait 2 s; a peer host's, bridged, do not), and, 10 s after each spike,
 * the application flaps (`lab fail lab-1 --mode=app` then `lab heal lab-1` at once: down about a round).
 * Neither must count: the figure is the number of `failure` events, which must be 0.
 */
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runScript } from '../scripts/script-main.js';
import { run } from './lab.js';
import { loadAverage, machineInfo, median, updateResults } from './report.js';
import { APP, HOST, LAB_DIR, lab, prepareWatchLab, readEvents, sleep, startWatch } from './watch-lab.js';

const USAGE = `usage: npm run soak -- [--minutes M] [--no-results] [--down]   (as root, under flock -o /tmp/persona-lab.lock)
  --minutes M    how long (default 10)
  --no-results   leave bench/RESULTS.md alone (CI's short run)
  --down         take the lab down at the end
exit code: 0 no failure event, 1 some (a false positive), 2 usage`;

const CYCLE_MS = 20_000;
const SPIKE_MS = 2_500;
const SPIKE_DELAY = '2000ms';

const log = (line: string) => process.stderr.write(`soak: ${line}\n`);

/** netem on the bridge's root-side egress, for one destination only: this machine's packets to it wait. */
async function tc(args: string[]): Promise<void> {
  const r = await run('tc', args);
  if (r.code !== 0) throw new Error(`tc ${args.join(' ')}: ${r.stderr.trim()}`);
}

async function spikeOn(bridge: string, address: string): Promise<void> {
  await tc([
    'qdisc',
    'add',
    'dev',
    bridge,
    'root',
    'handle',
    '1:',
    'prio',
    'priomap',
    ...Array(16).fill('0'),
  ]);
  await tc(['qdisc', 'add', 'dev', bridge, 'parent', '1:3', 'handle', '30:', 'netem', 'delay', SPIKE_DELAY]);
  await tc([
    'filter',
    'add',
    'dev',
    bridge,
    'parent',
    '1:0',
    'protocol',
    'ip',
    'u32',
    'match',
    'ip',
    'dst',
    `${address}/32`,
    'flowid',
    '1:3',
  ]);
}

const spikeOff = (bridge: string) => run('tc', ['qdisc', 'del', 'dev', bridge, 'root']);

async function main(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string' },
      'no-results': { type: 'boolean', default: false },
      down: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const minutes = Number(v.minutes ?? 10);
  if (!(minutes > 0 && minutes <= 240)) {
    console.error(`soak: --minutes must be between 0 and 240\n${USAGE}`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    console.error('soak: must run as root (it drives the lab)');
    return 2;
  }
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const date = new Date().toISOString();
  const loadStart = loadAverage();
  const work = await prepareWatchLab(repo, 'soak');
  const state = JSON.parse(readFileSync(join(LAB_DIR, 'state.json'), 'utf8'));
  const bridge = state.bridge as string;
  const address = state.hosts[HOST].address as string;
  await spikeOff(bridge); // a spike left by an interrupted soak
  const events = join(work.dir, 'events.ndjson');
  const watch = await startWatch(repo, work, events, ['--verbose']);
  let spikes = 0;
  const flaps: number[] = [];
  const end = Date.now() + minutes * 60_000;
  try {
    while (Date.now() + CYCLE_MS <= end + 1000) {
      const cycle = Date.now();
      await spikeOn(bridge, address);
      await sleep(SPIKE_MS);
      await spikeOff(bridge);
      spikes++;
      await sleep(Math.max(0, cycle + CYCLE_MS / 2 - Date.now()));
      const down = Date.now();
      await lab(repo, 'fail', HOST, '--mode=app');
      await lab(repo, 'heal', HOST);
      flaps.push(Date.now() - down);
      log(
        `${spikes} spikes, ${flaps.length} flaps (this one ${((Date.now() - down) / 1000).toFixed(1)} s), failure events so far: ${readEvents(events).filter((e) => e.kind === 'failure').length}`,
      );
      await sleep(Math.max(0, cycle + CYCLE_MS - Date.now()));
    }
  } finally {
    await spikeOff(bridge);
    await watch.stop();
    await lab(repo, 'heal', HOST).catch(() => undefined);
    if (v.down) await lab(repo, 'down', '--spec', join(repo, 'test/lab/spec/default.json'));
  }
  const all = readEvents(events);
  const failures = all.filter((e) => e.kind === 'failure');
  const rounds = (watch.stderr().match(/round \d+:/g) ?? []).length;
  const figure = {
    minutes,
    spikes,
    flaps: flaps.length,
    flap_median_s: flaps.length ? Number((median(flaps) / 1000).toFixed(1)) : 0,
    rounds,
    failure_events: failures.length,
    other_events: all.filter((e) => e.kind !== 'failure').map((e) => e.kind),
  };
  rmSync(work.dir, { recursive: true, force: true });
  const line = `${minutes} min at a 1 s interval (3 of 5 rounds): ${spikes} latency spikes of ${SPIKE_DELAY} on one vantage point (${SPIKE_MS / 1000} s each), ${figure.flaps} flaps of ${APP} (down and back in ${figure.flap_median_s} s, median, \`lab fail\` to \`lab heal\` done), ${rounds} rounds: ${failures.length} failure events (goal: 0)`;
  console.log(line);
  if (figure.other_events.length) console.log(`other events: ${figure.other_events.join(', ')}`);
  for (const f of failures) console.log(`FALSE POSITIVE at ${f.at}: ${f.reason}`);
  if (!v['no-results']) {
    const m = machineInfo();
    const block = [
      `Measured ${date} with \`npm run soak${argv.length ? ` -- ${argv.join(' ')}` : ''}\`.`,
      '',
      `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memory_gib} GiB RAM, Linux ${m.kernel}; ${m.node}. Load average (1/5/15 min) at start ${loadStart}, at end ${loadAverage()}.`,
      '',
      `- ${line}${figure.other_events.length ? `; other events: ${figure.other_events.join(', ')}` : ''}.`,
      '',
      `Method: \`persona watch --interval 1 --app ${APP} --events FILE --json --verbose\` (the built CLI, default window) on the default lab. Every ${CYCLE_MS / 1000} s, netem (\`tc qdisc … prio\` + \`netem delay ${SPIKE_DELAY}\`, a u32 filter on lab-1's address) on the lab bridge's root-side egress for ${SPIKE_MS / 1000} s: only this machine's packets to lab-1 wait, a peer host's (bridged) do not. ${CYCLE_MS / 2000} s later, \`lab fail lab-1 --mode=app\` and at once \`lab heal lab-1\` (the application down for about a round). Rounds counted from \`--verbose\`'s line per round.`,
    ].join('\n');
    await updateResults(join(repo, 'bench/RESULTS.md'), block, 'soak-watch');
    log('bench/RESULTS.md updated');
  }
  return failures.length === 0 ? 0 : 1;
}

process.exitCode = await runScript('soak', () => main(process.argv.slice(2)));
