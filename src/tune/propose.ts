/**
 * What `profile tune` proposes, from the observations of an application: pure, no I/O, no clock.
 *
 * Memory and CPU are compared with the requirement they size (required_ram_gb, required_cores) and the target
 * that bounds them (performance_metrics.memory_usage_pct.max, cpu_utilization_pct.max; RULES.defaultTargetPct
 * when the profile sets none). A requirement is raised when its p95 use is above the target's share of it, or
 * when the target was missed often; lowered only with a long, wide, clean history and a safety margin. Disk and
 * latency are explained, never proposed: they are properties of the hosts, not of the requirements. Like the
 * Kubernetes VPA recommender, but every number is shown and a human decides.
 */
import type { Profile } from '../profile/schema.js';
import {
  ALL,
  describeSpan,
  type EvidenceRow,
  evidenceRows,
  hostsOf,
  missedPct,
  percentile,
  round1,
  round2,
  worstHostP95,
} from './evidence.js';
import { diskAndServiceNotes } from './notes.js';
import { cores, cpuResource, memoryResource, points, type Resource } from './resources.js';
import type { Observation } from './types.js';

export interface TuneRules {
  /** K: fewer observations than this (overall, and carrying the metric) is too little evidence. */
  minObservations: number;
  /** Fewer hosts than this, and a host's own trouble could pass for the application's needs. */
  minHosts: number;
  /** Y: a target missed in more than this share (0-1) of the observations is missed often. */
  missedShare: number;
  /** The memory and CPU target (%) when the profile sets none. */
  defaultTargetPct: number;
  /** Lower only when the highest host's p95 is below this share (0-1) of the requirement. */
  lowerBelow: number;
  /** D: lower only when the observations span at least this many days. */
  lowerMinDays: number;
  /** The safety margin of a lowering: the new value is at least this multiple of the highest host's p95. */
  lowerMargin: number;
  /** Never proposed below this (GiB, cores). */
  floor: number;
}

export const RULES: TuneRules = {
  minObservations: 10,
  minHosts: 2,
  missedShare: 0.1,
  defaultTargetPct: 80,
  lowerBelow: 0.4,
  lowerMinDays: 3,
  lowerMargin: 2,
  floor: 1,
};

export type TunablePath = 'required_ram_gb' | 'required_cores';

export interface Proposal {
  path: TunablePath;
  from: number;
  to: number;
  direction: 'raise' | 'lower';
  /** One line a person can check against the evidence table. */
  evidence: string;
  numbers: Record<string, number>;
}

export interface TuneReport {
  observations: number;
  hosts: string[];
  span_ms: number;
  evidence: EvidenceRow[];
  proposals: Proposal[];
  /** Why nothing (or not more) is proposed, and what the disk and latency figures mean. */
  notes: string[];
}

export interface ProposeInput {
  profile: Pick<Profile, 'required_cores' | 'required_ram_gb' | 'performance_metrics'>;
  observations: readonly Observation[];
  /** Cores of each host, where known: CPU % becomes cores used. Lowering required_cores needs every host's. */
  hostCores?: Readonly<Record<string, number>>;
  /** Memory of each host (bytes), where known: memory % becomes bytes used when the bytes were not observed. */
  hostMemoryBytes?: Readonly<Record<string, number>>;
  rules?: Partial<TuneRules>;
}

/** Whole units up, forgiving the float noise of a division (4.0000000001 GiB is 4). */
const ceilWhole = (n: number) => Math.ceil(n - 1e-9);

interface Window {
  rules: TuneRules;
  spanMs: number;
}

const fmt = (n: number, unit: string) => `${unit === 'GiB' ? round1(n) : round2(n)} ${unit}`;

function targetText(r: Resource): string {
  return `target ${r.label} ${r.targetPct}%${r.targetDefault ? ' (default)' : ''}`;
}

function missText(r: Resource): string {
  const pct = missedPct(r.misses);
  return pct === null ? 'never checked' : pct === 0 ? 'never missed' : `missed ${pct}% of the time`;
}

/** Raise, lower, or say why neither: one resource. */
function sizeResource(r: Resource, w: Window): { proposal?: Proposal; notes: string[] } {
  const { rules } = w;
  const hosts = hostsOf(r.used);
  if (r.used.length < rules.minObservations || hosts.length < rules.minHosts) {
    return {
      notes: [
        `${r.path}: ${r.used.length} observation(s) of ${r.label} use on ${hosts.length} host(s); at least ${rules.minObservations} on ${rules.minHosts} hosts are needed: nothing proposed`,
      ],
    };
  }
  const f = r.targetPct / 100;
  const p50 = percentile(
    r.used.map((p) => p.value),
    50,
  );
  const p95 = percentile(
    r.used.map((p) => p.value),
    95,
  );
  const missed = missedPct(r.misses) ?? 0;
  const numbers = {
    p50: round2(p50),
    p95: round2(p95),
    target_pct: r.targetPct,
    missed_pct: missed,
    observations: r.used.length,
    hosts: hosts.length,
    span_days: round2(w.spanMs / 86_400_000),
  };
  const where = `over ${describeSpan(w.spanMs)} on ${hosts.length} hosts`;
  if (p95 > f * r.required || missed > rules.missedShare * 100) {
    const to = ceilWhole(p95 / f);
    if (to <= r.required) {
      return {
        notes: [
          `${r.path}: ${targetText(r)} ${missText(r)}, yet p95 use ${fmt(p95, r.unit)} fits ${r.targetPct}% of ${r.required}: the hosts (or their limits) may be smaller than the requirement; nothing proposed`,
        ],
      };
    }
    return {
      proposal: {
        path: r.path,
        from: r.required,
        to,
        direction: 'raise',
        evidence: `${r.path} ${r.required} → ${to}: p95 use ${fmt(p95, r.unit)} ${where}; ${targetText(r)} ${missText(r)}`,
        numbers,
      },
      notes: [],
    };
  }
  return lowerResource(r, w, numbers, where);
}

