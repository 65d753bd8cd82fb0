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
import { JournalStore } from '../../src/runbook/journal.js';
import { freshStepRecords, lockName } from '../../src/runbook/recover.js';
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

type Profile = Record<string, unknown> & {
  deploy: Record<string, unknown>;
  security_profile: Record<string, unknown>;
  traffic: Record<string, unknown>;
};

/** Few configure parts (one file), no data to move, health from deploy.status, 1 s windows. */
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
    health_checks: [{ name: 'active', type: 'command', command: service.status }],
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
    ...(options.commands ? { commands: options.commands } : {}),
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
    // What changed the hosts, in order: h1 stopped before anything touched h2.
    expect(w.fake.mutations().map((c) => `${c.host} ${c.what}`)).toEqual([
      'h1 deploy.stop',
      'h2 persona-write',
      'h2 deploy.start',
    ]);
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
    await store.close();
    expect(assignment).toMatchObject({ host: 'h2', previous: 'h1', run_id: run.run_id });
  });
});
