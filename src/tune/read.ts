/**
 * Reads what `profile tune` learns from: the observations under `observations/<app>/…` (the shared contract in
 * types.ts) and the outcomes that recoveries record under `outcomes/<app>/<run>` (steps/record.ts), whose
 * validate and monitor samples are observations too. Values that do not parse are skipped and counted, never
 * fatal: one bad record must not hide the rest.
 *
 * The observations themselves are read by feedback/observations.ts (listObservations), which this module's callers
 * use; here the outcomes.
 */
import { type SkipWarning, skipped } from '../feedback/observations.js';
import type { KvBackend } from '../stores/kv.js';
import { stripTerminalControls } from '../util/sanitize.js';
import type { Observation, ObservationFilter } from './types.js';

const inFilter = (o: Observation, f: ObservationFilter) =>
  (f.app === undefined || o.app === f.app) &&
  (f.host === undefined || o.host === f.host) &&
  (f.since === undefined || Date.parse(o.at) >= f.since.getTime());

const byTime = (a: Observation, b: Observation) => Date.parse(a.at) - Date.parse(b.at);

/** A validate or monitor sample as record.ts keeps it in an outcome (a subset of steps/checks.ts Sample). */
interface OutcomeSample {
  cpu_pct?: number;
  memory_pct?: number;
  memory_used_bytes?: number;
  disk_write_mbps?: number;
  disk_util_pct?: number;
}

function sampleMetrics(s: OutcomeSample): Observation['metrics'] {
  const metrics: Record<string, number> = {};
  for (const name of [
    'cpu_pct',
    'memory_pct',
    'memory_used_bytes',
    'disk_write_mbps',
    'disk_util_pct',
  ] as const) {
    const v = s[name];
    if (typeof v === 'number' && Number.isFinite(v)) metrics[name] = v;
  }
  return metrics;
}

/**
 * The samples of recorded outcomes as observations (source validate / monitor, the run's id and time). A run
 * that is recorded at all passed validate and monitor, so `ok` is the run's success.
 */
export function outcomeObservations(text: string): Observation[] | string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return 'not JSON';
  }
  if (typeof o !== 'object' || o === null) return 'not a JSON object';
  if (typeof o.app !== 'string' || typeof o.host !== 'string' || typeof o.at !== 'string')
    return 'no app, host or time';
  if (Number.isNaN(Date.parse(o.at))) return '"at" is not an ISO time';
  const metrics = (o.metrics ?? {}) as Record<string, OutcomeSample | null>;
  const out: Observation[] = [];
  for (const source of ['validate', 'monitor'] as const) {
    const sample = metrics[source];
    if (!sample || typeof sample !== 'object') continue;
    out.push({
      at: o.at,
      app: o.app,
      host: stripTerminalControls(o.host),
      source,
      ...(typeof o.run_id === 'string' ? { run_id: o.run_id } : {}),
      ok: o.success === true,
      metrics: sampleMetrics(sample),
      ...(typeof o.profile_version === 'number' ? { profile_version: o.profile_version } : {}),
    });
  }
  return out;
}

/** The observations held in recorded outcomes of an application, oldest first. */
export async function readOutcomeObservations(
  kv: KvBackend,
  filter: ObservationFilter & { app: string },
  warn?: SkipWarning,
): Promise<Observation[]> {
  const out: Observation[] = [];
  const reasons: string[] = [];
  for (const entry of await kv.list(`outcomes/${filter.app}/`)) {
    const parsed = outcomeObservations(entry.value);
    if (typeof parsed === 'string') reasons.push(`${entry.key}: ${parsed}`);
    else out.push(...parsed.filter((o) => inFilter(o, filter)));
  }
  skipped(warn, 'outcome(s)', reasons);
  return out.sort(byTime);
}

/**
 * Both sources together, oldest first. An outcome's sample that the observations already hold (same run and
 * source: the feedback branch records validate and monitor as observations too) is counted once.
 */
export function mergeObservations(observations: Observation[], fromOutcomes: Observation[]): Observation[] {
  const seen = new Set(observations.filter((o) => o.run_id).map((o) => `${o.run_id}\u0000${o.source}`));
  const extra = fromOutcomes.filter((o) => !seen.has(`${o.run_id}\u0000${o.source}`));
  return [...observations, ...extra].sort(byTime);
}
