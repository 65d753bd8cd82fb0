/**
 * data.migration postgresql for real, against PostgreSQL 15 from Debian: a primary cluster in a temporary directory
 * (as the postgres user, on 127.0.0.1 and a socket of its own) archives its WAL into a "backup host" directory;
 * a base backup is taken with pg_basebackup, more rows are written, the table checksums are recorded with the
 * backup, the WAL is switched and archived, and the primary is killed (immediate stop: no shutdown checkpoint).
 * The migrate step then runs through the real engine and the real SSH transport: the backup host is a loopback sshd
 * (127.0.0.5), the target another (127.0.0.6), the failed host an address nothing listens on (refused), recorded down
 * by the fence. The gate refuses an archive older than max_lag; a dry run changes nothing; a run cut right after the
 * base backup is resumed with only the WAL and the recovery left; it promotes the cluster on the target, reports the
 * recovery point (the last write's commit and LSN), and the table checksums equal those recorded; a new plan is
 * empty. Then the primary's host answers with PostgreSQL stopped and WAL it could not archive: the restore takes that
 * too, and nothing is lost.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { LocalTransport } from '../../src/hosts/local-transport.js';
import { SshTransport } from '../../src/hosts/ssh.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import type { Journal, StepContext } from '../../src/runbook/types.js';
import { migrateStep } from '../../src/steps/migrate.js';
import { clusterChecksums, psql } from '../../src/steps/postgresql.js';
import { parseLsn } from '../../src/steps/postgresql-facts.js';
import { Redactor } from '../../src/ui/redact.js';
import { requireBinaries } from '../helpers/binaries.js';
import { testJournal } from '../helpers/journal.js';
import { runSteps } from '../helpers/run-step.js';
import { freePort, startSshd, type TestSshd } from '../helpers/sshd.js';

/** PostgreSQL 15's programs (PERSONA_PG_BIN overrides, e.g. to prove a missing one fails fast, naming it). */
const BIN = process.env.PERSONA_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const SLOW = 180_000;

let root: string;
let sock: string;
let primaryData: string;
let targetData: string;
let backupDir: string;
let primaryPort: number;
let targetPort: number;
let target2Port: number;
const sshds: TestSshd[] = [];
let ssh: SshTransport;
const local = new LocalTransport();
const hosts: Record<'failed' | 'backup' | 'target' | 'here' | 'answering' | 'target2', InventoryHost> =
  {} as never;
/** What the primary showed after its last write: its WAL position and the time around the commit. */
const last: { lsn: bigint; before: number; after: number } = { lsn: 0n, before: 0, after: 0 };
let archivedAt = 0;

