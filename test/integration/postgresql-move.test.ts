/**
 * data.migration postgresql in a planned move, for real, against PostgreSQL 15 from Debian: a primary cluster in a
 * temporary directory serves on the "source" host (a loopback sshd on 127.0.0.7, the cluster listening there over
 * TCP with a replication role whose password only the environment holds); the "target" is another sshd (127.0.0.8)
 * in a mount namespace of its own where root/target is mounted over root/primary, so both hosts keep the cluster
 * at the same path, as on Debian. While rows are being written to the primary, precopy builds the replica on the
 * target (pg_basebackup -R) and waits until its lag is within max_lag; a replica whose replay is paused stays
 * above max_lag and is refused with the figures. The primary is then stopped cleanly (what the fence's deploy.stop
 * does), and the final step waits until the replica replayed the stopped primary's final checkpoint, promotes it,
 * and reports the LSNs: every row written before the stop is on the target (count and table checksums). The
 * password is in no argv, journal, log or configuration file persona wrote.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
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
import { finalCopyStep, precopyStep } from '../../src/steps/planned.js';
import { type Checksums, parseLsn } from '../../src/steps/postgresql-facts.js';
import { clusterChecksums, psql } from '../../src/steps/postgresql-sql.js';
import { Redactor } from '../../src/ui/redact.js';
import { requireBinaries } from '../helpers/binaries.js';
import { testJournal } from '../helpers/journal.js';
import { runSteps, type StepRun } from '../helpers/run-step.js';
import { freePort, startSshd, type TestSshd } from '../helpers/sshd.js';

const BIN = process.env.PERSONA_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const SLOW = 180_000;
const RUN = '20261128T030000Z-shop-db-move';
const PASSWORD = `repl-${randomBytes(12).toString('hex')}`;

let root: string;
let sock: string;
let dataDir: string;
let primaryPort: number;
let targetPort: number;
const sshds: TestSshd[] = [];
let ssh: SshTransport;
/** Every argv persona ran on a host, to prove the password is in none. */
const argvs: string[][] = [];
let recording: SshTransport;
const local = new LocalTransport();
const hosts: Record<'source' | 'target' | 'here', InventoryHost> = {} as never;
const runs: StepRun[] = [];

const asPostgres = (argv: string[]) =>
  execFileSync('runuser', ['-u', 'postgres', '--', ...argv], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
const conn = (port: number) => ({ osUser: 'postgres', bin: BIN, socket: sock, port });
const onPrimary = async (sql: string) => await psql(local, hosts.here, conn(primaryPort), 'shop', sql);
const onTarget = async (sql: string, db = 'shop') =>
  (await psql(ssh, hosts.target, conn(targetPort), db, sql)).trim();

/** Writes rows to the primary, batch after batch, until stopped: the application serving during precopy. */
const writer = {
  running: false,
  batches: 0,
  loop: Promise.resolve(),
  start() {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await onPrimary("INSERT INTO orders (note) SELECT 'live ' || g FROM generate_series(1, 200) g;\n");
        this.batches += 1;
      }
    })();
  },
  async stop() {
    this.running = false;
    await this.loop;
  },
};

