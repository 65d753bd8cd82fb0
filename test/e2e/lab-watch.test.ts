/**
 * `persona watch --once` end to end in the lab: the built CLI checks demo-web on lab-1 from this machine and from
 * a peer lab host over real SSH; healthy exits 0; after the application is killed on lab-1, exit 6 and one
 * failure event seen from both vantage points. A hung host and a partition are detected too; a latency blip on
 * one vantage point only (this machine's packets to lab-1 held back) is not.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, test } from 'vitest';
import { openBackend } from '../../src/stores/open.js';
import { jsonLines, repoRoot } from '../helpers/cli.js';
import { fail, heal, type LabState, labHost, releaseLab } from '../lab/lab.js';
import { freshLab, persona, scratchDir, type Workspace, workspace } from './lab-helpers.js';

afterAll(() => releaseLab());

/** A private store with demo-web's assignment to lab-1, recorded an hour ago (no grace period). */
async function watchedWorkspace(lab: LabState): Promise<Workspace> {
  const ws = workspace(lab);
  const backend = await openBackend(`file:${ws.store}`, {}, repoRoot);
  const at = new Date(Date.now() - 3_600_000).toISOString();
  await backend.txn({
    puts: [{ key: 'assignments/demo-web', value: JSON.stringify({ app: 'demo-web', host: 'lab-1', at }) }],
  });
  await backend.close();
  return ws;
}

/** One window of 2 rounds, a failure at 2 of 2: exit 6 when it counts. */
const watchOnce = (ws: Workspace) =>
  persona(['watch', '--once', '--interval', '1', '--rounds', '2', '--failures', '2', '--json'], ws);

/** Every process of a lab host stopped (SIGSTOP) or continued: a hung machine, whose kernel still takes SYNs. */
function freeze(lab: LabState, host: string, signal: 'SIGSTOP' | 'SIGCONT'): void {
  for (const dir of Object.values(labHost(lab, host).cgroups))
    for (const pid of readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean))
      try {
        process.kill(Number(pid), signal);
      } catch {
        // gone already
      }
}

/**
 * This machine's packets to one address held back (an nft output rule; this kernel has no netem): TCP resends them,
 * so its checks of lab-1 wait and time out, while a peer host's packets (bridged, not locally output) pass.
 */
async function slowFromHere(address: string, on: boolean): Promise<void> {
  await execa('nft', ['delete', 'table', 'ip', 'persona_e2e_blip'], { reject: false });
  if (!on) return;
  await execa('nft', ['add', 'table', 'ip', 'persona_e2e_blip']);
  await execa('nft', [
    'add',
    'chain',
    'ip',
    'persona_e2e_blip',
    'out',
    '{ type filter hook output priority 0; }',
  ]);
  await execa('nft', ['add', 'rule', 'ip', 'persona_e2e_blip', 'out', 'ip', 'daddr', address, 'drop']);
}

describe('watch (built CLI, lab): a hung host, a partition, a latency blip', () => {
  test('a blip on one vantage point is ignored (exit 0); a hung host and a partition count (exit 6)', async () => {
    const lab = await freshLab();
    const ws = await watchedWorkspace(lab);

    await slowFromHere(labHost(lab, 'lab-1').address, true);
    const blip = await watchOnce(ws).finally(() => slowFromHere('', false));
    expect(blip.code, blip.stderr).toBe(0);
    const seen = jsonLines(blip.stdout).at(-1)!.observations as Array<{ vantage: string; ok: boolean }>;
    // The blip was real: this machine saw demo-web fail, the peer did not.
    expect(seen.some((o) => o.vantage === 'persona' && !o.ok)).toBe(true);
    expect(seen.filter((o) => o.vantage !== 'persona').every((o) => o.ok)).toBe(true);

    await fail('lab-1', 'hang');
    freeze(lab, 'lab-1', 'SIGSTOP');
    const hung = await watchOnce(ws).finally(() => freeze(lab, 'lab-1', 'SIGCONT'));
    await heal('lab-1');
    expect(hung.code, hung.stderr).toBe(6);

    await fail('lab-1', 'partition');
    const cut = await watchOnce(ws).finally(() => heal('lab-1'));
    expect(cut.code, cut.stderr).toBe(6);
    expect(jsonLines(cut.stdout).at(-1)!.apps).toEqual([
      { app: 'demo-web', host: 'lab-1', state: 'failing' },
    ]);
  });
});

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
