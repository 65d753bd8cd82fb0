/**
 * `persona profile rollout` in-process against fake hosts: the real CLI, engine, steps, journal, lock and file store.
 * web runs on h1, h2 and h3 (the inventory's apps); h1 is the canary. Version 1 writes /etc/web.conf "v1"; the
 * candidates write "v2", and the broken one also asks a health check the fake hosts fail. Each test looks at the
 * world afterwards: the store's versions, the hosts' files and services, the journal.
 */
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { Journal } from '../../src/runbook/types.js';
import { openBackend } from '../../src/stores/open.js';
import { ProfileStore } from '../../src/stores/profile-store.js';
import { type FakeCommand, FakeHosts } from '../fakes/fake-hosts.js';
import { jsonLines, repoRoot, runInProcess } from '../helpers/cli.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

const APP = 'web';
const CONF = '/etc/web.conf';
const service = {
  start: ['systemctl', 'start', 'web'],
  stop: ['systemctl', 'stop', 'web'],
  status: ['systemctl', 'is-active', '--quiet', 'web'],
};
const HEALTH = ['curl', '-fsS', 'http://127.0.0.1:8080/health'];
const V2_HEALTH = ['curl', '-fsS', 'http://127.0.0.1:8080/v2/health'];
/** Healthy everywhere but on h3. */
const NOT_H3_HEALTH = ['curl', '-fsS', 'http://127.0.0.1:8080/v3/health'];
const commands: FakeCommand[] = [
  {
    argv: HEALTH,
    mutates: false,
    answer: (h) => (h.running ? { stdout: 'ok\n' } : { exitCode: 7, stderr: 'curl: (7) Connection refused' }),
  },
  { argv: V2_HEALTH, mutates: false, answer: () => ({ exitCode: 22, stderr: 'curl: (22) 404 Not Found' }) },
  {
    argv: NOT_H3_HEALTH,
    mutates: false,
    answer: (h) => (h.name === 'h3' ? { exitCode: 22, stderr: 'curl: (22) 500' } : { stdout: 'ok\n' }),
  },
];

const fakes: FakeHosts[] = [];
afterEach(() => {
  for (const fake of fakes.splice(0))
    expect(fake.unknown.map((c) => `${c.host}: ${c.argv.join(' ')}`)).toEqual([]);
});

function profile(conf: string, health = HEALTH): Record<string, unknown> {
  return {
    id: APP,
    description: 'A web service on three fake hosts.',
    required_cores: 1,
    required_ram_gb: 1,
    required_storage_gb: 1,
    software_stack: [],
    network_configuration: { ip_ranges: [], vlans: [], firewall_rules: [] },
    security_profile: { users: [], encryption_keys: [] },
    application_dependencies: [],
    performance_metrics: { cpu_utilization_pct: { max: 90 }, window_seconds: 1, monitor_seconds: 1 },
    data: { paths: [], migration: 'none' },
    deploy: { port: 8080, files: [{ path: CONF, content: conf }], install: [], ...service },
    health_checks: [{ name: 'health', type: 'command', command: health }],
    traffic: { method: 'command', fence: ['true'], switch: ['true'] },
  };
}

const text = (p: Record<string, unknown>) => `${JSON.stringify(p, null, 2)}\n`;

