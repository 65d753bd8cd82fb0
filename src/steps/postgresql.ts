/**
 * `data.migration: postgresql`, the unplanned recovery: the failed host is down, so the cluster is restored onto the
 * target from the base backup (pg_basebackup, plain format) and the WAL archive on the backup host, replayed to the
 * end of the archive and promoted. The plan is data: per stage (base backup, WAL, recovery) what the target shows
 * decides what is left (restoreWork); the base backup and the WAL segments are piped through this machine (tar on
 * the backup host into tar on the target: the hosts need no trust between them); PostgreSQL's restore_command copies
 * the segments from the target's staging directory. The freshness gate refuses an archive older than max_lag unless
 * the operator chose the backup (--data-from backup). The conclusion reports the recovery point and the possible
 * loss, and compares table checksums with those recorded with the backup when no write happened in between.
 * A failed host that still answers is not streamed from (yet): the step says so and waits for the explicit choice.
 */
import { basename, dirname, join } from 'node:path';
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import { pipeBetween } from '../hosts/pipe.js';
import { shellQuote } from '../hosts/shell-quote.js';
import { displayCommand, type ExecResult, type Transport } from '../hosts/ssh.js';
import type { Profile } from '../profile/schema.js';
import { postgresqlDataDirectory } from '../profile/validate.js';
import { privileged, writeRemoteFile } from '../runbook/remote.js';
import type { Action, StepContext, StepOutputs, StepPlan } from '../runbook/types.js';
import { stripTerminalControls } from '../util/sanitize.js';
import { decideSource, fenceFacts } from './data-source.js';
import {
  type ArchiveRun,
  archiveRun,
  type Checksums,
  compareChecksums,
  freshnessGate,
  parseBackupFacts,
  parseRecordedChecksums,
  parseRecoveryPoint,
  parseTableSums,
  parseTargetFacts,
  possibleLoss,
  type RecoveryPoint,
  type Reference,
  restoreWork,
} from './postgresql-facts.js';
import { reachable } from './reach.js';

type PgProfile = NonNullable<Profile['data']['postgresql']>;

/** Where everything is, from the profile and the run. */
export interface PgSettings {
  version: number;
  osUser: string;
  port: number;
  socket: string;
  dataDir: string;
  configDir: string;
  bin: string;
  /** Next to the data directory on the target: the staged WAL, the server's log, persona's markers. */
  stage: string;
  /** What was in the data directory before is moved here, never deleted. */
  aside: string;
  backupHost: string;
  base: string;
  wal: string;
  checksums: string;
  maxLag: number;
}

export function pgSettings(profile: Profile, runId: string): PgSettings {
  const pg = profile.data.postgresql as PgProfile;
  const backup = profile.data.backup!;
  const dataDir = postgresqlDataDirectory(pg);
  return {
    version: pg.version,
    osUser: pg.os_user,
    port: pg.port,
    socket: pg.socket_directory,
    dataDir,
    configDir: pg.config_directory ?? `/etc/postgresql/${pg.version}/${pg.cluster}`,
    bin: `/usr/lib/postgresql/${pg.version}/bin`,
    stage: join(dirname(dataDir), `.persona-pg-${basename(dataDir)}@${runId}`),
    aside: `${dataDir}.persona-previous-${runId}`,
    backupHost: backup.host!,
    base: pg.base_backup ?? join(backup.path, 'base'),
    wal: pg.wal_archive ?? join(backup.path, 'wal'),
    checksums: pg.checksums ?? join(backup.path, 'checksums.json'),
    maxLag: pg.max_lag,
  };
}

/** $1 base backup, $2 WAL archive, $3 checksums file. NUL-separated key=value records. */
export const BACKUP_FACTS = [
  'base=$1 wal=$2 sums=$3',
  'if [ -f "$base/backup_label" ]; then',
  "  printf 'base=yes\\0'",
  '  printf \'label=%s\\0\' "$(cat -- "$base/backup_label")"',
  '  [ -f "$base/global/pg_control" ] && printf \'sysid=%s\\0\' "$(od -An -tu8 -N8 -- "$base/global/pg_control" | tr -d \' \')"',
  '  printf \'base_bytes=%s\\0\' "$(du -sb -- "$base" | cut -f1)"',
  "else printf 'base=no\\0'; fi",
  '[ -d "$wal" ] && find "$wal" -mindepth 1 -maxdepth 1 -type f -printf \'seg=%f %T@ %s\\0\'',
  '[ -f "$sums" ] && printf \'checksums=%s\\0\' "$(cat -- "$sums")"',
  'exit 0',
].join('\n');

