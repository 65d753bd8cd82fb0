/**
 * data.migration postgresql: the parsers (on recorded real output of PostgreSQL 15 and the facts scripts), the
 * decisions (usable WAL, freshness gate, recovery point and possible loss, checksum comparison, what is left to do)
 * as pure functions, and the plan the step makes from scripted hosts (source choice, gate, resume states).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { type ExecResult, SshError, type SshFailureKind, type SshTarget } from '../../src/hosts/ssh.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import type { DataFrom } from '../../src/runbook/journal-schema.js';
import type { StepContext, StepRecord } from '../../src/runbook/types.js';
import { migrateStep } from '../../src/steps/migrate.js';
import { pgSettings, recoverySettings } from '../../src/steps/postgresql.js';
import {
  type ArchiveRun,
  archiveRun,
  type BackupFacts,
  compareChecksums,
  formatLsn,
  freshnessGate,
  isoTime,
  parseBackupFacts,
  parseFailedFacts,
  parseLsn,
  parseRecordedChecksums,
  parseRecoveryPoint,
  parseSegment,
  parseTableSums,
  parseTargetFacts,
  possibleLoss,
  restoreWork,
  type TargetFacts,
} from '../../src/steps/postgresql-facts.js';
import { repoRoot } from '../helpers/cli.js';

const fixture = (name: string) => readFileSync(`${repoRoot}test/fixtures/postgresql/${name}`, 'utf8');
const SEG = 16 * 1024 * 1024;

describe('WAL locations and segment names', () => {
  test.each([
    ['0/3026350', 0x3026350n],
    ['0/4000000', 0x4000000n],
    ['1A/FF000028', (0x1an << 32n) | 0xff000028n],
  ])('%s', (text, value) => {
    expect(parseLsn(text)).toBe(value);
    expect(formatLsn(value)).toBe(text.toUpperCase());
  });

  test('not an LSN', () => {
    expect(parseLsn('')).toBeUndefined();
    expect(parseLsn('0/xyz')).toBeUndefined();
    expect(parseLsn('123')).toBeUndefined();
  });

  test('a segment name is its timeline and number (256 segments of 16 MiB per 4 GiB)', () => {
    expect(parseSegment('000000010000000000000003', SEG)).toEqual({
      name: '000000010000000000000003',
      timeline: 1,
      number: 3n,
    });
    expect(parseSegment('0000000200000001000000FF', SEG)?.number).toBe(256n + 255n);
    expect(parseSegment('000000010000000000000003.partial', SEG)).toBeUndefined();
    expect(parseSegment('00000002.history', SEG)).toBeUndefined();
  });
});

describe('the backup host, from the facts script on a real pg_basebackup and archive', () => {
  const facts = parseBackupFacts(fixture('backup-facts.bin'));

  test('the label, the system identifier, the size; segments sorted, .backup and .history files apart', () => {
    expect(facts.base).toBe(true);
    expect(facts.label).toEqual({
      startLsn: '0/2000028',
      startSegment: '000000010000000000000002',
      startTime: '2026-11-27 22:32:38 UTC',
      timeline: 1,
    });
    expect(facts.systemId).toBe('7712982831479122878');
    expect(facts.baseBytes).toBe(23384248);
    expect(facts.segments.map((s) => s.name)).toEqual([
      '000000010000000000000001',
      '000000010000000000000002',
      '000000010000000000000003',
    ]);
    expect(facts.histories).toEqual(['00000002.history']);
    expect(facts.checksums).toBeUndefined();
  });

  test('usable WAL: from the base backup start segment on; the newest one dates the archive', () => {
    const run = archiveRun(facts) as ArchiveRun;
    expect(run.segments.map((s) => s.name)).toEqual(['000000010000000000000002', '000000010000000000000003']);
    expect(run.segmentBytes).toBe(SEG);
    expect(formatLsn(run.endLsn)).toBe('0/4000000');
    expect(run.newestAt?.toISOString()).toBe('2026-11-27T22:32:40.079Z');
    expect(run.unused).toEqual({ afterGap: 0, otherTimelines: 0 });
  });
});

describe('the failed host, from the facts script on a real primary stopped with -m immediate', () => {
  const failed = parseFailedFacts(fixture('failed-facts-stopped.bin'));

  test('its cluster, not running, its pg_wal segments (the .backup file left out)', () => {
    expect(failed).toMatchObject({ cluster: true, running: false, systemId: '7712982831479122878' });
    expect(failed.segments.map((x) => x.name).sort()).toEqual([
      '000000010000000000000002',
      '000000010000000000000003',
    ]);
  });

  test('everything it has is archived already: the archive alone makes the run', () => {
    const run = archiveRun(parseBackupFacts(fixture('backup-facts.bin')), failed.segments) as ArchiveRun;
    expect(run.segments.map((x) => x.from)).toEqual(['archive', 'archive']);
  });
});

const seg = (name: string, mtime = 1000, bytes = SEG) => ({ name, mtime, bytes });
const backup = (segments: BackupFacts['segments'], over: Partial<BackupFacts> = {}): BackupFacts => ({
  base: true,
  label: {
    startLsn: '0/2000028',
    startSegment: '000000010000000000000002',
    startTime: '2026-11-27 22:32:38 UTC',
    timeline: 1,
  },
  systemId: '42',
  baseBytes: 1000,
  segments,
  histories: [],
  ...over,
});

describe('archiveRun', () => {
  test('a gap stops the run: later segments are counted, not used', () => {
    const run = archiveRun(
      backup([
        seg('000000010000000000000002'),
        seg('000000010000000000000003'),
        seg('000000010000000000000005'),
      ]),
    ) as ArchiveRun;
    expect(run.segments).toHaveLength(2);
    expect(run.unused).toMatchObject({ afterGap: 1, gapAfter: '000000010000000000000003' });
  });

  test('a segment cut short (a copy that did not finish) ends the run', () => {
    const run = archiveRun(
      backup([seg('000000010000000000000002'), seg('000000010000000000000003', 1000, 4096)]),
    ) as ArchiveRun;
    expect(run.segments.map((s) => s.name)).toEqual(['000000010000000000000002']);
  });

  test('segments of other timelines are not followed, and are counted', () => {
    const run = archiveRun(
      backup([seg('000000010000000000000002'), seg('000000020000000000000003')]),
    ) as ArchiveRun;
    expect(run.segments).toHaveLength(1);
    expect(run.unused.otherTimelines).toBe(1);
  });

  test('no segment after the base backup: the archive is as old as the backup', () => {
    const run = archiveRun(backup([])) as ArchiveRun;
    expect(run.segments).toEqual([]);
    expect(run.newestAt?.toISOString()).toBe('2026-11-27T22:32:38.000Z');
  });

  test("the failed host's pg_wal continues the archive, and fills a gap in it; recycled segments end the run", () => {
    const archive = [seg('000000010000000000000002', 100), seg('000000010000000000000004', 300)];
    const pgWal = [
      seg('000000010000000000000003', 200),
      seg('000000010000000000000004', 310),
      seg('000000010000000000000005', 400),
      seg('000000010000000000000006', 50),
      seg('000000010000000000000007', 60),
    ];
    const run = archiveRun(backup(archive), pgWal) as ArchiveRun;
    expect(run.segments.map((x) => [x.name.slice(-1), x.from])).toEqual([
      ['2', 'archive'],
      ['3', 'failed-host'],
      ['4', 'archive'],
      ['5', 'failed-host'],
    ]);
    expect(formatLsn(run.endLsn)).toBe('0/6000000');
    // The archive's newest segment still dates the archive.
    expect(run.newestAt?.getTime()).toBe(300_000);
    expect(run.unused.afterGap).toBe(0);
  });

  test('no base backup', () => {
    expect(archiveRun({ ...backup([]), base: false })).toEqual({
      problem: 'no base backup with a backup_label',
    });
  });
});

describe('freshnessGate: an archive older than max_lag is refused, or accepted with the figure', () => {
  const reference = { at: new Date('2026-11-27T03:10:00Z'), what: 'the fence found db-1 down' };
  const gate = (newest: string | undefined, accepted = false) =>
    freshnessGate({
      newestAt: newest ? new Date(newest) : undefined,
      reference,
      maxLagSeconds: 300,
      accepted,
      where: 'backup-1:/srv/wal',
    });

  test.each([
    ['fresh', '2026-11-27T03:09:00Z', true, 60],
    ['exactly max_lag', '2026-11-27T03:05:00Z', true, 300],
    ['one second more', '2026-11-27T03:04:59Z', false, 301],
    ['archived after the reference (clocks apart): age 0', '2026-11-27T03:10:05Z', true, 0],
  ])('%s', (_name, newest, ok, age) => {
    const g = gate(newest);
    expect(g.ok).toBe(ok);
    expect(g.ageSeconds).toBe(age);
  });

  test('the refusal shows the figure and names --data-from backup', () => {
    const g = gate('2026-11-27T02:10:00Z');
    expect(g).toMatchObject({
      ok: false,
      message:
        'the archive is older than max_lag: the newest WAL in backup-1:/srv/wal was archived at 2026-11-27T02:10:00.000Z, 3600 s before the fence found db-1 down, more than 300 s; writes made after it would be lost',
      hint: expect.stringContaining('--data-from backup'),
    });
  });

  test('--data-from backup accepts it, and the note keeps the figure', () => {
    const g = gate('2026-11-27T02:10:00Z', true);
    expect(g.ok).toBe(true);
    expect(g).toMatchObject({
      note: expect.stringMatching(/3600 s before .*accepted with --data-from backup/),
    });
  });

  test('an archive of unknown age is refused', () => {
    expect(gate(undefined)).toMatchObject({ ok: false, message: expect.stringContaining('holds no WAL') });
  });
});

describe('the recovery point and the possible loss', () => {
  test('psql line of a promoted PostgreSQL 15 (recorded)', () => {
    expect(parseRecoveryPoint(fixture('recovery-point.txt'))).toEqual({
      lsn: '0/4000000',
      last_transaction_at: '2026-11-27T22:32:39.790Z',
      timeline: 2,
      segment_bytes: SEG,
    });
  });

  test('no transaction replayed: null; garbage: undefined', () => {
    expect(parseRecoveryPoint('0/2000100||2|16777216')?.last_transaction_at).toBeNull();
    expect(parseRecoveryPoint('ERROR')).toBeUndefined();
  });

  test.each([
    ['2026-11-27 22:32:39.790232+00', '2026-11-27T22:32:39.790Z'],
    ['2026-11-27 23:32:39+01', '2026-11-27T22:32:39.000Z'],
    ['2026-11-27 18:02:39.5-04:30', '2026-11-27T22:32:39.500Z'],
  ])('isoTime %s', (text, iso) => {
    expect(isoTime(text)).toBe(iso);
  });

  test('seconds from the last replayed transaction to the reference; bytes: one segment at most', () => {
    const point = {
      lsn: '0/4000000',
      last_transaction_at: '2026-11-27T03:00:00.400Z',
      timeline: 2,
      segment_bytes: SEG,
    };
    const loss = possibleLoss(
      point,
      { at: new Date('2026-11-27T03:10:00Z'), what: 'the fence found db-1 down' },
      { lastSegment: '000000010000000000000003' },
    );
    expect(loss).toMatchObject({
      seconds: 600,
      since: '2026-11-27T03:00:00.400Z',
      until: '2026-11-27T03:10:00.000Z',
      bytes_at_most: SEG,
    });
    expect(loss.bytes_basis).toContain('000000010000000000000003');
  });

  test("the failed host's pg_wal completed the archive: nothing lost, and the basis says so", () => {
    const point = {
      lsn: '0/5000000',
      last_transaction_at: '2026-11-27T03:09:40.000Z',
      timeline: 2,
      segment_bytes: SEG,
    };
    const loss = possibleLoss(
      point,
      { at: new Date('2026-11-27T03:10:00Z'), what: 'now' },
      { lastSegment: '000000010000000000000004', tailFrom: 'db-1' },
    );
    expect(loss).toMatchObject({ seconds: 0, bytes_at_most: 0, until_what: "the end of db-1's WAL" });
    expect(loss.bytes_basis).toContain('db-1 answered with PostgreSQL stopped');
  });

  test('no transaction replayed: the seconds are unknown', () => {
    const point = { lsn: '0/4000000', last_transaction_at: null, timeline: 2, segment_bytes: SEG };
    expect(possibleLoss(point, { at: new Date(), what: 'now' }, {}).seconds).toBeNull();
  });
});

describe('checksums', () => {
  test('psql lines of the table checksum query (recorded), by database', () => {
    expect(parseTableSums('postgres', fixture('table-checksums.txt'))).toEqual({
      'postgres/public.t': { rows: 2000, md5: '30a5539931726043940f003144e35372' },
    });
    expect(
      parseTableSums('shop', '"Odd schema"."line items"|2902|a3dc129205e00d15a85fdf5f0eba841d\n'),
    ).toEqual({
      'shop/"Odd schema"."line items"': { rows: 2902, md5: 'a3dc129205e00d15a85fdf5f0eba841d' },
    });
  });

  const sums = (next: string, md5 = 'a'.repeat(32)) => ({
    next_xid: next,
    tables: { 'shop/public.t': { rows: 3, md5 } },
  });

  test('the same transactions and the same sums: equal', () => {
    expect(compareChecksums(sums('726'), sums('726'))).toEqual({ compared: true, equal: true, tables: 1 });
  });

  test('the same transactions, another sum: a difference, named', () => {
    const v = compareChecksums(sums('726'), sums('726', 'b'.repeat(32)));
    expect(v).toMatchObject({ compared: true, equal: false });
    expect(v).toMatchObject({
      differences: [expect.stringContaining('shop/public.t: 3 rows, md5 bbbbbbbbbbbb')],
    });
  });

  test('a restore past the recorded checksums, or short of them, is not compared and says why', () => {
    expect(compareChecksums(sums('726'), sums('730'))).toMatchObject({
      compared: false,
      why: expect.stringContaining('after the checksums were recorded'),
    });
    expect(compareChecksums(sums('726'), sums('700'))).toMatchObject({
      compared: false,
      why: expect.stringContaining('those are lost'),
    });
  });

  test('the recorded file: the format is checked', () => {
    expect(parseRecordedChecksums('{')).toEqual({ problem: 'is not JSON' });
    expect(parseRecordedChecksums('{"next_xid":"1","tables":{}}')).toMatchObject({
      problem: expect.stringContaining('format'),
    });
    expect(
      parseRecordedChecksums('{"format":"persona-pg-checksums","next_xid":1,"tables":{}}'),
    ).toMatchObject({ problem: expect.stringContaining('next_xid') });
    expect(
      parseRecordedChecksums(
        '{"format":"persona-pg-checksums","next_xid":"7","tables":{"a/b":{"rows":1,"md5":"x"}}}',
      ),
    ).toEqual({ problem: 'has a bad entry for a/b' });
    expect(parseRecordedChecksums(JSON.stringify({ format: 'persona-pg-checksums', ...sums('7') }))).toEqual(
      sums('7'),
    );
  });
});

describe('the target, from the facts script (recorded), and what is left to do', () => {
  test('a running cluster with staged WAL; an absent one without PostgreSQL 14', () => {
    expect(parseTargetFacts(fixture('target-facts-promoted.bin'))).toEqual({
      datadir: 'cluster',
      systemId: '7712982831479122878',
      running: true,
      recoverySignal: false,
      baseStarted: false,
      baseDone: false,
      staged: [
        { name: '000000010000000000000003', bytes: SEG },
        { name: '000000010000000000000002', bytes: SEG },
      ],
      freeBytes: 81966404 * 1024,
      binaries: true,
    });
    expect(parseTargetFacts(fixture('target-facts-absent.bin'))).toMatchObject({
      datadir: 'absent',
      binaries: false,
      staged: [],
    });
  });

  const run = archiveRun(
    backup([seg('000000010000000000000002'), seg('000000010000000000000003')]),
  ) as ArchiveRun;
  const target = (over: Partial<TargetFacts>): TargetFacts => ({
    datadir: 'absent',
    running: false,
    recoverySignal: false,
    baseStarted: false,
    baseDone: false,
    staged: [],
    freeBytes: 1e12,
    binaries: true,
    ...over,
  });

  test.each([
    ['nothing there', target({}), { base: true, wal: 2, recover: true, moveAside: false }],
    [
      'an empty directory',
      target({ datadir: 'empty' }),
      { base: true, wal: 2, recover: true, moveAside: false },
    ],
    [
      "another cluster (Debian's fresh main)",
      target({ datadir: 'cluster', systemId: '9', running: true }),
      { base: true, wal: 2, recover: true, moveAside: true },
    ],
    [
      'this run cut short in the base backup: redone, not moved aside',
      target({ datadir: 'other', baseStarted: true }),
      { base: true, wal: 2, recover: true, moveAside: false },
    ],
    [
      'base done, one segment staged, one cut short',
      target({
        datadir: 'cluster',
        systemId: '42',
        baseStarted: true,
        baseDone: true,
        staged: [
          { name: '000000010000000000000002', bytes: SEG },
          { name: '000000010000000000000003', bytes: 100 },
        ],
      }),
      { base: false, wal: 1, recover: true, moveAside: false },
    ],
    [
      'in recovery still',
      target({
        datadir: 'cluster',
        systemId: '42',
        baseStarted: true,
        baseDone: true,
        running: true,
        recoverySignal: true,
        staged: [seg('000000010000000000000002'), seg('000000010000000000000003')],
      }),
      { base: false, wal: 0, recover: true, moveAside: false },
    ],
  ])('%s', (_name, t, expected) => {
    const work = restoreWork(t, run, '42');
    expect(work).not.toBe('done');
    if (work === 'done') return;
    expect({ ...work, wal: work.wal.length }).toEqual(expected);
  });

  test('promoted by this run: done', () => {
    expect(
      restoreWork(
        target({ datadir: 'cluster', systemId: '42', baseDone: true, running: true, recovered: '{}' }),
        run,
        '42',
      ),
    ).toBe('done');
  });

  test('the recovered marker, but another system in the directory: not done', () => {
    expect(
      restoreWork(target({ datadir: 'cluster', systemId: '9', baseDone: true, recovered: '{}' }), run, '42'),
    ).not.toBe('done');
  });
});

describe('recoverySettings', () => {
  test('restore_command quotes the staging path for the shell, then for postgresql.conf', () => {
    expect(recoverySettings('/var/lib/postgresql/15/.persona-pg-main@R1')).toBe(
      [
        'restore_command = \'cp -- /var/lib/postgresql/15/.persona-pg-main@R1/wal/%f "%p"\' # persona-restore',
        "recovery_target_timeline = 'latest' # persona-restore",
        '',
      ].join('\n'),
    );
    expect(recoverySettings("/srv/it's here")).toContain(
      `restore_command = 'cp -- ''/srv/it''\\''''s here/wal''/%f "%p"' # persona-restore`,
    );
  });
});

// ---- the plan, from scripted hosts ----

const LABEL =
  'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIME: 2026-11-27 03:00:00 UTC\nSTART TIMELINE: 1\n';
const NOW = new Date('2026-11-27T03:10:00Z');
const epoch = (iso: string) => Date.parse(iso) / 1000;

function backupText(newest = '2026-11-27T03:09:00Z', extra: string[] = []) {
  return [
    'base=yes',
    `label=${LABEL}`,
    'sysid=42',
    'base_bytes=1048576',
    `seg=000000010000000000000002 ${epoch('2026-11-27T03:00:01Z')} ${SEG}`,
    `seg=000000010000000000000003 ${epoch(newest)} ${SEG}`,
    ...extra,
    '',
  ].join('\0');
}

interface Scripted {
  /** A failure kind, or what the failed host's facts script prints (it answers). */
  failed?: SshFailureKind | string;
  backup?: string;
  target?: string;
}