function world(failpoint?: string) {
  const store = copyOfProfiles();
  const state = tempDir('persona-state-');
  const dir = tempDir('persona-world-');
  writeFileSync(join(store, `${APP}.json`), text(profile('v1\n')));
  const inventory = join(dir, 'inventory.json');
  writeFileSync(
    inventory,
    JSON.stringify({
      hosts: ['h1', 'h2', 'h3'].map((name, i) => ({ name, address: `10.0.0.${i + 1}`, apps: [APP] })),
    }),
  );
  const file = { content: 'v1\n', mode: '0644', owner: 'root', group: 'root' };
  const fake = new FakeHosts({
    hosts: Object.fromEntries(['h1', 'h2', 'h3'].map((h) => [h, { running: true, files: { [CONF]: file } }])),
    service,
    commands,
    timeScale: 0.05,
  });
  fakes.push(fake);
  const candidates = {
    harmless: join(dir, 'harmless.json'),
    broken: join(dir, 'broken.json'),
    badOnH3: join(dir, 'bad-on-h3.json'),
    otherId: join(dir, 'other.json'),
    invalid: join(dir, 'invalid.json'),
  };
  writeFileSync(candidates.harmless, text(profile('v2\n')));
  writeFileSync(candidates.broken, text(profile('v2\n', V2_HEALTH)));
  writeFileSync(candidates.badOnH3, text(profile('v2\n', NOT_H3_HEALTH)));
  writeFileSync(candidates.otherId, text({ ...profile('v2\n'), id: 'api' }));
  writeFileSync(candidates.invalid, text({ ...profile('v2\n'), required_cores: -1 }));
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
    state,
    candidates,
    rollout: (candidate: string, ...args: string[]) =>
      runInProcess(
        ['profile', 'rollout', APP, '--candidate', candidate, '--window', '1', '--health-wait', '1', ...args],
        { env: { ...env, ...(failpoint ? { PERSONA_FAILPOINT: failpoint } : {}) }, transport: fake },
      ),
    /** Any persona command in this world, with extra environment and a place to deliver signals. */
    persona: (argv: string[], extra: Record<string, string> = {}, signals?: EventEmitter) =>
      runInProcess(argv, { env: { ...env, ...extra }, transport: fake, ...(signals ? { signals } : {}) }),
    resume: (runId: string) =>
      runInProcess(['runs', 'resume', runId, '--yes', '--json'], { env, transport: fake }),
    journal: (runId: string) =>
      JSON.parse(readFileSync(join(state, 'runs', `${runId}.json`), 'utf8')) as Journal,
    async stored() {
      const backend = await openBackend(`file:${store}`, env, repoRoot);
      try {
        return await new ProfileStore(backend).require(APP);
      } finally {
        await backend.close();
      }
    },
    conf: (host: string) => fake.host(host).files.get(CONF)?.content,
    starts: (host: string) => fake.seen(host).filter((w) => w === 'deploy.start').length,
  };
}

const result = (stdout: string) =>
  jsonLines(stdout).at(-1) as Record<string, unknown> & { runs?: Array<Record<string, unknown>> };