/** $1 data directory, $2 staging directory, $3 the PostgreSQL binaries. NUL-separated key=value records. */
export const TARGET_FACTS = [
  'd=$1 stage=$2 bin=$3',
  'if [ -d "$d" ] && [ ! -L "$d" ]; then',
  '  if [ -f "$d/PG_VERSION" ]; then printf \'datadir=cluster\\0\'',
  '  elif [ -z "$(ls -A -- "$d")" ]; then printf \'datadir=empty\\0\'',
  "  else printf 'datadir=other\\0'; fi",
  'elif [ -e "$d" ] || [ -L "$d" ]; then printf \'datadir=other\\0\'',
  "else printf 'datadir=absent\\0'; fi",
  '[ -f "$d/global/pg_control" ] && printf \'sysid=%s\\0\' "$(od -An -tu8 -N8 -- "$d/global/pg_control" | tr -d \' \')"',
  'if [ -f "$d/postmaster.pid" ]; then',
  '  pid=$(head -n 1 -- "$d/postmaster.pid")',
  '  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && printf \'running=yes\\0\'',
  'fi',
  '[ -f "$d/recovery.signal" ] && printf \'recovery_signal=yes\\0\'',
  '[ -f "$stage/base.started" ] && printf \'base_started=yes\\0\'',
  '[ -f "$stage/base.done" ] && printf \'base_done=yes\\0\'',
  '[ -f "$stage/recovered.json" ] && printf \'recovered=%s\\0\' "$(cat -- "$stage/recovered.json")"',
  '[ -d "$stage/wal" ] && find "$stage/wal" -mindepth 1 -maxdepth 1 -type f -printf \'staged=%f %s\\0\'',
  'e=$d',
  'while [ ! -e "$e" ] && [ "$e" != / ]; do e=$(dirname -- "$e"); done',
  'printf \'free=%s\\0\' "$(df -Pk -- "$e" | tail -n 1 | awk \'{print $4}\')"',
  '[ -x "$bin/pg_ctl" ] && [ -x "$bin/psql" ] && printf \'binaries=yes\\0\'',
  'exit 0',
].join('\n');

/**
 * $1 data directory, $2 staging directory, $3 the cluster's user, $4 where other data goes, $5 binaries. Stops a
 * server running on the data directory; this run's unfinished restore is removed, anything else moved aside.
 */
const PREPARE_BASE = [
  'set -e',
  'd=$1 stage=$2 user=$3 aside=$4 bin=$5',
  'mkdir -p -- "$stage"',
  'if [ -f "$d/postmaster.pid" ]; then runuser -u "$user" -- "$bin/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1 || true; fi',
  'if [ -f "$stage/base.started" ]; then rm -rf -- "$d"',
  'elif [ -e "$d" ] || [ -L "$d" ]; then',
  '  if [ -d "$d" ] && [ ! -L "$d" ] && [ -z "$(ls -A -- "$d")" ]; then rmdir -- "$d"',
  '  else',
  '    a=$aside i=1',
  '    while [ -e "$a" ] || [ -L "$a" ]; do i=$((i + 1)); a=$aside.$i; done',
  '    mv -T -- "$d" "$a"',
  '    printf "%s" "$a"',
  '  fi',
  'fi',
  'mkdir -p -- "$(dirname -- "$d")"',
  'mkdir -m 0700 -- "$d"',
  'chown -- "$user:" "$d" "$stage"',
  'chmod 0700 -- "$stage"',
  'touch -- "$stage/base.started"',
].join('\n');

/** $1 data directory, $2 staging directory, $3 the cluster's user. */
const FINISH_BASE = [
  'set -e',
  'd=$1 stage=$2 user=$3',
  'rm -f -- "$d/postmaster.pid" "$d/recovery.signal" "$d/standby.signal"',
  'chown -R -- "$user:" "$d"',
  'chmod 0700 -- "$d"',
  'touch -- "$stage/base.done"',
].join('\n');