beforeAll(async () => {
  requireBinaries(
    `${BIN}/initdb`,
    `${BIN}/pg_ctl`,
    `${BIN}/pg_basebackup`,
    `${BIN}/pg_controldata`,
    `${BIN}/psql`,
    'runuser',
    'unshare',
  );
  root = mkdtempSync(join(tmpdir(), 'persona-pgmove-'));
  chmodSync(root, 0o755);
  sock = join(root, 'sock');
  dataDir = join(root, 'primary', 'data');
  for (const dir of [sock, join(root, 'primary'), join(root, 'target'), join(root, 'backup')])
    mkdirSync(dir, { recursive: true });
  const pg = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
  const pgGroup = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
  for (const dir of [sock, join(root, 'primary')]) chownSync(dir, pg, pgGroup);
  primaryPort = await freePort();
  targetPort = await freePort();
  asPostgres([
    `${BIN}/initdb`,
    '-D',
    dataDir,
    '--auth-local=peer',
    '--auth-host=scram-sha-256',
    '-U',
    'postgres',
    '--no-sync',
  ]);
  writeFileSync(
    join(dataDir, 'postgresql.auto.conf'),
    [
      `port = ${primaryPort}`,
      "listen_addresses = '127.0.0.7'",
      `unix_socket_directories = '${sock}'`,
      'wal_level = replica',
      "wal_keep_size = '512MB'",
      'fsync = off',
      '',
    ].join('\n'),
  );
  // The target's replication connection, and nothing else, over TCP.
  const hba = join(dataDir, 'pg_hba.conf');
  writeFileSync(hba, `host replication replicator 127.0.0.0/8 scram-sha-256\n${readFileSync(hba, 'utf8')}`);
  asPostgres([`${BIN}/pg_ctl`, '-D', dataDir, '-l', join(root, 'primary', 'log'), '-w', 'start']);
  hosts.here = { name: 'primary', address: '127.0.0.1', labels: {}, apps: [], connection: 'local' };
  await psql(
    local,
    hosts.here,
    conn(primaryPort),
    'postgres',
    `CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '${PASSWORD}';\nCREATE DATABASE shop;\n`,
  );
  await onPrimary(
    [
      'CREATE TABLE orders (id bigserial PRIMARY KEY, note text, placed timestamptz DEFAULT now());',
      "INSERT INTO orders (note) SELECT 'initial ' || g FROM generate_series(1, 20000) g;",
      '',
    ].join('\n'),
  );

  sshds.push(await startSshd({ address: '127.0.0.7' }));
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
        join(root, 'target'),
        join(root, 'primary'),
      ],
    }),
  );
  const config = join(root, 'ssh_config');
  writeFileSync(config, sshds.map((s) => readFileSync(s.configFile, 'utf8')).join('\n'));
  ssh = new SshTransport({ configFile: config, connectTimeoutSec: 5 });
  recording = new Proxy(ssh, {
    get(t, p) {
      if (p === 'exec')
        return (host: InventoryHost, argv: string[], o: unknown) => {
          argvs.push(argv);
          return t.exec(host, argv, o as never);
        };
      const v = Reflect.get(t, p);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
  const host = (name: string, s: TestSshd): InventoryHost => ({
    name,
    address: s.address,
    port: s.port,
    labels: {},
    apps: [],
  });
  hosts.source = host('pg-source', sshds[0]!);
  hosts.target = host('pg-target', sshds[1]!);
}, 180_000);

afterAll(async () => {
  await writer.stop();
  await ssh?.close();
  for (const s of sshds) await s.stop();
  // The target's server runs in its namespace: stopped by its pid (SIGINT: a fast shutdown).
  const pidFile = root ? join(root, 'target', 'data', 'postmaster.pid') : '';
  if (pidFile && existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    try {
      process.kill(pid, 'SIGINT');
      for (let i = 0; i < 100 && existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 100));
    } catch {}
  }
  if (dataDir && existsSync(join(dataDir, 'postmaster.pid')))
    try {
      asPostgres([`${BIN}/pg_ctl`, '-D', dataDir, '-m', 'immediate', 'stop']);
    } catch {}
  if (root) rmSync(root, { recursive: true, force: true });
}, 60_000);

function context(replication: Record<string, unknown> = {}, maxLag = 30): Partial<StepContext> {
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
        backup: { host: 'pg-source', path: join(root, 'backup') },
        postgresql: {
          version: 15,
          cluster: 'main',
          port: targetPort,
          data_directory: dataDir,
          config_directory: dataDir,
          socket_directory: sock,
          max_lag: maxLag,
          replication: {
            user: 'replicator',
            password: 'env:SHOP_DB_REPLICATION',
            source_port: primaryPort,
            ...replication,
          },
        },
      },
    },
    'shop-db',
  );
  return {
    profile,
    failed: hosts.source,
    target: hosts.target,
    ssh: recording,
    backend: { get: async () => undefined, describe: 'test store' } as never,
    redactor: new Redactor(),
    stateDir: join(root, 'state'),
    env: { PATH: process.env.PATH, HOME: process.env.HOME, SHOP_DB_REPLICATION: PASSWORD },
    reporter: { info() {}, warn() {}, event() {}, task: () => ({}) } as never,
    findHost: (name: string) => Object.values(hosts).find((h) => h.name === name)!,
    now: () => new Date(),
  };
}