function lowerResource(
  r: Resource,
  w: Window,
  numbers: Record<string, number>,
  where: string,
): { proposal?: Proposal; notes: string[] } {
  const { rules } = w;
  const worst = worstHostP95(r.used);
  if (r.required <= rules.floor || worst >= rules.lowerBelow * r.required) return { notes: [] };
  const low = `${r.path}: the highest host's p95 ${r.label} use ${fmt(worst, r.unit)} is below ${rules.lowerBelow * 100}% of ${r.required}`;
  const why: string[] = [];
  if (r.notLowerable) why.push(r.notLowerable);
  if (w.spanMs < rules.lowerMinDays * 86_400_000)
    why.push(`the observations span ${describeSpan(w.spanMs)}, not ${rules.lowerMinDays} days`);
  if ((missedPct(r.misses) ?? 0) > 0) why.push(`${targetText(r)} was ${missText(r)}`);
  const f = r.targetPct / 100;
  const to = Math.max(rules.floor, ceilWhole(Math.max(rules.lowerMargin * worst, worst / f)));
  if (why.length === 0 && to >= r.required) why.push(`a safe value (${to}) would not be lower`);
  if (why.length > 0) return { notes: [`${low}, but not lowered: ${why.join('; ')}`] };
  return {
    proposal: {
      path: r.path,
      from: r.required,
      to,
      direction: 'lower',
      evidence: `${r.path} ${r.required} → ${to}: p95 use ${fmt(numbers.p95!, r.unit)} ${where} (highest host ${fmt(worst, r.unit)}), below ${rules.lowerBelow * 100}% of ${r.required}; ${to} keeps ${rules.lowerMargin}× the highest p95; ${targetText(r)} ${missText(r)}`,
      numbers: { ...numbers, p95_highest_host: round2(worst), margin: rules.lowerMargin },
    },
    notes: [],
  };
}

/** The evidence, the proposals and the notes for one application's observations. */
export function propose(input: ProposeInput): TuneReport {
  const rules = { ...RULES, ...input.rules };
  const obs = input.observations;
  const times = obs.map((o) => Date.parse(o.at));
  const spanMs = obs.length ? Math.max(...times) - Math.min(...times) : 0;
  const hosts = hostsOf(obs);
  const memory = memoryResource(input, rules);
  const cpu = cpuResource(input, rules);
  const m = input.profile.performance_metrics;
  const evidence = [
    ...evidenceRows(
      'cpu_pct',
      points(obs, (o) => o.metrics?.cpu_pct),
      cpu.misses,
      `≤ ${cpu.targetPct}%`,
      cores(cpu.required),
    ),
    ...evidenceRows('cpu_cores', cpu.used, cpu.misses, null, cores(cpu.required), round2),
    ...evidenceRows(
      'memory_pct',
      points(obs, (o) => o.metrics?.memory_pct),
      memory.misses,
      `≤ ${memory.targetPct}%`,
      null,
    ),
    ...evidenceRows(
      'memory_gib',
      memory.used,
      memory.misses,
      `≤ ${round2((memory.targetPct / 100) * memory.required)} GiB`,
      `${memory.required} GiB`,
      round2,
    ),
  ];
  const { rows, notes: serviceNotes } = diskAndServiceNotes(obs, m, rules);
  evidence.push(...rows);
  // A metric nobody measured and nobody missed is left out of the table.
  const seen = new Set(
    evidence.filter((r) => r.host === ALL && (r.n > 0 || (r.missed_pct ?? 0) > 0)).map((r) => r.metric),
  );
  const shown = evidence.filter((r) => seen.has(r.metric));
  const base = { observations: obs.length, hosts, span_ms: spanMs, evidence: shown };
  const few = tooLittle(obs.length, hosts, rules);
  if (few) return { ...base, proposals: [], notes: [few, ...serviceNotes] };
  const w = { rules, spanMs };
  const sized = [sizeResource(memory, w), sizeResource(cpu, w)];
  return {
    ...base,
    proposals: sized.flatMap((s) => (s.proposal ? [s.proposal] : [])),
    notes: [...sized.flatMap((s) => s.notes), ...serviceNotes],
  };
}

/** Why there is too little evidence for any proposal, or undefined when there is enough to look. */
function tooLittle(count: number, hosts: string[], rules: TuneRules): string | undefined {
  if (count < rules.minObservations)
    return `too little evidence: ${count} observation(s) in the window, at least ${rules.minObservations} needed; nothing proposed`;
  if (hosts.length < rules.minHosts)
    return `too little evidence: every observation is from ${hosts.length === 1 ? `one host (${hosts[0]})` : 'no host'}, at least ${rules.minHosts} hosts needed so that one host's own trouble is not taken for the application's needs; nothing proposed`;
  return undefined;
}