/** $1 the staging WAL directory, $2 the cluster's user: the segments arrive on stdin as a tar stream. */
const RECEIVE_WAL = [
  'set -e',
  'mkdir -p -- "$1"',
  'tar -C "$1" -xf -',
  'chown -R -- "$2:" "$1"',
  'chmod 0700 -- "$1"',
].join('\n');

/**
 * $1 data directory, $2 the cluster's user; the settings on stdin. Replaces persona's earlier lines in
 * postgresql.auto.conf (read last, so they win) and asks for archive recovery (recovery.signal).
 */
const RECOVERY_SETTINGS = [
  'set -e',
  'd=$1 user=$2',
  'conf=$d/postgresql.auto.conf',
  'touch -- "$conf"',
  'grep -v -- \'# persona-restore$\' "$conf" > "$conf.persona" || true',
  'cat >> "$conf.persona"',
  'chown -- "$user:" "$conf.persona"',
  'chmod 0600 -- "$conf.persona"',
  'mv -f -- "$conf.persona" "$conf"',
  'touch -- "$d/recovery.signal"',
  'chown -- "$user:" "$d/recovery.signal"',
].join('\n');

/** A value in postgresql.conf: single-quoted, quotes doubled. */
const confString = (value: string) => `'${value.replaceAll("'", "''")}'`;

/**
 * The settings of the restore: restore_command copies a segment from the staging directory (the path quoted for the
 * shell PostgreSQL runs it with, then for the configuration file); no recovery target, so replay goes to the end
 * of the archive and the server promotes itself onto a new timeline.
 */
export function recoverySettings(stage: string): string {
  const restore = `cp -- ${shellQuote(join(stage, 'wal'))}/%f "%p"`;
  return [
    `restore_command = ${confString(restore)} # persona-restore`,
    `recovery_target_timeline = 'latest' # persona-restore`,
    '',
  ].join('\n');
}

/** Runs argv as root on the host (sudo -n for another login), failing with what it said. */
async function runOn(ctx: StepContext, host: InventoryHost, argv: string[], what: string, input?: string) {
  const r = await ctx.ssh.exec(host, privileged(host, argv), {
    signal: ctx.signal,
    ...(input !== undefined ? { input } : {}),
  });
  if (r.exitCode !== 0) throw failure(host, argv, r, what);
  return r;
}

function failure(host: InventoryHost, argv: readonly string[], r: ExecResult, what: string): PersonaError {
  const said = r.stderr.trim().split('\n').slice(-3).join(' ');
  return new PersonaError(
    'E_STEP_FAILED',
    `${host.name}: ${what}: \`${displayCommand(argv)}\` exited with code ${r.exitCode}${said ? `: ${said}` : ''}`,
  );
}

