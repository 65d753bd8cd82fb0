/**
 * `data.migration: postgresql` end to end in the lab (issue 12 §3): the built CLI against PostgreSQL 15 from Debian
 * inside lab hosts. lab-2 runs the primary; its archive_command ships each completed WAL segment over ssh to the
 * backup host lab-4 (the key a profile secret, `file:`), where a base backup and the table checksums recorded
 * with it also go. The lab's HAProxy gets a tcp backend for port 5432 (a `listen` section added to its config,
 * then a reload). lab-2 is powered off after its last writes are archived; `persona recover lab-2` installs
 * PostgreSQL on lab-3 (the only `tier: large` host), restores the base backup and the WAL, promotes, moves HAProxy's
 * traffic, and reports the recovery point. The test checks the tables with persona's own checksum function on the
 * target and through HAProxy with a client that logs in with a password, that the new primary archives on its new
 * timeline, and that neither the key nor the password is in the archive, the base backup, the journal or the output.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { shellJoin } from '../../src/hosts/shell-quote.js';
import { SshTransport } from '../../src/hosts/ssh.js';
import { clusterChecksums, psql } from '../../src/steps/postgresql.js';
import type { Checksums } from '../../src/steps/postgresql-facts.js';
import { parseLsn, parseTableSums } from '../../src/steps/postgresql-facts.js';
import { TABLE_CHECKSUMS_SQL } from '../../src/steps/postgresql-sql.js';
import { HaproxyRuntime } from '../../src/traffic/haproxy.js';
import { requireBinaries } from '../helpers/binaries.js';
import { jsonLines } from '../helpers/cli.js';
import { freePort } from '../helpers/sshd.js';
import { fail, type LabState, labSshConfig, labState, releaseLab, sshExec } from '../lab/lab.js';
import {
  execa,
  expectEveryStepSucceeded,
  freshLab,
  journal,
  persona,
  reloadHaproxy,
  scratchDir,
  type Workspace,
  waitFor,
  workspace,
} from './lab-helpers.js';

const [PRIMARY, BACKUP_HOST, TARGET] = ['lab-2', 'lab-4', 'lab-3'];
const BACKUP = '/srv/backup/shop-db';
const BACKEND = 'shop_db';
/** psql as the cluster's user through the Unix socket, as persona runs it on a target. */
const PG = {
  osUser: 'postgres',
  bin: '/usr/lib/postgresql/15/bin',
  socket: '/var/run/postgresql',
  port: 5432,
};
/** The application role's password: only the test's client knows it (HAProxy passes the login through). */
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;

let lab: LabState;
let ws: Workspace;
let ssh: SshTransport;
let frontend: number;
let archiveKey: string;
let changed = false;
/** The primary's checksums after its last write, and what it showed around that write. */
let recorded: Checksums;
const last = { lsn: 0n, before: 0, after: 0 };

const inventoryHost = (name: string): InventoryHost => ({
  name,
  address: lab.hosts[name]!.address,
  port: 22,
  user: 'root',
  labels: {},
  apps: [],
});

/** Runs argv on a lab host with `input` on stdin (secrets travel there, never in an argument list). */
async function sshInput(host: string, argv: string[], input: string, timeout = 60_000) {
  const r = await execa('ssh', ['-F', labSshConfig(), host, '--', shellJoin(argv)], {
    input,
    reject: false,
    timeout,
  });
  if (r.exitCode !== 0) throw new Error(`${host}: ${argv.join(' ')} exited ${r.exitCode}: ${r.stderr}`);
  return String(r.stdout);
}

const WRITE_FILE =
  'set -e; mkdir -p -- "$(dirname -- "$1")"; cat > "$1"; chown -- "$2" "$1"; chmod -- "$3" "$1"';

/** archive_command: a completed segment over ssh to the backup host, never over one archived already. */
function archiveScript(backupAddress: string): string {
  return [
    '#!/bin/sh',
    '# archive_command = /usr/local/bin/archive-wal %p %f (persona lab: WAL to the backup host over ssh)',
    'set -e',
    `exec ssh -o BatchMode=yes -o ConnectTimeout=5 -i /var/lib/postgresql/.ssh/id_ed25519 -o UserKnownHostsFile=/var/lib/postgresql/.ssh/known_hosts root@${backupAddress} "test ! -f ${BACKUP}/wal/$2 && cat > ${BACKUP}/wal/$2.part && mv ${BACKUP}/wal/$2.part ${BACKUP}/wal/$2" < "$1"`,
    '',
  ].join('\n');
}

