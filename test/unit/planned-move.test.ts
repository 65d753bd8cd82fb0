/**
 * The planned move's logic without hosts: when the copy while serving stops, the runbook's graph, the fence that
 * never powers the source off, and the downtime in the summary.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { renderSummary } from '../../src/cli/run-summary.js';
import { summarize } from '../../src/recover/summary.js';
import { stepDependencies } from '../../src/runbook/engine.js';
import { JournalStore } from '../../src/runbook/journal.js';
import { parseManifest } from '../../src/runbook/remote.js';
import type { Journal } from '../../src/runbook/types.js';
import { plannedRunbook, runbook, runbookOf } from '../../src/steps/index.js';
import {
  META_MANIFEST_SCRIPT,
  type Pass,
  precopyVerdict,
  SMALL_DELTA_BYTES,
} from '../../src/steps/planned.js';
import { humanOut } from '../../src/ui/output.js';
import { Redactor } from '../../src/ui/redact.js';
import { runInProcess } from '../helpers/cli.js';
import { testJournal } from '../helpers/journal.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const pass = (n: number, mib: number, ms: number): Pass => ({ n, bytes: mib * MiB, files: 1, ms });

describe('precopyVerdict', () => {
  test('a first pass always runs', () => {
    expect(precopyVerdict([], GiB).again).toBe(true);
  });

  test('stops once a pass moved at most 1% of the data (or 8 MiB for small data)', () => {
    expect(precopyVerdict([pass(1, 1024, 9000), pass(2, 10, 1500)], GiB)).toMatchObject({ again: false });
    expect(precopyVerdict([pass(1, 1024, 9000), pass(2, 11, 1500)], GiB).again).toBe(true);
    // 100 MiB of data: 1% is 1 MiB, so the 8 MiB floor decides.
    expect(precopyVerdict([pass(1, 100, 2000), pass(2, 8, 1200)], 100 * MiB).again).toBe(false);
    expect(precopyVerdict([pass(1, 100, 2000), pass(2, 9, 1200)], 100 * MiB).again).toBe(true);
    expect(SMALL_DELTA_BYTES).toBe(8 * MiB);
  });

  test('stops after a quick pass, whatever it moved', () => {
    const v = precopyVerdict([pass(1, 1024, 9000), pass(2, 200, 900)], GiB);
    expect(v).toMatchObject({ again: false });
    expect(v.why).toContain('900 ms');
  });

  test('stops when the delta no longer shrinks, and says the application writes as fast as the copy', () => {
    const v = precopyVerdict([pass(1, 1024, 9000), pass(2, 300, 3000), pass(3, 290, 2900)], GiB);
    expect(v.again).toBe(false);
    expect(v.why).toMatch(/no longer shrinks/);
    // Two passes are not enough to call it: the second pass is always smaller than the first full copy.
    expect(precopyVerdict([pass(1, 300, 3000), pass(2, 290, 2900)], GiB).again).toBe(true);
  });

  test('at most six passes', () => {
    const passes = [1000, 800, 640, 512, 410, 328].map((m, i) => pass(i + 1, m, 5000));
    expect(precopyVerdict(passes.slice(0, 5), 10 * GiB).again).toBe(true);
    expect(precopyVerdict(passes, 10 * GiB)).toMatchObject({
      again: false,
      why: '6 passes, the most there are',
    });
  });
});

describe('the planned runbook', () => {
  test('configure, copy while serving, stop, final copy, start, switch after fence and validate', () => {
    expect(plannedRunbook.map((s) => s.kind)).toEqual([
      'configure',
      'precopy',
      'fence',
      'migrate',
      'validate',
      'switch',
      'monitor',
      'record',
    ]);
    const graph = stepDependencies(plannedRunbook);
    expect(graph.get('configure')).toEqual([]);
    expect(graph.get('precopy')).toEqual(['configure']);
    expect(graph.get('fence')).toEqual(['precopy']);
    expect(graph.get('migrate')).toEqual(['fence']);
    expect(graph.get('switch')).toEqual(['fence', 'validate']);
    // Only the switch needs fence evidence, as in a recovery, and no early copy runs before the stop.
    expect(plannedRunbook.filter((s) => s.needsFence).map((s) => s.kind)).toEqual(['switch']);
    expect(plannedRunbook.some((s) => s.early)).toBe(false);
  });

  test('a journal says which runbook it was made with', () => {
    expect(runbookOf({ kind: 'migrate' })).toBe(plannedRunbook);
    expect(runbookOf({ kind: 'recover' })).toBe(runbook);
    expect(runbookOf({})).toBe(runbook);
  });

  test("the planned fence describes no power-off, even with the profile's power fence", () => {
    const fence = plannedRunbook.find((s) => s.kind === 'fence')!;
    const ctx = {
      profile: {
        id: 'app',
        deploy: { stop: ['systemctl', 'stop', 'app'] },
        traffic: { method: 'none' },
        fencing: { power: { off: ['fence-off', '{host}'], status: ['fence-status', '{host}'] } },
      },
      failed: { name: 'src', address: '10.0.0.1', labels: {}, apps: [] },
      target: { name: 'dst', address: '10.0.0.2', labels: {}, apps: [] },
    } as never;
    const lines = fence.describe(ctx).join('\n');
    expect(lines).not.toMatch(/power/i);
    expect(lines).toContain('systemctl stop app');
  });
});

describe('the summary of a planned move', () => {
  const journal = {
    run_id: 'r1',
    app: 'web',
    kind: 'migrate',
    status: 'succeeded',
    failed_host: { name: 'a', address: '10.0.0.1' },
    target_host: { name: 'b', address: '10.0.0.2' },
    profile: { id: 'web', version: 3, sha256: 'x' },
    steps: [
      {
        kind: 'switch',
        status: 'succeeded',
        started_at: '2026-11-28T00:00:00.000Z',
        duration_ms: 300,
        log: [],
        attempts: 1,
        title: 't',
        mutates: true,
      },
      {
        kind: 'monitor',
        status: 'succeeded',
        started_at: '2026-11-28T00:00:00.300Z',
        duration_ms: 5000,
        log: [],
        attempts: 1,
        title: 't',
        mutates: false,
        outputs: { downtime: { longest_ms: 420, hz: 20 } },
      },
    ],
  } as unknown as Journal;

  test('carries the kind and the downtime, and the human summary says both', () => {
    const s = summarize(journal);
    expect(s).toMatchObject({ kind: 'migrate', downtime_ms: 420 });
    const lines: string[] = [];
    const out = humanOut({ write: (t: string) => lines.push(t) } as never, false, new Redactor());
    renderSummary(out, s);
    const text = lines.join('');
    expect(text).toContain('a → b (planned move)');
    expect(text).toMatch(/downtime 0\.42 s/);
  });

  test('a recovery has neither', () => {
    const s = summarize({ ...journal, kind: undefined, steps: [journal.steps[0]!] } as unknown as Journal);
    expect(s.kind).toBeUndefined();
    expect(s.downtime_ms).toBeUndefined();
  });
});

test('runs show names a planned move and its downtime', async () => {
  const state = tempDir('persona-state-');
  const j = testJournal({
    kind: 'migrate',
    status: 'succeeded',
    steps: [
      {
        kind: 'monitor',
        title: 'monitor after the switch',
        mutates: false,
        status: 'succeeded',
        attempts: 1,
        log: [],
        outputs: { downtime: { longest_ms: 1234, hz: 20 } },
      },
    ],
  });
  await new JournalStore(state).save(j);
  const r = await runInProcess(['runs', 'show', j.run_id], {
    env: { PERSONA_STATE_DIR: state, PERSONA_STORE: `file:${tempDir('persona-store-')}` },
  });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toContain('h1 → h2 (planned move), succeeded');
  expect(r.stdout).toContain('downtime 1.23 s');
});

describe('the metadata manifest of the final copy (a real shell, real files)', () => {
  const manifest = (dir: string) =>
    parseManifest(execFileSync('sh', ['-c', META_MANIFEST_SCRIPT, 'persona-meta', dir]).toString());

  test('equal for an rsync -a copy; a changed size, mtime, mode or a new entry shows', () => {
    const a = tempDir('persona-meta-a-');
    fs.mkdirSync(join(a, 'sub dir'));
    fs.writeFileSync(join(a, 'sub dir', 'x y.bin'), 'hello');
    fs.writeFileSync(join(a, 'big'), Buffer.alloc(70_000, 1));
    fs.symlinkSync('big', join(a, 'link'));
    const b = tempDir('persona-meta-b-');
    execFileSync('rsync', ['-a', '--delete', `${a}/`, `${b}/`]);
    const base = manifest(a);
    expect(base).toMatchObject({ files: 2, bytes: 70_005 });
    expect(manifest(b)).toEqual(base);
    fs.writeFileSync(join(b, 'sub dir', 'x y.bin'), 'hello!');
    expect(manifest(b).digest).not.toBe(base.digest);
    execFileSync('rsync', ['-a', '--delete', `${a}/`, `${b}/`]);
    expect(manifest(b)).toEqual(base);
    fs.utimesSync(join(b, 'big'), new Date(), new Date());
    expect(manifest(b).digest).not.toBe(base.digest);
    execFileSync('rsync', ['-a', '--delete', `${a}/`, `${b}/`]);
    fs.chmodSync(join(b, 'sub dir'), 0o700);
    expect(manifest(b).meta).not.toBe(base.meta);
    execFileSync('rsync', ['-a', '--delete', `${a}/`, `${b}/`]);
    fs.mkdirSync(join(b, 'extra'));
    expect(manifest(b).meta).not.toBe(base.meta);
  });
});
