/**
 * The engine runs a plan's steps in order. Steps only look and say what needs doing (`plan`, as data: actions);
 * the engine alone applies actions, and alone decides about dry runs (plans are shown, no action is applied,
 * nothing is saved), confirmation (of the run, and per step with --step, showing its actions), retries with
 * backoff, timeouts, the fencing policy (no step that needs a fence runs without fence evidence in the journal,
 * unless a confirmed --force-no-fence is recorded), the lock (checked before every mutating action), what to do
 * after a failure (interactive: retry / skip / abort; otherwise stop with the resume command), and the journal:
 * every action is written "running" before it is applied and "done" after.
 *
 * Steps form a graph (Step.dependsOn): a step starts once the steps it depends on are done, so steps with nothing
 * between them (the fence and the new host's configuration) run at the same time. When a step fails, no new step
 * starts; the ones already running finish (their work is real and journalled), and then the run stops. With
 * --serial (and with --step, which asks before each step) the steps run one by one in the runbook's order.
 *
 * A step is done when, after its actions, a new plan has nothing left to change and its conclusion holds. After a
 * crash there is no separate "verify": the step plans again, and what the crash left undone is what it does. A
 * step's run and its check can therefore never disagree. Steps never see the mode.
 */
import { isPersonaError, PersonaError } from '../errors.js';
import { confirmOrDecline, type Prompter } from '../ui/prompter.js';
import type { Reporter, Task } from '../ui/reporter.js';
import { sleep } from '../util/sleep.js';
import { fenceEvidence } from './fencing.js';
import type { JournalStore } from './journal.js';
import type {
  Action,
  Applied,
  Journal,
  Step,
  StepContext,
  StepKind,
  StepOutputs,
  StepPlan,
  StepRecord,
} from './types.js';

export interface EngineOptions {
  interactive: boolean;
  /** --dry-run: every step is simulated, none is run, the journal is not written. */
  dryRun?: boolean;
  /** The question that confirms the run before anything is written or changed (fresh runs and resumes). */
  confirm?: string;
  /** --step: confirm each step before it runs. */
  stepByStep: boolean;
  /** The command that resumes this run, for messages. */
  resumeCommand: string;
  /** Aborted on Ctrl-C / SIGTERM. */
  signal: AbortSignal;
  /** Aborted when the application's lock is lost. */
  lockLost?: AbortSignal;
  /**
   * Throws when the run's lock can no longer be trusted (its validity deadline passed, on the monotonic clock):
   * called before every mutating action, so a stale holder changes nothing even before `lockLost` fires.
   */
  assertHeld?: () => void;
  /** Base delay between automatic attempts; doubled each time. */
  backoffMs?: number;
  /** --serial: one step at a time, in the runbook's order, ignoring what could run at the same time. */
  serial?: boolean;
}

export interface EngineDeps {
  journals: JournalStore;
  reporter: Reporter;
  prompter: Prompter;
  /** Builds the context a step runs with; `signal` covers interruption and the step's timeout. */
  context(signal: AbortSignal, record: StepRecord): StepContext;
  now(): Date;
}

export interface SimulatedStep {
  kind: StepKind;
  status: 'simulated' | 'not simulated' | 'done';
  lines: string[];
}

