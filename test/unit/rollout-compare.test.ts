/**
 * The rollout's pure parts: the comparison's verdict (rollout/compare.ts), the canary/control split, and where an
 * application's instances are (rollout/instances.ts: the assignment's `hosts`, else its `host` and the inventory).
 */
import { describe, expect, test } from 'vitest';
import type { Inventory } from '../../src/hosts/inventory.js';
import { compareGroups, type HostObservation, missesOf, tableLines } from '../../src/rollout/compare.js';
import { instancesOf } from '../../src/rollout/instances.js';
import { splitGroups } from '../../src/rollout/run.js';
import type { Sample } from '../../src/steps/checks.js';
import { openBackend } from '../../src/stores/open.js';
import { repoRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const sample = (cpu: number, memory: number): Sample => ({
  cpu_pct: cpu,
  memory_pct: memory,
  memory_used_bytes: 0,
  memory_limit_bytes: 0,
  window_s: 10,
});

const seen = (
  group: HostObservation['group'],
  host: string,
  cpu: number,
  memory: number,
  extra: Partial<HostObservation> = {},
): HostObservation => ({
  host,
  group,
  health_failures: 0,
  sample: sample(cpu, memory),
  misses: [],
  ...extra,
});

describe('compareGroups', () => {
  test.each([
    ['alike: promote', [seen('canary', 'a', 20, 40), seen('control', 'b', 18, 41)], {}, 'promote', []],
    [
      'a canary health failure: revert',
      [seen('canary', 'a', 20, 40, { health_failures: 1 }), seen('control', 'b', 20, 40)],
      {},
      'revert',
      [/the canary failed 1 health check/],
    ],
    [
      'a target the canary misses and the control meets: revert',
      [seen('canary', 'a', 95, 40, { misses: ['cpu'] }), seen('control', 'b', 20, 40)],
      {},
      'revert',
      [/misses the cpu target/],
    ],
    [
      'a target both miss: not the candidate’s fault, promote',
      [seen('canary', 'a', 95, 40, { misses: ['cpu'] }), seen('control', 'b', 94, 40, { misses: ['cpu'] })],
      {},
      'promote',
      [],
    ],
    [
      'CPU up more than --max-cpu-increase (control mean of two): revert',
      [seen('canary', 'a', 40, 40), seen('control', 'b', 20, 40), seen('control', 'c', 30, 40)],
      { max_cpu_increase_pct: 10 },
      'revert',
      [/CPU 40% on the canary vs 25% on the control: \+15 > 10/],
    ],
    [
      'CPU up within the threshold: promote',
      [seen('canary', 'a', 30, 40), seen('control', 'b', 25, 40)],
      { max_cpu_increase_pct: 10 },
      'promote',
      [],
    ],
    [
      'memory up more than --max-memory-increase: revert',
      [seen('canary', 'a', 20, 70), seen('control', 'b', 20, 50)],
      { max_memory_increase_pct: 5 },
      'revert',
      [/memory 70% on the canary vs 50%/],
    ],
  ] as const)('%s', (_, observations, limits, decision, reasons) => {
    const c = compareGroups(observations, limits);
    expect(c.decision).toBe(decision);
    expect(c.reasons).toHaveLength(reasons.length);
    for (const [i, r] of reasons.entries()) expect(c.reasons[i]).toMatch(r);
  });

  test('the table: one row per group, health failures summed, means, and the decision line', () => {
    const c = compareGroups(
      [
        seen('canary', 'a', 20, 40, { health_failures: 2 }),
        seen('control', 'b', 10, 30),
        seen('control', 'c', 20, 50),
      ],
      {},
    );
    expect(c.table).toEqual([
      { group: 'canary', hosts: ['a'], health_failures: 2, cpu_pct: 20, memory_pct: 40, misses: [] },
      { group: 'control', hosts: ['b', 'c'], health_failures: 0, cpu_pct: 15, memory_pct: 40, misses: [] },
    ]);
    const lines = tableLines(c);
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatch(/^decision: revert \(the canary failed 2/);
  });

  test('missesOf holds a sample against the targets, by code', () => {
    expect(
      missesOf(
        { cpu_utilization_pct: { max: 50 }, window_seconds: 10, monitor_seconds: 10 } as never,
        sample(60, 10),
      ),
    ).toEqual(['cpu']);
    expect(missesOf({ window_seconds: 10, monitor_seconds: 10 } as never, sample(60, 10))).toEqual([]);
  });
});

describe('splitGroups', () => {
  test('the first N instances are the canary, the rest the control', () => {
    expect(splitGroups('web', ['h1', 'h2', 'h3'], 1)).toEqual({ canary: ['h1'], control: ['h2', 'h3'] });
    expect(splitGroups('web', ['h1', 'h2', 'h3'], 2)).toEqual({ canary: ['h1', 'h2'], control: ['h3'] });
  });
  test('a usage error without a control group or with one instance only', () => {
    expect(() => splitGroups('web', ['h1'], 1)).toThrow(/runs on one host only \(h1\)/);
    expect(() => splitGroups('web', [], 1)).toThrow(/runs on no host/);
    expect(() => splitGroups('web', ['h1', 'h2'], 2)).toThrow(/the canary must be 1 to 1/);
    expect(() => splitGroups('web', ['h1', 'h2'], 0)).toThrow(/the canary must be 1 to 1/);
  });
});

describe('instancesOf', () => {
  const inventory = {
    source: 'test',
    hosts: [
      { name: 'h1', apps: ['web'] },
      { name: 'h2', apps: ['web', 'db'] },
      { name: 'h3', apps: ['db'] },
    ],
  } as unknown as Inventory;

  test('the assignment’s hosts array when there is one; else its host, then the inventory’s; nothing recorded: the inventory', async () => {
    const backend = await openBackend(`file:${tempDir('persona-store-')}`, {}, repoRoot);
    try {
      expect(await instancesOf('web', inventory, backend)).toEqual(['h1', 'h2']);
      await backend.txn({
        puts: [{ key: 'assignments/web', value: JSON.stringify({ app: 'web', host: 'h3' }) }],
      });
      expect(await instancesOf('web', inventory, backend)).toEqual(['h3', 'h1', 'h2']);
      await backend.txn({
        puts: [
          { key: 'assignments/web', value: JSON.stringify({ app: 'web', host: 'h3', hosts: ['h3', 'h2'] }) },
        ],
      });
      expect(await instancesOf('web', inventory, backend)).toEqual(['h3', 'h2']);
      await backend.txn({ puts: [{ key: 'assignments/db', value: '{not json' }] });
      expect(await instancesOf('db', inventory, backend)).toEqual(['h2', 'h3']);
    } finally {
      await backend.close();
    }
  });
});