function profile(backupKnownHost: string) {
  const files = [
    {
      path: '/etc/postgresql/15/main/conf.d/persona-lab.conf',
      mode: '0644',
      owner: 'postgres',
      group: 'postgres',
      content: [
        "listen_addresses = '*'",
        'wal_level = replica',
        'archive_mode = on',
        "archive_command = '/usr/local/bin/archive-wal %p %f'",
        'archive_timeout = 60',
        '',
      ].join('\n'),
    },
    {
      path: '/etc/postgresql/15/main/pg_hba.conf',
      mode: '0640',
      owner: 'postgres',
      group: 'postgres',
      content: [
        'local all postgres peer',
        'local replication postgres peer',
        'local all all peer',
        'host all all 127.0.0.1/32 scram-sha-256',
        // HAProxy connects from the lab's bridge address.
        `host shop shop ${lab.bridge_address}/32 scram-sha-256`,
        '',
      ].join('\n'),
    },
    {
      path: '/usr/local/bin/archive-wal',
      mode: '0755',
      owner: 'root',
      content: archiveScript(lab.hosts[BACKUP_HOST]!.address),
    },
    {
      path: '/var/lib/postgresql/.ssh/known_hosts',
      mode: '0644',
      owner: 'postgres',
      content: `${backupKnownHost}\n`,
    },
  ];
  return {
    id: 'shop-db',
    description: 'PostgreSQL 15 in the lab: restored from the base backup and WAL archive on lab-4.',
    required_cores: 1,
    required_ram_gb: 0.5,
    required_storage_gb: 1,
    software_stack: ['postgresql-15'],
    security_profile: {
      users: [{ name: 'postgres', groups: ['postgres'] }],
      encryption_keys: [
        {
          name: 'archive-key',
          secret: `file:${archiveKey}`,
          path: '/var/lib/postgresql/.ssh/id_ed25519',
          owner: 'postgres',
          mode: '0600',
        },
      ],
    },
    performance_metrics: {
      cpu_utilization_pct: { max: 95 },
      memory_usage_pct: { max: 95 },
      window_seconds: 2,
      monitor_seconds: 2,
    },
    data: {
      paths: ['/var/lib/postgresql/15/main'],
      migration: 'postgresql',
      backup: { host: BACKUP_HOST, path: BACKUP },
      postgresql: { version: 15, cluster: 'main', port: 5432, max_lag: 300 },
    },
    deploy: {
      port: 5432,
      files,
      start: ['sh', '-c', 'pg_ctlcluster 15 main status >/dev/null || pg_ctlcluster 15 main start'],
      stop: ['pg_ctlcluster', '15', 'main', 'stop', '--', '-m', 'fast'],
      status: ['pg_ctlcluster', '15', 'main', 'status'],
    },
    health_checks: [
      {
        name: 'ready',
        type: 'command',
        command: ['pg_isready', '-q', '-h', '/var/run/postgresql', '-U', 'postgres'],
      },
      { name: 'port', type: 'tcp', port: 5432 },
    ],
    traffic: {
      method: 'haproxy',
      admin_socket: lab.haproxy.admin_socket,
      backend: BACKEND,
      server: '{host}',
      ...(lab.haproxy.state_file ? { state_file: lab.haproxy.state_file } : {}),
    },
    host_labels: { tier: 'large' },
  };
}

/** The primary as an operator set it up: the package, the profile's files and key, a restart. */
async function deployPrimary(p: ReturnType<typeof profile>) {
  const install = await sshExec(
    PRIMARY,
    [
      'sh',
      '-c',
      'apt-get install -y -q --no-install-recommends postgresql-15 || { apt-get update -q && apt-get install -y -q --no-install-recommends postgresql-15; }',
    ],
    { timeoutMs: 240_000 },
  );
  expect(install.exitCode, install.stderr).toBe(0);
  for (const f of p.deploy.files)
    await sshInput(
      PRIMARY,
      ['sh', '-c', WRITE_FILE, 'write', f.path, f.group ? `${f.owner}:${f.group}` : f.owner, f.mode],
      f.content,
    );
  await sshInput(
    PRIMARY,
    ['sh', '-c', WRITE_FILE, 'write', '/var/lib/postgresql/.ssh/id_ed25519', 'postgres', '0600'],
    readFileSync(archiveKey, 'utf8'),
  );
  expect((await sshExec(PRIMARY, ['pg_ctlcluster', '15', 'main', 'restart'])).exitCode).toBe(0);
}

