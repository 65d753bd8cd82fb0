/**
 * recover, resume, the dry run and the failure paths of issue 10, in-process against fake hosts (FakeHosts behind
 * World.transport): the real CLI, engine, steps, journal, lock and file store; only SSH is fake. Each test would
 * fail if its guarantee broke: it looks at the world afterwards (the hosts' state, every command they received,
 * the marks the local traffic commands leave, the journal, the store), not at what persona says about it.
 *
 * The profile moves no data (data.migration "none": migrate's rsync needs a real ssh, the lab tests it), routes
 * traffic with local `touch` commands (marks that exist only if the command ran), and checks health with a
 * command the fake answers from the service's state.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { listObservations, recordObservations } from '../../src/feedback/observations.js';
import { lockName } from '../../src/recover/lock.js';
import { freshStepRecords } from '../../src/recover/plan.js';
import { JournalStore } from '../../src/runbook/journal.js';
import type { Journal, StepRecord } from '../../src/runbook/types.js';
import { openBackend } from '../../src/stores/open.js';
import { ProfileStore } from '../../src/stores/profile-store.js';
import { sha256 } from '../../src/util/hash.js';
import { type FakeCommand, type FakeHostSpec, FakeHosts } from '../fakes/fake-hosts.js';
import { jsonLines, repoRoot, runInProcess } from '../helpers/cli.js';
import { testJournal } from '../helpers/journal.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

const APP = 'web';
const RUN_ID = '20261127T000000Z-web-abcdef';
const service = {
  start: ['systemctl', 'start', 'web'],
  stop: ['systemctl', 'stop', 'web'],
  status: ['systemctl', 'is-active', '--quiet', 'web'],
};
const CONF = { path: '/etc/web/web.conf', content: 'listen 8080\n', mode: '0644', owner: 'root' };
/** The health check: answered from the service's state on the host it runs on. */
const HEALTH = ['curl', '-fsS', 'http://127.0.0.1:8080/health'];
const health: FakeCommand = {
  argv: HEALTH,
  mutates: false,
  answer: (h) => (h.running ? { stdout: 'ok\n' } : { exitCode: 7, stderr: 'curl: (7) Connection refused' }),
};

type Profile = Record<string, unknown> & {
  deploy: Record<string, unknown>;
  security_profile: Record<string, unknown>;
  traffic: Record<string, unknown>;
};

/** Few configure parts (one file), no data to move, a health command, 1 s windows (the schema's least). */
function baseProfile(marks: { fence: string; switch: string }): Profile {
  return {
    id: APP,
    description: 'A web service on fake hosts.',
    required_cores: 1,
    required_ram_gb: 1,
    required_storage_gb: 1,
    software_stack: [],
    network_configuration: { ip_ranges: [], vlans: [], firewall_rules: [] },
    security_profile: { users: [], encryption_keys: [] },
    application_dependencies: [],
    performance_metrics: {
      cpu_utilization_pct: { max: 90 },
      memory_usage_pct: { max: 90 },
      window_seconds: 1,
      monitor_seconds: 1,
    },
    data: { paths: [], migration: 'none' },
    deploy: { port: 8080, files: [CONF], install: [], ...service },
    health_checks: [{ name: 'health', type: 'command', command: HEALTH }],
    traffic: { method: 'command', fence: ['touch', marks.fence], switch: ['touch', marks.switch] },
  };
}

interface World {
  fake: FakeHosts;
  store: string;
  state: string;
  dir: string;
  env: Record<string, string>;
  marks: { fence: string; switch: string };
  journalFile: string;
  recover(...args: string[]): ReturnType<typeof runInProcess>;
  journal(runId?: string): Journal;
  step(kind: StepRecord['kind'], runId?: string): StepRecord;
}

const fakes: FakeHosts[] = [];
afterEach(() => {
  // A command no fake host answers failed its caller: no test may pass past one.
  for (const fake of fakes.splice(0))
    expect(fake.unknown.map((c) => `${c.host}: ${c.argv.join(' ')}`)).toEqual([]);
});

