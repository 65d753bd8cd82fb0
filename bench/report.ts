/** The benchmark's figures: medians, ratios, verdicts; as a terminal table, JSON and bench/RESULTS.md. */
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import Table from 'cli-table3';
import type { Sample } from './tools.js';

export type Tool = 'persona' | 'ansible' | 'plain';
export const TOOLS: readonly Tool[] = ['persona', 'ansible', 'plain'];

export interface SizeResult {
  n: number;
  forks: number;
  samples: Record<Tool, Sample[]>;
  /** Highest RSS of this process sampled every 10 ms during persona's runs at this N, and maxRSS so far. */
  personaPeakRssMb: number;
  maxRssMb: number;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export function summarise(r: SizeResult) {
  const med = (t: Tool) => median(r.samples[t].map((s) => s.ms));
  const okMin = (t: Tool) => Math.min(...r.samples[t].map((s) => s.ok));
  const persona = med('persona');
  const ansible = med('ansible');
  const plain = med('plain');
  return {
    n: r.n,
    persona_ms: Math.round(persona),
    ansible_ms: Math.round(ansible),
    plain_ssh_ms: Math.round(plain),
    ansible_over_persona: ansible / persona,
    persona_over_plain_ssh: persona / plain,
    ok: { persona: okMin('persona'), ansible: okMin('ansible'), plain_ssh: okMin('plain') },
    all_reached: TOOLS.every((t) => okMin(t) === r.n),
    persona_peak_rss_mb: r.personaPeakRssMb,
    max_rss_mb: r.maxRssMb,
    ansible_forks: r.forks,
    runs_ms: Object.fromEntries(TOOLS.map((t) => [t, r.samples[t].map((s) => Math.round(s.ms))])),
    failures: Object.fromEntries(TOOLS.map((t) => [t, r.samples[t].flatMap((s) => s.failures)])),
  };
}
export type Summary = ReturnType<typeof summarise>;

/** Targets: ≥ 10× faster than Ansible at N=50 and N=200; within 1.5× of plain ssh at every N. */
export function verdicts(rows: readonly Summary[]): string[] {
  return rows.flatMap((r) => [
    ...(r.n >= 50
      ? [
          `N=${r.n}: persona vs ansible ${r.ansible_over_persona.toFixed(1)}× (target ≥ 10×): ${r.ansible_over_persona >= 10 ? 'met' : 'MISSED'}`,
        ]
      : []),
    `N=${r.n}: persona / plain ssh ${r.persona_over_plain_ssh.toFixed(2)} (target ≤ 1.5): ${r.persona_over_plain_ssh <= 1.5 ? 'met' : 'MISSED'}`,
    ...(r.all_reached ? [] : [`N=${r.n}: NOT every host answered in every run (see failures)`]),
  ]);
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const HEAD = [
  'N',
  'persona median',
  'ansible median',
  'plain ssh median',
  'ansible/persona',
  'persona/plain ssh',
  'ok hosts (persona/ansible/ssh, worst run)',
  'persona peak RSS',
];
const cells = (r: Summary) => [
  String(r.n),
  s(r.persona_ms),
  s(r.ansible_ms),
  s(r.plain_ssh_ms),
  `${r.ansible_over_persona.toFixed(1)}×`,
  `${r.persona_over_plain_ssh.toFixed(2)}×`,
  `${r.ok.persona}/${r.ok.ansible}/${r.ok.plain_ssh} of ${r.n}`,
  `${r.persona_peak_rss_mb} MB`,
];

export function terminalTable(rows: readonly Summary[]): string {
  // No colour codes when the output is a file or a pipe.
  const table = new Table({
    head: HEAD,
    ...(process.stdout.isTTY ? {} : { style: { head: [], border: [] } }),
  });
  for (const r of rows) table.push(cells(r));
  return table.toString();
}

export function markdownTable(rows: readonly Summary[]): string {
  const line = (xs: readonly string[]) => `| ${xs.join(' | ')} |`;
  return [line(HEAD), line(HEAD.map(() => '---')), ...rows.map((r) => line(cells(r)))].join('\n');
}

export function machineInfo() {
  const first = (command: string) =>
    execFileSync('sh', ['-c', `${command} 2>&1 | head -n 1`], { encoding: 'utf8' }).trim();
  return {
    nproc: availableParallelism(),
    memory_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    cpu: cpus()[0]?.model ?? 'unknown',
    kernel: release(),
    node: process.version,
    ssh: first('ssh -V'),
    ansible: first('ansible --version'),
  };
}

export const loadAverage = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' / ');

export interface RunInfo {
  command: string;
  date: string;
  machine: ReturnType<typeof machineInfo>;
  busy_before: string;
  load_start: string;
  load_end: string;
}

/** The generated part of RESULTS.md: when, where, the table, the verdicts, every run, every failure. */
export function resultsBlock(rows: readonly Summary[], info: RunInfo): string {
  const m = info.machine;
  const runs = rows.map(
    (r) =>
      `| ${r.n} | ${TOOLS.map((t) => r.runs_ms[t]!.map((ms) => (ms / 1000).toFixed(2)).join(', ')).join(' | ')} |`,
  );
  const failures = rows.flatMap((r) =>
    TOOLS.flatMap((t) => r.failures[t]!.map((f) => `- N=${r.n} ${t}: ${f}`)),
  );
  return [
    `Measured ${info.date} with \`${info.command}\`.`,
    '',
    `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memory_gib} GiB RAM, Linux ${m.kernel}; ${m.node}, ${m.ssh}, ${m.ansible}.`,
    `The machine is shared (another lab may be running tests): CPU busy in the 3 s before measuring ${info.busy_before}; load average (1/5/15 min) at start ${info.load_start}, at end ${info.load_end}.`,
    '',
    markdownTable(rows),
    '',
    ...verdicts(rows).map((v) => `- ${v}`),
    '',
    'Every run (seconds):',
    '',
    '| N | persona | ansible | plain ssh |',
    '| --- | --- | --- | --- |',
    ...runs,
    '',
    failures.length
      ? `Hosts that did not answer:\n\n${failures.join('\n')}`
      : 'Every host answered in every run.',
  ].join('\n');
}

const markers = (name: string) => ({
  begin: `<!-- ${name}:begin (written by npm run bench; edit outside these markers) -->`,
  end: `<!-- ${name}:end -->`,
});

/**
 * Replaces a generated block of RESULTS.md (`bench` for the probe, `bench-recover` for recoveries) and keeps
 * everything else (the hand-written analysis); a block not there yet is added at the end.
 */
export async function updateResults(file: string, block: string, name = 'bench'): Promise<void> {
  const { begin, end } = markers(name);
  const old = await readFile(file, 'utf8').catch(() => `# Benchmarks\n\n${begin}\n${end}\n`);
  const from = old.indexOf(begin);
  const to = old.indexOf(end);
  const next =
    from >= 0 && to > from
      ? `${old.slice(0, from + begin.length)}\n${block}\n${old.slice(to)}`
      : `${old.trimEnd()}\n\n${begin}\n${block}\n${end}\n`;
  await writeFile(file, next);
}
