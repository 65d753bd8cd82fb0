import { describe, expect, test } from 'vitest';
import { HALF_LIFE_DAYS, historyByHost, hostHistory, PENALTY } from '../../src/broker/history.js';
import type { Observation } from '../../src/feedback/observations.js';

const NOW = new Date('2026-11-27T12:00:00.000Z');
const DAY = 86_400_000;
let runs = 0;
/** An observation `days` before NOW. */
const seen = (days: number, over: Partial<Observation> = {}): Observation => ({
  at: new Date(NOW.getTime() - days * DAY).toISOString(),
  app: 'demo-web',
  host: 'lab-3',
  source: 'validate',
  run_id: `run-${++runs}`,
  ok: false,
  missed: ['health'],
  ...over,
});

describe('decay: a failure takes a fixed amount off and halves every HALF_LIFE_DAYS', () => {
  test.each([
    [0, 0.5],
    [HALF_LIFE_DAYS, 0.75],
    [2 * HALF_LIFE_DAYS, 0.875],
    [7, 1 - 0.5 * 0.5 ** (7 / 3)],
    [12, 1 - 0.5 / 16],
    // Decayed below 1/100: left out; and past the horizon (30 days) nothing counts at all.
    [29, 1],
    [31, 1],
  ])('one failed validation %s days ago: %s', (days, score) => {
    expect(hostHistory([seen(days)], NOW).score).toBeCloseTo(score, 3);
  });

  test('failures add up, and the component never goes below 0', () => {
    expect(hostHistory([seen(0), seen(0)], NOW).score).toBe(0);
    expect(hostHistory([seen(0), seen(0), seen(0)], NOW).score).toBe(0);
    expect(hostHistory([seen(0), seen(HALF_LIFE_DAYS)], NOW).score).toBeCloseTo(0.25, 3);
  });

  test('a failed validation weighs more than failed monitor health, than a missed monitor target, than a watch', () => {
    const one = (o: Observation) => 1 - hostHistory([o], NOW).score;
    const validate = one(seen(0, { missed: ['cpu'] }));
    const monitorHealth = one(seen(0, { source: 'monitor', missed: ['health', 'cpu'] }));
    const monitorTarget = one(seen(0, { source: 'monitor', missed: ['cpu'] }));
    const watch = one(seen(0, { source: 'watch', missed: ['unreachable'], run_id: undefined }));
    expect(validate).toBeCloseTo(PENALTY.validate, 9);
    expect(monitorHealth).toBeCloseTo(PENALTY['monitor-health'], 9);
    expect(monitorTarget).toBeCloseTo(PENALTY['monitor-target'], 9);
    expect(watch).toBeCloseTo(PENALTY.watch, 9);
    expect(validate).toBeGreaterThan(monitorHealth);
    expect(monitorHealth).toBeGreaterThan(monitorTarget);
    expect(monitorTarget).toBeGreaterThan(watch);
  });

  test('successes take nothing off; a run counts by its last verdict; watch checks each count', () => {
    expect(hostHistory([seen(0, { ok: true, missed: [] })], NOW)).toEqual({ score: 1 });
    // validate tried twice in one run: one validation, its last verdict.
    const failedTwice = [seen(1, { run_id: 'r' }), seen(0.5, { run_id: 'r' })];
    expect(hostHistory(failedTwice, NOW).reason).toBe('1 failed validation in the last day');
    expect(hostHistory([seen(1, { run_id: 'r' }), seen(0.5, { run_id: 'r', ok: true })], NOW).score).toBe(1);
    const watch = (d: number) => seen(d, { source: 'watch', run_id: undefined, missed: ['latency'] });
    expect(hostHistory([watch(0), watch(0)], NOW).score).toBeCloseTo(1 - 2 * PENALTY.watch, 3);
  });

  test('a negligible, long-decayed failure is left out; a clock ahead counts as now', () => {
    const old = seen(10, { source: 'watch', run_id: undefined });
    expect(hostHistory([old], NOW)).toEqual({ score: 1 });
    expect(hostHistory([seen(-1)], NOW).score).toBe(0.5);
  });
});

describe('the reason, in words', () => {
  test('counts by kind, and the span from the oldest that counts', () => {
    expect(hostHistory([seen(1), seen(6.5)], NOW).reason).toBe('2 failed validations in the last 7 days');
    expect(
      hostHistory(
        [
          seen(0.2),
          seen(1.5, { source: 'monitor', missed: ['cpu', 'memory'] }),
          seen(0.1, { source: 'watch', run_id: undefined, missed: ['unreachable'] }),
          seen(0.3, { source: 'watch', run_id: undefined, missed: ['unreachable'] }),
          seen(0.4, { source: 'monitor', missed: ['health'] }),
        ],
        NOW,
      ).reason,
    ).toBe(
      '1 failed validation, 1 failed monitor after a switch, 1 monitor missing targets (cpu, memory), 2 failed watch checks in the last 2 days',
    );
  });

  test('by host: only observed hosts are there', () => {
    const map = historyByHost([seen(0), seen(0, { host: 'lab-2', ok: true, missed: [] })], NOW);
    expect([...map.keys()].sort()).toEqual(['lab-2', 'lab-3']);
    expect(map.get('lab-2')).toEqual({ score: 1 });
    expect(map.get('lab-3')).toEqual({ score: 0.5, reason: '1 failed validation in the last day' });
  });
});
