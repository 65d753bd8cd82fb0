import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { PersonaError } from '../../src/errors.js';
import { Engine, type EngineOptions } from '../../src/runbook/engine.js';
import { JournalStore, parseJournal } from '../../src/runbook/journal.js';
import type { Action, Journal, Step, StepContext, StepKind, StepRecord } from '../../src/runbook/types.js';
import type { KvBackend } from '../../src/stores/kv.js';
import { NonInteractivePrompter, type Prompter } from '../../src/ui/prompter.js';
import { Redactor } from '../../src/ui/redact.js';
import type { Reporter } from '../../src/ui/reporter.js';
import { ScriptedPrompter } from '../helpers/cli.js';
import { testJournal } from '../helpers/journal.js';
import { tempDir } from '../helpers/tmp.js';

/** A step behaviour that notes its name in `list`. */
const pushing = (list: string[], name: string) => async () => {
  list.push(name);
  return {};
};

const quiet: Reporter = {
  info() {},
  warn() {},
  event() {},
  task: () => ({ update() {}, succeed() {}, fail() {}, warn() {} }),
};

function journal(kinds: StepKind[]): Journal {
  return testJournal({
    steps: kinds.map((kind) => ({
      kind,
      title: kind,
      mutates: true,
      status: 'pending',
      attempts: 0,
      log: [],
    })),
  });
}

interface FakeStep extends Step {
  /** How often its action was applied. */
  runs: number;
  /** How often it was planned. */
  planned: number;
}

/**
 * A step with one action, "do <kind>": unobservable (it runs once per run), unless `observable` says the world
 * holds its effect (then the plan leaves it out once `done()` says so).
 */
function step(
  kind: StepKind,
  behaviour: (n: number, ctx: StepContext) => Promise<Record<string, unknown>>,
  extra: Partial<Step> & { done?: () => boolean } = {},
): FakeStep {
  const { done, ...rest } = extra;
  const s: FakeStep = {
    kind,
    title: kind,
    mutates: true,
    runs: 0,
    planned: 0,
    describe: () => [],
    async plan() {
      s.planned++;
      if (done?.()) return { actions: [], notes: [`${kind}: nothing left to do`] };
      const action: Action = {
        id: 'do',
        title: `do ${kind}`,
        touches: 'h2',
        mutates: true,
        observable: done !== undefined,
        async apply(ctx) {
          s.runs++;
          return await behaviour(s.runs, ctx);
        },
      };
      return { actions: [action], notes: [] };
    },
    async conclude(_ctx, { applied }) {
      return { ...applied.get('do') };
    },
    ...rest,
  };
  return s;
}

function setup(
  kinds: StepKind[],
  steps: FakeStep[],
  options: {
    interactive?: boolean;
    prompter?: Prompter;
    signal?: AbortSignal;
    j?: Journal;
    stepByStep?: boolean;
    journals?: JournalStore;
    engineOptions?: Partial<EngineOptions>;
  } = {},
) {
  const dir = tempDir();
  const journals = options.journals ?? new JournalStore(dir);
  const j = options.j ?? journal(kinds);
  const snapshots: Array<Array<[string, string]>> = [];
  const saving = journals.save.bind(journals);
  journals.save = async (x) => {
    snapshots.push(x.steps.map((s) => [s.kind, s.status]));
    await saving(x);
  };
  const engine = new Engine(
    j,
    steps,
    {
      journals,
      reporter: quiet,
      prompter: options.prompter ?? new ScriptedPrompter([]),
      context: (signal, record: StepRecord) =>
        ({
          signal,
          profile: {},
          log: (l: string) => record.log.push(l),
          checkpoint: async () => {},
        }) as unknown as StepContext,
      now: () => new Date('2026-11-27T01:00:00Z'),
    },
    {
      interactive: options.interactive ?? false,
      stepByStep: options.stepByStep ?? false,
      resumeCommand: 'persona recover --resume R',
      signal: options.signal ?? new AbortController().signal,
      backoffMs: 1,
      ...options.engineOptions,
    },
  );
  return { engine, journal: j, journals, dir, snapshots };
}

