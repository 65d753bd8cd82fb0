/**
 * data.migration postgresql, the pure half: parsers of what the hosts show (the backup host's base backup and WAL
 * archive, the target's data directory, psql's checksum and recovery point lines) and the decisions made from them
 * (which WAL segments the restore can use, the freshness gate, the recovery point and the possible loss, whether
 * the recorded checksums can be compared). Tested on recorded real output.
 */

/** A WAL location, "0/3026350": the high and low 32 bits in hex. */
export function parseLsn(text: string): bigint | undefined {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  return m ? (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`) : undefined;
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** A WAL segment file name: 8 hex digits of timeline, then the segment number in two 8-digit halves. */
export const SEGMENT_NAME = /^[0-9A-F]{24}$/;

export interface Segment {
  name: string;
  timeline: number;
  /** The segment's number (its first byte's LSN divided by the segment size). */
  number: bigint;
}

export function parseSegment(name: string, segmentBytes: number): Segment | undefined {
  if (!SEGMENT_NAME.test(name)) return undefined;
  const perId = 0x100000000n / BigInt(segmentBytes);
  return {
    name,
    timeline: Number.parseInt(name.slice(0, 8), 16),
    number: BigInt(`0x${name.slice(8, 16)}`) * perId + BigInt(`0x${name.slice(16, 24)}`),
  };
}

/** What the backup host shows: the base backup's label and size, the archive's files. */
export interface BackupFacts {
  base: boolean;
  /** backup_label: START WAL LOCATION (and its segment), START TIME, START TIMELINE. */
  label?: { startLsn: string; startSegment: string; startTime?: string; timeline: number };
  /** The system identifier in the base backup's global/pg_control (the first 8 bytes). */
  systemId?: string;
  baseBytes: number;
  /** Regular files of the archive named like WAL segments: name, mtime (epoch seconds), size. */
  segments: SegmentFile[];
  /** Timeline history files in the archive (00000002.history). */
  histories: string[];
  /** The checksums file's text, when there is one. */
  checksums?: string;
}

function records(text: string): Array<[string, string]> {
  return text
    .split('\0')
    .filter((r) => r.includes('='))
    .map((r) => [r.slice(0, r.indexOf('=')), r.slice(r.indexOf('=') + 1)]);
}

export function parseBackupLabel(text: string): BackupFacts['label'] {
  const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/m.exec(text);
  if (!start) return undefined;
  const time = /^START TIME: (.+)$/m.exec(text)?.[1]?.trim();
  const timeline = Number(
    /^START TIMELINE: (\d+)$/m.exec(text)?.[1] ?? Number.parseInt(start[2]!.slice(0, 8), 16),
  );
  return { startLsn: start[1]!, startSegment: start[2]!, ...(time ? { startTime: time } : {}), timeline };
}

export function parseBackupFacts(text: string): BackupFacts {
  const facts: BackupFacts = { base: false, baseBytes: 0, segments: [], histories: [] };
  for (const [key, value] of records(text)) {
    if (key === 'base') facts.base = value === 'yes';
    else if (key === 'label') {
      const label = parseBackupLabel(value);
      if (label) facts.label = label;
    } else if (key === 'sysid' && /^\d+$/.test(value.trim())) facts.systemId = value.trim();
    else if (key === 'base_bytes') facts.baseBytes = Number(value) || 0;
    else if (key === 'seg') {
      const [name = '', mtime = '', bytes = ''] = value.split(' ');
      if (SEGMENT_NAME.test(name)) facts.segments.push({ name, mtime: Number(mtime), bytes: Number(bytes) });
      else if (/^[0-9A-F]{8}\.history$/.test(name)) facts.histories.push(name);
    } else if (key === 'checksums') facts.checksums = value;
  }
  facts.segments.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return facts;
}

/** A WAL segment file as a host lists it: name, mtime (epoch seconds), size. */
export interface SegmentFile {
  name: string;
  mtime: number;
  bytes: number;
}

/**
 * The segments a restore from this base backup can replay: from its start segment on, on its timeline, without a
 * gap; each from the archive, else from the failed host's pg_wal (when it answers with PostgreSQL stopped, its
 * pg_wal holds what was not archived yet, the segment being written included).
 */
export interface ArchiveRun {
  segments: Array<SegmentFile & { from: 'archive' | 'failed-host' }>;
  segmentBytes: number;
  /** The first byte after the last usable segment. */
  endLsn: bigint;
  /** When the newest usable segment of the archive was archived (its mtime), else the base backup's start. */
  newestAt?: Date;
  /** Archive segments of the base backup's timeline after a gap, or of other timelines: not used. */
  unused: { afterGap: number; gapAfter?: string; otherTimelines: number };
}

export function archiveRun(
  facts: BackupFacts,
  failedWal: SegmentFile[] = [],
): ArchiveRun | { problem: string } {
  const label = facts.label;
  if (!facts.base || !label) return { problem: 'no base backup with a backup_label' };
  const first = facts.segments.find((s) => s.name === label.startSegment);
  const segmentBytes = first?.bytes ?? facts.segments[0]?.bytes ?? failedWal[0]?.bytes ?? 16 * 1024 * 1024;
  const start = parseSegment(label.startSegment, segmentBytes)!;
  const usable = (list: SegmentFile[]) =>
    new Map(
      list
        .map((f) => ({ ...f, seg: parseSegment(f.name, segmentBytes) }))
        .filter((f) => f.seg?.timeline === label.timeline && f.seg.number >= start.number)
        .map((f) => [f.seg!.number, f] as const),
    );
  const archived = usable(facts.segments);
  const local = usable(failedWal);
  const run: ArchiveRun['segments'] = [];
  for (let next = start.number; ; next += 1n) {
    const a = archived.get(next);
    if (a && a.bytes === segmentBytes) {
      run.push({ name: a.name, mtime: a.mtime, bytes: a.bytes, from: 'archive' });
      continue;
    }
    const f = local.get(next);
    // pg_wal also holds recycled segments renamed ahead of the one being written: older than the segment before
    // them in pg_wal (an archive copy's mtime says when it was copied, not written: not compared). Replay checks
    // each page's address, so a recycled segment taken anyway only ends the replay.
    const before = run.filter((r) => r.from === 'failed-host').at(-1);
    if (!f || f.bytes !== segmentBytes || f.mtime < (before?.mtime ?? 0)) break;
    run.push({ name: f.name, mtime: f.mtime, bytes: f.bytes, from: 'failed-host' });
  }
  const used = new Set(run.map((r) => r.name));
  const afterGap = [...archived.values()].filter((a) => !used.has(a.name)).length;
  const newest = run.filter((r) => r.from === 'archive').at(-1);
  const startAt = label.startTime
    ? new Date(label.startTime.replace(' UTC', 'Z').replace(' ', 'T'))
    : undefined;
  return {
    segments: run,
    segmentBytes,
    endLsn: (start.number + BigInt(run.length)) * BigInt(segmentBytes),
    ...(newest
      ? { newestAt: new Date(newest.mtime * 1000) }
      : startAt && !Number.isNaN(startAt.getTime())
        ? { newestAt: startAt }
        : {}),
    unused: {
      afterGap,
      ...(afterGap > 0 ? { gapAfter: run.at(-1)?.name ?? label.startSegment } : {}),
      otherTimelines: facts.segments.filter(
        (x) => parseSegment(x.name, segmentBytes)!.timeline !== label.timeline,
      ).length,
    },
  };
}

/** What the failed host shows of its cluster when it answers. */
export interface FailedFacts {
  cluster: boolean;
  systemId?: string;
  running: boolean;
  /** Its pg_wal's segment files. */
  segments: SegmentFile[];
}

export function parseFailedFacts(text: string): FailedFacts {
  const facts: FailedFacts = { cluster: false, running: false, segments: [] };
  for (const [key, value] of records(text)) {
    if (key === 'cluster') facts.cluster = value === 'yes';
    else if (key === 'sysid' && /^\d+$/.test(value.trim())) facts.systemId = value.trim();
    else if (key === 'running') facts.running = value === 'yes';
    else if (key === 'seg') {
      const [name = '', mtime = '', bytes = ''] = value.split(' ');
      if (SEGMENT_NAME.test(name)) facts.segments.push({ name, mtime: Number(mtime), bytes: Number(bytes) });
    }
  }
  return facts;
}

/** When the failed host was last known to serve, or the closest later moment persona knows: the loss's end. */
export interface Reference {
  at: Date;
  /** "the fence found db-1 down" or "now". */
  what: string;
}

export type Gate =
  | { ok: true; ageSeconds: number; note: string }
  | { ok: false; ageSeconds: number; message: string; hint: string };

/**
 * The freshness gate (Patroni's maximum_lag_on_failover, in time): the archive's newest WAL must be at most
 * max_lag seconds older than the reference. An older one may lack writes made in between: refused unless the
 * operator chose the backup explicitly (--data-from backup), in which case the figure is still shown.
 */
export function freshnessGate(input: {
  newestAt: Date | undefined;
  reference: Reference;
  maxLagSeconds: number;
  accepted: boolean;
  where: string;
}): Gate {
  const { newestAt, reference, maxLagSeconds, accepted, where } = input;
  const age = newestAt
    ? Math.max(0, Math.round((reference.at.getTime() - newestAt.getTime()) / 1000))
    : Infinity;
  const figure = newestAt
    ? `the newest WAL in ${where} was archived at ${newestAt.toISOString()}, ${age} s before ${reference.what}`
    : `${where} holds no WAL after the base backup and the backup's time is unknown`;
  if (age <= maxLagSeconds)
    return { ok: true, ageSeconds: age, note: `freshness: ${figure} (max_lag ${maxLagSeconds} s)` };
  if (accepted)
    return {
      ok: true,
      ageSeconds: age,
      note: `freshness: ${figure}, more than max_lag ${maxLagSeconds} s; accepted with --data-from backup: writes made after it may be lost`,
    };
  return {
    ok: false,
    ageSeconds: age,
    message: `the archive is older than max_lag: ${figure}, more than ${maxLagSeconds} s; writes made after it would be lost`,
    hint: 'If losing up to that much is acceptable, resume with `--data-from backup` (the figure is logged again); else bring the failed host back, or make the archive current, and resume.',
  };
}

/** What the restore reached, read from the promoted cluster. */
export interface RecoveryPoint {
  /** pg_last_wal_replay_lsn(): the end of the last WAL record replayed. */
  lsn: string;
  /** pg_last_xact_replay_timestamp(): the commit time of the last transaction replayed; null if none was. */
  last_transaction_at: string | null;
  /** The new timeline the cluster was promoted onto. */
  timeline: number;
  segment_bytes: number;
}

/** "0/4000000|2026-11-27 22:32:39.790232+00|2|16777216", psql -At's line for RECOVERY_POINT_SQL. */
export function parseRecoveryPoint(line: string): RecoveryPoint | undefined {
  const [lsn = '', at = '', timeline = '', bytes = ''] = line.trim().split('|');
  if (parseLsn(lsn) === undefined || !/^\d+$/.test(timeline) || !/^\d+$/.test(bytes)) return undefined;
  return {
    lsn,
    last_transaction_at: at === '' ? null : isoTime(at),
    timeline: Number(timeline),
    segment_bytes: Number(bytes),
  };
}

/** PostgreSQL's "2026-11-27 22:32:39.790232+00" as ISO 8601 (milliseconds). */
export function isoTime(text: string): string {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(?::?(\d\d))?$/.exec(text.trim());
  if (!m) return text.trim();
  const date = new Date(`${m[1]}T${m[2]}${m[3]}:${m[4] ?? '00'}`);
  return Number.isNaN(date.getTime()) ? text.trim() : date.toISOString();
}

export interface PossibleLoss {
  /** From the last replayed transaction to the reference: commits in this window may be missing. */
  seconds: number | null;
  since: string | null;
  until: string;
  until_what: string;
  /**
   * WAL the primary may have written after the recovery point and not archived. While the failed host is down its
   * own position is unknown; when the archiver kept up, it is at most the segment being written: one segment.
   */
  bytes_at_most: number;
  bytes_basis: string;
}

/** The recovery point's possible loss, as seconds and bytes, relative to what persona knows (pure). */
export function possibleLoss(
  point: RecoveryPoint,
  reference: Reference,
  archive: { lastSegment?: string; tailFrom?: string },
): PossibleLoss {
  const since = point.last_transaction_at;
  if (archive.tailFrom)
    // Its PostgreSQL was stopped and its pg_wal continued the archive: replay went to the end of its WAL, where
    // every transaction it committed is (a commit is written to the WAL before it returns).
    return {
      seconds: 0,
      since,
      until: since ?? reference.at.toISOString(),
      until_what: `the end of ${archive.tailFrom}'s WAL`,
      bytes_at_most: 0,
      bytes_basis: `${archive.tailFrom} answered with PostgreSQL stopped, and its pg_wal continued the archive up to ${archive.lastSegment}: replay ended at the end of its WAL`,
    };
  const seconds =
    since === null ? null : Math.max(0, Math.round((reference.at.getTime() - Date.parse(since)) / 1000));
  return {
    seconds,
    since,
    until: reference.at.toISOString(),
    until_what: reference.what,
    bytes_at_most: point.segment_bytes,
    bytes_basis: `the failed host's own WAL position is unknown while it is down; the archive ends with ${archive.lastSegment ?? 'the base backup'}, so if its archiver kept up only the segment being written (${point.segment_bytes} bytes) can be missing`,
  };
}

/** One table's checksum: rows and md5 over its rows as text, ordered (COLLATE "C"). */
export interface TableSum {
  rows: number;
  md5: string;
}

/** The table checksums of a cluster, keyed "database/schema.table", with the next transaction id they saw. */
export interface Checksums {
  next_xid: string;
  tables: Record<string, TableSum>;
}

/** psql -At -F'|' lines "schema.table|rows|md5" of one database. */
export function parseTableSums(database: string, text: string): Record<string, TableSum> {
  const out: Record<string, TableSum> = {};
  for (const line of text.split('\n')) {
    const m = /^(.+)\|(\d+)\|([0-9a-f]{32})$/.exec(line.trim());
    if (m) out[`${database}/${m[1]}`] = { rows: Number(m[2]), md5: m[3]! };
  }
  return out;
}

/** The checksums file recorded with the backup (format persona-pg-checksums), or why it cannot be read. */
export function parseRecordedChecksums(
  text: string,
): (Checksums & { taken_at?: string }) | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: 'is not JSON' };
  }
  const v = value as { format?: unknown; next_xid?: unknown; tables?: unknown; taken_at?: unknown };
  if (v.format !== 'persona-pg-checksums') return { problem: 'has no "format": "persona-pg-checksums"' };
  if (typeof v.next_xid !== 'string' || !/^\d+$/.test(v.next_xid))
    return { problem: 'has no "next_xid" (a string of digits)' };
  if (typeof v.tables !== 'object' || v.tables === null) return { problem: 'has no "tables"' };
  const tables: Record<string, TableSum> = {};
  for (const [name, sum] of Object.entries(v.tables as Record<string, unknown>)) {
    const s = sum as { rows?: unknown; md5?: unknown };
    if (typeof s?.rows !== 'number' || typeof s.md5 !== 'string' || !/^[0-9a-f]{32}$/.test(s.md5))
      return { problem: `has a bad entry for ${name}` };
    tables[name] = { rows: s.rows, md5: s.md5 };
  }
  return {
    next_xid: v.next_xid,
    tables,
    ...(typeof v.taken_at === 'string' ? { taken_at: v.taken_at } : {}),
  };
}