const onPrimary = (db: string, sql: string) => psql(ssh, inventoryHost(PRIMARY), PG, db, sql);

/** The shop's tables, a base backup shipped to lab-4, writes only the archive holds, the checksums with them. */
async function fillPrimary() {
  await onPrimary(
    'postgres',
    `CREATE ROLE shop LOGIN PASSWORD '${PASSWORD}';\nCREATE DATABASE shop OWNER shop;\n`,
  );
  await onPrimary(
    'shop',
    [
      'SET ROLE shop;',
      'CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric(10,2), placed timestamptz);',
      "INSERT INTO orders SELECT g, 'customer ' || g, g * 1.5, '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 5000) g;",
      'CREATE SCHEMA "Odd schema";',
      'CREATE TABLE "Odd schema"."line items" (order_id int, sku text, doc jsonb);',
      'INSERT INTO "Odd schema"."line items" SELECT g % 5000 + 1, \'sku-\' || g, jsonb_build_object(\'n\', g) FROM generate_series(1, 3000) g;',
      '',
    ].join('\n'),
  );
  const base = await sshExec(
    PRIMARY,
    [
      'runuser',
      '-u',
      'postgres',
      '--',
      'sh',
      '-c',
      [
        'set -e',
        'cd /var/lib/postgresql',
        'rm -rf base',
        'pg_basebackup -h /var/run/postgresql -D /var/lib/postgresql/base -X none -c fast',
        `tar -C /var/lib/postgresql/base -cf - . | ssh -o BatchMode=yes -i /var/lib/postgresql/.ssh/id_ed25519 -o UserKnownHostsFile=/var/lib/postgresql/.ssh/known_hosts root@${lab.hosts[BACKUP_HOST]!.address} 'tar -C ${BACKUP}/base -xf -'`,
        'rm -rf /var/lib/postgresql/base',
      ].join('\n'),
    ],
    { timeoutMs: 120_000 },
  );
  expect(base.exitCode, base.stderr).toBe(0);
  // Written after the base backup: only the WAL archive holds it.
  last.before = Date.now();
  await onPrimary(
    'shop',
    [
      'SET ROLE shop;',
      "INSERT INTO orders SELECT g, 'late ' || g, g, now() FROM generate_series(5001, 6000) g;",
      'UPDATE orders SET total = total + 1 WHERE id % 7 = 0;',
      'DELETE FROM "Odd schema"."line items" WHERE order_id < 100;',
      '',
    ].join('\n'),
  );
  last.after = Date.now();
  last.lsn = parseLsn((await onPrimary('postgres', 'SELECT pg_current_wal_lsn();\n')).trim())!;
  recorded = await clusterChecksums(ssh, inventoryHost(PRIMARY), PG);
  await sshInput(
    BACKUP_HOST,
    ['sh', '-c', 'cat > "$1"', 'write', `${BACKUP}/checksums.json`],
    JSON.stringify({ format: 'persona-pg-checksums', taken_at: new Date().toISOString(), ...recorded }),
  );
  const segment = (await onPrimary('postgres', 'SELECT pg_walfile_name(pg_switch_wal());\n')).trim();
  await waitFor(
    `${segment} archived on ${BACKUP_HOST}`,
    async () => (await sshExec(BACKUP_HOST, ['test', '-f', `${BACKUP}/wal/${segment}`])).exitCode === 0,
    30_000,
  );
}

/** HAProxy: a tcp `listen` section for port 5432 on every lab host, only the primary enabled; then a reload. */
async function haproxyTcpBackend() {
  frontend = await freePort();
  const servers = Object.values(lab.hosts).map(
    (h) => `  server ${h.name} ${h.address}:5432 check inter 1s${h.name === PRIMARY ? '' : ' disabled'}\n`,
  );
  appendFileSync(
    lab.haproxy.config,
    `\nlisten ${BACKEND}\n  mode tcp\n  bind 127.0.0.1:${frontend}\n${servers.join('')}`,
  );
  await reloadHaproxy(lab);
  await waitFor(`HAProxy to mark ${PRIMARY} UP in ${BACKEND}`, async () => {
    const s = await new HaproxyRuntime(lab.haproxy.admin_socket).server(BACKEND, PRIMARY);
    return s?.opState === 2 || undefined;
  });
}