function toError(error: unknown): StepRecord['error'] {
  if (isPersonaError(error))
    return { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) };
  return { code: 'E_INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/** --step declined: nothing of the attempt was applied. */
class Declined extends Error {}

const optionalHint = (hint: string | undefined) => (hint ? { hint } : {});

/** A plan as lines for the dry run: what was found, what would change, what would be checked. */
export function planLines(plan: StepPlan, checks: readonly string[]): string[] {
  return [
    ...plan.notes,
    ...(plan.blocked ? [`would stop here: ${plan.blocked.message}`] : []),
    ...plan.actions.map((a) => `${a.mutates ? 'would' : 'would look:'} ${a.title} [${a.touches}]`),
    ...(plan.actions.length === 0 && !plan.blocked ? ['nothing to change'] : []),
    ...checks.map((c) => `then check: ${c}`),
    ...(plan.after ?? []).map((a) => `then ${a.mutates ? 'would' : 'would look:'} ${a.title} [${a.touches}]`),
  ];
}

/**
 * What each step waits for: its `dependsOn`, or the step before it when it says nothing. A step not in this
 * runbook is not waited for (a caller that runs some steps only, as the tests do, chose them); one that is in it
 * must come earlier, so the runbook's order stays a valid order (--serial, the dry run): else this throws.
 */
export function stepDependencies(steps: readonly Step[]): ReadonlyMap<StepKind, readonly StepKind[]> {
  const graph = new Map<StepKind, readonly StepKind[]>();
  const all = steps.map((s) => s.kind);
  for (const [i, step] of steps.entries()) {
    const before = all.slice(0, i);
    const deps = (step.dependsOn ?? (i > 0 ? [before[i - 1]!] : [])).filter((d) => all.includes(d));
    for (const d of deps)
      if (!before.includes(d))
        throw new PersonaError(
          'E_INTERNAL',
          `runbook: step ${step.kind} depends on ${d}, which comes after it (order: ${all.join(', ')})`,
        );
    graph.set(step.kind, deps);
  }
  return graph;
}

/**
 * When a step's early work runs, in words: "early, once configure is done and while fence runs", or with nothing to
 * wait for, "early, while fence and configure run".
 */
function earlyWhen(step: Step): string {
  const after = step.early?.dependsOn ?? [];
  const waits = (step.dependsOn ?? []).filter((d) => !after.includes(d));
  const once =
    after.length > 0 ? ` once ${after.join(' and ')} ${after.length > 1 ? 'are' : 'is'} done and` : '';
  return `early,${once} while ${waits.join(' and ')} ${waits.length > 1 ? 'run' : 'runs'}`;
}

const isDone = (r: StepRecord) => r.status === 'succeeded' || r.status === 'skipped';

export class Engine {
  /** What a dry run found, step by step. */
  readonly simulation: SimulatedStep[] = [];
  private readonly graph: ReadonlyMap<StepKind, readonly StepKind[]>;
  /** Journal writes, one after another: each writes the journal as it is when its turn comes. */
  private saving: Promise<void> = Promise.resolve();
  /** Questions to the human, one at a time (two steps may fail while both run). */
  private asking: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly journal: Journal,
    private readonly steps: readonly Step[],
    private readonly deps: EngineDeps,
    private readonly options: EngineOptions,
  ) {
    this.graph = stepDependencies(steps);
  }

  /** Whether anything may have changed: some step of this run has started, now or in an earlier attempt. */
  private mayHaveChanged(): boolean {
    return this.journal.steps.some((s) => s.status !== 'pending');
  }

  /** Writes the journal; concurrent steps' writes queue, and each writes the state of its turn. */
  private save(): Promise<void> {
    if (this.options.dryRun) return Promise.resolve();
    const next = this.saving.then(() => this.saveNow());
    this.saving = next.catch(() => {});
    return next;
  }

  private async saveNow(): Promise<void> {
    this.journal.updated_at = this.deps.now().toISOString();
    try {
      await this.deps.journals.save(this.journal);
    } catch (error) {
      // A driver that lost its lock writes nothing; it says so, not "the journal could not be saved".
      if (isPersonaError(error) && error.code === 'E_LOCK_LOST') throw error;
      if (!this.mayHaveChanged()) {
        if (isPersonaError(error)) throw error;
        throw new PersonaError(
          'E_STATE',
          `cannot write the journal of run ${this.journal.run_id}: ${toError(error)!.message}; nothing was changed`,
        );
      }
      throw new PersonaError(
        'E_JOURNAL',
        `the journal of run ${this.journal.run_id} could not be saved (${toError(error)!.message}); steps may have changed things`,
        {
          hint: `Fix the cause (disk space, permissions, the store), then resume: ${this.options.resumeCommand}\nA step recorded as running is planned again from what the hosts show: what is already done is not redone.`,
          details: { run_id: this.journal.run_id },
          cause: error,
        },
      );
    }
  }

  private record(kind: StepKind): StepRecord {
    const r = this.journal.steps.find((s) => s.kind === kind);
    if (!r)
      throw new PersonaError('E_STATE', `run ${this.journal.run_id} has no ${kind} step in its journal`);
    return r;
  }

  /** Runs every step that has not succeeded yet. Resolves when the run succeeded; throws otherwise. */
  async run(): Promise<Journal> {
    if (this.options.dryRun) return await this.simulate();
    if (this.options.confirm) await confirmOrDecline(this.deps.prompter, this.options.confirm);
    this.journal.status = 'running';
    await this.save();
    if (this.options.serial || this.options.stepByStep) {
      for (const step of this.steps) {
        if (isDone(this.record(step.kind))) continue;
        await this.checkStop();
        await this.startStep(step);
      }
    } else {
      await this.runGraph();
    }
    this.journal.status = 'succeeded';
    await this.save();
    return this.journal;
  }

  /**
   * Starts every step whose dependencies are done, as soon as they are; after a failure starts nothing more, lets
   * the running steps finish, and throws the first failure.
   */
  private async runGraph(): Promise<void> {
    const started = new Set<string>();
    const running = new Map<string, Promise<void>>();
    let failure: { error: unknown } | undefined;
    const fail = (error: unknown) => {
      failure ??= { error };
    };
    const done = (kinds: readonly StepKind[]) => kinds.every((d) => isDone(this.record(d)));
    const start = (job: string, work: () => Promise<void>) => {
      started.add(job);
      running.set(
        job,
        work().then(
          () => void running.delete(job),
          (error: unknown) => {
            running.delete(job);
            fail(error);
          },
        ),
      );
    };
    for (;;) {
      for (const step of failure ? [] : this.steps) {
        if (started.has(step.kind) || isDone(this.record(step.kind))) continue;
        const early = `${step.kind}:early`;
        const ready = done(this.graph.get(step.kind)!);
        // Its early work first, while what it waits for still runs; the step itself after that work ended.
        const wantsEarly = step.early && !ready && !started.has(early) && done(step.early.dependsOn);
        if (!wantsEarly && (!ready || running.has(early))) continue;
        try {
          await this.checkStop();
        } catch (error) {
          fail(error);
          break;
        }
        if (wantsEarly) start(early, () => this.runEarly(step));
        else start(step.kind, () => this.startStep(step));
      }
      if (running.size === 0) break;
      await Promise.race(running.values());
    }
    if (failure) throw failure.error;
    const left = this.steps.filter((s) => !isDone(this.record(s.kind)));
    if (left.length > 0)
      throw new PersonaError(
        'E_INTERNAL',
        `run ${this.journal.run_id}: steps ${left.map((s) => s.kind).join(', ')} never became ready`,
      );
  }

  /**
   * A step's early actions (Step.early), applied and journalled in its record like its own; the step stays pending.
   * An interruption or a lost lock stops the run as it would in a step; any other failure is reported, and the
   * step, when its turn comes, plans from what is there.
   */
  private async runEarly(step: Step): Promise<void> {
    const record = this.record(step.kind);
    const signal = AbortSignal.any([
      this.options.signal,
      ...(this.options.lockLost ? [this.options.lockLost] : []),
    ]);
    const ctx = this.deps.context(signal, record);
    try {
      const plan = await step.early!.plan(ctx);
      // What it waits for may have ended while it planned: then the step plans with their findings instead.
      if (this.graph.get(step.kind)!.every((d) => isDone(this.record(d)))) return;
      // Also when there is nothing to do early: the notes say why (no room for it, say).
      for (const note of plan.notes) ctx.log(note);
      if (plan.actions.length === 0) return;
      this.deps.reporter.event('step-plan', {
        run_id: this.journal.run_id,
        step: step.kind,
        notes: plan.notes,
        actions: plan.actions.map((a) => ({
          id: a.id,
          title: a.title,
          touches: a.touches,
          mutates: a.mutates,
        })),
      });
      const task = this.deps.reporter.task(`${step.title}: ${earlyWhen(step)}`);
      try {
        for (const action of plan.actions) await this.apply(step, record, ctx, action);
        task.succeed();
      } catch (error) {
        task.fail();
        throw error;
      }
    } catch (error) {
      if (this.options.signal.aborted) {
        record.status = 'interrupted';
        record.error = { code: 'E_INTERRUPTED', message: 'interrupted' };
        throw await this.stop('interrupted', this.interruptedError());
      }
      const lockReason = this.options.lockLost?.aborted
        ? this.options.lockLost.reason
        : isPersonaError(error) && error.code === 'E_LOCK_LOST'
          ? error
          : undefined;
      if (lockReason) throw await this.stopWithoutLock('failed', lockReason as PersonaError);
      if (isPersonaError(error) && error.code === 'E_JOURNAL') throw error;
      const line = `${step.kind}: its early work failed (${toError(error)!.message}); the step plans again from what is there when its turn comes`;
      ctx.log(line);
      this.deps.reporter.warn(line);
    }
  }

  /** One step, from the fence check to its outcome in the journal. */
  private async startStep(step: Step): Promise<void> {
    const record = this.record(step.kind);
    if (record.status === 'running' || record.status === 'interrupted')
      this.deps.reporter.info(
        `step ${step.kind} was interrupted in an earlier attempt: planning it again (it is done when nothing is left to do and its check holds)`,
      );
    if (step.needsFence) await this.checkFence(step, record);
    await this.runStep(step, record, this.steps.indexOf(step) + 1, this.steps.length);
  }

  /** A dry run: every step's plan, found by looking; no action is applied, nothing is written. */
  private async simulate(): Promise<Journal> {
    for (const step of this.steps) {
      const record = this.record(step.kind);
      if (this.options.signal.aborted) throw this.interruptedError();
      let entry: SimulatedStep;
      if (record.status === 'succeeded' || record.status === 'skipped') {
        entry = { kind: step.kind, status: 'done', lines: [`already ${record.status} in this run`] };
      } else {
        const ctx = this.deps.context(this.options.signal, record);
        try {
          const plan = await this.planOf(step, record, ctx);
          entry = {
            kind: step.kind,
            status: 'simulated',
            lines: [...(await this.earlyLines(step, ctx)), ...planLines(plan, step.checks?.(ctx) ?? [])],
          };
        } catch (error) {
          if (this.options.signal.aborted) throw this.interruptedError();
          entry = {
            kind: step.kind,
            status: 'not simulated',
            lines: [
              `cannot plan: ${toError(error)!.message}`,
              ...step.describe(ctx).map((l) => `would: ${l}`),
            ],
          };
        }
      }
      this.simulation.push(entry);
      this.deps.reporter.event('simulate', {
        run_id: this.journal.run_id,
        step: step.kind,
        lines: entry.lines,
      });
    }
    return this.journal;
  }

  /** A dry run's view of a step's early work (Step.early): what it would apply before its turn. */
  private async earlyLines(step: Step, ctx: StepContext): Promise<string[]> {
    if (!step.early || this.options.serial || this.options.stepByStep) return [];
    const plan = await step.early.plan(ctx);
    return plan.actions.map((a) => `${earlyWhen(step)}: would ${a.title} [${a.touches}]`);
  }

  /** Between steps: an interruption or a lost lock stops the run through the same path as during a step. */
  private async checkStop(): Promise<void> {
    if (this.options.lockLost?.aborted) {
      const reason = this.options.lockLost.reason;
      throw await this.stopWithoutLock(
        'failed',
        isPersonaError(reason) ? reason : new PersonaError('E_LOCK_LOST', 'the application lock was lost'),
      );
    }
    if (this.options.signal.aborted) throw await this.stop('interrupted', this.interruptedError());
  }

  /**
   * The fencing policy: a step that needs the failed host fenced runs only with fence evidence in the journal,
   * or with --force-no-fence recorded in the run's options (confirmed when the run was), which is logged.
   */
  private async checkFence(step: Step, record: StepRecord): Promise<void> {
    if (fenceEvidence(this.journal)) return;
    if (this.journal.options.force_no_fence) {
      const line = `running ${step.kind} WITHOUT fence evidence for ${this.journal.failed_host.name}: --force-no-fence (confirmed by ${this.journal.who})`;
      if (!record.log.includes(line)) record.log.push(line);
      this.deps.reporter.warn(line);
      return;
    }
    const fence = this.journal.steps.find((s) => s.kind === 'fence');
    const failure = {
      code: 'E_STEP_FAILED',
      message: `refusing to ${step.kind}: the journal holds no evidence that ${this.journal.failed_host.name} was fenced (fence ${fence?.status ?? 'missing'})`,
    };
    record.status = 'failed';
    record.error = failure;
    throw await this.stop(
      'failed',
      new PersonaError('E_STEP_FAILED', failure.message, {
        hint: `Fence it (resume, and the fence step runs again), or, if you are sure it no longer serves, resume with --force-no-fence: ${this.options.resumeCommand}`,
        details: { run_id: this.journal.run_id, step: step.kind },
      }),
    );
  }

  /**
   * The step's plan, less the unobservable actions this run already applied (a hook, an install command): those
   * run once per run, and the journal says they did.
   */
  private async planOf(step: Step, record: StepRecord, ctx: StepContext): Promise<StepPlan> {
    const plan = await step.plan(ctx);
    const ranOnce = (a: Action) => {
      if (a.observable || !a.mutates) return false;
      return record.actions?.some((r) => r.id === a.id && r.status === 'done') === true;
    };
    return {
      ...plan,
      actions: plan.actions.filter((a) => !ranOnce(a)),
      ...(plan.after ? { after: plan.after.filter((a) => !ranOnce(a)) } : {}),
    };
  }

  private planEvent(step: Step, plan: StepPlan): void {
    const brief = (a: Action) => ({ id: a.id, title: a.title, touches: a.touches, mutates: a.mutates });
    this.deps.reporter.event('step-plan', {
      run_id: this.journal.run_id,
      step: step.kind,
      notes: plan.notes,
      actions: [...plan.actions, ...(plan.after ?? [])].map(brief),
      ...(plan.blocked ? { blocked: plan.blocked.message } : {}),
    });
  }

  /** What the actions of this run did, by id: the latest outcome of each. */
  private applied(record: StepRecord): Applied {
    return new Map(
      (record.actions ?? []).filter((a) => a.status === 'done').map((a) => [a.id, a.outputs ?? {}] as const),
    );
  }

  /** One action: the lock checked, written "running" to the journal, applied, written "done" (or "failed"). */
  private async apply(step: Step, record: StepRecord, ctx: StepContext, action: Action): Promise<void> {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (action.mutates) this.options.assertHeld?.();
    const entry: NonNullable<StepRecord['actions']>[number] = {
      id: action.id,
      title: action.title,
      touches: action.touches,
      mutates: action.mutates,
      observable: action.observable,
      status: 'running',
      attempt: record.attempts,
      at: this.deps.now().toISOString(),
    };
    record.actions = [...(record.actions ?? []).filter((a) => a.id !== action.id), entry];
    if (action.mutates) await this.save();
    const brief = { id: action.id, title: action.title, touches: action.touches, mutates: action.mutates };
    this.deps.reporter.event('action', {
      run_id: this.journal.run_id,
      step: step.kind,
      action: brief,
      status: 'running',
    });
    let outputs: StepOutputs | undefined;
    try {
      outputs = await action.apply(ctx);
    } catch (error) {
      entry.status = 'failed';
      const failure = toError(error)!;
      entry.error = failure.message;
      this.deps.reporter.event('action', {
        run_id: this.journal.run_id,
        step: step.kind,
        action: brief,
        status: 'failed',
        error: failure,
      });
      throw error;
    }
    entry.status = 'done';
    if (outputs) entry.outputs = outputs;
    // The action's effect exists now: a journal that cannot say so is E_JOURNAL (exit 5), not the step's failure.
    if (action.mutates) await this.save();
    this.deps.reporter.event('action', {
      run_id: this.journal.run_id,
      step: step.kind,
      action: brief,
      status: 'done',
    });
  }

  /**
   * One attempt of a step: plan, (with --step) confirm the actions, apply them, plan again (observable changes
   * must be gone: the step converged), conclude, then the actions for after the conclusion.
   */
  private async attempt(
    step: Step,
    record: StepRecord,
    ctx: StepContext,
    label: string,
    shown: { task?: Task },
  ): Promise<StepOutputs> {
    let plan = await this.planOf(step, record, ctx);
    this.planEvent(step, plan);
    for (const note of plan.notes) ctx.log(note);
    if (plan.blocked)
      throw new PersonaError('E_STEP_FAILED', plan.blocked.message, optionalHint(plan.blocked.hint));
    const changes = plan.actions.filter((a) => a.mutates);
    if (this.options.stepByStep && (changes.length > 0 || (plan.after ?? []).length > 0)) {
      for (const a of [...plan.actions, ...(plan.after ?? [])])
        this.deps.reporter.info(`  ${a.mutates ? '•' : '·'} ${a.title} [${a.touches}]`);
      const go = await this.deps.prompter.confirm(`${label}: apply these actions?`, {
        default: true,
        flag: '--yes',
      });
      if (!go) throw new Declined(`declined at step ${step.kind}`);
    }
    // Shown before the actions; the caller ends it (succeed or fail), whether or not this attempt throws.
    shown.task = this.deps.reporter.task(label);
    for (const action of plan.actions) await this.apply(step, record, ctx, action);
    if (changes.length > 0) {
      await ctx.checkpoint('before-replan');
      plan = await this.planOf(step, record, ctx);
      const left = plan.actions.filter((a) => a.observable && a.mutates);
      if (plan.blocked || left.length > 0)
        throw new PersonaError(
          'E_STEP_FAILED',
          `${step.kind} did not converge: after its actions, ${plan.blocked ? plan.blocked.message : `a new plan still has to ${left.map((a) => a.title).join('; ')}`}`,
          {
            hint: 'Something else changes the same things, or the action does not do what it says: look at the log.',
          },
        );
    } else if (record.actions?.some((a) => a.status === 'done')) {
      ctx.log('planned again after an interruption: nothing was left to do');
    }
    const outputs = await step.conclude(ctx, { plan, applied: this.applied(record) });
    for (const action of plan.after ?? []) await this.apply(step, record, ctx, action);
    return outputs;
  }

  private async runStep(step: Step, record: StepRecord, index: number, total: number): Promise<void> {
    const attempts = step.attempts ?? 1;
    for (let attemptInRound = 1; ; attemptInRound++) {
      const label = `[${index}/${total}] ${step.title}${record.attempts > 0 ? ` (attempt ${record.attempts + 1})` : ''}`;
      const before = record.status;
      record.status = 'running';
      record.attempts++;
      record.started_at = this.deps.now().toISOString();
      delete record.error;
      await this.save();
      this.deps.reporter.event('step', {
        run_id: this.journal.run_id,
        step: step.kind,
        status: 'running',
        attempt: record.attempts,
      });
      const started = Date.now();
      const timeout = AbortSignal.timeout(
        step.timeoutMs?.(this.deps.context(this.options.signal, record).profile) ?? 30 * 60_000,
      );
      const signal = AbortSignal.any([
        this.options.signal,
        timeout,
        ...(this.options.lockLost ? [this.options.lockLost] : []),
      ]);
      let outputs: StepOutputs;
      const shown: { task?: Task } = {};
      try {
        outputs = await this.attempt(step, record, this.deps.context(signal, record), label, shown);
      } catch (error) {
        record.duration_ms = Date.now() - started;
        record.finished_at = this.deps.now().toISOString();
        // A spinner left running would keep the process alive (and garble the next prompt): always ended here.
        const fail = (text: string) => (shown.task ? shown.task.fail(text) : this.deps.reporter.warn(text));
        if (error instanceof Declined) {
          // Nothing of this attempt was applied: the step is as it was.
          record.attempts--;
          record.status = before === 'pending' ? 'pending' : 'interrupted';
          return void (await this.abort(error.message));
        }
        if (this.options.signal.aborted) {
          record.status = 'interrupted';
          record.error = { code: 'E_INTERRUPTED', message: 'interrupted' };
          fail(`${step.title}: interrupted`);
          throw await this.stop('interrupted', this.interruptedError());
        }
        const lockReason = this.options.lockLost?.aborted
          ? this.options.lockLost.reason
          : isPersonaError(error) && error.code === 'E_LOCK_LOST'
            ? error
            : undefined;
        if (lockReason) {
          record.status = 'failed';
          record.error = toError(lockReason);
          fail(`${step.title}: the lock was lost`);
          throw await this.stopWithoutLock('failed', lockReason as PersonaError);
        }
        if (isPersonaError(error) && error.code === 'E_JOURNAL') {
          fail(`${step.title}: the journal could not be saved`);
          throw error;
        }
        const failure = timeout.aborted
          ? { code: 'E_STEP_FAILED', message: `${step.kind} took longer than its time limit` }
          : toError(error)!;
        record.status = 'failed';
        record.error = failure;
        await this.save();
        fail(`${step.title}: ${failure.message}`);
        this.deps.reporter.event('step', {
          run_id: this.journal.run_id,
          step: step.kind,
          status: 'failed',
          error: failure,
        });
        if (attemptInRound < attempts) {
          const delay = (this.options.backoffMs ?? 1000) * 2 ** (attemptInRound - 1);
          this.deps.reporter.info(
            `retrying ${step.kind} in ${(delay / 1000).toFixed(1)}s (attempt ${attemptInRound + 1} of ${attempts})`,
          );
          await sleep(delay, this.options.signal);
          continue;
        }
        const next = await this.afterFailure(step, record, failure);
        if (next === 'retry') {
          attemptInRound = 0;
          continue;
        }
        if (next === 'skip') return;
        throw await this.stop(
          'failed',
          new PersonaError('E_STEP_FAILED', `step ${step.kind} failed: ${failure.message}`, {
            hint: `${failure.hint ? `${failure.hint}\n` : ''}The run is saved. Fix the cause, then resume: ${this.options.resumeCommand}`,
            details: { run_id: this.journal.run_id, step: step.kind },
          }),
        );
      }
      record.outputs = outputs;
      record.status = 'succeeded';
      record.finished_at = this.deps.now().toISOString();
      record.duration_ms = Date.now() - started;
      // Outside the try: a journal that cannot be saved now is not the step's failure (E_JOURNAL, exit 5).
      try {
        await this.save();
      } catch (error) {
        shown.task?.fail(`${step.title}: the journal could not be saved`);
        throw error;
      }
      shown.task?.succeed();
      this.deps.reporter.event('step', {
        run_id: this.journal.run_id,
        step: step.kind,
        status: 'succeeded',
        duration_ms: record.duration_ms,
        outputs,
      });
      return;
    }
  }

  /** Asks what to do after a failure; one question at a time when two running steps fail. */
  private afterFailure(
    step: Step,
    record: StepRecord,
    failure: NonNullable<StepRecord['error']>,
  ): Promise<'retry' | 'skip' | 'abort'> {
    if (!this.options.interactive) return Promise.resolve('abort');
    const answer = this.asking.then(() => this.askAfterFailure(step, record, failure));
    this.asking = answer.catch(() => {});
    return answer;
  }

  private async askAfterFailure(
    step: Step,
    record: StepRecord,
    failure: NonNullable<StepRecord['error']>,
  ): Promise<'retry' | 'skip' | 'abort'> {
    const choice = await this.deps.prompter.select<'retry' | 'skip' | 'abort'>(
      `Step ${step.kind} failed: ${failure.message}. What now?`,
      [
        { name: 'retry the step', value: 'retry' as const },
        { name: 'skip it (recorded in the journal; later steps may refuse)', value: 'skip' as const },
        { name: 'abort (the run is saved and can be resumed)', value: 'abort' as const },
      ],
      { default: 'retry' },
    );
    if (choice !== 'skip') return choice;
    const sure = await this.deps.prompter.confirm(`Really skip ${step.kind}? Its work will not be done.`, {
      default: false,
    });
    if (!sure) return 'abort';
    record.status = 'skipped';
    record.skipped_reason = `skipped by ${this.journal.who} after: ${failure.message}`;
    await this.save();
    this.deps.reporter.event('step', { run_id: this.journal.run_id, step: step.kind, status: 'skipped' });
    return 'skip';
  }

  private interruptedError(): PersonaError {
    return new PersonaError('E_INTERRUPTED', `run ${this.journal.run_id} interrupted; the journal is saved`, {
      hint: `Resume with: ${this.options.resumeCommand}`,
      details: { run_id: this.journal.run_id },
    });
  }

  /**
   * The lock is gone: the run is saved as stopped if the lock still allows it (renewal failed, but its validity
   * has not run out); once it has, the journal store refuses (assertHeld), another driver may own the run, and
   * this one writes nothing, not even its failure.
   */
  private async stopWithoutLock(status: Journal['status'], error: PersonaError): Promise<PersonaError> {
    this.journal.status = status;
    await this.save().catch(() => {});
    return error;
  }

  private async stop(status: Journal['status'], error: PersonaError): Promise<PersonaError> {
    this.journal.status = status;
    await this.save();
    return error;
  }

  private async abort(why: string): Promise<Journal> {
    this.journal.status = 'aborted';
    await this.save();
    throw new PersonaError('E_DECLINED', `run ${this.journal.run_id} stopped: ${why}; the journal is saved`, {
      hint: `Resume with: ${this.options.resumeCommand}`,
    });
  }
}
