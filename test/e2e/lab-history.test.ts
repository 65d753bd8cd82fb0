/**
 * Feedback to the broker with the built CLI against the lab: a failed validation kept in the store ranks its host
 * lower in `persona hosts rank`, with the reason and the points it cost.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { recordObservations } from '../../src/feedback/observations.js';
import { FileBackend } from '../../src/stores/file-backend.js';
import { jsonLines } from '../helpers/cli.js';
import { type LabState, releaseLab } from '../lab/lab.js';
import { freshLab, persona, type Workspace, workspace } from './lab-helpers.js';

let lab: LabState;
let ws: Workspace;

interface Ranked {
  host: string;
  verdict: string;
  rank?: number;
  history?: string;
  score?: { total: number; components: Record<string, number> };
}

async function rank(): Promise<Ranked[]> {
  const r = await persona(
    ['hosts', 'rank', '--json', '--profile', 'small-app', '--failed', 'lab-1', '--strategy', 'spread'],
    ws,
  );
  expect(r.code, r.stderr).toBe(0);
  return ((jsonLines(r.stdout)[0] as { hosts?: Ranked[] }).hosts ?? []).filter(
    (h) => h.verdict === 'eligible',
  );
}

beforeAll(async () => {
  lab = await freshLab();
  ws = workspace(lab);
  // Nothing to install, no storage: lab-2 and lab-3 differ only in memory headroom (a few points under spread).
  const small = JSON.parse(readFileSync(join(ws.store, 'demo-web.json'), 'utf8'));
  Object.assign(small, {
    id: 'small-app',
    required_storage_gb: 0,
    software_stack: [],
    data: { paths: ['/srv/small'], migration: 'none' },
  });
  writeFileSync(join(ws.store, 'small-app.json'), JSON.stringify(small, null, 2));
});

afterAll(() => releaseLab());

describe('history (built CLI, lab)', () => {
  test('the rank changes after feedback: a failed validation on the best host puts it second, with why', async () => {
    const before = await rank();
    expect(before.map((h) => h.history)).toEqual([undefined, undefined]);
    const [best, next] = before as [Ranked, Ranked];
    // One failed validation costs 10 points: the two must be closer than that for the order to change.
    expect(best.score!.total - next.score!.total).toBeLessThan(9.5);
    const kv = await new FileBackend(ws.store).open();
    await recordObservations(kv, [
      {
        at: new Date().toISOString(),
        app: 'small-app',
        host: best.host,
        source: 'validate',
        run_id: 'earlier-run',
        ok: false,
        missed: ['health'],
      },
    ]);
    await kv.close();
    const after = await rank();
    expect(after.map((h) => h.host)).toEqual([next.host, best.host]);
    const fallen = after[1]!;
    expect(fallen.history).toMatch(
      new RegExp(`^${best.host} −(10|9\\.9): 1 failed validation in the last day$`),
    );
    expect(fallen.score!.components.history).toBeCloseTo(0.5, 2);
    expect(best.score!.total - fallen.score!.total).toBeCloseTo(10, 0);
  });
});
