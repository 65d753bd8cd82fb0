/**
 * The recovery's pure decisions: the target, the journal skeleton and plan of a fresh run, what a resume does.
 * No store, no SSH, no clock: what the runner would read is given.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import type { RankedHost } from '../../src/broker/broker.js';
import type { Inventory, InventoryHost } from '../../src/hosts/inventory.js';
import type { SshTransport } from '../../src/hosts/ssh.js';
import { parseProfileText } from '../../src/profile/validate.js';
import {
  chooseTarget,
  freshStepRecords,
  type PlanInput,
  planRecovery,
  planResume,
} from '../../src/recover/plan.js';
import { stepContext } from '../../src/runbook/step-context.js';
import type { Journal, Step, StepContext, StepRecord } from '../../src/runbook/types.js';
import { runbook } from '../../src/steps/index.js';
import type { KvBackend } from '../../src/stores/kv.js';
import { Redactor } from '../../src/ui/redact.js';
import type { Reporter } from '../../src/ui/reporter.js';
import { sha256 } from '../../src/util/hash.js';
import { repoRoot } from '../helpers/cli.js';
import { testJournal } from '../helpers/journal.js';

const profileText = (name: string) => readFileSync(`${repoRoot}profiles/${name}.json`, 'utf8');
const profile = (name: string) => parseProfileText(name, profileText(name)).profile;

const host = (name: string, extra: Partial<InventoryHost> = {}): InventoryHost => ({
  name,
  address: `10.0.0.${name.slice(1)}`,
  labels: {},
  apps: [],
  ...extra,
});
const inventory: Inventory = {
  source: 'inventory.json',
  hosts: [
    host('h1', { apps: ['demo-web'] }),
    host('h2', { port: 2222, user: 'ops' }),
    host('h3'),
    host('h9'),
  ],
  warnings: [],
};

const eligible = (name: string, rank: number, total = 100 - rank): RankedHost => ({
  host: name,
  address: `10.0.0.${name.slice(1)}`,
  verdict: 'eligible',
  rank,
  reasons: [],
  score: { total, components: {} } as unknown as NonNullable<RankedHost['score']>,
});
const rejected = (name: string, message: string, fix?: string): RankedHost => ({
  host: name,
  address: `10.0.0.${name.slice(1)}`,
  verdict: 'rejected',
  reasons: [{ code: 'memory', message, ...(fix ? { fix } : {}) }],
});

/** A transport or store that fails the test if anything is asked of it: planning reads the profile only. */
function offline<T extends object>(what: string, props: Record<string, unknown> = {}): T {
  return new Proxy(props, {
    get(target, key) {
      if (typeof key === 'symbol' || key in target) return Reflect.get(target, key);
      throw new Error(`planning used the ${what} (${String(key)})`);
    },
  }) as T;
}

const quiet: Reporter = {
  info() {},
  warn() {},
  event() {},
  task: () => ({ update() {}, succeed() {}, fail() {}, warn() {} }),
};

/** The context a step describes itself with, as the runner builds it, but with nothing behind it. */
function describeContext(name = 'demo-web') {
  return (journal: Journal, record: StepRecord): StepContext =>
    stepContext(
      {
        journal,
        profile: profile(name),
        inventory,
        failed: inventory.hosts.find((h) => h.name === journal.failed_host.name)!,
        target: inventory.hosts.find((h) => h.name === journal.target_host.name)!,
        ssh: offline<SshTransport>('SSH transport'),
        backend: offline<KvBackend>('store', { describe: 'file:/store', shared: false }),
        reporter: quiet,
        redactor: new Redactor(),
        stateDir: '/nonexistent/state',
        env: {},
        now: () => {
          throw new Error('planning read the clock');
        },
      },
      new AbortController().signal,
      record,
    );
}

/** Steps that only describe themselves: the builder, not the runbook, is under test. */
const fakeSteps = [
  { kind: 'fence', title: 'Fence', mutates: true },
  { kind: 'validate', title: 'Validate', mutates: false },
].map(
  (s) =>
    ({
      ...s,
      describe: (ctx: StepContext) => [
        `${s.kind} of ${ctx.profile.id}: ${ctx.failed.name} → ${ctx.target.name}`,
        `record ${ctx.previous(s.kind as 'fence')?.kind} ${ctx.journal.status}`,
      ],
      plan: () => Promise.reject(new Error('not in a plan')),
      conclude: () => Promise.reject(new Error('not in a plan')),
    }) as unknown as Step,
);

function input(over: Partial<PlanInput> = {}): PlanInput {
  return {
    runId: '20261127T101500Z-demo-web-abc123',
    app: 'demo-web',
    profile: profile('demo-web'),
    stored: { version: 7, text: profileText('demo-web') },
    inventory,
    store: 'file:/store',
    failedHost: 'h1',
    targetHost: 'h2',
    ranking: [eligible('h3', 1), eligible('h2', 2), rejected('h9', 'needs 4 GiB of memory, has 1 GiB')],
    request: {
      forceNoFence: false,
      strategy: 'best-fit',
      dataFrom: 'auto',
      commandLine: ['persona', 'recover', 'h1'],
    },
    driver: { who: 'alice@laptop', pid: 4242, host: 'laptop', at: new Date('2026-11-27T10:15:00Z') },
    describeContext: describeContext(),
    ...over,
  };
}