const host = (name: string): InventoryHost => ({ name, address: name, labels: {}, apps: [] });
const ok = (stdout = ''): ExecResult => ({ exitCode: 0, stdout, stderr: '', durationMs: 1 });

function pgContext(
  s: Scripted,
  fence: 'down' | 'pending' | 'answering' = 'down',
  dataFrom?: DataFrom,
  maxLag = 300,
): StepContext {
  const profile = validateProfileValue(
    'orders-db.json',
    {
      id: 'orders-db',
      required_cores: 1,
      required_ram_gb: 1,
      required_storage_gb: 1,
      deploy: {
        start: ['pg_ctlcluster', '15', 'main', 'start'],
        stop: ['pg_ctlcluster', '15', 'main', 'stop'],
      },
      data: {
        migration: 'postgresql',
        backup: { host: 'backup-1', path: '/srv/backup/orders-db' },
        postgresql: { version: 15, cluster: 'main', port: 5432, max_lag: maxLag },
      },
    },
    'orders-db',
  );
  const exec = async (target: SshTarget, argv: readonly string[] = []): Promise<ExecResult> => {
    if (target.name === 'db-1') {
      const kinds = ['refused', 'auth', 'timeout', 'unreachable', 'host-key-changed'];
      if (s.failed === undefined || kinds.includes(s.failed as string)) {
        const kind = (s.failed ?? 'refused') as SshFailureKind;
        throw new SshError(kind, 'db-1', `db-1: ${kind}`);
      }
      return ok(argv.includes('persona-pg-failed') ? (s.failed as string) : '');
    }
    if (argv.includes('persona-pg-backup')) return ok(s.backup ?? backupText());
    if (argv.includes('persona-pg-target'))
      return ok(s.target ?? 'datadir=absent\0free=99999999\0binaries=yes\0');
    throw new Error(`unscripted: ${target.name} ${argv.join(' ')}`);
  };
  const fenceRecord = {
    kind: 'fence',
    title: 'fence',
    mutates: true,
    status: fence === 'pending' ? 'pending' : 'succeeded',
    attempts: 1,
    log: [],
    ...(fence === 'pending'
      ? {}
      : {
          started_at: '2026-11-27T03:09:50Z',
          finished_at: '2026-11-27T03:09:55Z',
          outputs: {
            evidence: {
              reachable: fence === 'answering',
              ...(fence === 'down' ? { unreachableKind: 'refused' } : {}),
            },
          },
        }),
  } as StepRecord;
  return {
    journal: {
      run_id: 'R1',
      options: { force_no_fence: false, strategy: 'best-fit', ...(dataFrom ? { data_from: dataFrom } : {}) },
      steps: [fenceRecord],
    } as never,
    profile,
    failed: host('db-1'),
    target: host('db-2'),
    ssh: { exec, run: exec } as never,
    signal: new AbortController().signal,
    env: {},
    findHost: host,
    previous: (kind) => (kind === 'fence' ? fenceRecord : undefined),
    checkpoint: async () => {},
    log: () => {},
    now: () => NOW,
  } as Partial<StepContext> as StepContext;
}