describe('profile rollout in-process against fake hosts', () => {
  test('a candidate whose health check fails on the canary is reverted: version unchanged, h1 back on v1, exit 4', async () => {
    const w = world();
    const r = await w.rollout(w.candidates.broken, '--yes', '--json');
    expect(r.code, r.stderr).toBe(4);
    const run = result(r.stdout).runs![0]! as { run_id: string; rollout: Record<string, unknown> };
    expect(run).toMatchObject({ kind: 'rollout', status: 'succeeded' });
    expect(run.rollout).toMatchObject({
      decision: 'revert',
      canary: ['h1'],
      control: ['h2', 'h3'],
      from_version: 1,
    });
    expect((run.rollout.reasons as string[]).join()).toMatch(/the canary failed \d+ health check/);
    expect(await w.stored()).toMatchObject({ version: 1 });
    // h1 got v2, then v1 again; h2 and h3 were never changed.
    expect(w.fake.mutations('h1').filter((c) => c.what === 'persona-write').length).toBe(2);
    expect(w.conf('h1')).toBe('v1\n');
    expect(w.fake.mutations('h2')).toEqual([]);
    expect(w.fake.mutations('h3')).toEqual([]);
    const j = w.journal(run.run_id);
    expect(j.kind).toBe('rollout');
    expect(j.steps.map((s) => `${s.kind}:${s.status}`)).toEqual([
      'canary:succeeded',
      'compare:succeeded',
      'promote:succeeded',
      'revert:succeeded',
    ]);
    const compare = j.steps.find((s) => s.kind === 'compare')!;
    expect(compare.outputs).toMatchObject({ decision: 'revert' });
    expect(compare.log.join('\n')).toMatch(/^canary +h1 /m);
    expect(j.steps.find((s) => s.kind === 'promote')!.outputs).toEqual({ promoted: false });
    expect(j.steps.find((s) => s.kind === 'revert')!.outputs).toMatchObject({ reverted: true, version: 1 });
  });

  test('a harmless candidate is promoted: version 2 written, every host on v2 and restarted once, exit 0', async () => {
    const w = world();
    const r = await w.rollout(w.candidates.harmless, '--yes', '--json', '--batch', '2');
    expect(r.code, r.stderr).toBe(0);
    const run = result(r.stdout).runs![0]! as { run_id: string; rollout: Record<string, unknown> };
    expect(run.rollout).toMatchObject({ decision: 'promote', version: 2, reasons: [] });
    const stored = await w.stored();
    expect(stored.version).toBe(2);
    expect(stored.text).toBe(readFileSync(w.candidates.harmless, 'utf8'));
    for (const h of ['h1', 'h2', 'h3']) {
      expect(w.conf(h)).toBe('v2\n');
      expect(w.starts(h)).toBe(1);
      expect(w.fake.host(h).running).toBe(true);
    }
    const promote = w.journal(run.run_id).steps.find((s) => s.kind === 'promote')!;
    expect(promote.outputs).toMatchObject({ promoted: true, version: 2, hosts: ['h1', 'h2', 'h3'] });
    expect(promote.actions!.map((a) => a.id)).toContain('batch-1:health');
    // The run is listed and shown like any other.
    const list = await w.persona(['runs', 'list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(run.run_id);
    expect(list.stdout).toContain('"route":"rollout: canary h1, control h2, h3"');
    const show = await w.persona(['runs', 'show', run.run_id]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/web rollout: canary h1, control h2, h3, succeeded/);
  });

  test('promoted, then a batch that is not healthy fails the step (exit 5, resumable): the earlier batch done, the version written', async () => {
    const w = world();
    const r = await w.rollout(w.candidates.badOnH3, '--yes', '--json', '--batch', '1');
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/web on h3 is not healthy: health: .*exit 22/);
    expect(r.stderr).toMatch(/persona recover --resume/);
    expect(await w.stored()).toMatchObject({ version: 2 });
    const runId = jsonLines(r.stdout).find((l) => l.type === 'run')?.run_id as string;
    const promote = w.journal(runId).steps.find((s) => s.kind === 'promote')!;
    expect(promote.status).toBe('failed');
    const done = promote.actions!.filter((a) => a.status === 'done').map((a) => a.id);
    expect(done).toEqual(
      expect.arrayContaining(['profile:write', 'h2:restart', 'batch-1:health', 'h3:restart']),
    );
    expect(promote.actions!.find((a) => a.id === 'batch-2:health')).toMatchObject({ status: 'failed' });
  });

  test('resumed with runs resume after the canary failed once after its changes: nothing redone, then promoted', async () => {
    const w = world('canary:before-replan:fail-once');
    const first = await w.rollout(w.candidates.harmless, '--yes', '--json');
    expect(first.code, first.stderr).toBe(5);
    expect(first.stderr).toMatch(/persona recover --resume \S+/);
    const runId = jsonLines(first.stdout).find((l) => l.type === 'run')?.run_id as string;
    const stopped = w.journal(runId);
    expect(stopped.status).toBe('failed');
    expect(stopped.steps[0]).toMatchObject({ kind: 'canary', status: 'failed' });
    expect(w.conf('h1')).toBe('v2\n');
    expect(await w.stored()).toMatchObject({ version: 1 });
    const resumed = await w.resume(runId);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(result(resumed.stdout).runs![0]).toMatchObject({ kind: 'rollout', status: 'succeeded' });
    expect(await w.stored()).toMatchObject({ version: 2 });
    // h1's write and restart were journalled as done: the resume planned again and did not redo them.
    expect(w.fake.mutations('h1').filter((c) => c.what === 'persona-write').length).toBe(1);
    expect(w.starts('h1')).toBe(1);
    for (const h of ['h2', 'h3']) expect(w.conf(h)).toBe('v2\n');
    expect(w.journal(runId).steps.map((s) => s.status)).toEqual([
      'succeeded',
      'succeeded',
      'succeeded',
      'succeeded',
    ]);
  });

  test('interrupted in the canary, then the profile changed meanwhile: the resume refuses to promote over it (exit 5), nothing else changed', async () => {
    const w = world();
    const signals = new EventEmitter();
    const args = ['profile', 'rollout', APP, '--candidate', w.candidates.harmless, '--window', '1'];
    const running = w.persona(
      [...args, '--health-wait', '1', '--yes', '--json'],
      { PERSONA_FAILPOINT: 'canary:before-replan' },
      signals,
    );
    let ended: { code: number; stderr: string } | undefined;
    void running.then((r) => {
      ended = r;
    });
    while (!existsSync(join(w.state, 'failpoint-reached'))) {
      // A run that ended before its failpoint says why, instead of a test that waits forever.
      if (ended) expect.fail(`the rollout ended (${ended.code}) before its failpoint: ${ended.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    signals.emit('SIGINT');
    const first = await running;
    expect(first.code, first.stderr).toBe(130);
    const runId = jsonLines(first.stdout).find((l) => l.type === 'run')?.run_id as string;
    expect(w.journal(runId)).toMatchObject({ status: 'interrupted' });
    // Someone writes version 2 while the rollout is stopped.
    const set = await w.persona(['profile', 'set', APP, '--file', w.candidates.broken]);
    expect(set.code, set.stderr).toBe(0);
    const resumed = await w.resume(runId);
    expect(resumed.code).toBe(5);
    expect(resumed.stderr).toMatch(
      /profile changed while the rollout ran: version 2, the rollout started from 1/,
    );
    const stored = await w.stored();
    expect(stored.version).toBe(2);
    expect(stored.text).toBe(readFileSync(w.candidates.broken, 'utf8'));
    expect(w.fake.mutations('h2')).toEqual([]);
    expect(w.fake.mutations('h3')).toEqual([]);
    expect(w.journal(runId).steps.find((s) => s.kind === 'promote')).toMatchObject({ status: 'failed' });
  });

  test('for a person: the plan, the comparison table and the decision', async () => {
    const w = world();
    const r = await w.rollout(w.candidates.broken, '--yes');
    expect(r.code, r.stderr).toBe(4);
    const all = `${r.stdout}\n${r.stderr}`;
    expect(all).toMatch(
      /Plan: roll out a candidate for web \(replacing version 1\): canary h1, control h2, h3/,
    );
    expect(all).toMatch(/^web: rollout \(canary h1, control h2, h3\), run \S+: succeeded$/m);
    expect(all).toMatch(/group +│? *hosts/);
    expect(all).toMatch(/canary +│? *h1 /);
    expect(all).toMatch(/reverted: h1 back on version 1; the profile is unchanged \(the canary failed/);
  });

  test('--dry-run changes nothing: no remote change, no journal, the version unchanged', async () => {
    const w = world();
    const r = await w.rollout(w.candidates.harmless, '--dry-run', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(result(r.stdout).runs![0]).toMatchObject({ kind: 'rollout', status: 'dry-run' });
    expect(w.fake.mutations()).toEqual([]);
    expect(existsSync(join(w.state, 'runs'))).toBe(false);
    expect(await w.stored()).toMatchObject({ version: 1 });
  });

  test('refused before any change: not confirmed without --yes; a candidate with another id or invalid, named with its path', async () => {
    const w = world();
    const unconfirmed = await w.rollout(w.candidates.harmless);
    expect(unconfirmed.code).toBe(3);
    expect(unconfirmed.stderr).toMatch(/--yes/);
    const other = await w.rollout(w.candidates.otherId, '--yes');
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('other.json');
    expect(other.stderr).toMatch(/\/id/);
    const invalid = await w.rollout(w.candidates.invalid, '--yes');
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain('invalid.json');
    expect(invalid.stderr).toContain('/required_cores');
    const tooMany = await w.rollout(w.candidates.harmless, '--canary', '3', '--yes');
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toMatch(/the canary must be 1 to 2/);
    expect(w.fake.mutations()).toEqual([]);
    expect(await w.stored()).toMatchObject({ version: 1 });
  });
});
