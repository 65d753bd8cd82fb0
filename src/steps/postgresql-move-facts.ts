/**
 * data.migration postgresql in a planned move, the pure half: the replica's lag as the source shows it, the
 * freshness gate on it, the stopped source's pg_controldata, the passfile line and the replica's connection string.
 * Tested on recorded real output.
 */
import { parseLsn } from './postgresql-facts.js';

/** The application_name the replica streams as: pg_stat_replication on the source finds it by this. */
export const REPLICA_NAME = 'persona_move';

/** How far the replica trails the source: WAL bytes not yet replayed, and the replay lag in seconds. */
export interface ReplicaLag {
  current: string;
  /** Absent: the replica does not stream (no row in pg_stat_replication). */
  replay?: string;
  bytes?: number;
  /** pg_stat_replication.replay_lag; null when PostgreSQL gives none (nothing written lately). */
  seconds: number | null;
}

/**
 * psql -At's line for LAG_SQL on the source: "0/5000148|0/5000060|0.001234" (its current WAL position, the replay
 * position the replica last reported, replay_lag in seconds; the last two empty when the replica does not stream),
 * and the replica's own pg_last_wal_replay_lsn(), read just after (fresher than its last report).
 */
export function parseReplicaLag(line: string, replicaReplay?: string): ReplicaLag | undefined {
  const [current = '', reported = '', seconds = ''] = line.trim().split('|');
  const now = parseLsn(current);
  if (now === undefined) return undefined;
  const secs = seconds === '' ? null : Number(seconds);
  if (secs !== null && !Number.isFinite(secs)) return undefined;
  const streamed = reported === '' ? undefined : parseLsn(reported);
  if (streamed === undefined) return { current, seconds: null };
  const own = replicaReplay === undefined ? undefined : parseLsn(replicaReplay);
  const at = own !== undefined && own > streamed ? own : streamed;
  const bytes = now > at ? Number(now - at) : 0;
  const replay = at === own ? replicaReplay!.trim() : reported;
  // An idle, caught-up replica has no replay_lag: nothing is waiting to be replayed.
  return { current, replay, bytes, seconds: secs ?? (bytes === 0 ? 0 : null) };
}

export type LagGate = { ok: true; figure: string } | { ok: false; figure: string };

/** The freshness gate of a planned move (pure): the replica within max_lag seconds and max_lag_bytes. */
export function replicaGate(lag: ReplicaLag, max: { seconds: number; bytes: number }): LagGate {
  if (lag.replay === undefined || lag.bytes === undefined)
    return { ok: false, figure: `the replica does not stream from the source (at ${lag.current})` };
  const secs = lag.seconds === null ? 'unknown' : `${lag.seconds.toFixed(3)} s`;
  const figure = `the replica replayed up to ${lag.replay}, ${lag.bytes} bytes behind the source's ${lag.current}; replay lag ${secs} (max_lag ${max.seconds} s, max_lag_bytes ${max.bytes})`;
  const ok = lag.bytes <= max.bytes && (lag.seconds === null || lag.seconds <= max.seconds);
  return { ok, figure };
}

/** What pg_controldata (LC_ALL=C) says of a cluster. */
export interface ControlData {
  systemId?: string;
  /** "shut down", "in production", "in archive recovery", "shut down in recovery"… */
  state?: string;
  checkpoint?: string;
  redo?: string;
  timeline?: number;
}

export function parseControlData(text: string): ControlData {
  const field = (name: string) => new RegExp(`^${name}:\\s+(.+)$`, 'm').exec(text)?.[1]?.trim() ?? undefined;
  const out: ControlData = {};
  const sysid = field('Database system identifier');
  if (sysid && /^\d+$/.test(sysid)) out.systemId = sysid;
  const state = field('Database cluster state');
  if (state) out.state = state;
  const checkpoint = field('Latest checkpoint location');
  if (checkpoint && parseLsn(checkpoint) !== undefined) out.checkpoint = checkpoint;
  const redo = field("Latest checkpoint's REDO location");
  if (redo && parseLsn(redo) !== undefined) out.redo = redo;
  const tli = field("Latest checkpoint's TimeLineID");
  if (tli && /^\d+$/.test(tli)) out.timeline = Number(tli);
  return out;
}