/** The cluster's user runs psql through the Unix socket (peer authentication: no password anywhere). */
export function psqlArgv(
  s: Pick<PgSettings, 'osUser' | 'bin' | 'socket' | 'port'>,
  database: string,
): string[] {
  const db = `dbname='${database.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
  return [
    'runuser',
    '-u',
    s.osUser,
    '--',
    join(s.bin, 'psql'),
    '-X',
    '-q',
    '-A',
    '-t',
    '-F',
    '|',
    '-v',
    'ON_ERROR_STOP=1',
    '-h',
    s.socket,
    '-p',
    String(s.port),
    '-d',
    db,
  ];
}

/** Runs SQL (on stdin) as the cluster's user; stdout. */
export async function psql(
  ssh: Transport,
  host: InventoryHost,
  s: Pick<PgSettings, 'osUser' | 'bin' | 'socket' | 'port'>,
  database: string,
  sql: string,
  signal?: AbortSignal,
): Promise<string> {
  const argv = [...psqlArgv(s, database), '-f', '-'];
  const r = await ssh.exec(host, privileged(host, argv), { input: sql, ...(signal ? { signal } : {}) });
  if (r.exitCode !== 0) throw failure(host, argv, r, 'running SQL');
  return r.stdout;
}

/**
 * One line per user table of the database: "schema.table|rows|md5", the md5 over its rows as text, ordered
 * byte-wise (COLLATE "C": the same order on any host). Unlogged and temporary tables are left out (a restore
 * leaves unlogged ones empty). The same query records the checksums kept with a backup (see the README).
 */
export const TABLE_CHECKSUMS_SQL = [
  "SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(t::text, E''\\n'' ORDER BY t::text COLLATE \"C\"), '''')) FROM %s AS t',",
  "              format('%I.%I', n.nspname, c.relname), c.oid::regclass)",
  '  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace',
  " WHERE c.relkind = 'r' AND c.relpersistence = 'p'",
  "   AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'",
  ' ORDER BY 1',
  '\\gexec',
  '',
].join('\n');

/** The next transaction id: the same on two clusters that saw the same write transactions. */
export const NEXT_XID_SQL = 'SELECT pg_snapshot_xmax(pg_current_snapshot());\n';

const DATABASES_SQL =
  'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1;\n';

/** Every user table's checksum in every database that takes connections, and the next transaction id. */
export async function clusterChecksums(
  ssh: Transport,
  host: InventoryHost,
  s: Pick<PgSettings, 'osUser' | 'bin' | 'socket' | 'port'>,
  signal?: AbortSignal,
): Promise<Checksums> {
  const next = (await psql(ssh, host, s, 'postgres', NEXT_XID_SQL, signal)).trim();
  const databases = (await psql(ssh, host, s, 'postgres', DATABASES_SQL, signal)).split('\n').filter(Boolean);
  const tables: Checksums['tables'] = {};
  for (const db of databases)
    Object.assign(tables, parseTableSums(db, await psql(ssh, host, s, db, TABLE_CHECKSUMS_SQL, signal)));
  return { next_xid: next, tables };
}

const RECOVERY_POINT_SQL =
  "SELECT pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp(), (SELECT timeline_id FROM pg_control_checkpoint()), (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size');\n";

const MiB = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
const shown = (text: string) => stripTerminalControls(text);

/** When the failed host was last known down: the fence's record when it found it so, else now. */
function reference(ctx: StepContext): Reference {
  const fence = ctx.previous('fence');
  const facts = fenceFacts(fence);
  const at = fence?.finished_at ?? fence?.started_at;
  if (facts?.host_reachable === false && at)
    return { at: new Date(at), what: `the fence found ${ctx.failed.name} down (${at})` };
  return { at: ctx.now(), what: `now (${ctx.now().toISOString()})` };
}

/** The facts a plan leaves for the conclusion. */
export interface PgFacts {
  method: 'postgresql';
  source: { kind: 'backup-host'; host: string; why: string };
  done: boolean;
  recovery_point?: RecoveryPoint;
  reference: { at: string; what: string };
  archive: { base: string; wal: string; segments: number; last_segment?: string; newest_at?: string };
  freshness?: string;
  checksums_recorded?: string;
}

/** Where the data comes from: the archive when the failed host is proven down or the operator chose it. */
async function sourceDecision(
  ctx: StepContext,
): Promise<{ why: string } | { blocked: NonNullable<StepPlan['blocked']> }> {
  const dataFrom = ctx.journal.options.data_from ?? 'auto';
  const reach = dataFrom === 'backup' ? ({ ok: true } as const) : await reachable(ctx, ctx.failed);
  const recorded = fenceFacts(ctx.previous('fence'));
  const assumed = ctx.previous('fence')?.status === 'pending' && !recorded && !reach.ok;
  const decision = decideSource({
    failedName: ctx.failed.name,
    reach,
    failedHasData: reach.ok,
    fence: recorded ?? (assumed ? { host_reachable: false } : undefined),
    dataFrom,
  });
  if ('refuse' in decision)
    return {
      blocked: {
        message: `not restoring ${ctx.profile.id}'s PostgreSQL: ${decision.refuse}`,
        hint: decision.hint,
      },
    };
  if (decision.use === 'failed-host')
    return {
      blocked: {
        message: `${ctx.failed.name} answers: its PostgreSQL may hold WAL the archive lacks, and persona restores PostgreSQL from the archive only (streaming from the failed host is for the planned move)`,
        hint: `To lose nothing, run \`SELECT pg_switch_wal()\` on ${ctx.failed.name} and wait until the archive holds that segment (pg_stat_archiver), then resume with \`--data-from backup\`; or resume with it now to restore what the archive holds.`,
      },
    };
  const why = assumed
    ? decision.why.replace('the fence found it down too', 'if the fence finds it down too')
    : decision.why;
  return { why };
}