export type ChecksumVerdict =
  | { compared: true; equal: true; tables: number }
  | { compared: true; equal: false; differences: string[] }
  | { compared: false; why: string };

/**
 * The recorded checksums can be compared only with a restore that saw exactly the same transactions: the next
 * transaction id (pg_current_snapshot's xmax) is then the same, since every write transaction takes one. A
 * restore that reached further (a later write) or less far cannot be compared, and says why.
 */
export function compareChecksums(recorded: Checksums, restored: Checksums): ChecksumVerdict {
  const r = BigInt(recorded.next_xid);
  const n = BigInt(restored.next_xid);
  if (n > r)
    return {
      compared: false,
      why: `the restore replayed write transactions made after the checksums were recorded (next transaction id ${n} > ${r})`,
    };
  if (n < r)
    return {
      compared: false,
      why: `the restore lacks write transactions the recorded checksums saw (next transaction id ${n} < ${r}): those are lost`,
    };
  const differences: string[] = [];
  const names = [...new Set([...Object.keys(recorded.tables), ...Object.keys(restored.tables)])].sort();
  for (const name of names) {
    const a = recorded.tables[name];
    const b = restored.tables[name];
    if (!a) differences.push(`${name}: not in the recorded checksums`);
    else if (!b) differences.push(`${name}: missing after the restore`);
    else if (a.md5 !== b.md5 || a.rows !== b.rows)
      differences.push(
        `${name}: ${b.rows} rows, md5 ${b.md5.slice(0, 12)} (recorded ${a.rows} rows, ${a.md5.slice(0, 12)})`,
      );
  }
  return differences.length === 0
    ? { compared: true, equal: true, tables: names.length }
    : { compared: true, equal: false, differences };
}