/** Whether the replica replayed at least to the stopped source's final checkpoint (pure). */
export function replayedTo(replay: string, checkpoint: string): boolean {
  const a = parseLsn(replay);
  const b = parseLsn(checkpoint);
  return a !== undefined && b !== undefined && a >= b;
}

/** The WAL bytes between two positions, for the report. */
export const lsnDistance = (from: string, to: string): number =>
  Number((parseLsn(to) ?? 0n) - (parseLsn(from) ?? 0n));

/** A .pgpass field: ":" and "\" escaped with "\". */
const passField = (v: string) => v.replaceAll('\\', '\\\\').replaceAll(':', '\\:');

/** The passfile's one line: the replication pseudo-database of the source, as this role. */
export function passfileLine(host: string, port: number, user: string, password: string): string {
  return `${[host, String(port), 'replication', user, password.replace(/\r?\n$/, '')].map(passField).join(':')}\n`;
}

/** A libpq connection string value: single-quoted, "\" and "'" escaped. */
const conninfoValue = (v: string) => `'${v.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;

/** The replica's connection to the source: no password, only where the passfile is. */
export function replicaConninfo(c: { host: string; port: number; user: string; passfile: string }): string {
  return [
    `host=${conninfoValue(c.host)}`,
    `port=${c.port}`,
    `user=${conninfoValue(c.user)}`,
    `passfile=${conninfoValue(c.passfile)}`,
    `application_name=${REPLICA_NAME}`,
  ].join(' ');
}

/** What the target shows of the data directory, for the replica. */
export interface ReplicaTarget {
  cluster: boolean;
  systemId?: string;
  running: boolean;
  standby: boolean;
  /** STAGE/promoted.json: this run promoted the replica. */
  promoted?: string;
  passfile: boolean;
  freeBytes: number;
  binaries: boolean;
}

export function parseReplicaTarget(text: string): ReplicaTarget {
  const t: ReplicaTarget = {
    cluster: false,
    running: false,
    standby: false,
    passfile: false,
    freeBytes: 0,
    binaries: false,
  };
  for (const record of text.split('\0')) {
    const eq = record.indexOf('=');
    if (eq < 0) continue;
    const [key, value] = [record.slice(0, eq), record.slice(eq + 1)];
    if (key === 'cluster') t.cluster = value === 'yes';
    else if (key === 'sysid' && /^\d+$/.test(value.trim())) t.systemId = value.trim();
    else if (key === 'running') t.running = value === 'yes';
    else if (key === 'standby') t.standby = value === 'yes';
    else if (key === 'promoted') t.promoted = value;
    else if (key === 'passfile') t.passfile = value === 'yes';
    else if (key === 'free') t.freeBytes = Number(value) * 1024 || 0;
    else if (key === 'binaries') t.binaries = value === 'yes';
  }
  return t;
}

/** What precopy has left on the target (pure): build the replica, start it, or nothing but the catch-up. */
export function replicaWork(
  t: ReplicaTarget,
  sourceSystemId: string | undefined,
): 'build' | 'start' | 'streaming' {
  const ours = t.cluster && t.standby && sourceSystemId !== undefined && t.systemId === sourceSystemId;
  if (!ours) return 'build';
  return t.running ? 'streaming' : 'start';
}

/** What the promotion leaves in STAGE/promoted.json, so a resume reports it without asking again. */
export interface PromotedMarker {
  source_checkpoint: string;
  source_timeline?: number;
  replayed_lsn: string;
  promoted_lsn: string;
  timeline: number;
}

export function parsePromotedMarker(text: string): PromotedMarker | undefined {
  try {
    const v = JSON.parse(text) as Partial<PromotedMarker>;
    return v.source_checkpoint && v.replayed_lsn && v.promoted_lsn ? (v as PromotedMarker) : undefined;
  } catch {
    return undefined;
  }
}