export async function postgresqlPlan(ctx: StepContext): Promise<StepPlan> {
  const s = pgSettings(ctx.profile, ctx.journal.run_id);
  const chosen = await sourceDecision(ctx);
  if ('blocked' in chosen) return { actions: [], notes: [], blocked: chosen.blocked };
  const backupHost = ctx.findHost(s.backupHost);
  const [backupText, targetText] = await Promise.all([
    runOn(
      ctx,
      backupHost,
      ['sh', '-c', BACKUP_FACTS, 'persona-pg-backup', s.base, s.wal, s.checksums],
      'looking at the backup',
    ),
    runOn(
      ctx,
      ctx.target,
      ['sh', '-c', TARGET_FACTS, 'persona-pg-target', s.dataDir, s.stage, s.bin],
      `looking at ${s.dataDir}`,
    ),
  ]);
  const backup = parseBackupFacts(backupText.stdout);
  const target = parseTargetFacts(targetText.stdout);
  const where = `${s.backupHost}:${s.wal}`;
  const notes = [
    `data source: ${s.backupHost}:${s.base} and ${where} (PostgreSQL ${s.version} base backup and WAL archive) — ${chosen.why}`,
  ];
  const run = archiveRun(backup);
  if ('problem' in run)
    return {
      actions: [],
      notes,
      blocked: {
        message: `${s.backupHost}:${s.base}: ${run.problem}`,
        hint: 'Take a base backup there with pg_basebackup -D (plain format), then resume.',
      },
    };
  const ref = reference(ctx);
  const facts: PgFacts = {
    method: 'postgresql',
    source: { kind: 'backup-host', host: s.backupHost, why: chosen.why },
    done: false,
    reference: { at: ref.at.toISOString(), what: ref.what },
    archive: {
      base: `${s.backupHost}:${s.base}`,
      wal: where,
      segments: run.segments.length,
      ...(run.segments.at(-1) ? { last_segment: run.segments.at(-1)!.name } : {}),
      ...(run.newestAt ? { newest_at: run.newestAt.toISOString() } : {}),
    },
    ...(backup.checksums !== undefined ? { checksums_recorded: backup.checksums } : {}),
  };
  if (run.unused.afterGap > 0)
    notes.push(
      `${where} has ${run.unused.afterGap} segment(s) after a gap following ${run.unused.gapAfter}: replay stops at the gap`,
    );
  const work = restoreWork(target, run, backup.systemId);
  if (work === 'done') {
    const point = JSON.parse(target.recovered!) as RecoveryPoint;
    notes.push(
      `${ctx.target.name}:${s.dataDir}: restored by this run and promoted, at ${point.lsn} (last transaction ${point.last_transaction_at ?? 'none'})`,
    );
    const staged = target.staged.length;
    return {
      actions: [],
      ...(staged > 0 ? { after: [cleanupAction(ctx, s, staged)] } : {}),
      notes,
      facts: { ...facts, done: true, recovery_point: point } as unknown as StepOutputs,
    };
  }
  if (!target.binaries)
    return {
      actions: [],
      notes,
      blocked: {
        message: `${ctx.target.name}: ${s.bin}/pg_ctl or psql is not installed (data.migration postgresql needs PostgreSQL ${s.version} on the target)`,
        hint: `Add postgresql-${s.version} to software_stack, or install it on ${ctx.target.name}, then resume.`,
      },
    };
  const gate = freshnessGate({
    newestAt: run.newestAt,
    reference: ref,
    maxLagSeconds: s.maxLag,
    accepted: (ctx.journal.options.data_from ?? 'auto') === 'backup',
    where,
  });
  if (!gate.ok) return { actions: [], notes, blocked: { message: gate.message, hint: gate.hint } };
  notes.push(gate.note);
  const sizes = new Map(run.segments.map((x) => [x.name, x.bytes]));
  const walBytes = work.wal.reduce((n, name) => n + (sizes.get(name) ?? 0), 0);
  const needed = (work.base ? backup.baseBytes : 0) + walBytes;
  if (needed > target.freeBytes)
    return {
      actions: [],
      notes,
      blocked: {
        message: `${ctx.target.name}: ${MiB(target.freeBytes)} free for ${s.dataDir}; the base backup and WAL need ${MiB(needed)}`,
        hint: 'Free space on the target, or choose another target.',
      },
    };
  const actions: Action[] = [];
  if (work.base)
    actions.push(
      baseAction(ctx, backupHost, s, {
        bytes: backup.baseBytes,
        moveAside: work.moveAside,
        running: target.running,
      }),
    );
  if (work.wal.length > 0) actions.push(walAction(ctx, backupHost, s, work.wal, walBytes));
  actions.push(recoverAction(ctx, s, run));
  return { actions, notes, facts: { ...facts, freshness: gate.note } as unknown as StepOutputs };
}

