/**
 * A rollout's comparison, pure: per group (canary, control) the health failures and the mean CPU and memory over the
 * window, and the verdict. The candidate is reverted when a canary host failed a health check (while it was
 * validated or during the window), when the canary misses a performance target the control meets, or when its CPU or
 * memory rose more than the thresholds (--max-cpu-increase, --max-memory-increase: percentage points over the
 * control's mean); otherwise it is promoted.
 */
import type { Profile } from '../profile/schema.js';
import { type Sample, targetMisses } from '../steps/checks.js';

export interface HostObservation {
  host: string;
  group: 'canary' | 'control';
  /** Health checks that failed (validation and the window). */
  health_failures: number;
  sample?: Sample;
  /** Targets missed (codes: cpu, memory, disk_io), held against the candidate's targets. */
  misses: string[];
}

export interface GroupRow {
  group: 'canary' | 'control';
  hosts: string[];
  health_failures: number;
  cpu_pct?: number;
  memory_pct?: number;
  misses: string[];
}

export interface Thresholds {
  max_cpu_increase_pct?: number;
  max_memory_increase_pct?: number;
}

export interface Comparison {
  table: GroupRow[];
  decision: 'promote' | 'revert';
  reasons: string[];
}

const mean = (xs: number[]) =>
  xs.length === 0 ? undefined : Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 10) / 10;

export function missesOf(metrics: Profile['performance_metrics'], s: Sample | undefined): string[] {
  return s ? [...new Set(targetMisses(metrics, s).map((m) => m.code))] : [];
}

function row(group: GroupRow['group'], seen: readonly HostObservation[]): GroupRow {
  const mine = seen.filter((o) => o.group === group);
  const samples = mine.flatMap((o) => (o.sample ? [o.sample] : []));
  const cpu = mean(samples.map((s) => s.cpu_pct));
  const memory = mean(samples.map((s) => s.memory_pct));
  return {
    group,
    hosts: mine.map((o) => o.host),
    health_failures: mine.reduce((n, o) => n + o.health_failures, 0),
    ...(cpu !== undefined ? { cpu_pct: cpu } : {}),
    ...(memory !== undefined ? { memory_pct: memory } : {}),
    misses: [...new Set(mine.flatMap((o) => o.misses))],
  };
}

/** The table and the verdict, with every reason for a revert. */
export function compareGroups(seen: readonly HostObservation[], limits: Thresholds): Comparison {
  const canary = row('canary', seen);
  const control = row('control', seen);
  const reasons: string[] = [];
  if (canary.health_failures > 0)
    reasons.push(
      `the canary failed ${canary.health_failures} health check(s); the control ${control.health_failures}`,
    );
  const worse = canary.misses.filter((m) => !control.misses.includes(m));
  if (worse.length > 0)
    reasons.push(`the canary misses the ${worse.join(', ')} target(s), which the control meets`);
  const rise = (what: string, c?: number, k?: number, max?: number) => {
    if (max === undefined || c === undefined || k === undefined) return;
    if (c - k > max)
      reasons.push(
        `${what} ${c}% on the canary vs ${k}% on the control: +${Math.round((c - k) * 10) / 10} > ${max} points allowed`,
      );
  };
  rise('CPU', canary.cpu_pct, control.cpu_pct, limits.max_cpu_increase_pct);
  rise('memory', canary.memory_pct, control.memory_pct, limits.max_memory_increase_pct);
  return { table: [canary, control], decision: reasons.length > 0 ? 'revert' : 'promote', reasons };
}

/** The table as text lines, for the log, the journal and the human. */
export function tableLines(c: Comparison): string[] {
  const pct = (n?: number) => (n === undefined ? '-' : `${n}%`);
  return [
    'group    hosts              health failures  CPU     memory  targets missed',
    ...c.table.map(
      (r) =>
        `${r.group.padEnd(8)} ${r.hosts.join(',').padEnd(18)} ${String(r.health_failures).padEnd(16)} ${pct(r.cpu_pct).padEnd(7)} ${pct(r.memory_pct).padEnd(7)} ${r.misses.join(',') || '-'}`,
    ),
    `decision: ${c.decision}${c.reasons.length > 0 ? ` (${c.reasons.join('; ')})` : ''}`,
  ];
}
