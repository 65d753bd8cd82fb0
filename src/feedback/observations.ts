/**
 * Observations: what was seen of an application on a host, and when: every validate and monitor result of a run,
 * every watch check. Kept in the store under observations/<app>/<host>/<epoch ms>-<random>, one JSON value each,
 * for a retention period; the broker's history component reads them back (broker/history.ts).
 */
import { randomBytes } from 'node:crypto';
import type { KvBackend } from '../stores/kv.js';

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
/** Deletes per transaction when pruning: below Consul's 64 operations (with room for a fence). */
const PRUNE_BATCH = 48;

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

/** Writes the observations in one transaction (nothing is written if one key is invalid). */
export async function recordObservations(kv: KvBackend, list: readonly Observation[]): Promise<void> {
  if (list.length === 0) return;
  const puts = list.map((o) => ({ key: observationKey(o), value: JSON.stringify(o) }));
  const result = await kv.txn({ puts });
  // No checks: a fresh random key cannot conflict; a refused txn is a store fault worth saying.
  if (!result.ok) throw new Error(`the store refused the observations: ${result.failed.join(', ')}`);
}

function parse(value: string): Observation | undefined {
  try {
    const o = JSON.parse(value) as Partial<Observation> | null;
    if (!o || typeof o !== 'object') return undefined;
    if (typeof o.app !== 'string' || typeof o.host !== 'string' || typeof o.ok !== 'boolean')
      return undefined;
    if (o.source !== 'validate' && o.source !== 'monitor' && o.source !== 'watch') return undefined;
    if (typeof o.at !== 'string' || !Number.isFinite(Date.parse(o.at))) return undefined;
    return o as Observation;
  } catch {
    return undefined;
  }
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
): Promise<Observation[]> {
  const prefix =
    filter.app === undefined
      ? OBSERVATIONS_PREFIX
      : `${OBSERVATIONS_PREFIX}${filter.app}/${filter.host === undefined ? '' : `${filter.host}/`}`;
  const since = filter.since?.getTime();
  const out: Observation[] = [];
  for (const entry of await kv.list(prefix)) {
    const o = parse(entry.value);
    if (!o) continue;
    if (filter.host !== undefined && o.host !== filter.host) continue;
    if (since !== undefined && Date.parse(o.at) < since) continue;
    out.push(o);
  }
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
  for (let i = 0; i < old.length; i += PRUNE_BATCH) {
    await kv.txn({ deletes: old.slice(i, i + PRUNE_BATCH) });
  }
  return old.length;
}
