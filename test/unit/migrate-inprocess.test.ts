/**
 * `persona migrate` in-process against fake hosts (FakeHosts behind the transport): the real CLI, engine, steps,
 * journal, lock and file store. The profile moves no data (rsync needs a real ssh: the lab test moves data), routes
 * traffic with local `touch` commands (marks that exist only if the command ran) and has a power fence whose off
 * command leaves a mark too. Each test looks at the world afterwards.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { Journal } from '../../src/runbook/types.js';
import { openBackend } from '../../src/stores/open.js';
import { type FakeCommand, FakeHosts } from '../fakes/fake-hosts.js';
import { jsonLines, repoRoot, runInProcess } from '../helpers/cli.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

const APP = 'web';
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

function world(change: (p: Record<string, unknown>) => void = () => {}) {
  const store = copyOfProfiles();
  const state = tempDir('persona-state-');
  const dir = tempDir('persona-world-');
  const marks = {
    fence: join(dir, 'fence-ran'),
    switch: join(dir, 'switch-ran'),
    power: join(dir, 'power-off'),
  };
  const profile: Record<string, unknown> = {
    id: APP,
    description: 'A web service on fake hosts.',
    required_cores: 1,
    required_ram_gb: 1,
    required_storage_gb: 1,
    software_stack: [],
    network_configuration: { ip_ranges: [], vlans: [], firewall_rules: [] },
    security_profile: { users: [], encryption_keys: [] },
    application_dependencies: [],
    performance_metrics: { cpu_utilization_pct: { max: 90 }, window_seconds: 1, monitor_seconds: 1 },
    data: { paths: [], migration: 'none' },
    deploy: { port: 8080, files: [], install: [], ...service },
    health_checks: [{ name: 'health', type: 'command', command: HEALTH }],
    traffic: { method: 'command', fence: ['touch', marks.fence], switch: ['touch', marks.switch] },
    fencing: { power: { off: ['touch', marks.power], status: ['sh', '-c', 'exit 2'] } },
  };
  change(profile);
  writeFileSync(join(store, `${APP}.json`), `${JSON.stringify(profile, null, 2)}\n`);
  const inventory = join(dir, 'inventory.json');
  writeFileSync(
    inventory,
    JSON.stringify({
      hosts: [
        { name: 'h1', address: '10.0.0.1', apps: [APP] },
        { name: 'h2', address: '10.0.0.2' },
      ],
    }),
  );
  const fake = new FakeHosts({ hosts: { h1: { running: true }, h2: {} }, service, commands: [health] });
  fakes.push(fake);
  const env = {
    PERSONA_STORE: `file:${store}`,
    PERSONA_STATE_DIR: state,
    PERSONA_INVENTORY: inventory,
    PERSONA_AUTHOR: 'alice@test',
    PERSONA_LOCK_TTL: '2',
    CI: 'true',
  };
  return {
    fake,
    store,
    state,
    env,
    marks,
    migrate: (...args: string[]) => runInProcess(['migrate', APP, ...args], { env, transport: fake }),
    journal: (runId: string) =>
      JSON.parse(readFileSync(join(state, 'runs', `${runId}.json`), 'utf8')) as Journal,
  };
}

const result = (stdout: string) =>
  jsonLines(stdout).at(-1) as Record<string, unknown> & { runs?: Array<Record<string, unknown>> };

describe('migrate in-process against fake hosts', () => {
  test('h1 → h2: stopped on h1 before it starts on h2, traffic after the fence, no power-off, the record moved', async () => {
    const w = world();
    const r = await w.migrate('--to', 'h2', '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    const run = result(r.stdout).runs![0]!;
    expect(run).toMatchObject({ kind: 'migrate', status: 'succeeded', failed_host: 'h1', target_host: 'h2' });
    expect(w.fake.host('h1').running).toBe(false);
    expect(w.fake.host('h2').running).toBe(true);
    const changes = w.fake.mutations().map((c) => `${c.host} ${c.what}`);
    expect(changes.indexOf('h1 deploy.stop')).toBeGreaterThanOrEqual(0);
    expect(changes.indexOf('h1 deploy.stop')).toBeLessThan(changes.indexOf('h2 deploy.start'));
    expect(existsSync(w.marks.fence)).toBe(true);
    expect(existsSync(w.marks.switch)).toBe(true);
    // A planned move never powers its source off, even with the profile's power fence.
    expect(existsSync(w.marks.power)).toBe(false);
    const j = w.journal(run.run_id as string);
    expect(j.kind).toBe('migrate');
    expect(j.steps.map((s) => `${s.kind}:${s.status}`)).toEqual([
      'configure:succeeded',
      'precopy:succeeded',
      'fence:succeeded',
      'migrate:succeeded',
      'validate:succeeded',
      'switch:succeeded',
      'monitor:succeeded',
      'record:succeeded',
    ]);
    const fence = j.steps.find((s) => s.kind === 'fence')!.outputs as { evidence: Record<string, unknown> };
    expect(fence.evidence).toMatchObject({ fenced: true, reachable: true, statusExitCode: 3 });
    // validate took no performance sample (it would be downtime); the log says where the targets went.
    const validate = j.steps.find((s) => s.kind === 'validate')!;
    expect(validate.outputs).not.toHaveProperty('metrics');
    expect(validate.log.join('\n')).toMatch(/monitor holds the targets/);
    // No verify_url: the downtime is not measured, and the run says so.
    expect(r.stderr).toMatch(/downtime is not measured/);
    const store = await openBackend(`file:${w.store}`, w.env, repoRoot);
    const assignment = JSON.parse((await store.get(`assignments/${APP}`))!.value);
    await store.close();
    expect(assignment).toMatchObject({ host: 'h2', previous: 'h1' });
  });

  test('an assignment listing several instances (hosts) keeps the others, with the moved one replaced', async () => {
    const w = world();
    const before = await openBackend(`file:${w.store}`, w.env, repoRoot);
    await before.txn({
      puts: [
        {
          key: `assignments/${APP}`,
          value: JSON.stringify({ app: APP, host: 'h1', hosts: ['h1', 'h3'], at: '2026-11-01T00:00:00Z' }),
        },
      ],
    });
    await before.close();
    const r = await w.migrate('--to', 'h2', '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    const store = await openBackend(`file:${w.store}`, w.env, repoRoot);
    const assignment = JSON.parse((await store.get(`assignments/${APP}`))!.value);
    await store.close();
    expect(assignment).toMatchObject({ host: 'h2', previous: 'h1', hosts: ['h2', 'h3'] });
  });

  test('--dry-run: no remote command changes anything, no traffic command runs, no journal is written', async () => {
    const w = world();
    const r = await w.migrate('--to', 'h2', '--dry-run', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(result(r.stdout).runs![0]).toMatchObject({ kind: 'migrate', status: 'dry-run' });
    expect(w.fake.mutations()).toEqual([]);
    expect(existsSync(w.marks.fence) || existsSync(w.marks.switch) || existsSync(w.marks.power)).toBe(false);
    expect(existsSync(join(w.state, 'runs'))).toBe(false);
    expect(w.fake.host('h1').running).toBe(true);
  });

  test('refused before any remote command: --from names the wrong host; --to is where it runs; postgresql without a replication role', async () => {
    const w = world();
    const wrongFrom = await w.migrate('--from', 'h2', '--to', 'h1', '--yes');
    expect(wrongFrom.code).toBe(2);
    expect(wrongFrom.stderr).toMatch(/web runs on h1 .*not on --from h2/);
    const same = await w.migrate('--to', 'h1', '--yes');
    expect(same.code).toBe(2);
    expect(same.stderr).toMatch(/already runs on h1/);
    expect(w.fake.calls).toEqual([]);

    const pg = world((p) => {
      p.data = {
        paths: [],
        migration: 'postgresql',
        backup: { host: 'h2', path: '/srv/backup' },
        postgresql: { version: 15 },
      };
    });
    const noRole = await pg.migrate('--to', 'h2', '--yes');
    expect(noRole.code).toBe(2);
    expect(noRole.stderr).toMatch(/its profile needs data.postgresql.replication/);
    expect(pg.fake.calls).toEqual([]);
  });
});