function baseAction(
  ctx: StepContext,
  backupHost: InventoryHost,
  s: PgSettings,
  base: { bytes: number; moveAside: boolean; running: boolean },
): Action {
  const extra = [
    base.running ? `stopping the PostgreSQL running on ${s.dataDir}` : '',
    base.moveAside ? `what is there now is moved aside to ${s.aside}, not deleted` : '',
  ].filter(Boolean);
  return {
    id: 'pg:base',
    title: `restore the base backup ${s.backupHost}:${s.base} (${MiB(base.bytes)}) into ${ctx.target.name}:${s.dataDir}${extra.length ? `; ${extra.join('; ')}` : ''}`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      const started = Date.now();
      const prepared = await runOn(
        c,
        c.target,
        ['sh', '-c', PREPARE_BASE, 'persona-pg-prepare', s.dataDir, s.stage, s.osUser, s.aside, s.bin],
        `preparing ${s.dataDir}`,
      );
      const movedTo = shown(prepared.stdout.trim());
      if (movedTo) c.log(`${s.dataDir} on ${c.target.name}: what was there is kept at ${movedTo}`);
      const sent = await pipe(
        c,
        backupHost,
        ['tar', '-C', s.base, '-cf', '-', '.'],
        ['tar', '-C', s.dataDir, '-xf', '-'],
        `the base backup ${s.base}`,
      );
      await runOn(
        c,
        c.target,
        ['sh', '-c', FINISH_BASE, 'persona-pg-finish', s.dataDir, s.stage, s.osUser],
        `finishing ${s.dataDir}`,
      );
      await c.checkpoint('after-base');
      return {
        base: `${s.backupHost}:${s.base}`,
        transferred_bytes: sent,
        duration_ms: Date.now() - started,
        ...(movedTo ? { moved_aside: movedTo } : {}),
      };
    },
  };
}

/** Segments per tar stream: each name is an argument. */
const WAL_BATCH = 1000;

function walAction(
  ctx: StepContext,
  backupHost: InventoryHost,
  s: PgSettings,
  names: string[],
  bytes: number,
): Action {
  return {
    id: 'pg:wal',
    title: `copy ${names.length} WAL segment(s) (${MiB(bytes)}, ${names[0]}…${names.at(-1)}) from ${s.backupHost}:${s.wal} to ${ctx.target.name}:${join(s.stage, 'wal')}, where restore_command reads them`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      const started = Date.now();
      let sent = 0;
      for (let i = 0; i < names.length; i += WAL_BATCH)
        sent += await pipe(
          c,
          backupHost,
          ['tar', '-C', s.wal, '-cf', '-', ...names.slice(i, i + WAL_BATCH)],
          ['sh', '-c', RECEIVE_WAL, 'persona-pg-wal', join(s.stage, 'wal'), s.osUser],
          `WAL segments from ${s.wal}`,
        );
      return { segments: names.length, transferred_bytes: sent, duration_ms: Date.now() - started };
    },
  };
}

async function pipe(
  c: StepContext,
  from: InventoryHost,
  send: string[],
  receive: string[],
  what: string,
): Promise<number> {
  const r = await pipeBetween(
    c.ssh,
    { host: from, argv: privileged(from, send) },
    { host: c.target, argv: privileged(c.target, receive) },
    { signal: c.signal },
  );
  if (r.source.exitCode !== 0 || r.sink.exitCode !== 0) {
    const end = (host: InventoryHost, argv: string[], x: ExecResult) =>
      `${host.name}: \`${displayCommand(argv)}\` ${x.exitCode === 0 ? 'ended well' : `exited with code ${x.exitCode}: ${x.stderr.trim().split('\n').slice(-2).join(' ')}`}`;
    throw new PersonaError(
      'E_STEP_FAILED',
      `copying ${what} from ${from.name} to ${c.target.name} failed (${r.bytes} bytes passed): ${end(from, send, r.source)}; ${end(c.target, receive, r.sink)}`,
      {
        hint: 'Nothing on the backup host changed; resume to start this copy again.',
      },
    );
  }
  return r.bytes;
}

