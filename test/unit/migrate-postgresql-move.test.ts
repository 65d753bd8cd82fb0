/**
 * data.migration postgresql in a planned move: the pure decisions (the replica's lag as the source shows it, the
 * freshness gate, the stopped source's pg_controldata recorded from PostgreSQL 15, what precopy has left, the
 * passfile and the connection string that carry no password in argv), and the plans both steps make from
 * scripted hosts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import type { ExecResult, SshTarget } from '../../src/hosts/ssh.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import type { StepContext, StepRecord } from '../../src/runbook/types.js';
import { finalCopyStep, precopyStep } from '../../src/steps/planned.js';
import {
  parseControlData,
  parsePromotedMarker,
  parseReplicaLag,
  parseReplicaTarget,
  passfileLine,
  replayedTo,
  replicaConninfo,
  replicaGate,
  replicaWork,
} from '../../src/steps/postgresql-move-facts.js';
import { Redactor } from '../../src/ui/redact.js';

describe('parseReplicaLag', () => {
  test.each([
    [
      'streaming, 238 bytes behind',
      '0/5000148|0/5000060|0.001234',
      undefined,
      { bytes: 232, seconds: 0.001234 },
    ],
    ['caught up and idle: no replay_lag', '0/5000148|0/5000148|', undefined, { bytes: 0, seconds: 0 }],
    [
      'behind and no replay_lag: seconds unknown',
      '0/5000148|0/5000000|',
      undefined,
      { bytes: 328, seconds: null },
    ],
    [
      "the replica's own position is fresher than its last report",
      '0/5000148|0/5000000|0.5',
      '0/5000148',
      { bytes: 0, replay: '0/5000148', seconds: 0.5 },
    ],
    [
      'an older own position does not win over the report',
      '1/0|0/FFFFFF00|2',
      '0/FFFFFE00',
      { bytes: 256, replay: '0/FFFFFF00', seconds: 2 },
    ],
  ])('%s', (_what, line, own, expected) => {
    expect(parseReplicaLag(line, own)).toMatchObject(expected);
  });

  test('not streaming: no replay position', () => {
    expect(parseReplicaLag('0/5000148||\n')).toEqual({ current: '0/5000148', seconds: null });
  });

  test.each(['', 'garbage', '0/5|0/4|soon'])('unreadable: %j', (line) => {
    expect(parseReplicaLag(line)).toBeUndefined();
  });
});

describe('replicaGate: the freshness gate of a planned move', () => {
  const max = { seconds: 5, bytes: 1000 };
  const lag = (bytes: number, seconds: number | null) =>
    parseReplicaLag(`0/10000|0/${(0x10000 - bytes).toString(16).toUpperCase()}|${seconds ?? ''}`)!;

  test.each([
    [0, 0, true],
    [1000, 5, true],
    [1001, 0, false],
    [10, 5.001, false],
    [10, null, true],
    [2000, null, false],
  ])('%d bytes, %s s behind: ok %s', (bytes, seconds, ok) => {
    expect(replicaGate(lag(bytes, seconds), max).ok).toBe(ok);
  });

  test('the figure says both measures and both limits', () => {
    expect(replicaGate(lag(4096, 10.5), max)).toEqual({
      ok: false,
      figure:
        "the replica replayed up to 0/F000, 4096 bytes behind the source's 0/10000; replay lag 10.500 s (max_lag 5 s, max_lag_bytes 1000)",
    });
  });

  test('a replica that does not stream is refused', () => {
    expect(replicaGate(parseReplicaLag('0/10000||')!, max)).toEqual({
      ok: false,
      figure: 'the replica does not stream from the source (at 0/10000)',
    });
  });
});

describe('parseControlData (pg_controldata of PostgreSQL 15, LC_ALL=C)', () => {
  test('a cleanly stopped cluster: its final checkpoint', () => {
    const text = readFileSync('test/fixtures/postgresql/pg_controldata-shut-down.txt', 'utf8');
    expect(parseControlData(text)).toEqual({
      systemId: '7642011472967116994',
      state: 'shut down',
      checkpoint: '0/1500718',
      redo: '0/1500718',
      timeline: 1,
    });
  });

  test('a running one says so', () => {
    expect(parseControlData('Database cluster state:               in production\n').state).toBe(
      'in production',
    );
  });
});

test.each([
  ['0/1500718', '0/1500718', true],
  ['0/1500790', '0/1500718', true],
  ['0/1500700', '0/1500718', false],
  ['1/0', '0/FFFFFFFF', true],
  ['', '0/1', false],
])('replayedTo(%s, %s) = %s', (replay, checkpoint, ok) => {
  expect(replayedTo(replay, checkpoint)).toBe(ok);
});

describe('replicaWork: what precopy has left', () => {
  const target = (fields: string[]) => parseReplicaTarget(`${fields.join('\0')}\0`);
  const ours = ['cluster=yes', 'sysid=42', 'standby=yes', 'free=100', 'binaries=yes'];

  test.each([
    ['nothing there', [], 'build'],
    ['another cluster', ['cluster=yes', 'sysid=7', 'standby=yes', 'running=yes'], 'build'],
    [
      'the promoted copy of an earlier move (no standby.signal)',
      ['cluster=yes', 'sysid=42', 'running=yes'],
      'build',
    ],
    ['its replica, stopped', ours, 'start'],
    ['its replica, running', [...ours, 'running=yes'], 'streaming'],
  ])('%s: %s', (_what, fields, work) => {
    expect(replicaWork(target(fields), '42')).toBe(work);
  });

  test('the facts', () => {
    expect(target([...ours, 'passfile=yes', 'promoted={"x":1}'])).toEqual({
      cluster: true,
      systemId: '42',
      running: false,
      standby: true,
      promoted: '{"x":1}',
      passfile: true,
      freeBytes: 102_400,
      binaries: true,
    });
  });
});

describe('the password travels in a passfile, never in the connection string', () => {
  test('passfile fields are escaped; a final newline (file: reference) is not part of it', () => {
    expect(passfileLine('10.0.0.1', 5432, 'replicator', 'a:b\\c\n')).toBe(
      '10.0.0.1:5432:replication:replicator:a\\:b\\\\c\n',
    );
  });

  test('the connection string names the passfile, quoted', () => {
    expect(
      replicaConninfo({ host: 'db-1', port: 5433, user: 'replicator', passfile: "/var/lib/it's/pgpass" }),
    ).toBe(
      "host='db-1' port=5433 user='replicator' passfile='/var/lib/it\\'s/pgpass' application_name=persona_move",
    );
  });
});

test('parsePromotedMarker', () => {
  const marker = { source_checkpoint: '0/5', replayed_lsn: '0/6', promoted_lsn: '0/7', timeline: 2 };
  expect(parsePromotedMarker(JSON.stringify(marker))).toEqual(marker);
  expect(parsePromotedMarker('{"source_checkpoint":"0/5"}')).toBeUndefined();
  expect(parsePromotedMarker('not json')).toBeUndefined();
});

const CONTROL = readFileSync('test/fixtures/postgresql/pg_controldata-shut-down.txt', 'utf8');
const SYSID = '7642011472967116994';
const host = (name: string): InventoryHost => ({ name, address: `${name}.lan`, labels: {}, apps: [] });
const ok = (stdout = ''): ExecResult => ({ exitCode: 0, stdout, stderr: '', durationMs: 1 });

interface Hosts {
  source?: string;
  control?: string;
  target?: string;
  env?: Record<string, string>;
  /** fence and precopy recorded done, as when migrate's turn comes. */
  after?: boolean;
}

