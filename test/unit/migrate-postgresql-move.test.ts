/**
 * data.migration postgresql in a planned move: the pure decisions (the replica's lag as the source shows it, the
 * freshness gate, the stopped source's pg_controldata recorded from PostgreSQL 15, what precopy has left, the
 * passfile and the connection string that carry no password in argv).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
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