/** A planned move's journal; `after`: the fence and precopy succeeded, as when migrate's turn comes. */
const journal = (after = false): Journal =>
  testJournal({
    run_id: RUN,
    app: 'shop-db',
    kind: 'migrate',
    steps: [
      {
        kind: 'precopy',
        title: 'precopy',
        mutates: true,
        status: after ? 'succeeded' : 'pending',
        attempts: after ? 1 : 0,
        log: [],
      },
      ...(after
        ? [
            {
              kind: 'fence' as const,
              title: 'fence',
              mutates: true,
              status: 'succeeded' as const,
              attempts: 1,
              log: [],
            },
          ]
        : []),
      { kind: 'migrate', title: 'migrate', mutates: true, status: 'pending', attempts: 0, log: [] },
    ],
  });

const precopy = { ...precopyStep, dependsOn: [] };
const final = { ...finalCopyStep, dependsOn: [] };
const run = async (
  step: typeof precopy,
  ctx: Partial<StepContext>,
  options: { after?: boolean; dryRun?: boolean } = {},
) => {
  const r = await runSteps([step], ctx, {
    journal: journal(options.after ?? step === final),
    ...(options.dryRun ? { engine: { dryRun: true } } : {}),
  });
  runs.push(r);
  return r;
};

describe('data.migration postgresql, a planned move: a streaming replica, then its promotion', () => {
  test(
    'precopy builds the replica on the target while rows are being written, and waits until it is within max_lag',
    async () => {
      writer.start();
      const r = await run(precopy, context());
      expect(r.error).toBeUndefined();
      const record = r.record('precopy');
      expect(record.status).toBe('succeeded');
      expect((record.actions ?? []).map((a) => a.id)).toEqual(['pg:replica', 'pg:catch-up']);
      expect(writer.batches).toBeGreaterThan(0);
      expect(record.log.join('\n')).toMatch(
        /freshness: the replica replayed up to \S+, \d+ bytes behind the source's \S+; replay lag \S+ s \(max_lag 30 s, max_lag_bytes 16777216\)/,
      );
      expect(await onTarget('SELECT pg_is_in_recovery();\n')).toBe('t');
      // The connection the replica keeps names the passfile, never the password.
      const auto = readFileSync(join(root, 'target', 'data', 'postgresql.auto.conf'), 'utf8');
      expect(auto).toContain('passfile=');
      expect(auto).toContain('application_name=persona_move');
    },
    SLOW,
  );

  test(
    'a replica whose lag stays above max_lag is refused, with the figures; nothing is stopped',
    async () => {
      await onTarget('SELECT pg_wal_replay_pause();\n', 'postgres');
      await onPrimary("INSERT INTO orders (note) SELECT 'bulk ' || g FROM generate_series(1, 20000) g;\n");
      try {
        const r = await run(precopy, context({ max_lag_bytes: 65_536, catch_up_seconds: 2 }, 1));
        expect(r.error).toBeDefined();
        const record = r.record('precopy');
        expect(record.status).toBe('failed');
        expect((record.actions ?? []).map((a) => a.id)).toEqual(['pg:catch-up']);
        expect(record.error?.message).toMatch(
          /the replica on pg-target stays above max_lag after 2 s: the replica replayed up to \S+, \d{6,} bytes behind the source's \S+; replay lag [\d.]+ s \(max_lag 1 s, max_lag_bytes 65536\)/,
        );
        expect(record.error?.hint).toContain('Nothing was stopped');
        expect(existsSync(join(dataDir, 'postmaster.pid'))).toBe(true);
      } finally {
        await onTarget('SELECT pg_wal_replay_resume();\n', 'postgres');
      }
    },
    SLOW,
  );

  test(
    'before the fence, the final step is only shown (a dry run); with the source still running it is refused',
    async () => {
      const dry = await run(final, context(), { after: false, dryRun: true });
      expect(dry.error).toBeUndefined();
      const lines = dry.engine.simulation[0]!.lines.join('\n');
      expect(lines).toContain('in production');
      expect(lines).toContain(
        "would wait until the replica on pg-target has replayed pg-source's final checkpoint (read with pg_controldata once it is stopped), then promote it",
      );
      const early = await run(final, context());
      expect(early.error).toBeDefined();
      expect(early.record('migrate').error?.message).toContain(
        "pg-source's cluster is not cleanly stopped (in production)",
      );
      expect(await onTarget('SELECT pg_is_in_recovery();\n')).toBe('t');
    },
    SLOW,
  );

  let before: { rows: number; sums: Checksums; lsn: bigint };

  test(
    'after the clean stop, the final step waits for the final checkpoint, promotes, and every row is there',
    async () => {
      await writer.stop();
      before = {
        rows: Number((await onPrimary('SELECT count(*) FROM orders;\n')).trim()),
        sums: await clusterChecksums(local, hosts.here, conn(primaryPort)),
        lsn: parseLsn((await onPrimary('SELECT pg_current_wal_lsn();\n')).trim())!,
      };
      expect(before.rows).toBe(40_000 + writer.batches * 200);
      // What the fence's deploy.stop does: a clean (fast) stop, with its shutdown checkpoint.
      asPostgres([`${BIN}/pg_ctl`, '-D', dataDir, '-m', 'fast', '-w', 'stop']);
      const control = execFileSync('env', ['LC_ALL=C', `${BIN}/pg_controldata`, '-D', dataDir], {
        encoding: 'utf8',
      });
      const checkpoint = /^Latest checkpoint location:\s+(\S+)$/m.exec(control)![1]!;

      const r = await run(final, context());
      expect(r.error).toBeUndefined();
      const record = r.record('migrate');
      expect(record.status).toBe('succeeded');
      expect((record.actions ?? []).map((a) => a.id)).toEqual(['pg:promote']);
      const out = record.outputs as {
        lsn: { source_final_checkpoint: string; replayed: string; promoted: string; timeline: number };
        possible_loss: { bytes: number };
        checksums: { tables: number; by_table: Checksums['tables']; verdict: { compared: boolean } };
      };
      expect(out.lsn.source_final_checkpoint).toBe(checkpoint);
      expect(parseLsn(out.lsn.replayed)! >= parseLsn(checkpoint)!).toBe(true);
      expect(parseLsn(checkpoint)! >= before.lsn).toBe(true);
      expect(out.lsn.timeline).toBe(2);
      expect(out.possible_loss.bytes).toBe(0);
      expect(record.log.join('\n')).toContain("nothing lost: pg-target replayed pg-source's WAL to");
      // Every row written before the stop, and the same contents, on the promoted target.
      expect(await onTarget('SELECT count(*), pg_is_in_recovery() FROM orders;\n')).toBe(`${before.rows}|f`);
      expect(out.checksums.by_table).toEqual(before.sums.tables);
      expect(out.checksums.tables).toBe(1);
      expect(out.checksums.verdict.compared).toBe(false);
      // It takes writes.
      expect(await onTarget("INSERT INTO orders (note) VALUES ('after the move') RETURNING 1;\n")).toBe('1');
      // The password's one copy on the target is gone.
      expect(existsSync(join(root, 'target', `.persona-pg-data@${RUN}`, 'pgpass'))).toBe(false);
    },
    SLOW,
  );

  test(
    'planned again (a resume): nothing left; the conclusion reports the promotion from its marker',
    async () => {
      const r = await run(final, context());
      expect(r.error).toBeUndefined();
      const record = r.record('migrate');
      expect(record.status).toBe('succeeded');
      expect(record.actions ?? []).toEqual([]);
    },
    SLOW,
  );

  test('the password is in no argv, journal, log or file persona left on the target', () => {
    expect(argvs.length).toBeGreaterThan(10);
    expect(argvs.flat().join('\n')).not.toContain(PASSWORD);
    for (const r of runs) expect(JSON.stringify(r.journal)).not.toContain(PASSWORD);
    const stage = join(root, 'target', `.persona-pg-data@${RUN}`);
    for (const file of [
      join(root, 'target', 'data', 'postgresql.auto.conf'),
      join(stage, 'postgresql.log'),
      join(stage, 'promoted.json'),
    ])
      expect(readFileSync(file, 'utf8')).not.toContain(PASSWORD);
    for (const s of sshds) expect(s.log()).not.toContain(PASSWORD);
  });
});
