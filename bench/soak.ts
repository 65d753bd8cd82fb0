/**
 * `npm run soak -- [--minutes M]`: false positives of `persona watch` in the lab. The built CLI watches demo-web on
 * lab-1 at a 1 s interval with the default window (3 of 5 rounds) for M minutes (default 10) while, every 20 s,
 * a 2 s latency spike hits ONE vantage point only (this machine's packets to lab-1 held back for 2 s by an nft
 * output rule, resent by TCP; a peer host's, bridged, are not touched), and, 10 s after each spike,
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
const SPIKE_MS = 2_000;

const log = (line: string) => process.stderr.write(`soak: ${line}\n`);

/**
 * The spike: this machine's packets to one address held back (an nft output rule dropping them; the kernel here has
 * no netem). TCP sends them again (a SYN after 1 s, then 3 s), so a check that starts during it waits about 2 s
 * longer or times out, from this vantage point only: a peer host's packets are bridged, never locally output.
 */
const TABLE = 'persona_soak';

async function nft(args: string[]): Promise<void> {
  const r = await run('nft', args);
  if (r.code !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr.trim()}`);
}

async function spikeOn(address: string): Promise<void> {
  await nft(['add', 'table', 'ip', TABLE]);
  await nft(['add', 'chain', 'ip', TABLE, 'out', '{ type filter hook output priority 0; }']);
  await nft(['add', 'rule', 'ip', TABLE, 'out', 'ip', 'daddr', address, 'drop']);
}

const spikeOff = () => run('nft', ['delete', 'table', 'ip', TABLE]);

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
  const address = state.hosts[HOST].address as string;
  await spikeOff(); // a spike left by an interrupted soak
  const events = join(work.dir, 'events.ndjson');
  const watch = await startWatch(repo, work, events, ['--verbose']);
  let spikes = 0;
  const flaps: number[] = [];
  const end = Date.now() + minutes * 60_000;
  try {
    while (Date.now() + CYCLE_MS <= end + 1000) {
      const cycle = Date.now();
      await spikeOn(address);
      await sleep(SPIKE_MS);
      await spikeOff();
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
    await spikeOff();
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
  const line = `${minutes} min at a 1 s interval (3 of 5 rounds): ${spikes} latency spikes of ${SPIKE_MS / 1000} s on one vantage point, ${figure.flaps} flaps of ${APP} (down and back in ${figure.flap_median_s} s, median, \`lab fail\` to \`lab heal\` done), ${rounds} rounds: ${failures.length} failure events (goal: 0)`;
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
      `Method: \`persona watch --interval 1 --app ${APP} --events FILE --json --verbose\` (the built CLI, default window) on the default lab. Every ${CYCLE_MS / 1000} s, for ${SPIKE_MS / 1000} s, an nft output rule holds back this machine's packets to lab-1 (TCP sends them again: the checks wait or time out; this kernel has no netem): only this vantage point is slowed, a peer host's packets (bridged) are not. ${CYCLE_MS / 2000} s later, \`lab fail lab-1 --mode=app\` and at once \`lab heal lab-1\` (the application down for about a round). Rounds counted from \`--verbose\`'s line per round.`,
    ].join('\n');
    await updateResults(join(repo, 'bench/RESULTS.md'), block, 'soak-watch');
    log('bench/RESULTS.md updated');
  }
  return failures.length === 0 ? 0 : 1;
}

process.exitCode = await runScript('soak', () => main(process.argv.slice(2)));