function moveContext(h: Hosts): StepContext & { calls: string[][] } {
  const profile = validateProfileValue(
    'orders-db.json',
    {
      id: 'orders-db',
      required_cores: 1,
      required_ram_gb: 1,
      required_storage_gb: 1,
      deploy: { start: ['true'], stop: ['true'] },
      data: {
        migration: 'postgresql',
        backup: { host: 'backup-1', path: '/srv/backup/orders-db' },
        postgresql: {
          version: 15,
          max_lag: 30,
          replication: { password: 'env:ORDERS_DB_REPLICATION' },
        },
      },
    },
    'orders-db',
  );
  const calls: string[][] = [];
  const exec = async (target: SshTarget, argv: readonly string[] = []): Promise<ExecResult> => {
    calls.push([target.name, ...argv]);
    if (target.name === 'db-1' && argv.includes('persona-pg-failed'))
      return ok(h.source ?? `cluster=yes\0sysid=${SYSID}\0running=yes\0`);
    if (target.name === 'db-1' && argv.some((a) => a.endsWith('/pg_controldata')))
      return ok(h.control ?? CONTROL);
    if (target.name === 'db-2' && argv.includes('persona-pg-replica'))
      return ok(h.target ?? 'free=99999999\0binaries=yes\0');
    throw new Error(`unscripted: ${target.name} ${argv.join(' ')}`);
  };
  const done = (kind: 'precopy' | 'fence') =>
    ({ kind, title: kind, mutates: true, status: 'succeeded', attempts: 1, log: [] }) as StepRecord;
  return {
    calls,
    journal: {
      run_id: 'R1',
      options: { force_no_fence: false, strategy: 'best-fit' },
      steps: h.after ? [done('precopy'), done('fence')] : [],
    } as never,
    profile,
    failed: host('db-1'),
    target: host('db-2'),
    ssh: { exec, run: exec } as never,
    signal: new AbortController().signal,
    env: h.env ?? { ORDERS_DB_REPLICATION: 'hunter2-replication' },
    backend: { get: async () => undefined, describe: 'test store' } as never,
    redactor: new Redactor(),
    previous: (kind: string) =>
      h.after && (kind === 'fence' || kind === 'precopy') ? done(kind) : undefined,
    log: () => {},
    now: () => new Date('2026-11-28T03:00:00Z'),
  } as Partial<StepContext> as StepContext & { calls: string[][] };
}