/** SQL through HAProxy's frontend, as the application logs in: role shop, its password. */
async function throughHaproxy(sql: string): Promise<string> {
  const r = await execa('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-F', '|', '-f', '-'], {
    input: sql,
    env: {
      PGHOST: '127.0.0.1',
      PGPORT: String(frontend),
      PGDATABASE: 'shop',
      PGUSER: 'shop',
      PGPASSWORD: PASSWORD,
      PGCONNECT_TIMEOUT: '5',
    },
    reject: false,
    timeout: 30_000,
  });
  if (r.exitCode !== 0) throw new Error(`psql through HAProxy exited ${r.exitCode}: ${r.stderr}`);
  return String(r.stdout);
}

/** The fixed strings that must appear nowhere: the password and every line of the key's body. */
function secrets(): string[] {
  const keyLines = readFileSync(archiveKey, 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('-----'));
  return [PASSWORD, ...keyLines];
}

/** Files under a directory on a host that hold any of the secrets (grep -F, patterns on stdin). */
async function filesWithSecrets(host: string, dir: string): Promise<string> {
  const r = await execa(
    'ssh',
    ['-F', labSshConfig(), host, '--', shellJoin(['grep', '-rlF', '-f', '-', '--', dir])],
    { input: `${secrets().join('\n')}\n`, reject: false, timeout: 60_000 },
  );
  // grep exits 1 when nothing matched.
  if (r.exitCode !== 1) throw new Error(`grep on ${host} exited ${r.exitCode}: ${r.stdout}${r.stderr}`);
  return String(r.stdout);
}

/** When the new primary does not archive: its server log, its archiver and what lab-4 holds. */
async function archiverDiagnosis(): Promise<string> {
  const target = await sshExec(TARGET, [
    'sh',
    '-c',
    [
      'cd /',
      'tail -n 40 /var/lib/postgresql/15/.persona-pg-main@*/postgresql.log',
      'ls -la /var/lib/postgresql/.ssh /var/lib/postgresql/15/main/pg_wal/archive_status',
      'runuser -u postgres -- psql -h /var/run/postgresql -Atc "SELECT * FROM pg_stat_archiver"',
    ].join('; '),
  ]);
  const wal = await sshExec(BACKUP_HOST, ['ls', '-la', `${BACKUP}/wal`]);
  return `${target.stdout}${target.stderr}\n${BACKUP_HOST}:${BACKUP}/wal:\n${wal.stdout}`;
}

