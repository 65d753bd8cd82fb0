/**
 * When watch counts a failure (src/watch/verdict.ts): rounds from two vantage points, N of M, grace after a deploy,
 * a recovery or an ack, the ack's silence, the flap budget. A clock passed in; no timers.
 */
import { describe, expect, test } from 'vitest';
import type { Ack, Round, VantageResult } from '../../src/watch/types.js';
import {
  type AppWatchState,
  defaultPolicy,
  freshState,
  judgeRound,
  policyProblems,
  stepVerdict,
  type Verdict,
  type VerdictPolicy,
} from '../../src/watch/verdict.js';

const T0 = Date.parse('2026-11-28T00:00:00.000Z');
const policy: VerdictPolicy = { ...defaultPolicy, failures: 3, rounds: 5, graceMs: 60_000, flapBudget: 2 };

const v = (vantage: string, status: VantageResult['status'], degraded?: string[]): VantageResult => ({
  vantage,
  status,
  checks: [{ name: 'http', ok: status === 'ok', detail: status }],
  ...(degraded ? { degraded } : {}),
});
/** A round: 'F' failed, '.' ok, '?' unknown, per vantage: persona then peer (one letter: persona only). */
const round = (spec: string, at: number, degraded?: string[]): Round => ({
  at: new Date(at),
  results: [...spec].map((s, i) =>
    v(i === 0 ? 'persona' : 'peer-1', s === 'F' ? 'failed' : s === '?' ? 'unknown' : 'ok', degraded),
  ),
});

/** Feeds rounds 10 s apart from `start`; every event with the round's index. */
function feed(
  specs: string[],
  options: { state?: AppWatchState; start?: number; assignedAt?: number; ack?: Ack; p?: VerdictPolicy } = {},
) {
  let state = options.state ?? freshState();
  const events: Array<Verdict & { round: number }> = [];
  specs.forEach((spec, i) => {
    const at = (options.start ?? T0) + i * 10_000;
    const r = stepVerdict(state, round(spec, at), {
      now: new Date(at),
      policy: options.p ?? policy,
      ...(options.assignedAt !== undefined ? { assignedAt: new Date(options.assignedAt) } : {}),
      ...(options.ack ? { ack: options.ack } : {}),
    });
    state = r.state;
    events.push(...r.events.map((e) => ({ ...e, round: i })));
  });
  return { state, events, kinds: events.map((e) => `${e.kind}@${e.round}`) };
}

describe('judgeRound', () => {
  test.each([
    ['FF', true, false],
    ['F.', false, false],
    ['.F', false, false],
    ['F?', false, true],
    ['..', false, false],
    ['?.', false, false],
    ['F', true, false],
    ['.', false, false],
  ])('%s: failed %s, inconclusive %s', (spec, failed, inconclusive) => {
    const j = judgeRound(round(spec, T0));
    expect(j.failed).toBe(failed);
    expect(j.inconclusive).toBe(inconclusive);
    expect(j.singleVantage).toBe(spec.length === 1);
  });

  test('names the vantage points that saw it fail, and prefixes checks with them', () => {
    const j = judgeRound(round('FF', T0));
    expect(j.failedFrom).toEqual(['persona', 'peer-1']);
    expect(j.checks.map((c) => c.name)).toEqual(['persona: http', 'peer-1: http']);
  });
});

describe('N of M rounds from two vantage points', () => {
  test('a failure counts at the Nth failed round, once', () => {
    const r = feed(['..', 'FF', 'FF', '..', 'FF', 'FF', 'FF']);
    expect(r.kinds).toEqual(['failure@4']);
    expect(r.events[0]!.vantages).toEqual(['persona', 'peer-1']);
    expect(r.events[0]!.reason).toMatch(/failed in 3 of the last 5 rounds, seen from persona and peer-1/);
    expect(r.events[0]!.single_vantage).toBeUndefined();
  });

  test('failures older than the window do not count', () => {
    const r = feed(['FF', 'FF', '..', '..', '..', '..', 'FF', '..', '..']);
    expect(r.kinds).toEqual([]);
  });

  test('a slow network on one side is not a dead host: one vantage failing never counts', () => {
    expect(feed(['F.', 'F.', 'F.', 'F.', 'F.', 'F.']).kinds).toEqual([]);
    expect(feed(['.F', '.F', '.F', '.F', '.F']).kinds).toEqual([]);
  });

  test('a failure the peer could not confirm (peer unknown) does not count', () => {
    expect(feed(['F?', 'F?', 'F?', 'F?', 'F?']).kinds).toEqual([]);
  });

  test('with no peer host, the one vantage point decides, and the event says so', () => {
    const r = feed(['F', 'F', 'F']);
    expect(r.kinds).toEqual(['failure@2']);
    expect(r.events[0]!.single_vantage).toBe(true);
    expect(r.events[0]!.reason).toMatch(/seen from persona only \(no peer host could look\)/);
  });

  test('recovered after N healthy rounds; then a fresh failure needs N failed rounds again', () => {
    const p = { ...policy, graceMs: 0 };
    const r = feed(['FF', 'FF', 'FF', '..', '..', '..', 'FF', 'FF', 'FF'], { p });
    expect(r.kinds).toEqual(['failure@2', 'recovered@5', 'failure@8']);
  });

  test('an inconclusive round does not make it recovered', () => {
    const r = feed(['FF', 'FF', 'FF', '..', 'F?', '..', '..']);
    expect(r.kinds).toEqual(['failure@2']);
    expect(r.state.failing).toBe(true);
  });

  test('N and M come from the policy: 1 of 1 counts the first failed round', () => {
    const p = { ...policy, failures: 1, rounds: 1 };
    expect(feed(['..', 'FF'], { p }).kinds).toEqual(['failure@1']);
  });
});