describe('engine', () => {
  test('runs every step in order and journals before and after each one', async () => {
    const a = step('fence', async () => ({ fenced: true }));
    const b = step('configure', async () => ({ ok: 1 }));
    const { engine, journal: j, snapshots, dir } = setup(['fence', 'configure'], [a, b]);
    await engine.run();
    expect(j.status).toBe('succeeded');
    const both = (f: string, c: string) => [
      ['fence', f],
      ['configure', c],
    ];
    expect(snapshots).toEqual([
      both('pending', 'pending'),
      // step running, its action running, its action done, step succeeded
      both('running', 'pending'),
      both('running', 'pending'),
      both('running', 'pending'),
      both('succeeded', 'pending'),
      both('succeeded', 'running'),
      both('succeeded', 'running'),
      both('succeeded', 'running'),
      both('succeeded', 'succeeded'),
      both('succeeded', 'succeeded'),
    ]);
    const file = join(dir, 'runs', `${j.run_id}.json`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(parseJournal(file, readFileSync(file, 'utf8')).steps[0]!.outputs).toEqual({ fenced: true });
  });

  test('a failed step stops the run non-interactively, naming the resume command (exit 5)', async () => {
    const a = step('fence', async () => {
      throw new PersonaError('E_STEP_FAILED', 'haproxy said no', { hint: 'check haproxy' });
    });
    const b = step('configure', async () => ({}));
    const { engine, journal: j } = setup(['fence', 'configure'], [a, b]);
    const error = await engine.run().catch((e: PersonaError) => e);
    expect(error).toMatchObject({ code: 'E_STEP_FAILED', exitCode: 5 });
    expect((error as PersonaError).hint).toContain('persona recover --resume R');
    expect(j.status).toBe('failed');
    expect(j.steps[0]).toMatchObject({ status: 'failed', error: { message: 'haproxy said no' } });
    expect(b.runs).toBe(0);
  });

  test('resume skips what succeeded and goes on from the failed step', async () => {
    const j = journal(['fence', 'configure']);
    j.steps[0]!.status = 'succeeded';
    j.steps[1]!.status = 'failed';
    const a = step('fence', async () => ({}));
    const b = step('configure', async () => ({ done: true }));
    const { engine } = setup([], [a, b], { j });
    await engine.run();
    expect([a.runs, b.runs]).toEqual([0, 1]);
    expect(j.steps[1]).toMatchObject({ status: 'succeeded', attempts: 1 });
  });

  test('a step found running after a crash is planned again: what is done is not redone, what is left is', async () => {
    const j = journal(['fence', 'configure']);
    j.steps[0]!.status = 'running';
    j.steps[1]!.status = 'running';
    // fence's effect is there (an observable action: the plan is empty); configure's action ran once already.
    j.steps[1]!.actions = [
      {
        id: 'do',
        title: 'do configure',
        touches: 'h2',
        mutates: true,
        observable: false,
        status: 'done',
        attempt: 1,
        at: 'then',
        outputs: { earlier: true },
      },
    ];
    const a = step('fence', async () => ({}), { done: () => true });
    const b = step('configure', async () => ({ again: true }));
    const { engine } = setup([], [a, b], { j });
    await engine.run();
    expect([a.runs, b.runs]).toEqual([0, 0]);
    expect(j.steps.map((s) => s.status)).toEqual(['succeeded', 'succeeded']);
    // The conclusion sees what the earlier attempt's action did.
    expect(j.steps[1]!.outputs).toEqual({ earlier: true });
  });

  test('an action interrupted before it was recorded done runs again on resume', async () => {
    const j = journal(['configure']);
    j.steps[0]!.status = 'interrupted';
    j.steps[0]!.actions = [
      {
        id: 'do',
        title: 'do configure',
        touches: 'h2',
        mutates: true,
        observable: false,
        status: 'running',
        attempt: 1,
        at: 'then',
      },
    ];
    const b = step('configure', async () => ({ again: true }));
    const { engine } = setup([], [b], { j });
    await engine.run();
    expect(b.runs).toBe(1);
    expect(j.steps[0]).toMatchObject({ status: 'succeeded', outputs: { again: true } });
  });

  test('a step whose observable change is still planned after its action did not converge: it fails', async () => {
    const a = step('configure', async () => ({}), { done: () => false });
    const { engine, journal: j } = setup(['configure'], [a]);
    const error = await engine.run().catch((e: PersonaError) => e);
    expect(error).toMatchObject({ code: 'E_STEP_FAILED' });
    expect((error as PersonaError).message).toMatch(/configure did not converge: .*do configure/);
    expect([a.runs, a.planned]).toEqual([1, 2]);
    expect(j.steps[0]!.status).toBe('failed');
  });

  test('a blocked plan fails the step before any action, with its hint', async () => {
    const a = step('migrate', async () => ({}), {
      plan: async () => ({
        actions: [],
        notes: [],
        blocked: { message: 'no data source', hint: 'use --data-from' },
      }),
    });
    const { engine, journal: j } = setup(['migrate'], [a]);
    const error = await engine.run().catch((e: PersonaError) => e);
    expect((error as PersonaError).message).toMatch(/step migrate failed: no data source/);
    expect((error as PersonaError).hint).toMatch(/use --data-from/);
    expect(j.steps[0]).toMatchObject({ status: 'failed', error: { message: 'no data source' } });
  });

  test('actions for after the conclusion run only once it holds', async () => {
    const ran: string[] = [];
    const after: Action = {
      id: 'hook:post',
      title: 'post hook',
      touches: 'this machine',
      mutates: true,
      observable: false,
      apply: async () => void ran.push('post'),
    };
    let holds = false;
    const a = step('fence', async () => ({}), {
      plan: async () => ({ actions: [], after: [after], notes: [] }),
      conclude: async () => {
        if (!holds) throw new PersonaError('E_STEP_FAILED', 'not fenced');
        return { fenced: true };
      },
    });
    const first = setup(['fence'], [a]);
    await expect(first.engine.run()).rejects.toMatchObject({ code: 'E_STEP_FAILED' });
    expect(ran).toEqual([]);
    holds = true;
    await setup([], [a], { j: first.journal }).engine.run();
    expect(ran).toEqual(['post']);
  });

  test('the lock is checked before every mutating action: a stale holder applies nothing and writes nothing', async () => {
    const a = step('fence', async () => ({}));
    let held = true;
    const assertHeld = () => {
      if (!held) throw new PersonaError('E_LOCK_LOST', 'the lock on app-app expired (monotonic deadline)');
    };
    const dir = tempDir();
    const { engine, journal: j } = setup(['fence'], [a], {
      // The journal store refuses too once the lock is stale, as the run's real one does.
      journals: new JournalStore(dir, undefined, undefined, assertHeld),
      engineOptions: {
        assertHeld: () => {
          held = false; // the deadline passes right before the action
          assertHeld();
        },
      },
    });
    const error = await engine.run().catch((e: PersonaError) => e);
    expect(error).toMatchObject({ code: 'E_LOCK_LOST' });
    expect(a.runs).toBe(0);
    const onDisk = parseJournal('j', readFileSync(join(dir, 'runs', `${j.run_id}.json`), 'utf8'));
    // The last save is from before the lock went stale: nothing about the action, no "failed" either.
    expect(onDisk.steps[0]).toMatchObject({ status: 'running' });
    expect(onDisk.steps[0]!.actions).toBeUndefined();
  });

  test('every spinner the engine starts is ended, also when the step fails (a live spinner keeps the process up)', async () => {
    const open = new Set<string>();
    const reporter: Reporter = {
      ...quiet,
      task(label) {
        open.add(label);
        const end = () => void open.delete(label);
        return { update() {}, succeed: end, fail: end, warn: end };
      },
    };
    const a = step('configure', async (n) => {
      if (n === 1) throw new PersonaError('E_STEP_FAILED', 'failpoint: failing once');
      return {};
    });
    const prompter = new ScriptedPrompter([{ match: /Step configure failed/, answer: 'retry' }]);
    const { engine } = setup(['configure'], [a], { interactive: true, prompter });
    (engine as unknown as { deps: { reporter: Reporter } }).deps.reporter = reporter;
    await engine.run();
    expect(a.runs).toBe(2);
    expect([...open]).toEqual([]);
  });

  test('automatic retries with backoff for steps that allow them', async () => {
    const a = step(
      'validate',
      async (n) => {
        if (n < 3) throw new PersonaError('E_STEP_FAILED', `not yet ${n}`);
        return { ok: true };
      },
      { attempts: 3 },
    );
    const { engine, journal: j } = setup(['validate'], [a]);
    await engine.run();
    expect(a.runs).toBe(3);
    expect(j.steps[0]).toMatchObject({ status: 'succeeded', attempts: 3 });
  });

  test('interactive: retry after a failure, as the human asks', async () => {
    const a = step('switch', async (n) => {
      if (n === 1) throw new PersonaError('E_STEP_FAILED', 'verify failed');
      return {};
    });
    const prompter = new ScriptedPrompter([{ match: /Step switch failed: verify failed/, answer: 'retry' }]);
    const { engine, journal: j } = setup(['switch'], [a], { interactive: true, prompter });
    await engine.run();
    expect(j.steps[0]).toMatchObject({ status: 'succeeded', attempts: 2 });
  });

  test('interactive: skip needs a confirmation and is recorded', async () => {
    const a = step('monitor', async () => {
      throw new PersonaError('E_STEP_FAILED', 'flaky');
    });
    const b = step('record', async () => ({}));
    const prompter = new ScriptedPrompter([
      { match: /Step monitor failed/, answer: 'skip' },
      { match: /Really skip monitor/, answer: true },
    ]);
    const { engine, journal: j } = setup(['monitor', 'record'], [a, b], { interactive: true, prompter });
    await engine.run();
    expect(j.steps[0]).toMatchObject({ status: 'skipped', skipped_reason: 'skipped by tester after: flaky' });
    expect(b.runs).toBe(1);
  });

  test('interrupted mid-step: the step and the run are marked interrupted, exit 130 with the resume command', async () => {
    const controller = new AbortController();
    const a = step('migrate', async (_n, ctx) => {
      controller.abort();
      throw ctx.signal.reason;
    });
    const { engine, journal: j } = setup(['migrate'], [a], { signal: controller.signal });
    const error = await engine.run().catch((e: PersonaError) => e);
    expect(error).toMatchObject({ code: 'E_INTERRUPTED', exitCode: 130 });
    expect((error as PersonaError).hint).toContain('--resume');
    expect(j).toMatchObject({ status: 'interrupted', steps: [{ status: 'interrupted' }] });
  });

  test('--step: each step is confirmed before it runs; a "no" stops the run, saved and resumable (exit 3)', async () => {
    const a = step('fence', async () => ({}));
    const b = step('configure', async () => ({}));
    const prompter = new ScriptedPrompter([
      { match: /^\[1\/2\] fence: apply these actions\?/, answer: true },
      { match: /^\[2\/2\] configure: apply these actions\?/, answer: false },
    ]);
    const { engine, journal: j } = setup(['fence', 'configure'], [a, b], {
      interactive: true,
      prompter,
      stepByStep: true,
    });
    await expect(engine.run()).rejects.toMatchObject({ code: 'E_DECLINED', exitCode: 3 });
    expect([a.runs, b.runs]).toEqual([1, 0]);
    expect(j).toMatchObject({ status: 'aborted', steps: [{ status: 'succeeded' }, { status: 'pending' }] });
  });

  test('a lost lock stops the run at the next step boundary', async () => {
    const lost = new AbortController();
    const a = step('fence', async () => {
      lost.abort(new PersonaError('E_LOCK_LOST', 'lost the lock on app-app'));
      return {};
    });
    const b = step('configure', async () => ({}));
    const dir = tempDir();
    const j = journal(['fence', 'configure']);
    const engine = new Engine(
      j,
      [a, b],
      {
        journals: new JournalStore(dir),
        reporter: quiet,
        prompter: new ScriptedPrompter([]),
        context: (signal, record) =>
          ({ signal, profile: {}, log: (l: string) => record.log.push(l) }) as unknown as StepContext,
        now: () => new Date(),
      },
      {
        interactive: false,
        stepByStep: false,
        resumeCommand: 'R',
        signal: new AbortController().signal,
        lockLost: lost.signal,
      },
    );
    await expect(engine.run()).rejects.toMatchObject({ code: 'E_LOCK_LOST' });
    expect(b.runs).toBe(0);
  });
});

describe('journal files', () => {
  test('a journal from a newer persona is refused, a damaged one is named', () => {
    const j = { ...journal(['fence']), version: 2 };
    expect(() => parseJournal('r.json', JSON.stringify(j))).toThrow(/journal format 2 is newer/);
    expect(() => parseJournal('r.json', '{"format": "persona-run", ')).toThrow(/not valid JSON/);
    expect(() => parseJournal('r.json', JSON.stringify({ ...journal(['fence']), steps: 'x' }))).toThrow(
      /not a valid persona journal \(\/steps/,
    );
  });

  test('run ids that could escape the state directory are refused', async () => {
    const js = new JournalStore(tempDir());
    await expect(js.load('../../etc/passwd')).rejects.toMatchObject({ code: 'E_USAGE' });
  });

  test('list reads every journal, newest first, and ignores unreadable ones', async () => {
    const dir = tempDir();
    const js = new JournalStore(dir);
    await js.save({ ...journal(['fence']), run_id: 'a', created_at: '2026-01-01' });
    await js.save({ ...journal(['fence']), run_id: 'b', created_at: '2026-02-01' });
    writeFileSync(join(dir, 'runs', 'broken.json'), '{');
    expect((await js.list()).map((j) => j.run_id)).toEqual(['b', 'a']);
  });
});

test('the redactor removes registered secrets from strings and objects', () => {
  const r = new Redactor();
  r.add('s3cr3t-value');
  expect(r.redact('key=s3cr3t-value!')).toBe('key=[redacted]!');
  expect(r.deep({ a: ['s3cr3t-value'] })).toEqual({ a: ['[redacted]'] });
});

describe('engine: dry runs and confirmation (issue 10)', () => {
  test('a dry run never runs a step, even one found running on resume, and writes no journal', async () => {
    const j = journal(['fence', 'configure', 'migrate']);
    j.steps[0]!.status = 'succeeded';
    j.steps[1]!.status = 'running';
    const a = step('fence', async () => ({}));
    const b = step('configure', async () => ({}));
    const c = step('migrate', async () => ({}));
    const { engine, dir, snapshots } = setup([], [a, b, c], { j, engineOptions: { dryRun: true } });
    await engine.run();
    expect([a.runs, b.runs, c.runs]).toEqual([0, 0, 0]);
    expect([a.planned, b.planned, c.planned]).toEqual([0, 1, 1]);
    expect(engine.simulation[1]!.lines).toEqual(['would do configure [h2]']);
    expect(engine.simulation.map((s) => [s.kind, s.status])).toEqual([
      ['fence', 'done'],
      ['configure', 'simulated'],
      ['migrate', 'simulated'],
    ]);
    expect(snapshots).toEqual([]);
    expect(existsSync(join(dir, 'runs'))).toBe(false);
    expect(j.steps[1]!.status).toBe('running');
  });

  test('the run is confirmed before anything is written; non-interactive without --yes exits 3 naming --yes', async () => {
    const a = step('fence', async () => ({}));
    const prompter = new NonInteractivePrompter({ yes: false, ci: true }, quiet);
    const { engine, snapshots } = setup(['fence'], [a], {
      prompter,
      engineOptions: { confirm: 'Resume run R?' },
    });
    const error = await engine.run().catch((e: PersonaError) => e);
    expect(error).toMatchObject({ code: 'E_CONFIRM_REQUIRED', exitCode: 3 });
    expect((error as PersonaError).hint).toContain('--yes');
    expect(a.runs).toBe(0);
    expect(snapshots).toEqual([]);
  });
});

describe('engine: the fencing policy (issue 10)', () => {
  const evidence = { fenced: true, reason: 'test', method: 'none' };

  test('switch is refused when the fence succeeded without evidence (e.g. verified by an old verify)', async () => {
    const j = journal(['fence', 'switch']);
    j.steps[0]!.status = 'succeeded';
    const sw = step('switch', async () => ({}), { needsFence: true });
    const { engine } = setup([], [step('fence', async () => ({})), sw], { j });
    const error = await engine.run().catch((e: PersonaError) => e);
    expect(error).toMatchObject({ code: 'E_STEP_FAILED', exitCode: 5 });
    expect((error as PersonaError).message).toMatch(/no evidence that h1 was fenced/);
    expect(sw.runs).toBe(0);
    expect(j).toMatchObject({ status: 'failed', steps: [{}, { status: 'failed' }] });
  });

  test('switch runs with fence evidence; a step found running is planned again and its evidence recorded', async () => {
    const j = journal(['fence', 'switch']);
    j.steps[0]!.status = 'running';
    const fence = step('fence', async () => ({}), {
      done: () => true,
      conclude: async () => ({ fenced: true, evidence }),
    });
    const sw = step('switch', async () => ({}), { needsFence: true });
    const { engine } = setup([], [fence, sw], { j });
    await engine.run();
    expect([fence.runs, sw.runs]).toEqual([0, 1]);
    expect(j.steps[0]!.outputs).toEqual({ fenced: true, evidence });
  });

  test('--force-no-fence recorded in the run lets switch run without evidence, and says so in the journal', async () => {
    const j = journal(['fence', 'switch']);
    j.steps[0]!.status = 'skipped';
    j.options.force_no_fence = true;
    const sw = step('switch', async () => ({}), { needsFence: true });
    const { engine } = setup([], [step('fence', async () => ({})), sw], { j });
    await engine.run();
    expect(sw.runs).toBe(1);
    expect(j.steps[1]!.log.join('\n')).toMatch(/WITHOUT fence evidence for h1: --force-no-fence/);
  });
});

describe('engine: stopping between steps (issue 10)', () => {
  test('an interruption between steps saves the run as interrupted (exit 130)', async () => {
    const controller = new AbortController();
    const a = step('fence', async () => {
      controller.abort();
      return {};
    });
    const b = step('configure', async () => ({}));
    const { engine, dir, journal: j } = setup(['fence', 'configure'], [a, b], { signal: controller.signal });
    const error = await engine.run().catch((e: PersonaError) => e);
    expect(error).toMatchObject({ code: 'E_INTERRUPTED', exitCode: 130 });
    expect(b.runs).toBe(0);
    const file = join(dir, 'runs', `${j.run_id}.json`);
    expect(parseJournal(file, readFileSync(file, 'utf8')).status).toBe('interrupted');
  });

  test('a lock lost between steps saves the run as failed, not running', async () => {
    const lost = new AbortController();
    const a = step('fence', async () => {
      lost.abort(new PersonaError('E_LOCK_LOST', 'lost the lock on app-app'));
      return {};
    });
    const b = step('configure', async () => ({}));
    const {
      engine,
      dir,
      journal: j,
    } = setup(['fence', 'configure'], [a, b], {
      engineOptions: { lockLost: lost.signal },
    });
    await expect(engine.run()).rejects.toMatchObject({ code: 'E_LOCK_LOST' });
    const file = join(dir, 'runs', `${j.run_id}.json`);
    expect(parseJournal(file, readFileSync(file, 'utf8')).status).toBe('failed');
  });
});

describe('engine: journal write failures (issue 10)', () => {
  test('a journal that cannot be saved after a step succeeded is E_JOURNAL, exit 5, with the resume command; the step is not marked failed', async () => {
    const a = step('fence', async () => ({ fenced: true }));
    const b = step('configure', async () => ({}));
    const { engine, journals, journal: j } = setup(['fence', 'configure'], [a, b]);
    const saving = journals.save.bind(journals);
    let calls = 0;
    journals.save = async (x) => {
      // 1 run started, 2 fence running, 3 its action running, 4 its action done, 5 fence succeeded
      if (++calls === 5) throw new PersonaError('E_STORE_UNAVAILABLE', 'store 127.0.0.1:1 unreachable');
      await saving(x);
    };
    const error = await engine.run().catch((e: PersonaError) => e);
    expect(error).toMatchObject({ code: 'E_JOURNAL', exitCode: 5 });
    expect((error as PersonaError).hint).toContain('persona recover --resume R');
    expect(a.runs).toBe(1);
    expect(b.runs).toBe(0);
    expect(j.steps[0]!.status).toBe('succeeded');
  });

  test('a failing shared store mirror after a step is E_JOURNAL, exit 5', async () => {
    const dir = tempDir();
    const mirror = {
      describe: 'fake://store',
      get: async () => undefined,
      txn: async () => {
        throw new PersonaError('E_STORE_UNAVAILABLE', 'fake store down');
      },
    } as unknown as KvBackend;
    let saves = 0;
    const journals = new JournalStore(dir, mirror);
    const real = journals.save.bind(journals);
    journals.save = async (x) => {
      saves++;
      // The first save (before any step) goes through; then the store fails.
      if (saves === 1) return await new JournalStore(dir).save(x);
      await real(x);
    };
    const a = step('fence', async () => ({}));
    const { engine } = setup(['fence'], [a], { journals });
    await expect(engine.run()).rejects.toMatchObject({ code: 'E_JOURNAL', exitCode: 5 });
  });

  test('a state directory that is a file: E_STATE naming the path and ENOTDIR before anything ran', async () => {
    const file = join(tempDir(), 'state');
    writeFileSync(file, 'not a directory');
    const a = step('fence', async () => ({}));
    const { engine } = setup(['fence'], [a], { journals: new JournalStore(file) });
    const error = await engine.run().catch((e: PersonaError) => e);
    expect(error).toMatchObject({ code: 'E_STATE', exitCode: 2 });
    expect((error as PersonaError).message).toContain(file);
    expect((error as PersonaError).message).toContain('ENOTDIR');
    expect(a.runs).toBe(0);
  });
});

describe('engine: the step graph', () => {
  /** A latch: `open()` lets every `wait()` through. */
  function latch() {
    let open!: () => void;
    const opened = new Promise<void>((r) => {
      open = r;
    });
    return { open: () => open(), wait: () => opened };
  }

  test('steps with nothing between them run at the same time: fence waits for configure to start, and both finish', async () => {
    const started = latch();
    const order: string[] = [];
    const a = step(
      'fence',
      async () => {
        order.push('fence:start');
        // Would never resolve if the engine ran one step at a time: configure starts only beside fence.
        await started.wait();
        order.push('fence:end');
        return {};
      },
      { dependsOn: [] },
    );
    const b = step(
      'configure',
      async () => {
        order.push('configure:start');
        started.open();
        return {};
      },
      { dependsOn: [] },
    );
    const c = step(
      'migrate',
      async () => {
        order.push('migrate');
        return {};
      },
      { dependsOn: ['fence', 'configure'] },
    );
    const { engine, journal: j, dir } = setup(['fence', 'configure', 'migrate'], [a, b, c]);
    await engine.run();
    expect(order).toEqual(['fence:start', 'configure:start', 'fence:end', 'migrate']);
    expect(j.steps.map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    // The journal on disk is the final state: concurrent writes queue, the last one wins with everything.
    const onDisk = parseJournal('r', readFileSync(join(dir, 'runs', `${j.run_id}.json`), 'utf8'));
    expect(onDisk.status).toBe('succeeded');
    expect(onDisk.steps.map((s) => [s.status, s.actions?.map((x) => x.status)])).toEqual([
      ['succeeded', ['done']],
      ['succeeded', ['done']],
      ['succeeded', ['done']],
    ]);
  });

  test('--serial: the same graph runs one step at a time, in the runbook order', async () => {
    const order: string[] = [];
    const track = (kind: StepKind, dependsOn: StepKind[]) =>
      step(
        kind,
        async () => {
          order.push(`${kind}:start`);
          await new Promise((r) => setTimeout(r, 5));
          order.push(`${kind}:end`);
          return {};
        },
        { dependsOn },
      );
    const steps = [track('fence', []), track('configure', []), track('migrate', ['fence', 'configure'])];
    const { engine } = setup(['fence', 'configure', 'migrate'], steps, { engineOptions: { serial: true } });
    await engine.run();
    expect(order).toEqual([
      'fence:start',
      'fence:end',
      'configure:start',
      'configure:end',
      'migrate:start',
      'migrate:end',
    ]);
  });

  test('a step fails while another runs: the other finishes, nothing new starts, the run fails with the first error', async () => {
    const failedYet = latch();
    const a = step(
      'fence',
      async () => {
        failedYet.open();
        throw new PersonaError('E_STEP_FAILED', 'cannot take lab-1 out');
      },
      { dependsOn: [] },
    );
    const b = step(
      'configure',
      async () => {
        // Still running when fence fails: it is let finish (its work is real and journalled).
        await failedYet.wait();
        await new Promise((r) => setTimeout(r, 10));
        return { configured: true };
      },
      { dependsOn: [] },
    );
    const c = step('migrate', async () => ({}), { dependsOn: ['fence', 'configure'] });
    const d = step('validate', async () => ({}), { dependsOn: ['configure'] });
    const { engine, journal: j } = setup(['fence', 'configure', 'migrate', 'validate'], [a, b, c, d]);
    const error = await engine.run().catch((e: PersonaError) => e);
    expect(error).toMatchObject({ code: 'E_STEP_FAILED', exitCode: 5 });
    expect((error as PersonaError).message).toContain('cannot take lab-1 out');
    expect(j.status).toBe('failed');
    expect(j.steps.map((s) => s.status)).toEqual(['failed', 'succeeded', 'pending', 'pending']);
    // validate only needed configure, but after a failure nothing new starts: the human decides first.
    expect([c.runs, d.runs]).toEqual([0, 0]);
  });

  test('a resume starts every step whose dependencies are done, and only those', async () => {
    const j = journal(['fence', 'configure', 'migrate']);
    j.steps[1]!.status = 'succeeded';
    const seen: string[] = [];
    const a = step('fence', pushing(seen, 'fence'), { dependsOn: [] });
    const b = step('configure', pushing(seen, 'configure'), { dependsOn: [] });
    const c = step(
      'migrate',
      async () => {
        seen.push(`migrate after ${j.steps[0]!.status}`);
        return {};
      },
      { dependsOn: ['fence', 'configure'] },
    );
    const { engine } = setup([], [a, b, c], { j });
    await engine.run();
    expect(seen).toEqual(['fence', 'migrate after succeeded']);
  });

  test('a runbook whose step depends on a later step is refused when the engine is built', () => {
    const a = step('fence', async () => ({}), { dependsOn: ['configure'] });
    const b = step('configure', async () => ({}), { dependsOn: [] });
    expect(() => setup(['fence', 'configure'], [a, b])).toThrow(
      /step fence depends on configure, which comes after it \(order: fence, configure\)/,
    );
  });

  test('a step this runbook does not hold is not waited for (a caller that runs some steps only)', async () => {
    const b = step('switch', async () => ({ switched: true }), { dependsOn: ['fence', 'validate'] });
    const { engine, journal: j } = setup(['switch'], [b]);
    await engine.run();
    expect(j.steps[0]).toMatchObject({ status: 'succeeded', outputs: { switched: true } });
  });

  test('the runbook: fence and configure start together; switch waits for the fence and validate', async () => {
    const { runbook } = await import('../../src/steps/index.js');
    const { stepDependencies } = await import('../../src/runbook/engine.js');
    const graph = stepDependencies(runbook);
    expect(graph.get('fence')).toEqual([]);
    expect(graph.get('configure')).toEqual([]);
    expect(graph.get('migrate')).toEqual(['fence', 'configure']);
    expect(graph.get('switch')).toEqual(expect.arrayContaining(['fence', 'validate']));
    expect(runbook.find((s) => s.kind === 'switch')?.needsFence).toBe(true);
  });
});

describe('engine: early work (Step.early)', () => {
  function latch() {
    let open!: () => void;
    const opened = new Promise<void>((r) => {
      open = r;
    });
    return { open: () => open(), wait: () => opened };
  }

  /** migrate-like: an early action "copy early" once configure is done, then its own "do migrate". */
  function withEarly(
    order: string[],
    earlyBehaviour: () => Promise<Record<string, unknown>> = async () => ({}),
    earlyDependsOn: readonly StepKind[] = ['configure'],
    notes: string[] = [],
  ) {
    return step(
      'migrate',
      async () => {
        order.push('migrate');
        return {};
      },
      {
        dependsOn: ['fence', 'configure'],
        early: {
          dependsOn: earlyDependsOn,
          plan: async () => ({
            actions: [
              {
                id: 'copy',
                title: 'copy early',
                touches: 'h2',
                mutates: true,
                observable: true,
                apply: async () => {
                  order.push('migrate:early');
                  return await earlyBehaviour();
                },
              },
            ],
            notes,
          }),
        },
      },
    );
  }

  test('early work that waits for nothing starts with the run, beside the steps it does not wait for', async () => {
    const order: string[] = [];
    const copied = latch();
    const configure = step(
      'configure',
      async () => {
        await copied.wait();
        order.push('configure');
        return {};
      },
      { dependsOn: [] },
    );
    const fence = step('fence', pushing(order, 'fence'), { dependsOn: [] });
    const migrate = withEarly(
      order,
      async () => {
        copied.open();
        return {};
      },
      [],
      ['early copy: from the backup, into staging'],
    );
    const { engine, journal: j } = setup(['fence', 'configure', 'migrate'], [fence, configure, migrate]);
    await engine.run();
    // configure could only end once the early copy ran: it ran while configure did.
    expect(order.indexOf('migrate:early')).toBeLessThan(order.indexOf('configure'));
    expect(order.at(-1)).toBe('migrate');
    expect(j.steps[2]!.log).toContain('early copy: from the backup, into staging');
  });

  test('early work with nothing to do still logs why (no room for it, say)', async () => {
    const order: string[] = [];
    const gate = latch();
    const fence = step(
      'fence',
      async () => {
        await gate.wait();
        return {};
      },
      { dependsOn: [] },
    );
    const configure = step('configure', async () => ({}), { dependsOn: [] });
    const migrate = step('migrate', pushing(order, 'migrate'), {
      dependsOn: ['fence', 'configure'],
      early: {
        dependsOn: [],
        plan: async () => {
          setTimeout(() => gate.open(), 10);
          return { actions: [], notes: ['no early copy: no room for a second copy of the data'] };
        },
      },
    });
    const { engine, journal: j } = setup(['fence', 'configure', 'migrate'], [fence, configure, migrate]);
    await engine.run();
    expect(order).toEqual(['migrate']);
    expect(j.steps[2]!.log[0]).toBe('no early copy: no room for a second copy of the data');
  });

  test('runs while the fence still runs, in the step record; the step itself waits for the fence', async () => {
    const early = latch();
    const order: string[] = [];
    const fence = step(
      'fence',
      async () => {
        await early.wait();
        order.push('fence');
        return {};
      },
      { dependsOn: [] },
    );
    const configure = step('configure', pushing(order, 'configure'), { dependsOn: [] });
    const migrate = withEarly(order, async () => {
      early.open();
      return { transferred: 1 };
    });
    const {
      engine,
      journal: j,
      snapshots,
    } = setup(['fence', 'configure', 'migrate'], [fence, configure, migrate]);
    await engine.run();
    expect(order).toEqual(['configure', 'migrate:early', 'fence', 'migrate']);
    const m = j.steps[2]!;
    expect(m.status).toBe('succeeded');
    expect(m.actions?.map((a) => [a.id, a.status, a.attempt])).toEqual([
      ['copy', 'done', 0],
      ['do', 'done', 1],
    ]);
    // While its early copy ran, the step was still pending: it had not started.
    expect(snapshots.some((s) => s[0]![1] === 'running' && s[2]![1] === 'pending')).toBe(true);
  });

  test('a failed early action is reported and left to the step, which runs when its turn comes', async () => {
    const order: string[] = [];
    const gate = latch();
    const fence = step(
      'fence',
      async () => {
        await gate.wait();
        return {};
      },
      { dependsOn: [] },
    );
    const configure = step('configure', async () => ({}), { dependsOn: [] });
    const migrate = withEarly(order, async () => {
      gate.open();
      throw new PersonaError('E_STEP_FAILED', 'backup host unreachable');
    });
    const warnings: string[] = [];
    const { engine, journal: j } = setup(['fence', 'configure', 'migrate'], [fence, configure, migrate]);
    (engine as unknown as { deps: { reporter: Reporter } }).deps.reporter = {
      ...quiet,
      warn: (m) => warnings.push(m),
    };
    await engine.run();
    expect(j.status).toBe('succeeded');
    expect(order).toEqual(['migrate:early', 'migrate']);
    expect(warnings.join('\n')).toMatch(/migrate: its early work failed \(backup host unreachable\)/);
    expect(j.steps[2]!.log.join('\n')).toContain('its early work failed');
  });

  test('no early work when what the step waits for is already done, nor with --serial', async () => {
    for (const serial of [false, true]) {
      const order: string[] = [];
      const fence = step('fence', pushing(order, 'fence'), { dependsOn: [] });
      const configure = step(
        'configure',
        async () => {
          // configure ends after the fence: migrate is ready at once, nothing to do early.
          await new Promise((r) => setTimeout(r, 20));
          order.push('configure');
          return {};
        },
        { dependsOn: [] },
      );
      const migrate = withEarly(order);
      const { engine } = setup(['fence', 'configure', 'migrate'], [fence, configure, migrate], {
        engineOptions: { serial },
      });
      await engine.run();
      expect(order).toEqual(['fence', 'configure', 'migrate']);
    }
  });

  test('a dry run shows the early work before the plan, and applies nothing', async () => {
    const order: string[] = [];
    const migrate = withEarly(order);
    const { engine } = setup(['migrate'], [migrate], { engineOptions: { dryRun: true } });
    await engine.run();
    expect(order).toEqual([]);
    expect(engine.simulation[0]!.lines[0]).toBe(
      'early, once configure is done and while fence runs: would copy early [h2]',
    );
  });

  test('a dry run of early work that waits for nothing says it runs while the others do', async () => {
    const migrate = withEarly([], undefined, []);
    const { engine } = setup(['migrate'], [migrate], { engineOptions: { dryRun: true } });
    await engine.run();
    expect(engine.simulation[0]!.lines[0]).toBe(
      'early, while fence and configure run: would copy early [h2]',
    );
  });
});