function world(
  options: {
    hosts?: Record<string, FakeHostSpec>;
    profile?: (p: Profile, dir: string) => void;
    commands?: FakeCommand[];
    env?: Record<string, string>;
  } = {},
): World {
  const store = copyOfProfiles();
  const state = tempDir('persona-state-');
  const dir = tempDir('persona-world-');
  const marks = { fence: join(dir, 'fence-ran'), switch: join(dir, 'switch-ran') };
  const profile = baseProfile(marks);
  options.profile?.(profile, dir);
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
  const fake = new FakeHosts({
    hosts: options.hosts ?? { h1: { running: true }, h2: {} },
    service,
    commands: [health, ...(options.commands ?? [])],
  });
  fakes.push(fake);
  const env = {
    PERSONA_STORE: `file:${store}`,
    PERSONA_STATE_DIR: state,
    PERSONA_INVENTORY: inventory,
    PERSONA_AUTHOR: 'alice@test',
    PERSONA_LOCK_TTL: '2',
    CI: 'true',
    ...options.env,
  };
  const journalPath = (runId = RUN_ID) => join(state, 'runs', `${runId}.json`);
  const w: World = {
    fake,
    store,
    state,
    dir,
    env,
    marks,
    journalFile: journalPath(),
    recover: (...args) => runInProcess(['recover', ...args], { env, transport: fake }),
    journal: (runId) => JSON.parse(readFileSync(journalPath(runId), 'utf8')) as Journal,
    step: (kind, runId) => w.journal(runId).steps.find((s) => s.kind === kind)!,
  };
  return w;
}

/** The --json result line. */
function result(stdout: string): Record<string, unknown> & { runs?: Array<Record<string, unknown>> } {
  return jsonLines(stdout).at(-1) as Record<string, unknown>;
}

const actionIds = (s: StepRecord) => (s.actions ?? []).map((a) => `${a.id}:${a.status}`);

/** A run of web from h1 to h2, saved as a crash left it: these step records (the rest pending). */
async function savedRun(w: World, steps: Partial<Record<StepRecord['kind'], Partial<StepRecord>>>) {
  const store = new ProfileStore(await openBackend(`file:${w.store}`, w.env, repoRoot));
  const { stored } = await store.load(APP);
  const journal: Journal = testJournal({
    run_id: RUN_ID,
    app: APP,
    status: 'interrupted',
    who: 'alice@test',
    driver: { pid: 1, host: 'elsewhere' },
    store: store.describe,
    inventory: 'inventory.json',
    profile: { id: APP, version: stored.version, sha256: sha256(stored.text) },
    failed_host: { name: 'h1', address: '10.0.0.1' },
    target_host: { name: 'h2', address: '10.0.0.2' },
    steps: freshStepRecords().map((s) => ({ ...s, ...steps[s.kind] })),
  });
  await new JournalStore(w.state).save(journal);
  await store.backend.close();
  return journal;
}

const at = '2026-11-27T00:00:00.000Z';
const done = (id: string, title = id): NonNullable<StepRecord['actions']>[number] => ({
  id,
  title,
  touches: 'h2',
  mutates: true,
  observable: true,
  status: 'done',
  attempt: 1,
  at,
});
const succeeded = (outputs: Record<string, unknown> = {}): Partial<StepRecord> => ({
  status: 'succeeded',
  attempts: 1,
  outputs,
});
/** The fence evidence a fence that stopped web on h1 leaves. */
const fencedOutputs = {
  fenced: true,
  evidence: {
    method: 'command',
    canTakeOut: true,
    takenOut: true,
    takenOutBy: 'command: its fence command',
    reachable: true,
    statusExitCode: 3,
    fenced: true,
    reason: 'the host answers; deploy.status exits 3: the application is stopped',
    checked_at: at,
  },
};