/** How often, and how long, the restore's promotion is waited for. */
const POLL_MS = 500;

function recoverAction(ctx: StepContext, s: PgSettings, run: ArchiveRun): Action {
  return {
    id: 'pg:recover',
    title: `start PostgreSQL ${s.version} on ${ctx.target.name}:${s.port} in archive recovery (restore_command from ${join(s.stage, 'wal')}; target: the end of the archive, ${run.segments.at(-1)?.name ?? 'the base backup'}), and wait until it promotes itself`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      const started = Date.now();
      const state = parseTargetFacts(
        (
          await runOn(
            c,
            c.target,
            ['sh', '-c', TARGET_FACTS, 'persona-pg-target', s.dataDir, s.stage, s.bin],
            `looking at ${s.dataDir}`,
          )
        ).stdout,
      );
      if (!state.running) {
        await runOn(
          c,
          c.target,
          ['sh', '-c', RECOVERY_SETTINGS, 'persona-pg-settings', s.dataDir, s.osUser],
          'writing the recovery settings',
          recoverySettings(s.stage),
        );
        const log = join(s.stage, 'postgresql.log');
        await runOn(
          c,
          c.target,
          [
            'runuser',
            '-u',
            s.osUser,
            '--',
            join(s.bin, 'pg_ctl'),
            '-D',
            s.configDir,
            '-l',
            log,
            '-o',
            `-p ${s.port}`,
            '-W',
            'start',
          ],
          `starting PostgreSQL (its log: ${log})`,
        );
      }
      const point = await waitForPromotion(c, s);
      await writeRemoteFile(
        c.ssh,
        c.target,
        {
          path: join(s.stage, 'recovered.json'),
          content: `${JSON.stringify(point)}\n`,
          mode: '0600',
          owner: 'root',
        },
        c.signal,
      );
      c.log(
        `PostgreSQL on ${c.target.name} promoted onto timeline ${point.timeline} at ${point.lsn}; last transaction replayed: ${point.last_transaction_at ?? 'none'}`,
      );
      return { recovery_point: point, duration_ms: Date.now() - started };
    },
  };
}

async function waitForPromotion(c: StepContext, s: PgSettings): Promise<RecoveryPoint> {
  const sql = 'SELECT pg_is_in_recovery();\n';
  for (;;) {
    c.signal.throwIfAborted();
    const argv = [...psqlArgv(s, 'postgres'), '-f', '-'];
    const r = await c.ssh.exec(c.target, privileged(c.target, argv), { input: sql, signal: c.signal });
    if (r.exitCode === 0 && r.stdout.trim() === 'f') break;
    if (r.exitCode !== 0) {
      const state = parseTargetFacts(
        (
          await runOn(
            c,
            c.target,
            ['sh', '-c', TARGET_FACTS, 'persona-pg-target', s.dataDir, s.stage, s.bin],
            `looking at ${s.dataDir}`,
          )
        ).stdout,
      );
      if (!state.running) {
        const tail = await c.ssh.exec(
          c.target,
          privileged(c.target, ['tail', '-n', '5', '--', join(s.stage, 'postgresql.log')]),
          { signal: c.signal },
        );
        throw new PersonaError(
          'E_STEP_FAILED',
          `PostgreSQL on ${c.target.name} stopped during the restore: ${shown(tail.stdout.trim().split('\n').join(' / '))}`,
          {
            hint: `Read ${join(s.stage, 'postgresql.log')} on ${c.target.name}; fix the cause and resume.`,
          },
        );
      }
    }
    await new Promise((r2) => setTimeout(r2, POLL_MS));
  }
  const line = await psql(c.ssh, c.target, s, 'postgres', RECOVERY_POINT_SQL, c.signal);
  const point = parseRecoveryPoint(line);
  if (!point)
    throw new PersonaError(
      'E_STEP_FAILED',
      `could not read the recovery point on ${c.target.name}: ${shown(line.trim())}`,
    );
  return point;
}