const replica = `cluster=yes\0sysid=${SYSID}\0standby=yes\0free=99999999\0binaries=yes\0`;

describe('the plans of a planned PostgreSQL move', () => {
  test('precopy: no replica yet: build it, then wait for the gate; the password is nowhere in the plan', async () => {
    const ctx = moveContext({});
    const plan = await precopyStep.plan(ctx);
    expect(plan.blocked).toBeUndefined();
    expect(plan.actions.map((a) => a.id)).toEqual(['pg:replica', 'pg:catch-up']);
    expect(plan.actions[0]!.title).toContain(
      'build a streaming replica of db-1 (db-1.lan:5432, as replicator)',
    );
    expect(plan.notes.join('\n')).toContain('password from env:ORDERS_DB_REPLICATION');
    expect(JSON.stringify([plan.notes, plan.actions.map((a) => a.title), ctx.calls])).not.toContain(
      'hunter2',
    );
  });

  test('precopy: its replica runs already: only the gate; stopped: start it', async () => {
    expect(
      (await precopyStep.plan(moveContext({ target: `${replica}running=yes\0` }))).actions.map((a) => a.id),
    ).toEqual(['pg:catch-up']);
    const stopped = await precopyStep.plan(moveContext({ target: replica }));
    expect(stopped.actions.map((a) => a.title)[0]).toMatch(/^start the replica in db-2:/);
  });

  test('precopy: blocked, before any remote command, when the password cannot be read', async () => {
    const ctx = moveContext({ env: {} });
    const plan = await precopyStep.plan(ctx);
    expect(plan.blocked?.message).toMatch(/env:ORDERS_DB_REPLICATION .*ORDERS_DB_REPLICATION is not set/);
    expect(ctx.calls).toEqual([]);
  });

  test('precopy: blocked when the source does not run', async () => {
    const plan = await precopyStep.plan(moveContext({ source: `cluster=yes\0sysid=${SYSID}\0` }));
    expect(plan.blocked?.message).toContain(
      'PostgreSQL does not run; a planned move streams from the running primary',
    );
  });

  test('migrate: the source cleanly stopped, the target its running replica: promote after its final checkpoint', async () => {
    const plan = await finalCopyStep.plan(moveContext({ after: true, target: `${replica}running=yes\0` }));
    expect(plan.blocked).toBeUndefined();
    expect(plan.actions.map((a) => a.title)).toEqual([
      "wait until the replica on db-2 has replayed db-1's final checkpoint 0/1500718, then promote it (pg_promote)",
    ]);
  });

  test('migrate: refused when the source is not cleanly stopped, or the target is not its replica', async () => {
    const running = CONTROL.replace('shut down', 'in production');
    const a = await finalCopyStep.plan(
      moveContext({ after: true, control: running, target: `${replica}running=yes\0` }),
    );
    expect(a.blocked?.message).toContain("db-1's cluster is not cleanly stopped (in production)");
    const other = await finalCopyStep.plan(
      moveContext({ after: true, target: 'cluster=yes\0sysid=7\0running=yes\0free=1\0binaries=yes\0' }),
    );
    expect(other.blocked?.message).toContain(
      "db-2:/var/lib/postgresql/15/main is not a running replica of db-1's cluster",
    );
  });

  test('migrate, shown before the fence ran (a dry run): the promotion, the checkpoint read then', async () => {
    const plan = await finalCopyStep.plan(
      moveContext({ control: CONTROL.replace('shut down', 'in production') }),
    );
    expect(plan.blocked).toBeUndefined();
    expect(plan.actions[0]!.title).toContain('(read with pg_controldata once it is stopped)');
  });
});