beforeAll(async () => {
  requireBinaries('psql', 'ssh', 'ssh-keygen', 'haproxy');
  lab = await freshLab();
  changed = true;
  ws = workspace(lab);
  ssh = new SshTransport({ configFile: lab.ssh.config, connectTimeoutSec: 5 });
  archiveKey = join(scratchDir('persona-pg-key-'), 'archive_key');
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'persona-lab-archive', '-f', archiveKey]);
  // The backup host takes the archive key for root logins from the lab's subnet only.
  await sshInput(
    BACKUP_HOST,
    ['sh', '-c', 'set -e; mkdir -p "$1/base" "$1/wal"; cat >> /root/.ssh/authorized_keys', 'trust', BACKUP],
    `from="${lab.subnet}" ${readFileSync(`${archiveKey}.pub`, 'utf8')}`,
  );
  const knownLine = readFileSync(lab.ssh.known_hosts, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${BACKUP_HOST},`))!;
  const p = profile(knownLine.replace(/^\S+/, lab.hosts[BACKUP_HOST]!.address));
  writeFileSync(join(ws.store, 'shop-db.json'), JSON.stringify(p, null, 2));
  await deployPrimary(p);
  await fillPrimary();
  await haproxyTcpBackend();
  // The application reaches the primary through HAProxy, with its password.
  expect((await throughHaproxy('SELECT host(inet_server_addr());\n')).trim()).toBe(
    lab.hosts[PRIMARY]!.address,
  );
  await fail(PRIMARY, 'poweroff');
}, 600_000);

afterAll(async () => {
  try {
    await ssh?.close();
    // lab-2 is off, lab-3 runs PostgreSQL and HAProxy has a section of ours: a fresh lab, as `up` leaves it.
    if (changed || Object.values(labState().hosts).some((h) => h.fault)) await freshLab();
  } finally {
    releaseLab();
  }
});

type Step = { kind: string; status: string; log: string[]; outputs: Record<string, unknown> };

describe('data.migration postgresql (built CLI, lab, PostgreSQL 15 from Debian)', () => {
  test('primary powered off: restored onto lab-3 from lab-4, promoted, traffic through HAProxy, no secret leaked', async () => {
    const started = Date.now();
    const r = await persona(['recover', PRIMARY, '--app', 'shop-db', '--yes', '--json'], ws);
    const seconds = (Date.now() - started) / 1000;
    expect(r.code, r.stderr).toBe(0);
    const events = jsonLines(r.stdout);
    const result = events.at(-1)!;
    expect(result).toMatchObject({
      type: 'result',
      ok: true,
      runs: [{ app: 'shop-db', status: 'succeeded', target_host: TARGET }],
    });
    expectEveryStepSucceeded(events);
    const runId = (result.runs as Array<{ run_id: string }>)[0]!.run_id;
    const steps = (journal(ws, runId) as unknown as { steps: Step[] }).steps;
    const migrate = steps.find((s) => s.kind === 'migrate')!;
    const out = migrate.outputs as {
      method: string;
      source: { kind: string; host: string };
      recovery_point: { lsn: string; last_transaction_at: string; timeline: number };
      possible_loss: { seconds: number | null };
      checksums: { verdict: { compared: boolean; equal?: boolean } };
    };
    expect(out).toMatchObject({
      method: 'postgresql',
      source: { kind: 'backup-host', host: BACKUP_HOST },
      checksums: { verdict: { compared: true, equal: true } },
    });
    // The recovery point is the primary's last write: its commit, at or past its WAL position.
    expect(parseLsn(out.recovery_point.lsn)! >= last.lsn).toBe(true);
    const commit = Date.parse(out.recovery_point.last_transaction_at);
    expect(commit).toBeGreaterThanOrEqual(last.before - 1000);
    expect(commit).toBeLessThanOrEqual(last.after + 1000);
    expect(out.recovery_point.timeline).toBe(2);
    expect(migrate.log.join('\n')).toMatch(/recovery point: .* possible loss: \d+ s/);

    // The same tables as on the primary before it went off: persona's checksum function on lab-3 itself...
    const target = await clusterChecksums(ssh, inventoryHost(TARGET), PG);
    expect(target.tables).toEqual(recorded.tables);
    expect(Object.keys(recorded.tables).sort()).toEqual([
      'shop/"Odd schema"."line items"',
      'shop/public.orders',
    ]);
    // ...and through HAProxy, logged in as the application: lab-3 answers, with the same checksums.
    expect((await throughHaproxy('SELECT host(inet_server_addr());\n')).trim()).toBe(
      lab.hosts[TARGET]!.address,
    );
    const shopOnly = Object.fromEntries(
      Object.entries(recorded.tables).filter(([k]) => k.startsWith('shop/')),
    );
    expect(parseTableSums('shop', await throughHaproxy(TABLE_CHECKSUMS_SQL))).toEqual(shopOnly);
    const api = new HaproxyRuntime(lab.haproxy.admin_socket);
    expect((await api.server(BACKEND, PRIMARY))!.adminState & 0x01).toBe(1);
    expect((await api.server(BACKEND, TARGET))!.adminState & 0x21).toBe(0);

    // The new primary archives to lab-4 too, on its new timeline (its key and known_hosts came with configure).
    await waitFor(
      'the new timeline archived',
      async () =>
        (await sshExec(BACKUP_HOST, ['test', '-f', `${BACKUP}/wal/00000002.history`])).exitCode === 0,
      30_000,
    ).catch(async (error) => {
      throw new Error(`${error}\n${await archiverDiagnosis()}`);
    });

    // No secret anywhere: not in the WAL archive, the base backup or the restored cluster...
    expect(await filesWithSecrets(BACKUP_HOST, BACKUP)).toBe('');
    expect(await filesWithSecrets(TARGET, '/var/lib/postgresql/15/main')).toBe('');
    // ...nor in what persona wrote: the journal, the store, its output.
    const stored = [
      readFileSync(join(ws.state, 'runs', `${runId}.json`), 'utf8'),
      ...readdirSync(ws.store, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => readFileSync(join(e.parentPath, e.name), 'utf8')),
      r.stdout,
      r.stderr,
    ].join('\n');
    for (const s of secrets()) expect(stored).not.toContain(s);
    // The key reached the target as the profile says, from its secret reference.
    const key = await sshExec(TARGET, ['stat', '-c', '%a %U', '/var/lib/postgresql/.ssh/id_ed25519']);
    expect(key.stdout.trim()).toBe('600 postgres');
    console.log(`persona recover (postgresql, lab) took ${seconds.toFixed(1)} s`);
  });
});