const ids = async (ctx: StepContext) => (await migrateStep.plan(ctx)).actions.map((a) => a.id);

describe('the plan', () => {
  test('the failed host is down, the fence found it so, the archive is fresh: base backup, WAL, recovery', async () => {
    const plan = await migrateStep.plan(pgContext({}));
    expect(plan.blocked).toBeUndefined();
    expect(plan.actions.map((a) => a.id)).toEqual(['pg:base', 'pg:wal', 'pg:recover']);
    expect(plan.actions.every((a) => a.mutates && a.observable && a.touches === 'db-2')).toBe(true);
    expect(plan.actions[0]!.title).toBe(
      'restore the base backup backup-1:/srv/backup/orders-db/base (1.0 MiB) into db-2:/var/lib/postgresql/15/main',
    );
    expect(plan.actions[1]!.title).toContain(
      'copy 2 WAL segment(s) (32.0 MiB, 000000010000000000000002…000000010000000000000003)',
    );
    expect(plan.actions[1]!.title).toContain('/var/lib/postgresql/15/.persona-pg-main@R1/wal');
    expect(plan.notes.join('\n')).toContain(
      'freshness: the newest WAL in backup-1:/srv/backup/orders-db/wal was archived at 2026-11-27T03:09:00.000Z, 55 s before the fence found db-1 down (2026-11-27T03:09:55Z) (max_lag 300 s)',
    );
    expect(plan.facts).toMatchObject({
      method: 'postgresql',
      done: false,
      archive: { segments: 2, last_segment: '000000010000000000000003' },
    });
  });

  const stopped = (segments: string[], over = 'sysid=42\0') =>
    ['cluster=yes', ...over.split('\0').filter(Boolean), ...segments.map((x) => `seg=${x}`), ''].join('\0');

  test('the failed host answers with its PostgreSQL running: blocked; the hint says how to lose nothing', async () => {
    const plan = await migrateStep.plan(
      pgContext({ failed: stopped([], 'sysid=42\0running=yes') }, 'answering'),
    );
    expect(plan.actions).toEqual([]);
    expect(plan.blocked?.message).toContain(
      'db-1 answers and its PostgreSQL runs on /var/lib/postgresql/15/main',
    );
    expect(plan.blocked?.hint).toContain('Stop PostgreSQL on db-1');
    expect(plan.blocked?.hint).toContain('--data-from backup');
    const chosen = pgContext({ failed: stopped([], 'sysid=42\0running=yes') }, 'answering', 'backup');
    expect(await ids(chosen)).toEqual(['pg:base', 'pg:wal', 'pg:recover']);
  });

  test('the failed host answers with PostgreSQL stopped: its pg_wal completes the archive, and no gate applies', async () => {
    const wal = [
      `000000010000000000000003 ${epoch('2026-11-27T02:00:00Z')} ${SEG}`,
      `000000010000000000000004 ${epoch('2026-11-27T03:09:40Z')} ${SEG}`,
      // recycled ahead of the one being written: older than it
      `000000010000000000000005 ${epoch('2026-11-27T01:00:00Z')} ${SEG}`,
    ];
    // The archive is an hour older than max_lag allows: the failed host's WAL makes it current.
    const plan = await migrateStep.plan(
      pgContext({ failed: stopped(wal), backup: backupText('2026-11-27T02:00:00Z') }, 'answering'),
    );
    expect(plan.blocked).toBeUndefined();
    expect(plan.actions.map((a) => a.id)).toEqual(['pg:base', 'pg:wal', 'pg:wal-failed', 'pg:recover']);
    expect(plan.actions[2]!.title).toContain(
      'copy 1 WAL segment(s) (16.0 MiB, 000000010000000000000004…000000010000000000000004) from db-1:/var/lib/postgresql/15/main/pg_wal',
    );
    expect(plan.notes[0]).toContain(
      'db-1 answers and has the data, with PostgreSQL stopped: its pg_wal completes the archive',
    );
    expect(plan.notes.join('\n')).toContain(
      "db-1's pg_wal continues the archive to its last write (000000010000000000000004)",
    );
    expect(plan.facts).toMatchObject({
      source: { wal_tail_from: 'db-1' },
      archive: { segments: 3, from_failed_host: 1 },
    });
  });

  test('the failed host holds another cluster: its WAL cannot complete the archive', async () => {
    const plan = await migrateStep.plan(pgContext({ failed: stopped([], 'sysid=7') }, 'answering'));
    expect(plan.blocked?.message).toContain(
      "holds another cluster than the base backup (system identifier 7, the backup's 42)",
    );
  });

  test('the failed host answers without a cluster (wiped): the archive, behind the gate', async () => {
    const plan = await migrateStep.plan(
      pgContext({ failed: '', backup: backupText('2026-11-27T02:00:00Z') }, 'answering'),
    );
    expect(plan.blocked?.message).toContain('the archive is older than max_lag');
  });

  test('the failed host stopped, but its pg_wal does not continue the archive: said, and the gate applies', async () => {
    const wal = [`000000010000000000000009 ${epoch('2026-11-27T03:09:40Z')} ${SEG}`];
    const plan = await migrateStep.plan(pgContext({ failed: stopped(wal) }, 'answering'));
    expect(plan.notes.join('\n')).toContain(
      "db-1's pg_wal does not continue the archive: restoring what the archive holds",
    );
    expect(plan.notes.join('\n')).toContain('freshness: the newest WAL');
    expect(plan.actions.map((a) => a.id)).toEqual(['pg:base', 'pg:wal', 'pg:recover']);
  });

  test('an authentication failure is no proof the host is down: blocked, as for rsync', async () => {
    const plan = await migrateStep.plan(pgContext({ failed: 'auth' }, 'answering'));
    expect(plan.blocked?.message).toMatch(/does not let persona in \(auth/);
  });

  test('a dry run before the fence: the fence is assumed to find it down, and the plan says so', async () => {
    const plan = await migrateStep.plan(pgContext({}, 'pending'));
    expect(plan.notes[0]).toContain('if the fence finds it down too');
    // No fence time yet: the archive's age is measured to now.
    expect(plan.notes.join('\n')).toContain('60 s before now (2026-11-27T03:10:00.000Z)');
  });

  test('the gate: an archive older than max_lag blocks; --data-from backup accepts it with the figure', async () => {
    const stale = { backup: backupText('2026-11-27T02:00:00Z') };
    const blocked = await migrateStep.plan(pgContext(stale));
    expect(blocked.actions).toEqual([]);
    expect(blocked.blocked?.message).toContain('4195 s before the fence found db-1 down');
    const accepted = await migrateStep.plan(pgContext(stale, 'down', 'backup'));
    expect(accepted.blocked).toBeUndefined();
    expect(accepted.notes.join('\n')).toContain('4195 s before');
    expect(accepted.notes.join('\n')).toContain('accepted with --data-from backup');
  });

  test('no PostgreSQL binaries on the target, or no room: blocked before any change', async () => {
    const none = await migrateStep.plan(pgContext({ target: 'datadir=absent\0free=99999999\0' }));
    expect(none.blocked?.message).toBe(
      'db-2: /usr/lib/postgresql/15/bin/pg_ctl or psql is not installed (data.migration postgresql needs PostgreSQL 15 on the target)',
    );
    const full = await migrateStep.plan(pgContext({ target: 'datadir=absent\0free=1024\0binaries=yes\0' }));
    expect(full.blocked?.message).toBe(
      'db-2: 1.0 MiB free for /var/lib/postgresql/15/main; the base backup and WAL need 33.0 MiB',
    );
  });

  test("another cluster on the target (Debian's fresh one): stopped, moved aside, never deleted", async () => {
    const plan = await migrateStep.plan(
      pgContext({ target: 'datadir=cluster\0sysid=9\0running=yes\0free=99999999\0binaries=yes\0' }),
    );
    expect(plan.actions[0]!.title).toContain(
      'stopping the PostgreSQL running on /var/lib/postgresql/15/main; what is there now is moved aside to /var/lib/postgresql/15/main.persona-previous-R1, not deleted',
    );
  });

  test('resumed after the base backup and one segment: only the rest', async () => {
    const target = `datadir=cluster\0sysid=42\0base_started=yes\0base_done=yes\0staged=000000010000000000000002 ${SEG}\0free=99999999\0binaries=yes\0`;
    const plan = await migrateStep.plan(pgContext({ target }));
    expect(plan.actions.map((a) => a.id)).toEqual(['pg:wal', 'pg:recover']);
    expect(plan.actions[0]!.title).toContain('copy 1 WAL segment(s)');
  });

  test('restored and promoted by this run: nothing to do, the staged WAL deleted after the check, the recovery point in the facts', async () => {
    const point = {
      lsn: '0/4000000',
      last_transaction_at: '2026-11-27T03:08:59.000Z',
      timeline: 2,
      segment_bytes: SEG,
    };
    const marker = {
      recovery_point: point,
      source: { kind: 'backup-host', host: 'backup-1', why: 'db-1 is down', wal_tail_from: 'db-1' },
      archive: { base: 'backup-1:/b/base', wal: 'backup-1:/b/wal', segments: 3, from_failed_host: 1 },
    };
    const target = `datadir=cluster\0sysid=42\0running=yes\0base_started=yes\0base_done=yes\0recovered=${JSON.stringify(marker)}\0staged=000000010000000000000002 ${SEG}\0free=99999999\0binaries=yes\0`;
    // An archive too old by now does not matter: the gate is for a restore still to do.
    const plan = await migrateStep.plan(pgContext({ target, backup: backupText('2026-11-27T01:00:00Z') }));
    expect(plan.blocked).toBeUndefined();
    expect(plan.actions).toEqual([]);
    expect(plan.after?.map((a) => a.id)).toEqual(['pg:cleanup']);
    expect(plan.facts).toMatchObject({ done: true, ...marker });
    expect(plan.notes[0]).toContain("and db-1's pg_wal");
    // The failed host back and running by now: not asked again, the restore stays done.
    const later = await migrateStep.plan(
      pgContext({ target, failed: 'cluster=yes\0sysid=42\0running=yes\0' }, 'answering'),
    );
    expect(later.blocked).toBeUndefined();
    expect(later.actions).toEqual([]);
  });

  test('a gap in the archive: the plan says replay stops there', async () => {
    const plan = await migrateStep.plan(
      pgContext({
        backup: backupText(undefined, [
          `seg=000000010000000000000009 ${epoch('2026-11-27T03:09:30Z')} ${SEG}`,
        ]),
      }),
    );
    expect(plan.notes.join('\n')).toContain(
      'has 1 segment(s) after a gap following 000000010000000000000003: replay stops at the gap',
    );
  });

  test('no base backup on the backup host', async () => {
    const plan = await migrateStep.plan(pgContext({ backup: 'base=no\0' }));
    expect(plan.blocked?.message).toBe(
      'backup-1:/srv/backup/orders-db/base: no base backup with a backup_label',
    );
  });
});

describe('settings and the step text', () => {
  test('Debian defaults from version and cluster; the backup layout under data.backup.path', () => {
    const ctx = pgContext({});
    expect(pgSettings(ctx.profile, 'R1')).toMatchObject({
      dataDir: '/var/lib/postgresql/15/main',
      configDir: '/etc/postgresql/15/main',
      bin: '/usr/lib/postgresql/15/bin',
      stage: '/var/lib/postgresql/15/.persona-pg-main@R1',
      base: '/srv/backup/orders-db/base',
      wal: '/srv/backup/orders-db/wal',
      checksums: '/srv/backup/orders-db/checksums.json',
      maxLag: 300,
    });
  });

  test('describe and checks name the method, the archive and the gate', () => {
    const ctx = pgContext({});
    expect(migrateStep.describe(ctx).join('\n')).toContain(
      'restore PostgreSQL 15 onto db-2:/var/lib/postgresql/15/main from the base backup backup-1:/srv/backup/orders-db/base',
    );
    expect(migrateStep.checks?.(ctx).join('\n')).toContain('table checksums compared');
  });
});

describe('the profile', () => {
  const base = {
    id: 'x',
    required_cores: 1,
    required_ram_gb: 1,
    required_storage_gb: 1,
    deploy: { start: ['true'], stop: ['true'] },
  };
  const problems = (data: unknown) => {
    try {
      validateProfileValue('x.json', { ...base, data }, 'x');
      return [];
    } catch (error) {
      return (error as { problems?: Array<{ path: string; message: string }> }).problems ?? [String(error)];
    }
  };

  test('postgresql needs data.postgresql and a backup host; data.paths empty or the data directory', () => {
    expect(problems({ migration: 'postgresql' })).toEqual([
      expect.objectContaining({ path: '/data/postgresql' }),
      expect.objectContaining({ path: '/data/backup' }),
    ]);
    expect(problems({ migration: 'postgresql', postgresql: {}, backup: { path: '/srv/b' } })).toEqual([
      expect.objectContaining({ path: '/data/backup/host' }),
    ]);
    expect(
      problems({
        migration: 'postgresql',
        postgresql: {},
        backup: { host: 'b', path: '/srv/b' },
        paths: ['/srv/pg'],
      }),
    ).toEqual([
      expect.objectContaining({
        path: '/data/paths',
        message: expect.stringContaining('/var/lib/postgresql/15/main'),
      }),
    ]);
    expect(
      problems({
        migration: 'postgresql',
        postgresql: {},
        backup: { host: 'b', path: '/srv/b' },
        paths: ['/var/lib/postgresql/15/main'],
      }),
    ).toEqual([]);
    expect(problems({ migration: 'rsync', paths: ['/srv/a'], postgresql: {} })).toEqual([
      expect.objectContaining({ path: '/data/postgresql' }),
    ]);
  });

  test('defaults: version 15, cluster main, port 5432, user postgres, max_lag 300 s', () => {
    const p = validateProfileValue(
      'x.json',
      { ...base, data: { migration: 'postgresql', postgresql: {}, backup: { host: 'b', path: '/srv/b' } } },
      'x',
    );
    expect(p.data.postgresql).toEqual({
      version: 15,
      cluster: 'main',
      port: 5432,
      os_user: 'postgres',
      socket_directory: '/var/run/postgresql',
      max_lag: 300,
    });
  });
});