const asPostgres = (argv: string[]) =>
  execFileSync('runuser', ['-u', 'postgres', '--', ...argv], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
const conn = (port: number) => ({ osUser: 'postgres', bin: BIN, socket: sock, port });
const onPrimary = async (sql: string) => await psql(local, hosts.here, conn(primaryPort), 'shop', sql);

beforeAll(async () => {
  requireBinaries(
    `${BIN}/initdb`,
    `${BIN}/pg_ctl`,
    `${BIN}/pg_basebackup`,
    `${BIN}/psql`,
    `${BIN}/postgres`,
    'runuser',
    'tar',
  );
  root = mkdtempSync(join(tmpdir(), 'persona-pg-'));
  chmodSync(root, 0o755);
  sock = join(root, 'sock');
  primaryData = join(root, 'primary', 'data');
  backupDir = join(root, 'backup');
  targetData = join(root, 'target', 'data');
  for (const dir of [sock, join(root, 'primary'), join(backupDir, 'wal')])
    mkdirSync(dir, { recursive: true });
  mkdirSync(join(root, 'target'));
  const pg = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
  const pgGroup = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
  for (const dir of [sock, join(root, 'primary'), backupDir, join(backupDir, 'wal')])
    chownSync(dir, pg, pgGroup);
  primaryPort = await freePort();
  targetPort = await freePort();
  asPostgres([`${BIN}/initdb`, '-D', primaryData, '-A', 'peer', '-U', 'postgres', '--no-sync']);
  writeFileSync(
    join(primaryData, 'postgresql.auto.conf'),
    [
      `port = ${primaryPort}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${sock}'`,
      'wal_level = replica',
      'archive_mode = on',
      `archive_command = 'test ! -f ${join(backupDir, 'wal')}/%f && cp %p ${join(backupDir, 'wal')}/%f'`,
      'fsync = off',
      '',
    ].join('\n'),
  );
  asPostgres([`${BIN}/pg_ctl`, '-D', primaryData, '-l', join(root, 'primary', 'log'), '-w', 'start']);
  hosts.here = { name: 'primary', address: '127.0.0.1', labels: {}, apps: [], connection: 'local' };
  await psql(local, hosts.here, conn(primaryPort), 'postgres', 'CREATE DATABASE shop;\n');
  await onPrimary(
    [
      'CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric(10,2), placed timestamptz);',
      "INSERT INTO orders SELECT g, 'customer ' || g, g * 1.5, '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 5000) g;",
      'CREATE SCHEMA "Odd schema";',
      'CREATE TABLE "Odd schema"."line items" (order_id int, sku text, doc jsonb);',
      'INSERT INTO "Odd schema"."line items" SELECT g % 5000 + 1, \'sku-\' || g, jsonb_build_object(\'n\', g) FROM generate_series(1, 3000) g;',
      'CREATE UNLOGGED TABLE scratch (x int); INSERT INTO scratch VALUES (1);',
      '',
    ].join('\n'),
  );
  asPostgres([
    `${BIN}/pg_basebackup`,
    '-h',
    sock,
    '-p',
    String(primaryPort),
    '-D',
    join(backupDir, 'base'),
    '-X',
    'none',
    '-c',
    'fast',
    '--no-sync',
  ]);
  // Written after the base backup: only the WAL archive holds it.
  last.before = Date.now();
  await onPrimary(
    [
      "INSERT INTO orders SELECT g, 'late ' || g, g, now() FROM generate_series(5001, 6000) g;",
      'UPDATE orders SET total = total + 1 WHERE id % 7 = 0;',
      'DELETE FROM "Odd schema"."line items" WHERE order_id < 100;',
      '',
    ].join('\n'),
  );
  last.after = Date.now();
  last.lsn = parseLsn((await onPrimary('SELECT pg_current_wal_lsn();\n')).trim())!;
  const recorded = await clusterChecksums(local, hosts.here, conn(primaryPort));
  writeFileSync(
    join(backupDir, 'checksums.json'),
    JSON.stringify({ format: 'persona-pg-checksums', taken_at: new Date().toISOString(), ...recorded }),
  );
  const segment = (await onPrimary('SELECT pg_walfile_name(pg_switch_wal());\n')).trim();
  const deadline = Date.now() + 30_000;
  while (!existsSync(join(backupDir, 'wal', segment))) {
    if (Date.now() > deadline) throw new Error(`the primary did not archive ${segment} within 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  archivedAt = Date.now();
  // The primary dies: no shutdown checkpoint, nothing more archived.
  asPostgres([`${BIN}/pg_ctl`, '-D', primaryData, '-m', 'immediate', 'stop']);

  sshds.push(await startSshd({ address: '127.0.0.5' }));
  sshds.push(await startSshd({ address: '127.0.0.6' }));
  // For the second scenario: the primary's host answering, and a target in a mount namespace of its own where
  // root/target2 is mounted over root/primary (both hosts keep the cluster at the same path, as on Debian).
  sshds.push(await startSshd({ address: '127.0.0.7' }));
  mkdirSync(join(root, 'target2'));
  sshds.push(
    await startSshd({
      address: '127.0.0.8',
      wrap: [
        'unshare',
        '--mount',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        'set -e; mount --bind -- "$1" "$2"; shift 2; exec "$@"',
        'persona-pg-ns',
        join(root, 'target2'),
        join(root, 'primary'),
      ],
    }),
  );
  const config = join(root, 'ssh_config');
  writeFileSync(
    config,
    sshds.map((s) => execFileSync('cat', [s.configFile], { encoding: 'utf8' })).join('\n'),
  );
  ssh = new SshTransport({ configFile: config, connectTimeoutSec: 5 });
  const host = (name: string, s: TestSshd): InventoryHost => ({
    name,
    address: s.address,
    port: s.port,
    labels: {},
    apps: [],
  });
  hosts.backup = host('pg-backup', sshds[0]!);
  hosts.target = host('pg-target', sshds[1]!);
  hosts.answering = host('pg-primary', sshds[2]!);
  hosts.target2 = host('pg-target-2', sshds[3]!);
  // Nothing listens there: the failed host refuses.
  hosts.failed = { name: 'pg-primary', address: '127.0.0.9', port: await freePort(), labels: {}, apps: [] };
  target2Port = await freePort();
}, 180_000);

afterAll(async () => {
  await ssh?.close();
  for (const s of sshds) await s.stop();
  // The second target's server runs in its namespace: stopped by its pid (SIGINT: a fast shutdown).
  const pidFile = root ? join(root, 'target2', 'data', 'postmaster.pid') : '';
  if (pidFile && existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    try {
      process.kill(pid, 'SIGINT');
      for (let i = 0; i < 100 && existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 100));
    } catch {}
  }
  for (const data of [primaryData, targetData])
    if (data && existsSync(join(data, 'postmaster.pid')))
      try {
        asPostgres([`${BIN}/pg_ctl`, '-D', data, '-m', 'immediate', 'stop']);
      } catch {}
  if (root) rmSync(root, { recursive: true, force: true });
}, 60_000);

function context(
  maxLag = 600,
  where: { dataDir: string; port: number; failed: InventoryHost; target: InventoryHost } = {
    dataDir: targetData,
    port: targetPort,
    failed: hosts.failed,
    target: hosts.target,
  },
): Partial<StepContext> {
  const profile = validateProfileValue(
    'shop-db.json',
    {
      id: 'shop-db',
      required_cores: 1,
      required_ram_gb: 0.1,
      required_storage_gb: 0,
      deploy: { start: ['true'], stop: ['true'] },
      data: {
        migration: 'postgresql',
        backup: { host: 'pg-backup', path: backupDir },
        postgresql: {
          version: 15,
          cluster: 'main',
          port: where.port,
          data_directory: where.dataDir,
          config_directory: where.dataDir,
          socket_directory: sock,
          max_lag: maxLag,
        },
      },
    },
    'shop-db',
  );
  return {
    profile,
    failed: where.failed,
    target: where.target,
    ssh,
    backend: { get: async () => undefined, describe: 'test store' } as never,
    redactor: new Redactor(),
    stateDir: join(root, 'state'),
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    reporter: { info() {}, warn() {}, event() {}, task: () => ({}) } as never,
    findHost: (name: string) => Object.values(hosts).find((h) => h.name === name)!,
    now: () => new Date(),
  };
}

/** A journal whose fence found the failed host down at `fencedAt`. */
const journal = (runId: string, fencedAt: Date, dataFrom?: 'backup', answered = false): Journal =>
  testJournal({
    run_id: runId,
    app: 'shop-db',
    options: { force_no_fence: false, strategy: 'best-fit', ...(dataFrom ? { data_from: dataFrom } : {}) },
    steps: [
      {
        kind: 'fence',
        title: 'fence',
        mutates: true,
        status: 'succeeded',
        attempts: 1,
        log: [],
        started_at: fencedAt.toISOString(),
        finished_at: fencedAt.toISOString(),
        outputs: {
          evidence: answered ? { reachable: true } : { reachable: false, unreachableKind: 'refused' },
        },
      },
      { kind: 'migrate', title: 'migrate', mutates: true, status: 'pending', attempts: 0, log: [] },
    ],
  });

const RUN = '20261127T000200Z-pg-run';

describe('data.migration postgresql: restore from a base backup and the WAL archive', () => {
  test(
    'the freshness gate refuses an archive older than max_lag, with the figure; nothing changes',
    async () => {
      const run = await runSteps([migrateStep], context(60), {
        journal: journal('20261127T000000Z-pg-gate', new Date(archivedAt + 3_600_000)),
      });
      expect(run.error).toBeDefined();
      const record = run.record('migrate');
      expect(record.status).toBe('failed');
      expect(record.error?.message).toMatch(
        /the archive is older than max_lag: the newest WAL in pg-backup:\S+ was archived at \S+, (359\d|360\d) s before the fence found pg-primary down/,
      );
      expect(record.error?.hint).toContain('--data-from backup');
      expect(existsSync(targetData)).toBe(false);
    },
    SLOW,
  );

  test(
    'a dry run plans the base backup, the WAL and the recovery, and changes nothing',
    async () => {
      const run = await runSteps([migrateStep], context(), {
        journal: journal('20261127T000100Z-pg-dry', new Date(archivedAt + 5_000)),
        engine: { dryRun: true },
      });
      expect(run.error).toBeUndefined();
      const lines = run.engine.simulation[0]!.lines.join('\n');
      expect(lines).toContain(`would restore the base backup pg-backup:${join(backupDir, 'base')}`);
      expect(lines).toMatch(/would copy \d+ WAL segment\(s\)/);
      expect(lines).toContain('would start PostgreSQL 15 on pg-target');
      expect(lines).toMatch(
        /freshness: the newest WAL in pg-backup:\S+ was archived at \S+, \d s before the fence found pg-primary down/,
      );
      expect(existsSync(targetData)).toBe(false);
    },
    SLOW,
  );

  test(
    'the run, cut after the base backup and resumed, restores and promotes the cluster: recovery point at the last write, checksums equal the recorded ones',
    async () => {
      const fenced = new Date(archivedAt + 5_000);
      // The first attempt dies right after the base backup is in place (as a crash would leave it).
      const cut = await runSteps(
        [migrateStep],
        {
          ...context(),
          checkpoint: async (name: string) => {
            if (name === 'after-base') throw new Error('simulated crash after the base backup');
          },
        },
        { journal: journal(RUN, fenced) },
      );
      expect(cut.error).toBeDefined();
      expect((cut.record('migrate').actions ?? []).map((a) => [a.id, a.status])).toEqual([
        ['pg:base', 'failed'],
      ]);
      // Planned again from what the hosts show: the base backup is there, only the WAL and the recovery are left.
      const run = await runSteps([migrateStep], context(), { journal: journal(RUN, fenced) });
      expect(run.error).toBeUndefined();
      const record = run.record('migrate');
      expect(record.status).toBe('succeeded');
      expect((record.actions ?? []).map((a) => a.id)).toEqual(['pg:wal', 'pg:recover', 'pg:cleanup']);
      const out = record.outputs as {
        recovery_point: { lsn: string; last_transaction_at: string; timeline: number; segment_bytes: number };
        possible_loss: { seconds: number; bytes_at_most: number; until_what: string };
        checksums: { verdict: { compared: boolean; equal?: boolean; tables?: number }; tables: number };
      };
      // The last write's commit, between the moments around it; the LSN at or past where the primary was.
      const committed = Date.parse(out.recovery_point.last_transaction_at);
      expect(committed).toBeGreaterThanOrEqual(last.before - 1000);
      expect(committed).toBeLessThanOrEqual(last.after + 1000);
      expect(parseLsn(out.recovery_point.lsn)! >= last.lsn).toBe(true);
      expect(out.recovery_point.timeline).toBe(2);
      expect(out.possible_loss.seconds).toBe(Math.round((fenced.getTime() - committed) / 1000));
      expect(out.possible_loss.bytes_at_most).toBe(16 * 1024 * 1024);
      expect(out.possible_loss.until_what).toContain('the fence found pg-primary down');
      expect(out.checksums.verdict).toEqual({ compared: true, equal: true, tables: 2 });
      expect(out.checksums.tables).toBe(2);
      // The target serves the data, read-write, with the late rows.
      const conn2 = { osUser: 'postgres', bin: BIN, socket: sock, port: targetPort };
      const rows = await psql(
        ssh,
        hosts.target,
        conn2,
        'shop',
        "SELECT count(*), pg_is_in_recovery() FROM orders WHERE customer LIKE 'late %';\n",
      );
      expect(rows.trim()).toBe('1000|f');
      // The journal holds the recovery point and the figures, and the staged WAL is gone.
      expect(record.log.join('\n')).toContain('table checksums equal those recorded with the backup');
      const stage = join(root, 'target', `.persona-pg-data@${RUN}`);
      expect(existsSync(join(stage, 'wal'))).toBe(false);
      expect(existsSync(join(stage, 'recovered.json'))).toBe(true);
    },
    SLOW,
  );

  test(
    'planned again (a resume): nothing left to do; the conclusion reads the recovery point and checks again',
    async () => {
      const j = journal(RUN, new Date(archivedAt + 5_000));
      const run = await runSteps([migrateStep], context(), { journal: j });
      expect(run.error).toBeUndefined();
      const record = run.record('migrate');
      expect(record.status).toBe('succeeded');
      expect(record.actions ?? []).toEqual([]);
    },
    SLOW,
  );
});

describe('the failed host answers with its PostgreSQL stopped: its pg_wal completes the archive', () => {
  const unarchived: { before: number; after: number } = { before: 0, after: 0 };

  beforeAll(async () => {
    // The primary comes back (crash recovery), can no longer archive, writes rows only its pg_wal holds, and dies.
    asPostgres([`${BIN}/pg_ctl`, '-D', primaryData, '-l', join(root, 'primary', 'log'), '-w', 'start']);
    await psql(
      local,
      hosts.here,
      conn(primaryPort),
      'postgres',
      "ALTER SYSTEM SET archive_command = 'false';\nSELECT pg_reload_conf();\n",
    );
    unarchived.before = Date.now();
    await onPrimary(
      "INSERT INTO orders SELECT g, 'unarchived ' || g, g, now() FROM generate_series(6001, 6500) g;\nDELETE FROM orders WHERE id <= 10;\n",
    );
    unarchived.after = Date.now();
    const recorded = await clusterChecksums(local, hosts.here, conn(primaryPort));
    writeFileSync(
      join(backupDir, 'checksums.json'),
      JSON.stringify({ format: 'persona-pg-checksums', taken_at: new Date().toISOString(), ...recorded }),
    );
    asPostgres([`${BIN}/pg_ctl`, '-D', primaryData, '-m', 'immediate', 'stop']);
  }, 120_000);

  test(
    'restored from the archive plus its pg_wal: the unarchived rows are there, nothing lost, checksums equal',
    async () => {
      const where = {
        dataDir: primaryData,
        port: target2Port,
        failed: hosts.answering,
        target: hosts.target2,
      };
      const run = await runSteps([migrateStep], context(60, where), {
        journal: journal('20261127T000300Z-pg-tail', new Date(), undefined, true),
      });
      expect(run.error).toBeUndefined();
      const record = run.record('migrate');
      expect(record.status).toBe('succeeded');
      expect((record.actions ?? []).map((a) => a.id)).toEqual([
        'pg:base',
        'pg:wal',
        'pg:wal-failed',
        'pg:recover',
        'pg:cleanup',
      ]);
      expect(record.log.join('\n')).toContain('with PostgreSQL stopped: its pg_wal completes the archive');
      const out = record.outputs as {
        source: { wal_tail_from?: string };
        recovery_point: { last_transaction_at: string };
        possible_loss: { seconds: number; bytes_at_most: number };
        checksums: { verdict: unknown };
      };
      expect(out.source.wal_tail_from).toBe('pg-primary');
      const committed = Date.parse(out.recovery_point.last_transaction_at);
      expect(committed).toBeGreaterThanOrEqual(unarchived.before - 1000);
      expect(committed).toBeLessThanOrEqual(unarchived.after + 1000);
      expect(out.possible_loss).toMatchObject({ seconds: 0, bytes_at_most: 0 });
      expect(out.checksums.verdict).toEqual({ compared: true, equal: true, tables: 2 });
      const rows = await psql(
        ssh,
        hosts.target2,
        { osUser: 'postgres', bin: BIN, socket: sock, port: target2Port },
        'shop',
        "SELECT count(*) FILTER (WHERE customer LIKE 'unarchived %'), count(*) FROM orders;\n",
      );
      expect(rows.trim()).toBe('500|6490');
      // The failed host's cluster is untouched: still stopped, its pg_wal in place.
      expect(existsSync(join(primaryData, 'postmaster.pid'))).toBe(false);
    },
    SLOW,
  );
});
