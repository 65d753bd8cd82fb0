/**
 * `persona watch --once` end to end in the lab: the built CLI checks demo-web on lab-1 from this machine and from
 * a peer lab host over real SSH; healthy exits 0; after the application is killed on lab-1, exit 6 and one
 * failure event seen from both vantage points.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { openBackend } from '../../src/stores/open.js';
import { jsonLines, repoRoot } from '../helpers/cli.js';
import { fail, releaseLab } from '../lab/lab.js';
import { freshLab, persona, scratchDir, workspace } from './lab-helpers.js';

afterAll(() => releaseLab());

describe('watch (built CLI, lab)', () => {
  test('healthy: exit 0; the application killed on its host: exit 6, a failure seen from persona and a peer', async () => {
    const lab = await freshLab();
    const ws = workspace(lab);
    const backend = await openBackend(`file:${ws.store}`, {}, repoRoot);
    const at = new Date(Date.now() - 3_600_000).toISOString();
    await backend.txn({
      puts: [{ key: 'assignments/demo-web', value: JSON.stringify({ app: 'demo-web', host: 'lab-1', at }) }],
    });
    await backend.close();
    const events = join(scratchDir('persona-watch-e2e-'), 'events.ndjson');
    const watch = () =>
      persona(
        [
          'watch',
          '--once',
          '--interval',
          '1',
          '--rounds',
          '2',
          '--failures',
          '2',
          '--events',
          events,
          '--json',
        ],
        ws,
      );

    const healthy = await watch();
    expect(healthy.code, healthy.stderr).toBe(0);
    const ok = jsonLines(healthy.stdout).at(-1)!;
    expect(ok.apps).toEqual([{ app: 'demo-web', host: 'lab-1', state: 'healthy' }]);
    const observations = ok.observations as Array<{ vantage: string; ok: boolean; metrics?: object }>;
    expect(observations).toHaveLength(4);
    expect(observations.every((o) => o.ok)).toBe(true);
    const peers = new Set(observations.map((o) => o.vantage).filter((v) => v !== 'persona'));
    expect(peers.size).toBeGreaterThanOrEqual(1);
    expect([...peers].every((p) => p.startsWith('lab-') && p !== 'lab-1')).toBe(true);
    // The first round's CPU/memory sample, measured on lab-1.
    expect(observations[0]!.metrics).toHaveProperty('memory_pct');

    await fail('lab-1', 'app');
    const down = await watch();
    expect(down.code, down.stderr).toBe(6);
    const written = readFileSync(events, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(written.map((e) => e.kind)).toEqual(['failure']);
    expect(written[0]).toMatchObject({ app: 'demo-web', host: 'lab-1' });
    expect(written[0].vantages).toHaveLength(2);
    expect(written[0].vantages[0]).toBe('persona');
    expect(written[0].single_vantage).toBeUndefined();
  });
});
