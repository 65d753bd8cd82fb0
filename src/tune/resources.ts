/**
 * The two requirements tune sizes, as it sees them in the observations: memory used (bytes observed, or memory %
 * of a host whose memory is known) against required_ram_gb, and cores used (CPU % of the host times its cores,
 * or times required_cores when unknown: a lower bound) against required_cores; each with its target and the
 * observations that missed it. Pure.
 */
import { hostsOf, type MissPoint, type Point } from './evidence.js';
import type { ProposeInput, TunablePath, TuneRules } from './propose.js';
import type { Observation } from './types.js';

const GiB = 1024 ** 3;
export const cores = (n: number) => `${n} core${n === 1 ? '' : 's'}`;

/** Missed by value where the observation has one, else by its missed codes; unknown (skipped) otherwise. */
function misses(
  obs: readonly Observation[],
  code: string,
  value: (o: Observation) => number | undefined,
  breaches: ((v: number) => boolean) | undefined,
): MissPoint[] {
  const out: MissPoint[] = [];
  for (const o of obs) {
    const v = value(o);
    if (v !== undefined && breaches) out.push({ host: o.host, missed: breaches(v) });
    else if (o.missed) out.push({ host: o.host, missed: o.missed.includes(code) });
    else if (o.ok) out.push({ host: o.host, missed: false });
  }
  return out;
}

export function points(obs: readonly Observation[], value: (o: Observation) => number | undefined): Point[] {
  const out: Point[] = [];
  for (const o of obs) {
    const v = value(o);
    if (v !== undefined) out.push({ host: o.host, value: v });
  }
  return out;
}

/** A requirement and the target that bounds it, with what was observed of them. */
export interface Resource {
  path: TunablePath;
  label: string;
  unit: string;
  required: number;
  targetPct: number;
  targetDefault: boolean;
  used: Point[];
  misses: MissPoint[];
  /** Why it cannot be lowered whatever the figures say (e.g. the hosts' sizes are unknown). */
  notLowerable?: string;
}

export function memoryResource(input: ProposeInput, rules: TuneRules): Resource {
  const target = input.profile.performance_metrics.memory_usage_pct?.max;
  const targetPct = target ?? rules.defaultTargetPct;
  const usedBytes = (o: Observation) => {
    const m = o.metrics;
    if (m?.memory_used_bytes !== undefined) return m.memory_used_bytes;
    const total = input.hostMemoryBytes?.[o.host];
    return m?.memory_pct !== undefined && total ? (m.memory_pct / 100) * total : undefined;
  };
  return {
    path: 'required_ram_gb',
    label: 'memory',
    unit: 'GiB',
    required: input.profile.required_ram_gb,
    targetPct,
    targetDefault: target === undefined,
    used: points(input.observations, (o) => {
      const b = usedBytes(o);
      return b === undefined ? undefined : b / GiB;
    }),
    misses: misses(
      input.observations,
      'memory',
      (o) => o.metrics?.memory_pct,
      (v) => v > targetPct,
    ),
  };
}

export function cpuResource(input: ProposeInput, rules: TuneRules): Resource {
  const target = input.profile.performance_metrics.cpu_utilization_pct?.max;
  const targetPct = target ?? rules.defaultTargetPct;
  const required = input.profile.required_cores;
  const hosts = hostsOf(input.observations);
  const unknown = hosts.filter((h) => !input.hostCores?.[h]);
  return {
    path: 'required_cores',
    label: 'CPU',
    unit: 'cores',
    required,
    targetPct,
    targetDefault: target === undefined,
    // A host without a known core count is taken to have required_cores: a lower bound of its use.
    used: points(input.observations, (o) =>
      o.metrics?.cpu_pct === undefined
        ? undefined
        : (o.metrics.cpu_pct / 100) * (input.hostCores?.[o.host] ?? required),
    ),
    misses: misses(
      input.observations,
      'cpu',
      (o) => o.metrics?.cpu_pct,
      (v) => v > targetPct,
    ),
    ...(unknown.length > 0
      ? {
          notLowerable: `the core count of ${unknown.join(', ')} is unknown (CPU is observed as a share of the host)`,
        }
      : {}),
  };
}