describe('grace periods', () => {
  test("rounds within the grace after the assignment's time (a deploy) do not count", () => {
    // Assigned at T0: rounds at 0..50 s are in the 60 s grace; 60, 70, 80 s count.
    const r = feed(['FF', 'FF', 'FF', 'FF', 'FF', 'FF', 'FF', 'FF', 'FF'], { assignedAt: T0 });
    expect(r.kinds).toEqual(['failure@8']);
  });

  test('after a recovery, failed rounds within the grace do not count', () => {
    const p = { ...policy, graceMs: 30_000 };
    // recovered at round 5 (50 s): grace until 80 s (round 8); failures at 6, 7 are ignored, 8, 9, 10 count.
    const r = feed(['FF', 'FF', 'FF', '..', '..', '..', 'FF', 'FF', 'FF', 'FF', 'FF'], { p });
    expect(r.kinds).toEqual(['failure@2', 'recovered@5', 'failure@10']);
  });
});

describe('acks', () => {
  const ack: Ack = { app: 'web', by: 'alice@ops', at: '2026-11-28T00:00:00.000Z', reason: 'kernel update' };

  test('an active ack silences the application and is announced once', () => {
    const r = feed(['FF', 'FF', 'FF', 'FF', 'FF'], { ack });
    expect(r.kinds).toEqual(['acked@0']);
    expect(r.events[0]!.reason).toMatch(/alice@ops.*until cleared: kernel update/);
    expect(r.events[0]!.ack).toEqual(ack);
  });

  test('a lapsed ack no longer silences, after a grace from its end', () => {
    // Until 20 s: rounds 0, 1 silenced; grace 60 s from 20 s: counting from 80 s (round 8).
    const until = new Date(T0 + 20_000).toISOString();
    const rounds = Array.from({ length: 11 }, () => 'FF');
    const r = feed(rounds, { ack: { ...ack, until } });
    expect(r.kinds).toEqual(['acked@0', 'failure@10']);
  });

  test('an ack that was never active is not announced', () => {
    const until = new Date(T0 - 1).toISOString();
    const r = feed(['FF', 'FF', 'FF'], { ack: { ...ack, until } });
    expect(r.kinds).toEqual(['failure@2']);
  });

  test('a new ack (another time) is announced again', () => {
    const first = feed(['FF'], { ack });
    const second = feed(['FF'], { ack: { ...ack, at: '2026-11-28T01:00:00.000Z' }, state: first.state });
    expect(second.kinds).toEqual(['acked@0']);
    expect(feed(['FF'], { ack, state: first.state }).kinds).toEqual([]);
  });
});

describe('the anti-flap budget', () => {
  const p = { ...policy, failures: 1, rounds: 1, graceMs: 0, flapBudget: 2, flapWindowMs: 3_600_000 };

  test('beyond K failure events in the hour: one flapping event, then silence', () => {
    // fail, recover (1 healthy round), fail, recover, fail (3rd: over budget 2) ...
    const r = feed(['FF', '..', 'FF', '..', 'FF', '..', 'FF', '..'], { p });
    expect(r.kinds).toEqual(['failure@0', 'recovered@1', 'failure@2', 'recovered@3', 'flapping@4']);
    expect(r.events.at(-1)!.reason).toMatch(/2 events within 60 min \(budget 2\)/);
  });

  test('the budget frees once the hour has passed', () => {
    const first = feed(['FF', '..', 'FF', '..', 'FF', '..'], { p });
    const later = feed(['FF'], { p, state: first.state, start: T0 + 3_600_000 + 1 });
    expect(later.kinds).toEqual(['failure@0']);
  });

  test('degraded events count against the same budget', () => {
    let state = freshState();
    const kinds: string[] = [];
    for (let i = 0; i < 6; i++) {
      const at = T0 + i * 10_000;
      const r = stepVerdict(state, round('..', at, i % 2 === 0 ? ['CPU 99% > 80% max'] : undefined), {
        now: new Date(at),
        policy: p,
      });
      state = r.state;
      kinds.push(...r.events.map((e) => e.kind));
    }
    expect(kinds).toEqual(['degraded', 'degraded', 'flapping']);
  });
});

describe('policyProblems', () => {
  test('names each wrong number', () => {
    expect(policyProblems(defaultPolicy)).toEqual([]);
    expect(policyProblems({ ...defaultPolicy, failures: 6, rounds: 5 })).toEqual([
      'failures (N) must be an integer from 1 to rounds (5)',
    ]);
    expect(policyProblems({ ...defaultPolicy, rounds: 0, failures: 0 })).toHaveLength(2);
  });
});