function cleanupAction(ctx: StepContext, s: PgSettings, segments: number): Action {
  return {
    id: 'pg:cleanup',
    title: `delete the ${segments} staged WAL segment(s) in ${ctx.target.name}:${join(s.stage, 'wal')} (the restore is promoted; the server log and the recovery point stay in ${s.stage})`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      await runOn(c, c.target, ['rm', '-rf', '--', join(s.stage, 'wal')], 'deleting the staged WAL');
      return { deleted_segments: segments };
    },
  };
}

export function postgresqlDescribe(ctx: StepContext): string[] {
  const s = pgSettings(ctx.profile, ctx.journal.run_id);
  return [
    `restore PostgreSQL ${s.version} onto ${ctx.target.name}:${s.dataDir} from the base backup ${s.backupHost}:${s.base} and the WAL archive ${s.backupHost}:${s.wal}, to the end of the archive, then promote it (when ${ctx.failed.name} is proven down, or with --data-from backup); an archive older than max_lag ${s.maxLag} s is refused unless chosen with --data-from backup`,
  ];
}

export function postgresqlChecks(ctx: StepContext): string[] {
  const s = pgSettings(ctx.profile, ctx.journal.run_id);
  return [
    `PostgreSQL on ${ctx.target.name}:${s.port} promoted; the recovery point (last replayed transaction, LSN) and the possible loss reported; table checksums compared with ${s.backupHost}:${s.checksums} when it saw the same transactions`,
  ];
}

export async function postgresqlConclude(ctx: StepContext, final: StepPlan): Promise<StepOutputs> {
  const facts = final.facts as unknown as PgFacts | undefined;
  if (!facts?.done || !facts.recovery_point)
    throw new PersonaError(
      'E_STEP_FAILED',
      `PostgreSQL on ${ctx.target.name} is not restored and promoted after the restore`,
    );
  const s = pgSettings(ctx.profile, ctx.journal.run_id);
  const point = facts.recovery_point;
  const ref: Reference = { at: new Date(facts.reference.at), what: facts.reference.what };
  const loss = possibleLoss(
    point,
    ref,
    facts.archive.last_segment ? { lastSegment: facts.archive.last_segment } : {},
  );
  ctx.log(
    `recovery point: ${point.lsn} on timeline ${point.timeline}, last transaction ${point.last_transaction_at ?? 'none replayed'}; possible loss: ${loss.seconds === null ? 'unknown' : `${loss.seconds} s`} (until ${loss.until_what}), at most ${loss.bytes_at_most} bytes of WAL if the archiver kept up`,
  );
  const restored = await clusterChecksums(ctx.ssh, ctx.target, s, ctx.signal);
  const verdict = verifyChecksums(ctx, s, facts.checksums_recorded, restored);
  const tables = Object.keys(restored.tables).length;
  return {
    method: 'postgresql',
    source: facts.source,
    archive: facts.archive,
    ...(facts.freshness ? { freshness: facts.freshness } : {}),
    recovery_point: point,
    possible_loss: loss,
    checksums: {
      next_xid: restored.next_xid,
      tables,
      ...(tables <= 200 ? { by_table: restored.tables } : {}),
      verdict,
    },
  };
}

function verifyChecksums(
  ctx: StepContext,
  s: PgSettings,
  recordedText: string | undefined,
  restored: Checksums,
) {
  if (recordedText === undefined) {
    ctx.log(
      `no checksums recorded with the backup (${s.backupHost}:${s.checksums}): the restored tables' checksums are kept in the journal`,
    );
    return { compared: false as const, why: 'no checksums recorded with the backup' };
  }
  const recorded = parseRecordedChecksums(recordedText);
  if ('problem' in recorded)
    throw new PersonaError('E_STEP_FAILED', `${s.backupHost}:${s.checksums} ${recorded.problem}`, {
      hint: 'Record it again (see the README), or remove it, then resume.',
    });
  const verdict = compareChecksums(recorded, restored);
  if (verdict.compared && !verdict.equal)
    throw new PersonaError(
      'E_STEP_FAILED',
      `the restored tables differ from the checksums recorded with the backup: ${verdict.differences.slice(0, 5).join('; ')}`,
      {
        hint: `The restore saw the same transactions (next transaction id ${restored.next_xid}), so the data should be equal: look at the archive and the base backup.`,
      },
    );
  ctx.log(
    verdict.compared
      ? `${verdict.tables} table checksums equal those recorded with the backup`
      : `checksums recorded with the backup not compared: ${verdict.why}`,
  );
  return verdict;
}