describe('chooseTarget', () => {
  const ranking = [eligible('h3', 1), eligible('h2', 2), rejected('h9', 'needs 4 GiB', 'add memory')];

  test('nobody to ask: the top of the ranking, said to be so', () => {
    expect(chooseTarget(ranking, {}, 'demo-web', false)).toEqual({
      decided: ranking[0],
      by: 'top of the ranking',
    });
  });

  test('someone to ask: every candidate, the best eligible as the default', () => {
    const choice = chooseTarget(ranking, {}, 'demo-web', true);
    expect(choice).toEqual({ ask: ranking, default: ranking[0] });
  });

  test('--target names an eligible candidate: taken, asked or not', () => {
    expect(chooseTarget(ranking, { target: 'h2' }, 'demo-web', true)).toEqual({
      decided: ranking[1],
      by: '--target',
    });
  });

  test('--target names a rejected host: E_NO_CANDIDATE with its reasons and their fixes', () => {
    expect(() => chooseTarget(ranking, { target: 'h9' }, 'demo-web', false)).toThrow(
      expect.objectContaining({
        code: 'E_NO_CANDIDATE',
        message: '--target h9 cannot take demo-web: needs 4 GiB',
        hint: 'add memory',
      }),
    );
  });

  test('--target names no candidate: a usage error', () => {
    expect(() => chooseTarget(ranking, { target: 'nope' }, 'demo-web', false)).toThrow(
      expect.objectContaining({ code: 'E_USAGE' }),
    );
  });

  test('no eligible host: E_NO_CANDIDATE naming each host and why', () => {
    const none = [rejected('h2', 'needs 2 cores'), rejected('h3', 'does not answer')];
    expect(() => chooseTarget(none, {}, 'demo-web', true)).toThrow(
      expect.objectContaining({
        code: 'E_NO_CANDIDATE',
        message: 'no host can take demo-web:\n  h2: needs 2 cores\n  h3: does not answer',
      }),
    );
  });
});

describe('planRecovery', () => {
  test('the journal skeleton: planned, pinned to the stored profile, every step pending', () => {
    const { journal } = planRecovery(input({ steps: fakeSteps }));
    expect(journal).toMatchObject({
      format: 'persona-run',
      run_id: '20261127T101500Z-demo-web-abc123',
      app: 'demo-web',
      status: 'planned',
      created_at: '2026-11-27T10:15:00.000Z',
      updated_at: '2026-11-27T10:15:00.000Z',
      who: 'alice@laptop',
      driver: { pid: 4242, host: 'laptop' },
      command_line: ['persona', 'recover', 'h1'],
      store: 'file:/store',
      inventory: 'inventory.json',
      profile: { id: 'demo-web', version: 7, sha256: sha256(profileText('demo-web')) },
      options: { force_no_fence: false, strategy: 'best-fit' },
    });
    // Port and user only when the inventory has them.
    expect(journal.failed_host).toEqual({ name: 'h1', address: '10.0.0.1' });
    expect(journal.target_host).toEqual({ name: 'h2', address: '10.0.0.2', port: 2222, user: 'ops' });
    expect(journal.options).not.toHaveProperty('data_from');
    expect(journal.steps).toEqual([
      { kind: 'fence', title: 'Fence', mutates: true, status: 'pending', attempts: 0, log: [] },
      { kind: 'validate', title: 'Validate', mutates: false, status: 'pending', attempts: 0, log: [] },
    ]);
    // The ranking is summarised, the chosen target kept wherever it ranked.
    expect(journal.ranking!.map((r) => r.host)).toEqual(['h3', 'h2']);
    expect(journal.ranking_summary).toMatchObject({ candidates: 3, eligible: 2, rejected: 1 });
  });

  test('a chosen data source and --force-no-fence are recorded in the options', () => {
    const { journal } = planRecovery(
      input({
        steps: fakeSteps,
        request: { forceNoFence: true, strategy: 'spread', dataFrom: 'backup', commandLine: [] },
      }),
    );
    expect(journal.options).toEqual({ force_no_fence: true, strategy: 'spread', data_from: 'backup' });
  });

  test("the plan: each step's own description, made with the run's journal and its record", () => {
    const seen: Array<[Journal, StepRecord]> = [];
    const context = describeContext();
    const { plan, confirm, journal } = planRecovery(
      input({
        steps: fakeSteps,
        describeContext: (j, record) => {
          seen.push([j, record]);
          return context(j, record);
        },
      }),
    );
    expect(seen.map(([j]) => j)).toEqual([journal, journal]);
    expect(seen.map(([, r]) => r)).toEqual(journal.steps);
    expect(seen[1]![1]).toBe(journal.steps[1]);
    expect(plan).toMatchObject({
      run_id: '20261127T101500Z-demo-web-abc123',
      app: 'demo-web',
      failed_host: 'h1',
      target_host: 'h2',
      profile_version: 7,
      hooks: [],
    });
    expect(plan.steps).toEqual([
      { kind: 'fence', mutates: true, lines: ['fence of demo-web: h1 → h2', 'record fence planned'] },
      {
        kind: 'validate',
        mutates: false,
        lines: ['validate of demo-web: h1 → h2', 'record validate planned'],
      },
    ]);
    expect(confirm).toBe('Recover demo-web from h1 onto h2: run these 2 steps?');
  });

  test('hooks and secret references are in the plan; secret values are not', () => {
    const { plan } = planRecovery(
      input({
        app: 'billing-api',
        profile: profile('billing-api'),
        stored: { version: 1, text: profileText('billing-api') },
        steps: fakeSteps,
        describeContext: describeContext('billing-api'),
      }),
    );
    expect(plan.hooks).toEqual([
      {
        phase: 'post_switch',
        on: 'local',
        run: ['/usr/local/bin/notify-oncall', 'billing-api moved to {host}'],
      },
    ]);
    expect(plan.secrets.length).toBeGreaterThan(0);
    for (const s of plan.secrets) expect(s.ref).toMatch(/^(env|file|store):/);
  });

  test('the real runbook describes itself from the profile alone: no SSH, no store, no clock', () => {
    const { plan, journal } = planRecovery(input());
    expect(plan.steps.map((s) => s.kind)).toEqual(runbook.map((s) => s.kind));
    expect(journal.steps.map((s) => s.kind)).toEqual(freshStepRecords().map((s) => s.kind));
    for (const step of plan.steps) expect(step.lines.length, step.kind).toBeGreaterThan(0);
  });

  test('the failed host is no target, and an unknown host is not found', () => {
    expect(() => planRecovery(input({ steps: fakeSteps, targetHost: 'h1' }))).toThrow(
      expect.objectContaining({ code: 'E_USAGE' }),
    );
    expect(() => planRecovery(input({ steps: fakeSteps, targetHost: 'h7' }))).toThrow(
      expect.objectContaining({ code: 'E_NOT_FOUND' }),
    );
  });
});