describe('recover in-process against fake hosts', () => {
  test('a fresh recover h1 → h2: web runs on h2, h1 is fenced and stopped, every step and action journalled', async () => {
    const w = world();
    const r = await w.recover('h1', '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    const run = result(r.stdout).runs![0]!;
    expect(run).toMatchObject({ status: 'succeeded', failed_host: 'h1', target_host: 'h2' });
    // The world afterwards.
    expect(w.fake.host('h2').running).toBe(true);
    expect(w.fake.host('h1').running).toBe(false);
    expect(existsSync(w.marks.fence)).toBe(true);
    expect(existsSync(w.marks.switch)).toBe(true);
    expect(w.fake.host('h2').files.get(CONF.path)).toMatchObject({ content: CONF.content, mode: '0644' });
    // What changed the hosts: configure may write h2 while the fence runs (h2 serves nothing yet), but the
    // application starts on h2 only after it stopped on h1.
    const changes = w.fake.mutations().map((c) => `${c.host} ${c.what}`);
    expect([...changes].sort()).toEqual(['h1 deploy.stop', 'h2 deploy.start', 'h2 persona-write']);
    expect(changes.indexOf('h1 deploy.stop')).toBeLessThan(changes.indexOf('h2 deploy.start'));
    // The journal: every step succeeded, each with the actions it applied.
    const j = w.journal(run.run_id as string);
    expect(j.status).toBe('succeeded');
    expect(j.steps.map((s) => `${s.kind}:${s.status}`)).toEqual([
      'fence:succeeded',
      'configure:succeeded',
      'migrate:succeeded',
      'validate:succeeded',
      'switch:succeeded',
      'monitor:succeeded',
      'record:succeeded',
    ]);
    const actions = Object.fromEntries(j.steps.map((s) => [s.kind, actionIds(s)]));
    expect(actions).toEqual({
      fence: ['traffic:out:done', 'stop:done'],
      configure: [`file:${CONF.path}:done`],
      migrate: [],
      validate: ['start:done'],
      switch: ['traffic:in:done'],
      monitor: [],
      record: ['record:done'],
    });
    expect(j.steps.find((s) => s.kind === 'switch')!.outputs).toMatchObject({ forced_without_fence: false });
    // The store says web runs on h2 now.
    const store = await openBackend(`file:${w.store}`, w.env, repoRoot);
    const assignment = JSON.parse((await store.get(`assignments/${APP}`))!.value);
    // What validate and monitor saw on h2, kept for ranking.
    const seen = await listObservations(store, { app: APP });
    await store.close();
    expect(assignment).toMatchObject({ host: 'h2', previous: 'h1', run_id: run.run_id });
    expect(seen.map((o) => `${o.host} ${o.source} ${o.ok} ${o.run_id}`)).toEqual([
      `h2 validate true ${run.run_id}`,
      `h2 monitor true ${run.run_id}`,
    ]);
    expect(seen[0]!.metrics).toMatchObject({ cpu_pct: 10, memory_pct: 25 });
  });

  test('a failed validation in the store ranks its host lower in hosts rank, and recover shows why', async () => {
    const w = world();
    const store = await openBackend(`file:${w.store}`, w.env, repoRoot);
    const failed = (host: string) => ({
      at: new Date(Date.now() - 3_600_000).toISOString(),
      app: APP,
      host,
      source: 'validate' as const,
      run_id: `earlier-${host}`,
      ok: false,
      missed: ['health'],
    });
    await recordObservations(store, [failed('h1')]);
    await store.close();
    const rank = async () => {
      const r = await runInProcess(['hosts', 'rank', '--profile', APP, '--json'], {
        env: w.env,
        transport: w.fake,
      });
      expect(r.code, r.stderr).toBe(0);
      return result(r.stdout).hosts as Array<{ host: string; rank: number; history?: string }>;
    };
    // h1 and h2 look alike: h1 would rank first by name, but it failed a validation an hour ago.
    const ranked = await rank();
    expect(ranked.map((h) => h.host)).toEqual(['h2', 'h1']);
    // An hour old: a little under the 10 points (of 100) a fresh one costs.
    expect(ranked[1]!.history).toBe('h1 −9.9: 1 failed validation in the last day');
    expect(ranked[0]!.history).toBeUndefined();
    // recover ranks with the same history: its ranking event says what h2's failure costs it.
    const again = await openBackend(`file:${w.store}`, w.env, repoRoot);
    await recordObservations(again, [failed('h2')]);
    await again.close();
    const r = await w.recover('h1', '--dry-run', '--json');
    expect(r.code, r.stderr).toBe(0);
    const ranking = jsonLines(r.stdout).find((l) => (l as { type?: string }).type === 'ranking') as {
      hosts: Array<{ host: string; history?: string }>;
    };
    expect(ranking.hosts.find((h) => h.host === 'h2')!.history).toBe(
      'h2 −9.9: 1 failed validation in the last day',
    );
  });

  test('validate misses the CPU target on h2: the run stops before the switch, and the failed validation is in the store', async () => {
    const w = world({
      profile: (p) => {
        // The fake samples 10% CPU.
        p.performance_metrics = { ...(p.performance_metrics as object), cpu_utilization_pct: { max: 5 } };
      },
    });
    const r = await w.recover('h1', '--yes', '--json');
    expect(r.code, r.stderr).toBe(5);
    expect(existsSync(w.marks.switch)).toBe(false);
    const run = w.journal(readdirSync(join(w.state, 'runs'))[0]!.replace(/\.json$/, ''));
    expect(run.steps.find((s) => s.kind === 'validate')!.status).toBe('failed');
    const store = await openBackend(`file:${w.store}`, w.env, repoRoot);
    const seen = await listObservations(store, { app: APP, host: 'h2' });
    await store.close();
    expect(seen.length).toBeGreaterThan(0);
    for (const o of seen)
      expect(o).toMatchObject({
        app: APP,
        host: 'h2',
        source: 'validate',
        run_id: run.run_id,
        ok: false,
        missed: ['cpu'],
        metrics: { cpu_pct: 10 },
        vantage: 'persona',
      });
  });

  test('packages and firewall: installed and loaded on h2, and a second plan finds nothing left (the step converged)', async () => {
    const w = world({
      hosts: { h1: { running: true }, h2: { packages: { bash: '5.2.15-2+b8' }, nft: true } },
      profile: (p) => {
        // What the recorded probe (debian12-root-cgroup1) says the host's sources offer.
        p.software_stack = ['rsync', 'socat=1.7.4.4-2'];
        p.network_configuration = {
          ip_ranges: [],
          vlans: [],
          firewall_rules: [{ port: 8080, protocol: 'tcp', source: '10.0.0.0/8', action: 'accept' }],
        };
      },
    });
    const r = await w.recover('h1', '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    const h2 = w.fake.host('h2');
    expect(Object.fromEntries(h2.packages)).toEqual({
      bash: '5.2.15-2+b8',
      rsync: '1.0-1',
      socat: '1.7.4.4-2',
    });
    expect(h2.tables.get(`persona_${APP}`)).toContain('ip saddr 10.0.0.0/8 tcp dport 8080 accept');
    const runId = result(r.stdout).runs![0]!.run_id as string;
    expect(actionIds(w.step('configure', runId))).toEqual([
      'packages:done',
      'firewall:done',
      `file:${CONF.path}:done`,
    ]);
    expect(w.fake.mutations('h2').map((c) => c.what)).toEqual([
      'apt-get update',
      'apt-get install',
      'persona-write',
      'persona-nft',
      'persona-write',
      'deploy.start',
    ]);
  });

  test.each([
    {
      why: 'lists updated a minute ago: installed without updating them (Ansible cache_valid_time)',
      aptLists: { ageSeconds: 60 },
      calls: ['apt-get install'],
      log: "apt's lists are 60 s old (under 3600 s): not updated first",
    },
    {
      why: 'lists a day old: updated first',
      aptLists: { ageSeconds: 86_400 },
      calls: ['apt-get update', 'apt-get install'],
      log: "apt's lists are 86400 s old (3600 s or more): updated first",
    },
    {
      why: 'fresh lists that lack the package: the install fails, the lists are updated, the install runs again',
      aptLists: { ageSeconds: 60, lacks: ['socat'] },
      calls: ['apt-get install', 'apt-get update', 'apt-get install'],
      log: 'the install failed (E: Unable to locate package socat): updated them and installed again',
    },
  ])('apt: $why', async ({ aptLists, calls, log }) => {
    const w = world({
      hosts: { h1: { running: true }, h2: { packages: { bash: '5.2.15-2+b8' }, nft: true, aptLists } },
      profile: (p) => {
        p.software_stack = ['rsync', 'socat=1.7.4.4-2'];
      },
    });
    const r = await w.recover('h1', '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(Object.fromEntries(w.fake.host('h2').packages)).toMatchObject({ socat: '1.7.4.4-2' });
    expect(
      w.fake
        .mutations('h2')
        .map((c) => c.what)
        .filter((c) => c.startsWith('apt-get')),
    ).toEqual(calls);
    const runId = result(r.stdout).runs![0]!.run_id as string;
    expect(w.step('configure', runId).log.join('\n')).toContain(log);
  });

  test("fresh --dry-run: it looks (probe, deploy.status, the target's state) but changes nothing and writes no journal", async () => {
    const w = world();
    const r = await w.recover('h1', '--dry-run', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(result(r.stdout).runs![0]).toMatchObject({ status: 'dry-run' });
    expect(w.fake.mutations()).toEqual([]);
    // It did look: otherwise "nothing changed" would prove nothing.
    expect(w.fake.seen('h2')).toContain('probe');
    expect(w.fake.seen('h2')).toContain('persona-state');
    expect(w.fake.seen('h1')).toContain('deploy.status');
    expect(w.fake.host('h1').running).toBe(true);
    expect(w.fake.host('h2').files.has(CONF.path)).toBe(false);
    expect(existsSync(w.marks.fence)).toBe(false);
    expect(existsSync(w.marks.switch)).toBe(false);
    expect(existsSync(join(w.state, 'runs')) ? readdirSync(join(w.state, 'runs')) : []).toEqual([]);
    const store = await openBackend(`file:${w.store}`, w.env, repoRoot);
    expect(await store.get(`assignments/${APP}`)).toBeUndefined();
    await store.close();
  });

  test('--resume RUN --dry-run on an interrupted fence: read-only commands only, the journal byte for byte as it was', async () => {
    const w = world();
    await savedRun(w, { fence: { status: 'running', attempts: 1 } });
    const before = readFileSync(w.journalFile, 'utf8');
    const r = await w.recover('--resume', RUN_ID, '--dry-run', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(result(r.stdout).runs![0]).toMatchObject({ status: 'dry-run', run_id: RUN_ID });
    expect(w.fake.mutations()).toEqual([]);
    expect(w.fake.seen('h1')).toContain('deploy.status');
    expect(w.fake.host('h1').running).toBe(true);
    expect(readFileSync(w.journalFile, 'utf8')).toBe(before);
    expect(existsSync(w.marks.fence)).toBe(false);
    expect(existsSync(w.marks.switch)).toBe(false);
  });
});

describe('an interrupted fence, resumed', () => {
  const noStatus = (p: Profile) => {
    delete p.deploy.status;
  };

  test('h1 answers and there is no deploy.status: the resume runs deploy.stop on h1 before anything else, and only once', async () => {
    const w = world({ profile: noStatus });
    // Killed after the fence command took h1 out, before the stop (PERSONA_FAILPOINT=fence:after-traffic).
    await savedRun(w, {
      fence: {
        status: 'running',
        attempts: 1,
        actions: [{ ...done('traffic:out'), touches: 'command', observable: false }],
      },
    });
    const r = await w.recover('--resume', RUN_ID, '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(w.fake.mutations().map((c) => `${c.host} ${c.what}`)).toEqual([
      'h1 deploy.stop',
      'h2 persona-write',
      'h2 deploy.start',
    ]);
    expect(w.fake.host('h1').running).toBe(false);
    // The fence command ran in the first attempt (the journal says so): not again. Switch did run.
    expect(existsSync(w.marks.fence)).toBe(false);
    expect(existsSync(w.marks.switch)).toBe(true);
    const fence = w.step('fence');
    expect(actionIds(fence)).toEqual(['traffic:out:done', 'stop:done']);
    expect(fence.outputs).toMatchObject({
      fenced: true,
      evidence: { fenced: true, stopExitCode: 0, reachable: true },
    });
    expect(w.step('switch').outputs).toMatchObject({ forced_without_fence: false });
  });

  test('h1 answers, no deploy.status, and deploy.stop fails: exit 5, switch never runs, the journal says why', async () => {
    const w = world({
      profile: noStatus,
      hosts: { h1: { running: true, stop: { exitCode: 1, stderr: 'Failed to stop web.service\n' } }, h2: {} },
    });
    await savedRun(w, {
      fence: {
        status: 'running',
        attempts: 1,
        actions: [{ ...done('traffic:out'), touches: 'command', observable: false }],
      },
      configure: succeeded(),
      migrate: succeeded(),
      validate: succeeded(),
    });
    const r = await w.recover('--resume', RUN_ID, '--yes', '--json');
    expect(r.code, r.stderr).toBe(5);
    expect(existsSync(w.marks.switch)).toBe(false);
    expect(w.step('fence')).toMatchObject({ status: 'failed', error: { code: 'E_STEP_FAILED' } });
    expect(w.step('fence').error!.message).toContain('exited 1');
    expect(w.step('switch').status).toBe('pending');
    expect(w.journal().status).toBe('failed');
  });

  test.each([
    ['none', (_switchMark: string) => ({ method: 'none' })],
    [
      'command without a fence command',
      (switchMark: string) => ({ method: 'command', switch: ['touch', switchMark] }),
    ],
  ])(
    'h1 silent and traffic method %s cannot take it out: exit 5, switch never runs, the journal says failed with the reason',
    async (_name, traffic) => {
      const w = world({
        hosts: { h1: { down: 'timeout', running: true }, h2: { running: true } },
        profile: (p, dir) => {
          p.traffic = traffic(join(dir, 'switch-ran'));
        },
      });
      await savedRun(w, {
        fence: { status: 'running', attempts: 1 },
        configure: succeeded(),
        migrate: succeeded(),
        validate: succeeded(),
      });
      const r = await w.recover('--resume', RUN_ID, '--yes', '--json');
      expect(r.code, r.stderr).toBe(5);
      expect(result(r.stdout)).toMatchObject({ ok: false, error: { code: 'E_STEP_FAILED' } });
      expect(existsSync(w.marks.switch)).toBe(false);
      expect(w.fake.mutations()).toEqual([]);
      const j = w.journal();
      expect(j.status).toBe('failed');
      const fence = j.steps.find((s) => s.kind === 'fence')!;
      expect(fence.status).toBe('failed');
      expect(fence.error!.message).toMatch(
        /cannot fence h1: the host does not answer .*timed out.* it may still serve/,
      );
      expect(j.steps.find((s) => s.kind === 'switch')!.status).toBe('pending');
    },
  );
});

describe('a host that timed out', () => {
  test('is not waited for again in the same run: one connection attempt to h1 from fence to migrate', async () => {
    const w = world({
      hosts: { h1: { down: 'timeout', running: true }, h2: { running: true } },
      profile: (p) => {
        p.data = {
          paths: ['/srv/web'],
          migration: 'rsync',
          backup: { path: '/backups/web' },
        } as Profile['data'];
      },
    });
    // No --data-from: migrate asks whether h1 answers (and finds no backup on this machine: it stops there).
    const r = await w.recover('h1', '--yes', '--json');
    const events = jsonLines(r.stdout);
    expect(
      events.some((e) => e.step === 'migrate' && e.type === 'step-plan'),
      r.stderr,
    ).toBe(true);
    const attempts = w.fake.calls.filter((c) => c.host === 'h1' && c.unreachable);
    expect(attempts.length, JSON.stringify(w.fake.seen('h1'))).toBe(1);
    // The fence's plans (before and after taking h1 out) and its conclusion saw the same timeout, and said so.
    const fence = w
      .journal(String(events.find((e) => e.run_id)!.run_id))
      .steps.find((s) => s.kind === 'fence')!;
    expect(fence.status).toBe('succeeded');
    const said = JSON.stringify(events.filter((e) => e.type === 'step-plan' && e.step !== 'configure'));
    expect(said).toMatch(/timed out.*s ago in this run: not waited for again/);
    expect(JSON.stringify(fence)).toMatch(/not waited for again/);
  });
});

describe('secrets', () => {
  // Quotes and a backslash: the JSON-escaped form differs from the raw one.
  const SECRET = 'hunter2-"q"\\back';
  const forms = [SECRET, JSON.stringify(SECRET).slice(1, -1)];

  function filesUnder(dir: string): string[] {
    return readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .map((f) => join(dir, f))
      .filter((f) => statSync(f).isFile());
  }

  test('an env: key the fence command prints and h1 echoes on failure: the value is nowhere in output, journal or store', async () => {
    const w = world({
      hosts: {
        h1: { running: true, stop: { exitCode: 1, stdout: SECRET, stderr: `cannot stop: key=${SECRET}\n` } },
        h2: {},
      },
      env: { WEB_KEY: SECRET },
      profile: (p, dir) => {
        const file = join(dir, 'printed');
        writeFileSync(file, `${SECRET}\n`);
        p.traffic = { method: 'command', fence: ['cat', file], switch: ['touch', join(dir, 'switch-ran')] };
        p.security_profile = {
          users: [],
          encryption_keys: [
            { name: 'tls', secret: 'env:WEB_KEY', path: '/etc/web/key.pem', owner: 'root', mode: '0600' },
          ],
        };
      },
    });
    const r = await w.recover('h1', '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    // The secret was used and printed: the greps below are not vacuous.
    expect(w.fake.host('h2').files.get('/etc/web/key.pem')).toMatchObject({ content: SECRET, mode: '0600' });
    const runId = result(r.stdout).runs![0]!.run_id as string;
    expect(JSON.stringify(w.step('fence', runId).outputs)).toContain('[redacted]');
    const texts: Array<[string, string]> = [
      ['stdout', r.stdout],
      ['stderr', r.stderr],
      ...jsonLines(r.stdout).map((l, i): [string, string] => [`--json line ${i}`, JSON.stringify(l)]),
      ...[...filesUnder(w.state), ...filesUnder(w.store)].map((f): [string, string] => [
        f,
        readFileSync(f, 'utf8'),
      ]),
    ];
    expect(texts.some(([name]) => name === w.journalFile.replace(RUN_ID, runId))).toBe(true);
    const leaks = texts.flatMap(([name, text]) => forms.filter((f) => text.includes(f)).map(() => name));
    expect(leaks).toEqual([]);
  });
});

describe('the lock', () => {
  async function holdLock(w: World, runId: string) {
    const backend = await openBackend(`file:${w.store}`, w.env, repoRoot);
    const lock = await backend.acquireLock(
      lockName(APP),
      {
        holder: 'bob@ops',
        host: hostname(),
        pid: process.pid,
        run_id: runId,
        purpose: 'recover web',
        started_at: at,
      },
      { ttlMs: 2000 },
    );
    return {
      async release() {
        await lock.release();
        await backend.close();
      },
    };
  }

  test('held by another live driver: a fresh recover exits 4 (E_LOCK_HELD) before any remote command', async () => {
    const w = world();
    const held = await holdLock(w, '20261127T000000Z-web-other0');
    try {
      const r = await w.recover('h1', '--yes', '--json');
      expect(r.code, r.stderr).toBe(4);
      expect(result(r.stdout)).toMatchObject({ ok: false, error: { code: 'E_LOCK_HELD' } });
      expect(w.fake.calls).toEqual([]);
      expect(existsSync(w.marks.fence)).toBe(false);
      expect(w.fake.host('h1').running).toBe(true);
    } finally {
      await held.release();
    }
  });

  test('held by another run: --resume exits 4 and leaves the journal and the hosts alone', async () => {
    const w = world();
    await savedRun(w, { fence: { status: 'running', attempts: 1 } });
    const before = readFileSync(w.journalFile, 'utf8');
    const held = await holdLock(w, '20261127T000000Z-web-other0');
    try {
      const r = await w.recover('--resume', RUN_ID, '--yes', '--json');
      expect(r.code, r.stderr).toBe(4);
      expect(result(r.stdout)).toMatchObject({ ok: false, error: { code: 'E_LOCK_HELD' } });
      expect(w.fake.mutations()).toEqual([]);
      expect(readFileSync(w.journalFile, 'utf8')).toBe(before);
      expect(existsSync(w.marks.fence)).toBe(false);
    } finally {
      await held.release();
    }
  });
});

describe('a crash in the middle of configure, resumed', () => {
  const KEYS = ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake ops@example'];

  test('only what is left runs: no group, user or hook again; keys, files and the install command once', async () => {
    const prep: FakeCommand = { argv: ['web-prep'], mutates: true, answer: () => ({}) };
    const setup: FakeCommand = { argv: ['web-setup', '--init'], mutates: true, answer: () => ({}) };
    const w = world({
      // As the first attempt left h2: the group and the user exist.
      hosts: { h1: { down: 'refused' }, h2: { groups: ['webops'], users: { web: { groups: ['webops'] } } } },
      commands: [prep, setup],
      env: { WEB_KEY: 'k3y-material' },
      profile: (p) => {
        p.security_profile = {
          groups: ['webops'],
          users: [{ name: 'web', groups: ['webops'], authorized_keys: KEYS }],
          encryption_keys: [
            { name: 'tls', secret: 'env:WEB_KEY', path: '/etc/web/key.pem', owner: 'web', mode: '0600' },
          ],
        };
        p.deploy.install = [setup.argv];
        p.hooks = { pre_configure: [{ run: prep.argv, on: 'target' }] };
      },
    });
    await savedRun(w, {
      fence: succeeded(fencedOutputs),
      configure: {
        status: 'running',
        attempts: 1,
        actions: [
          { ...done('hook:pre_configure:0'), observable: false },
          done('group:webops'),
          done('user:web'),
          { ...done('authorized_keys:web'), status: 'running' },
        ],
      },
    });
    const r = await w.recover('--resume', RUN_ID, '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(w.fake.mutations().map((c) => `${c.host} ${c.what}`)).toEqual([
      'h2 persona-authorized-keys',
      'h2 persona-write',
      'h2 persona-write',
      'h2 web-setup --init',
      'h2 deploy.start',
    ]);
    expect(w.fake.seen('h1')).toEqual([]);
    expect(existsSync(w.marks.fence)).toBe(false);
    const h2 = w.fake.host('h2');
    expect(h2.files.get('/home/web/.ssh/authorized_keys')).toMatchObject({
      content: `${KEYS[0]}\n`,
      owner: 'web',
    });
    expect(h2.files.get('/etc/web/key.pem')).toMatchObject({
      content: 'k3y-material',
      owner: 'web',
      mode: '0600',
    });
    expect(h2.files.get(CONF.path)).toMatchObject({ content: CONF.content });
    expect(actionIds(w.step('configure'))).toEqual([
      'hook:pre_configure:0:done',
      'group:webops:done',
      'user:web:done',
      'authorized_keys:web:done',
      'key:tls:done',
      `file:${CONF.path}:done`,
      'install:0:done',
    ]);
    expect(w.journal().status).toBe('succeeded');
  });
});