/** What the target shows of the data directory and persona's restore of this run. */
export interface TargetFacts {
  /** absent, empty, a cluster (PG_VERSION), or something else. */
  datadir: 'absent' | 'empty' | 'cluster' | 'other';
  systemId?: string;
  /** A postmaster.pid whose process lives. */
  running: boolean;
  recoverySignal: boolean;
  baseStarted: boolean;
  baseDone: boolean;
  /** STAGE/recovered.json: the recovery point this run's restore reached. */
  recovered?: string;
  /** WAL segments already staged on the target, with their sizes (a copy cut short is smaller). */
  staged: Array<{ name: string; bytes: number }>;
  /** Free bytes on the filesystem of the data directory (or its nearest existing parent). */
  freeBytes: number;
  /** Whether pg_ctl and psql are where the profile's version puts them. */
  binaries: boolean;
}

export function parseTargetFacts(text: string): TargetFacts {
  const facts: TargetFacts = {
    datadir: 'absent',
    running: false,
    recoverySignal: false,
    baseStarted: false,
    baseDone: false,
    staged: [],
    freeBytes: 0,
    binaries: false,
  };
  for (const [key, value] of records(text)) {
    if (key === 'datadir' && ['absent', 'empty', 'cluster', 'other'].includes(value))
      facts.datadir = value as TargetFacts['datadir'];
    else if (key === 'sysid' && /^\d+$/.test(value.trim())) facts.systemId = value.trim();
    else if (key === 'running') facts.running = value === 'yes';
    else if (key === 'recovery_signal') facts.recoverySignal = value === 'yes';
    else if (key === 'base_started') facts.baseStarted = value === 'yes';
    else if (key === 'base_done') facts.baseDone = value === 'yes';
    else if (key === 'recovered') facts.recovered = value;
    else if (key === 'staged') {
      const [name = '', bytes = ''] = value.split(' ');
      if (SEGMENT_NAME.test(name)) facts.staged.push({ name, bytes: Number(bytes) });
    } else if (key === 'free') facts.freeBytes = Number(value) * 1024 || 0;
    else if (key === 'binaries') facts.binaries = value === 'yes';
  }
  return facts;
}