describe('planResume', () => {
  const text = profileText('demo-web');
  const loaded = () =>
    testJournal({
      run_id: 'r1',
      app: 'demo-web',
      status: 'interrupted',
      profile: { id: 'demo-web', version: 3, sha256: sha256(text) },
      driver: { pid: 1, host: 'elsewhere' },
      failed_host: { name: 'h1', address: '10.0.0.1' },
      target_host: { name: 'gone', address: '10.9.9.9', port: 22 },
      steps: freshStepRecords().map((s) => ({
        ...s,
        status: s.kind === 'fence' ? 'succeeded' : s.kind === 'configure' ? 'skipped' : s.status,
      })),
    });
  const resume = (j: Journal, request = {}, stored = { version: 3, text }) =>
    planResume(j, {
      inventory,
      stored,
      request: { dryRun: false, stepByStep: false, forceNoFence: false, ...request },
      driver: { pid: 99, host: 'laptop' },
    });

  test('what is left to do, by whom, onto which host; the loaded journal is left as it was', () => {
    const j = loaded();
    const before = structuredClone(j);
    const plan = resume(j);
    expect(j).toEqual(before);
    expect(plan.pending).toEqual(['migrate', 'validate', 'switch', 'monitor', 'record']);
    expect(plan.previous).toEqual({ pid: 1, host: 'elsewhere' });
    expect(plan.journal.driver).toEqual({ pid: 99, host: 'laptop' });
    // A host that left the inventory is the journal's record of it.
    expect(plan.target).toEqual({ name: 'gone', address: '10.9.9.9', port: 22, labels: {}, apps: [] });
    expect(plan.failed).toBe(inventory.hosts[0]);
    expect(plan.confirm).toBe(
      'Resume run r1: recover demo-web from h1 onto gone, running migrate, validate, switch, monitor, record?',
    );
    expect(plan).not.toHaveProperty('profileChanged');
    expect(plan).not.toHaveProperty('dataFromChanged');
    expect(plan.confirmForceNoFence).toBe(false);
  });

  test('a changed profile is noticed and the run moves to the stored version', () => {
    const plan = resume(loaded(), {}, { version: 4, text: `${text} ` });
    expect(plan.profileChanged).toEqual({ from: 3, to: 4 });
    expect(plan.journal.profile).toEqual({ id: 'demo-web', version: 4, sha256: sha256(`${text} `) });
  });

  test('--data-from changes the source only when it differs from the run’s', () => {
    expect(resume(loaded(), { dataFrom: 'auto' })).not.toHaveProperty('dataFromChanged');
    const plan = resume(loaded(), { dataFrom: 'backup' });
    expect(plan.dataFromChanged).toBe('backup');
    expect(plan.journal.options.data_from).toBe('backup');
  });

  test('--force-no-fence needs confirming only when the run has not recorded it', () => {
    expect(resume(loaded(), { forceNoFence: true }).confirmForceNoFence).toBe(true);
    const forced = loaded();
    forced.options.force_no_fence = true;
    expect(resume(forced, { forceNoFence: true }).confirmForceNoFence).toBe(false);
  });
});
