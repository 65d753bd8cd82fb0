/**
 * data.migration postgresql: where everything is (from the profile and the run), and the fixed shell scripts the
 * step runs on the backup host and the target. Paths and names are positional parameters, never script text.
 */
import { basename, dirname, join } from 'node:path';
import { shellQuote } from '../hosts/shell-quote.js';
import type { Profile } from '../profile/schema.js';
import { postgresqlDataDirectory } from '../profile/validate.js';

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

/** $1 the data directory on the failed host: its cluster, whether it runs, its pg_wal. NUL-separated records. */
export const FAILED_FACTS = [
  'd=$1',
  '[ -f "$d/PG_VERSION" ] && printf \'cluster=yes\\0\'',
  '[ -f "$d/global/pg_control" ] && printf \'sysid=%s\\0\' "$(od -An -tu8 -N8 -- "$d/global/pg_control" | tr -d \' \')"',
  'if [ -f "$d/postmaster.pid" ]; then',
  '  pid=$(head -n 1 -- "$d/postmaster.pid")',
  '  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && printf \'running=yes\\0\'',
  'fi',
  '[ -d "$d/pg_wal" ] && find "$d/pg_wal/" -mindepth 1 -maxdepth 1 -type f -printf \'seg=%f %T@ %s\\0\'',
  'exit 0',
].join('\n');

/**
 * $1 data directory, $2 staging directory, $3 the cluster's user, $4 where other data goes, $5 binaries. Stops a
 * server running on the data directory; this run's unfinished restore is removed, anything else moved aside.
 */
export const PREPARE_BASE = [
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
export const FINISH_BASE = [
  'set -e',
  'd=$1 stage=$2 user=$3',
  'rm -f -- "$d/postmaster.pid" "$d/recovery.signal" "$d/standby.signal"',
  'chown -R -- "$user:" "$d"',
  'chmod 0700 -- "$d"',
  'touch -- "$stage/base.done"',
].join('\n');

/** $1 the staging WAL directory, $2 the cluster's user: the segments arrive on stdin as a tar stream. */
export const RECEIVE_WAL = [
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
export const RECOVERY_SETTINGS = [
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
