/**
 * Observations: what was seen of an application on a host, and when: every validate and monitor result of a run,
 * every watch check. Kept in the store under observations/<app>/<host>/<epoch ms>-<random>, one JSON value each,
 * for a retention period; the broker's history component reads them back (broker/history.ts).
 */
import { randomBytes } from 'node:crypto';
import { type KvBackend, TXN_BATCH } from '../stores/kv.js';
import { stripTerminalControls } from '../util/sanitize.js';

export type ObservationSource = 'validate' | 'monitor' | 'watch';
/** Short codes of what was missed: 'health', 'cpu', 'memory', 'disk_io', 'latency', 'error_rate', 'unreachable', 'start'. */
export interface Observation {
  at: string; // ISO time of the observation
  app: string;
  host: string; // inventory host name
  source: ObservationSource;
  run_id?: string;
  ok: boolean; // health passed and every target met
  missed?: string[];
  metrics?: {
    cpu_pct?: number;
    memory_pct?: number;
    memory_used_bytes?: number;
    disk_write_mbps?: number;
    disk_util_pct?: number;
    latency_ms?: number;
    error_rate?: number;
  };
  profile_version?: number;
  /** Who saw it ('persona' or a peer host name), for watch. */
  vantage?: string;
}

export const OBSERVATIONS_PREFIX = 'observations/';
/** How long observations are kept unless configured otherwise. */
export const DEFAULT_RETENTION_DAYS = 30;

const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomSuffix(): string {
  return [...randomBytes(6)].map((b) => alphabet[b % alphabet.length]).join('');
}

/** observations/<app>/<host>/<13-digit epoch ms>-<6 random [a-z0-9]>: sorted by time within a host. */
export function observationKey(o: Observation): string {
  const ms = Date.parse(o.at);
  if (!Number.isFinite(ms) || ms < 0)
    throw new Error(`observation time ${JSON.stringify(o.at)} is not a date`);
  return `${OBSERVATIONS_PREFIX}${o.app}/${o.host}/${String(ms).padStart(13, '0')}-${randomSuffix()}`;
}

/**
 * Writes the observations, TXN_BATCH to a transaction (one for a run's few; nothing is written if one key is
 * invalid, since the keys are all made first).
 */
export async function recordObservations(kv: KvBackend, list: readonly Observation[]): Promise<void> {
  const puts = list.map((o) => ({ key: observationKey(o), value: JSON.stringify(o) }));
  for (let i = 0; i < puts.length; i += TXN_BATCH) {
    const result = await kv.txn({ puts: puts.slice(i, i + TXN_BATCH) });
    // No checks: a fresh random key cannot conflict; a refused txn is a store fault worth saying.
    if (!result.ok) throw new Error(`the store refused the observations: ${result.failed.join(', ')}`);
  }
}

/** Told once per read how many records were skipped, and why (the first reason). */
export type SkipWarning = (message: string) => void;

const SOURCES: readonly ObservationSource[] = ['validate', 'monitor', 'watch'];
const METRICS = [
  'cpu_pct',
  'memory_pct',
  'memory_used_bytes',
  'disk_write_mbps',
  'disk_util_pct',
  'latency_ms',
  'error_rate',
] as const;

/** The observation, or why it is not one. */
export function parseObservation(text: string): Observation | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const o = value as Record<string, unknown>;
  if (typeof o.at !== 'string' || Number.isNaN(Date.parse(o.at))) return '"at" is not an ISO time';
  if (typeof o.app !== 'string' || typeof o.host !== 'string') return '"app" or "host" is not a string';
  if (!SOURCES.includes(o.source as ObservationSource)) return `"source" is not one of ${SOURCES.join(', ')}`;
  if (typeof o.ok !== 'boolean') return '"ok" is not true or false';
  if (o.missed !== undefined && !(Array.isArray(o.missed) && o.missed.every((m) => typeof m === 'string')))
    return '"missed" is not a list of strings';
  if (o.metrics !== undefined) {
    if (typeof o.metrics !== 'object' || o.metrics === null) return '"metrics" is not an object';
    const m = o.metrics as Record<string, unknown>;
    for (const name of METRICS) {
      if (m[name] !== undefined && !(typeof m[name] === 'number' && Number.isFinite(m[name])))
        return `"metrics.${name}" is not a number`;
    }
  }
  return clean(o as unknown as Observation);
}

/** Names shown on the terminal lose any control sequence: watch records what peers saw. */
function clean(o: Observation): Observation {
  return {
    ...o,
    host: stripTerminalControls(o.host),
    ...(o.missed ? { missed: o.missed.map(stripTerminalControls) } : {}),
    ...(o.vantage !== undefined ? { vantage: stripTerminalControls(String(o.vantage)) } : {}),
  };
}

export function skipped(warn: SkipWarning | undefined, what: string, reasons: string[]): void {
  if (reasons.length > 0 && warn)
    warn(`${reasons.length} ${what} skipped: unreadable (${reasons[0]}${reasons.length > 1 ? ', …' : ''})`);
}

/** The epoch ms a key was written for (its last segment), or NaN. */
const keyTime = (key: string) => Number(key.slice(key.lastIndexOf('/') + 1).split('-')[0]);

/**
 * The observations matching the filter, oldest first. One list call: by app (and host) when given, else all.
 * Values that do not parse as observations are skipped, never thrown on: history must not break ranking.
 */
export async function listObservations(
  kv: KvBackend,
  filter: { app?: string; host?: string; since?: Date },
  warn?: SkipWarning,
): Promise<Observation[]> {
  const prefix =
    filter.app === undefined
      ? OBSERVATIONS_PREFIX
      : `${OBSERVATIONS_PREFIX}${filter.app}/${filter.host === undefined ? '' : `${filter.host}/`}`;
  const since = filter.since?.getTime();
  const out: Observation[] = [];
  const reasons: string[] = [];
  for (const entry of await kv.list(prefix)) {
    const o = parseObservation(entry.value);
    if (typeof o === 'string') {
      reasons.push(`${entry.key}: ${o}`);
      continue;
    }
    if (filter.host !== undefined && o.host !== filter.host) continue;
    if (since !== undefined && Date.parse(o.at) < since) continue;
    out.push(o);
  }
  skipped(warn, 'observation(s)', reasons);
  return out.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}

/**
 * Retention: deletes every observation written for a time before `olderThan` (by its key, so unparsable values go
 * too), in batches. Returns how many were deleted.
 */
export async function pruneObservations(kv: KvBackend, olderThan: Date): Promise<number> {
  const limit = olderThan.getTime();
  const old = (await kv.list(OBSERVATIONS_PREFIX))
    .map((e) => e.key)
    .filter((key) => {
      const t = keyTime(key);
      return Number.isFinite(t) && t < limit;
    });
  for (let i = 0; i < old.length; i += TXN_BATCH) {
    await kv.txn({ deletes: old.slice(i, i + TXN_BATCH) });
  }
  return old.length;
}
