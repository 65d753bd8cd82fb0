/**
 * The broker's history component: what persona saw of an application on each host lately (observations of
 * validate, monitor and watch), as a number 0..1 per host (1: nothing against it) and the reason in words. Pure:
 * the observations and the time come in. Each failure takes a fixed amount off, halving every HALF_LIFE_DAYS, so
 * a host that failed recovers its rank as the failure ages; successes take nothing off and add nothing.
 */
import type { Observation } from '../feedback/observations.js';

/** A failure counts half after 3 days, a quarter after 6, about a fifth after a week. */
export const HALF_LIFE_DAYS = 3;
/** Failures older than this are not looked at (the default retention of observations). */
export const HORIZON_DAYS = 30;
/** A decayed failure worth less than this is left out, of the score and of the reason. */
const NEGLIGIBLE = 0.01;

/**
 * What one fresh failure takes off the component (0..1): a failed validation (not started, unhealthy, or a target
 * missed before traffic moved) most; a monitor that saw failed health checks after the switch a little less; a
 * monitor that only saw a target missed half that; a failed watch check (one look from outside) least.
 */
export const PENALTY = {
  validate: 0.5,
  'monitor-health': 0.4,
  'monitor-target': 0.2,
  watch: 0.1,
} as const;
type Kind = keyof typeof PENALTY;

export interface HostHistory {
  /** 0..1; 1 when nothing counts against the host. */
  score: number;
  /** The failures that count, in words: "2 failed validations in the last 7 days"; absent when none count. */
  reason?: string;
}

const DAY_MS = 86_400_000;

function kindOf(o: Observation): Kind {
  if (o.source !== 'monitor') return o.source;
  const missed = o.missed ?? [];
  return missed.length === 0 || missed.some((m) => ['health', 'unreachable', 'start'].includes(m))
    ? 'monitor-health'
    : 'monitor-target';
}

/**
 * A run's verdict per check is its last observation: validate tried twice in one run is one validation. Watch
 * observations (no run) each count.
 */
function lastPerRun(list: readonly Observation[]): Observation[] {
  const byRun = new Map<string, Observation>();
  const out: Observation[] = [];
  for (const o of list) {
    if (o.run_id === undefined) out.push(o);
    else {
      const key = `${o.source}\u0000${o.run_id}`;
      const seen = byRun.get(key);
      if (!seen || Date.parse(o.at) >= Date.parse(seen.at)) byRun.set(key, o);
    }
  }
  return [...out, ...byRun.values()];
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

function describe(counts: Record<Kind, number>, missedTargets: ReadonlySet<string>, days: number): string {
  const parts = [
    counts.validate && plural(counts.validate, 'failed validation', 'failed validations'),
    counts['monitor-health'] &&
      plural(counts['monitor-health'], 'failed monitor after a switch', 'failed monitors after a switch'),
    counts['monitor-target'] &&
      `${plural(counts['monitor-target'], 'monitor', 'monitors')} missing targets (${[...missedTargets].join(', ')})`,
    counts.watch && plural(counts.watch, 'failed watch check', 'failed watch checks'),
  ].filter((p): p is string => typeof p === 'string');
  return `${parts.join(', ')} in the last ${days === 1 ? 'day' : `${days} days`}`;
}

/** One host's history from its observations (of one application). */
export function hostHistory(list: readonly Observation[], now: Date): HostHistory {
  const counts: Record<Kind, number> = { validate: 0, 'monitor-health': 0, 'monitor-target': 0, watch: 0 };
  const targets = new Set<string>();
  let penalty = 0;
  let oldestMs = 0;
  for (const o of lastPerRun(list)) {
    if (o.ok) continue;
    // An observation from a clock ahead of this one counts as now.
    const ageMs = Math.max(0, now.getTime() - Date.parse(o.at));
    if (!(ageMs <= HORIZON_DAYS * DAY_MS)) continue;
    const kind = kindOf(o);
    const weight = PENALTY[kind] * 0.5 ** (ageMs / DAY_MS / HALF_LIFE_DAYS);
    if (weight < NEGLIGIBLE) continue;
    penalty += weight;
    counts[kind]++;
    if (kind === 'monitor-target') for (const m of o.missed ?? []) targets.add(m);
    oldestMs = Math.max(oldestMs, ageMs);
  }
  if (penalty === 0) return { score: 1 };
  return {
    score: Number(Math.max(0, 1 - penalty).toFixed(3)),
    reason: describe(counts, targets, Math.max(1, Math.ceil(oldestMs / DAY_MS))),
  };
}

/** Every observed host's history, by inventory host name. Hosts never observed are absent (no penalty). */
export function historyByHost(list: readonly Observation[], now: Date): Map<string, HostHistory> {
  const byHost = new Map<string, Observation[]>();
  for (const o of list) {
    const seen = byHost.get(o.host);
    if (seen) seen.push(o);
    else byHost.set(o.host, [o]);
  }
  return new Map([...byHost].map(([host, seen]) => [host, hostHistory(seen, now)]));
}
