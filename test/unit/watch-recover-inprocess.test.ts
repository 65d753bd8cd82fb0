/**
 * `persona watch --auto-recover --yes` in-process against fake hosts (test/fakes/fake-hosts.ts): the real CLI,
 * verdict, launcher and recovery (engine, steps, journal, lock, file store); only SSH is fake. web runs on h1,
 * its service stopped there: persona's command check and h2's peer probe of port 8080 both see it down, the failure
 * counts, and watch recovers it onto h2, as `persona recover h1 --app web --yes` would.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { openBackend } from '../../src/stores/open.js';
import { type FakeCommand, FakeHosts } from '../fakes/fake-hosts.js';
import { jsonLines, repoRoot, runInProcess } from '../helpers/cli.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

const service = {
  start: ['systemctl', 'start', 'web'],
  stop: ['systemctl', 'stop', 'web'],
  status: ['systemctl', 'is-active', '--quiet', 'web'],
};
const HEALTH = ['curl', '-fsS', 'http://127.0.0.1:8080/health'];
const health: FakeCommand = {
  argv: HEALTH,
  mutates: false,
  answer: (h) => (h.running ? { stdout: 'ok\n' } : { exitCode: 7, stderr: 'curl: (7) Connection refused' }),
};

const fakes: FakeHosts[] = [];
afterEach(() => {
  for (const fake of fakes.splice(0))
    expect(fake.unknown.map((c) => `${c.host}: ${c.argv.join(' ')}`)).toEqual([]);
});

async function world(autoRecover: boolean) {
  const store = copyOfProfiles();
  const dir = tempDir('persona-watch-world-');
  const marks = { fence: join(dir, 'fence-ran'), switch: join(dir, 'switch-ran') };
  writeFileSync(
    join(store, 'web.json'),
    JSON.stringify({
      id: 'web',
      required_cores: 1,
      required_ram_gb: 1,
      required_storage_gb: 1,
      performance_metrics: { window_seconds: 1, monitor_seconds: 1 },
      data: { paths: [], migration: 'none' },
      deploy: { port: 8080, files: [], install: [], ...service },
      health_checks: [{ name: 'health', type: 'command', command: HEALTH }],
      traffic: { method: 'command', fence: ['touch', marks.fence], switch: ['touch', marks.switch] },
      watch: { auto_recover: autoRecover },
    }),
  );
  const backend = await openBackend(`file:${store}`, {}, repoRoot);
  const at = new Date(Date.now() - 3_600_000).toISOString();
  await backend.txn({
    puts: [{ key: 'assignments/web', value: JSON.stringify({ app: 'web', host: 'h1', at }) }],
  });
  await backend.close();
  const inventory = join(dir, 'inventory.json');
  writeFileSync(
    inventory,
    JSON.stringify({
      hosts: [
        { name: 'h1', address: '10.0.0.1' },
        { name: 'h2', address: '10.0.0.2' },
      ],
    }),
  );
  const fake: FakeHosts = new FakeHosts({
    // Reachable, the service stopped: the application died, not the host.
    hosts: { h1: { running: false }, h2: {} },
    service,
    commands: [health],
    timeScale: 0,
    // The peer opens tcp ADDRESS 8080: open where the service runs.
    peerProbe: (_peer, args) => {
      const target = args[2] === '10.0.0.1' ? 'h1' : 'h2';
      return { stdout: `check 0 ${fake.host(target).running ? 'ok' : 'fail connection refused'}\n` };
    },
  });
  fakes.push(fake);
  const env = {
    PERSONA_STORE: `file:${store}`,
    PERSONA_STATE_DIR: join(dir, 'state'),
    PERSONA_INVENTORY: inventory,
    PERSONA_AUTHOR: 'watch@test',
    CI: 'true',
  };
  const watch = (...args: string[]) =>
    runInProcess(
      [
        'watch',
        '--once',
        '--interval',
        '0',
        '--rounds',
        '1',
        '--failures',
        '1',
        '--grace',
        '0',
        '--json',
        ...args,
      ],
      { env, transport: fake },
    );
  return { store, fake, marks, watch };
}

const watchEvents = (stdout: string) => jsonLines(stdout).filter((l) => l.type === 'watch');

describe('watch --auto-recover --yes, with the real recovery', () => {
  test('an opted-in application whose failure counts is recovered onto h2, once', async () => {
    const w = await world(true);
    const r = await w.watch('--auto-recover', '--yes');
    // The failure counted (exit 6), and the recovery it started ran to the end.
    expect(r.code, r.stderr).toBe(6);
    const events = watchEvents(r.stdout);
    expect(
      events.map((e) => `${e.kind}${e.outcome ? `:${e.outcome}` : ''}`),
      JSON.stringify(events.at(-1)),
    ).toEqual(['failure', 'auto-recover:started', 'auto-recover:succeeded']);
    expect(events[0]!.vantages).toEqual(['persona', 'h2']);
    const runIds = events[2]!.run_ids as string[];
    expect(runIds).toHaveLength(1);
    // The world afterwards: fenced, switched, running on h2, and the store says so.
    expect(existsSync(w.marks.fence) && existsSync(w.marks.switch)).toBe(true);
    expect(w.fake.host('h2').running).toBe(true);
    const backend = await openBackend(`file:${w.store}`, {}, repoRoot);
    const assignment = JSON.parse((await backend.get('assignments/web'))!.value);
    expect(assignment).toMatchObject({ host: 'h2', previous: 'h1', run_id: runIds[0] });
    expect(await backend.listLocks()).toEqual([]);
    await backend.close();
  });

  test('a profile that does not opt in: the failure event only; nothing changes on any host', async () => {
    const w = await world(false);
    const r = await w.watch('--auto-recover', '--yes');
    expect(r.code, r.stderr).toBe(6);
    expect(watchEvents(r.stdout).map((e) => e.kind)).toEqual(['failure']);
    expect(w.fake.mutations()).toEqual([]);
    expect(existsSync(w.marks.fence)).toBe(false);
  });

  test('--verbose: one line per round on stderr (what the soak counts), none without it', async () => {
    const w = await world(false);
    const loud = await w.watch('--verbose');
    expect(loud.code, loud.stderr).toBe(6);
    expect(loud.stderr).toMatch(/round 1: web failing/);
    const quiet = await w.watch();
    expect(quiet.stderr).not.toMatch(/round \d+:/);
  });
});
