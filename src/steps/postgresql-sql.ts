/**
 * data.migration postgresql: commands on the hosts as root, and SQL run as the cluster's user through psql on the
 * Unix socket (peer authentication: no password anywhere): the table checksums and the recovery point.
 */
import { join } from 'node:path';
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import { displayCommand, type ExecResult, type Transport } from '../hosts/ssh.js';
import { privileged } from '../runbook/remote.js';
import type { StepContext } from '../runbook/types.js';
import { type Checksums, parseTableSums } from './postgresql-facts.js';
import type { PgSettings } from './postgresql-scripts.js';

/** Runs argv as root on the host (sudo -n for another login), failing with what it said. */
export async function runOn(
  ctx: StepContext,
  host: InventoryHost,
  argv: string[],
  what: string,
  input?: string,
) {
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

export const RECOVERY_POINT_SQL =
  "SELECT pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp(), (SELECT timeline_id FROM pg_control_checkpoint()), (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size');\n";
