/**
 * The figures `profile tune` shows but never turns into a proposal: disk throughput and busy time (a property
 * of the host's disks, not of the application's requirements) and latency and error rate (the profile has no
 * requirement for them). When they are missed often, a note says so and what to do instead. Pure.
 */
import type { Profile } from '../profile/schema.js';
import {
  type EvidenceRow,
  evidenceRows,
  hostsOf,
  type MissPoint,
  missedPct,
  type Point,
} from './evidence.js';
import type { Observation } from './types.js';

type Metrics = NonNullable<Observation['metrics']>;

function series(obs: readonly Observation[], name: keyof Metrics): Point[] {
  return obs.flatMap((o) => {
    const v = o.metrics?.[name];
    return v === undefined ? [] : [{ host: o.host, value: v }];
  });
}

/** By value against a bound where there is one, else by the observation's missed codes. */
function missesOf(
  obs: readonly Observation[],
  name: keyof Metrics,
  code: string,
  breaches?: (v: number) => boolean,
): MissPoint[] {
  return obs.flatMap((o) => {
    const v = o.metrics?.[name];
    if (v !== undefined && breaches) return [{ host: o.host, missed: breaches(v) }];
    if (o.missed) return [{ host: o.host, missed: o.missed.includes(code) }];
    return o.ok ? [{ host: o.host, missed: false }] : [];
  });
}

/** "web-1 60%, web-2 10%": where the misses are. */
function perHost(ms: readonly MissPoint[]): string {
  return hostsOf(ms)
    .map((h) => `${h} ${missedPct(ms.filter((m) => m.host === h))}%`)
    .join(', ');
}

export function diskAndServiceNotes(
  obs: readonly Observation[],
  metrics: Profile['performance_metrics'],
  rules: { missedShare: number },
): { rows: EvidenceRow[]; notes: string[] } {
  const often = (ms: readonly MissPoint[]) => (missedPct(ms) ?? 0) > rules.missedShare * 100;
  const rows: EvidenceRow[] = [];
  const notes: string[] = [];
  const minWrite = metrics.disk_io?.min_write_mbps;
  const writes = missesOf(
    obs,
    'disk_write_mbps',
    'disk_io',
    minWrite === undefined ? undefined : (v) => v < minWrite,
  );
  rows.push(
    ...evidenceRows(
      'disk_write_mbps',
      series(obs, 'disk_write_mbps'),
      writes,
      minWrite === undefined ? null : `≥ ${minWrite} MB/s`,
      null,
    ),
  );
  if (often(writes)) {
    notes.push(
      `disk I/O: ${minWrite === undefined ? 'missed' : `writes below ${minWrite} MB/s`} in ${missedPct(writes)}% of the observations (${perHost(writes)}): the speed of a host's disk is the host's property, not a requirement of the application; nothing proposed. Keep the application on hosts with faster disks (host_labels), or lower performance_metrics.disk_io.min_write_mbps if it needs less`,
    );
  }
  const maxUtil = metrics.disk_io?.max_util_pct;
  if (maxUtil !== undefined) {
    const busy = missesOf(obs, 'disk_util_pct', 'disk_io', (v) => v > maxUtil);
    rows.push(...evidenceRows('disk_util_pct', series(obs, 'disk_util_pct'), busy, `≤ ${maxUtil}%`, null));
    if (often(busy))
      notes.push(
        `disk busy above ${maxUtil}% in ${missedPct(busy)}% of the observations (${perHost(busy)}): a property of the hosts' disks and of what else runs there; nothing proposed`,
      );
  } else {
    rows.push(...evidenceRows('disk_util_pct', series(obs, 'disk_util_pct'), [], null, null));
  }
  for (const [name, code, label] of [
    ['latency_ms', 'latency', 'latency'],
    ['error_rate', 'error_rate', 'error rate'],
  ] as const) {
    const ms = missesOf(obs, name, code);
    rows.push(...evidenceRows(name, series(obs, name), ms, null, null));
    if (often(ms))
      notes.push(
        `${label}: missed in ${missedPct(ms)}% of the observations (${perHost(ms)}); the profile has no ${label} requirement to tune, so nothing is proposed: look at the application and its hosts`,
      );
  }
  return { rows, notes };
}
