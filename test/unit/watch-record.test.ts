/**
 * ObservationKeeper: watch keeps a change at once and otherwise one observation a minute per application, host,
 * vantage point and verdict, so that a long failure is a few records and not one per round.
 */
import { describe, expect, test } from 'vitest';
import type { Observation } from '../../src/feedback/observations.js';
import { KEEP_EVERY_MS, ObservationKeeper } from '../../src/watch/record.js';

const t0 = Date.parse('2026-11-28T06:00:00Z');
const obs = (s: number, ok: boolean, over: Partial<Observation> = {}): Observation => ({
  at: new Date(t0 + s * 1000).toISOString(),
  app: 'web',
  host: 'h1',
  source: 'watch',
  ok,
  vantage: 'persona',
  ...over,
});

describe('ObservationKeeper.offer', () => {
  test('the first look is kept, the same verdict again within the minute is not, a minute later it is', () => {
    const k = new ObservationKeeper();
    expect(k.offer(obs(0, true))).toBe(true);
    expect(k.offer(obs(1, true))).toBe(false);
    expect(k.offer(obs(59, true))).toBe(false);
    expect(k.offer(obs(KEEP_EVERY_MS / 1000, true))).toBe(true);
  });

  test('a change of verdict is kept at once, both ways', () => {
    const k = new ObservationKeeper();
    expect(k.offer(obs(0, true))).toBe(true);
    expect(k.offer(obs(1, false))).toBe(true);
    expect(k.offer(obs(2, false))).toBe(false);
    expect(k.offer(obs(3, true))).toBe(true);
  });

  test('ten minutes of failing rounds every second are ten records', () => {
    const k = new ObservationKeeper();
    let kept = 0;
    for (let s = 0; s < 600; s++) if (k.offer(obs(s, false))) kept++;
    expect(kept).toBe(10);
  });

  test('each vantage point, host and application counts on its own', () => {
    const k = new ObservationKeeper();
    expect(k.offer(obs(0, true))).toBe(true);
    expect(k.offer(obs(0, true, { vantage: 'h2' }))).toBe(true);
    expect(k.offer(obs(0, true, { host: 'h3' }))).toBe(true);
    expect(k.offer(obs(0, true, { app: 'db' }))).toBe(true);
    expect(k.offer(obs(1, true, { vantage: 'h2' }))).toBe(false);
  });

  test('a sampled round with figures is kept a quarter minute after a record without them', () => {
    const k = new ObservationKeeper();
    expect(k.offer(obs(0, true))).toBe(true);
    expect(k.offer(obs(5, true, { metrics: { cpu_pct: 3 } }))).toBe(false);
    expect(k.offer(obs(15, true, { metrics: { cpu_pct: 3 } }))).toBe(true);
    expect(k.offer(obs(30, true, { metrics: { cpu_pct: 4 } }))).toBe(false);
  });
});