/** What is left of the restore on the target (pure): each stage's work, in order. */
export interface RestoreWork {
  base: boolean;
  /** Segments to copy from the archive to the target's staging directory. */
  wal: string[];
  recover: boolean;
  /** The data directory holds data that is not this restore's: moved aside, never deleted. */
  moveAside: boolean;
}

/** This run's restore is there and promoted: the marker, the backed-up system, no recovery pending. */
export function isRestored(target: TargetFacts, baseSystemId: string | undefined): boolean {
  return (
    target.recovered !== undefined &&
    target.baseDone &&
    baseSystemId !== undefined &&
    target.systemId === baseSystemId &&
    !target.recoverySignal
  );
}

/**
 * What the recover action leaves in STAGE/recovered.json: the recovery point, and where the WAL came from, so a
 * plan made later (a resume, the check) reports them without asking the failed host again.
 */
export interface RestoredMarker {
  recovery_point: RecoveryPoint;
  source: { kind: 'backup-host'; host: string; why: string; wal_tail_from?: string };
  archive: {
    base: string;
    wal: string;
    segments: number;
    last_segment?: string;
    newest_at?: string;
    from_failed_host?: number;
  };
}

export function parseRestoredMarker(text: string): RestoredMarker | undefined {
  try {
    const v = JSON.parse(text) as Partial<RestoredMarker>;
    return v.recovery_point && v.source && v.archive ? (v as RestoredMarker) : undefined;
  } catch {
    return undefined;
  }
}

export function restoreWork(
  target: TargetFacts,
  run: ArchiveRun,
  baseSystemId: string | undefined,
): RestoreWork | 'done' {
  if (isRestored(target, baseSystemId)) return 'done';
  const base = !target.baseDone;
  const staged = new Set(target.staged.filter((s) => s.bytes === run.segmentBytes).map((s) => s.name));
  return {
    base,
    wal: run.segments.map((s) => s.name).filter((n) => !staged.has(n)),
    recover: true,
    moveAside: base && !target.baseStarted && (target.datadir === 'cluster' || target.datadir === 'other'),
  };
}
