import { describe, expect, test } from 'vitest';
import { timelineBar } from '../../src/cli/run-summary.js';
import { summarize } from '../../src/recover/summary.js';
import type { StepKind, StepRecord } from '../../src/runbook/types.js';
import { testJournal } from '../helpers/journal.js';

const rec = (kind: StepKind, startS: number, tookS: number): StepRecord => ({
  kind,
  title: kind,
  mutates: true,
  status: 'succeeded',
  attempts: 1,
  log: [],
  started_at: new Date(Date.parse('2026-11-27T03:00:00Z') + startS * 1000).toISOString(),
  duration_ms: tookS * 1000,
});

describe('the run summary of overlapping steps', () => {
  const journal = testJournal({
    status: 'succeeded',
    steps: [rec('fence', 0, 5), rec('configure', 0, 3), rec('migrate', 5, 2), rec('validate', 7, 3)],
  });

  test('each step starts where it started, and the total is wall time, not the sum of the steps', () => {
    const s = summarize(journal);
    expect(s.steps.map((x) => [x.kind, x.start_ms, x.duration_ms])).toEqual([
      ['fence', 0, 5000],
      ['configure', 0, 3000],
      ['migrate', 5000, 2000],
      ['validate', 7000, 3000],
    ]);
    expect(s.total_ms).toBe(10_000);
  });

  test('bars sit on the time axis: fence and configure overlap, migrate starts where the fence ends', () => {
    const s = summarize(journal);
    const bars = s.steps.map((x) => timelineBar(x, s.total_ms!));
    expect(bars).toEqual([
      '█'.repeat(15),
      '█'.repeat(9),
      `${' '.repeat(15)}${'█'.repeat(6)}`,
      `${' '.repeat(21)}${'█'.repeat(9)}`,
    ]);
  });

  test('a step that has not started has no bar and no start', () => {
    const s = summarize(
      testJournal({
        steps: [
          { ...rec('fence', 0, 1) },
          { ...rec('switch', 0, 0), started_at: undefined, duration_ms: undefined, status: 'pending' },
        ],
      }),
    );
    expect(s.steps[1]).toEqual({ kind: 'switch', status: 'pending' });
    expect(timelineBar(s.steps[1]!, s.total_ms!)).toBe('');
  });
});
