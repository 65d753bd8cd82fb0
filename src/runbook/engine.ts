/**
 * The engine runs a plan's steps in order, journalling before and after each one. It alone decides about
 * dry runs (no step's `run` is ever called, nothing is saved), confirmation (of the run, and per step with --step),
 * retries with backoff, timeouts, the fencing policy (no step that needs a fence runs without fence evidence in
 * the journal, unless a confirmed --force-no-fence is recorded), what to do after a failure (interactive:
 * retry / skip / abort; otherwise stop with the resume command), and what a step found "running" after a crash
 * needs (verified before it runs again). Steps never see the mode.
 */
import { isPersonaError, PersonaError } from '../errors.js';
import { confirmOrDecline, type Prompter } from '../ui/prompter.js';
import type { Reporter } from '../ui/reporter.js';
import { sleep } from '../util/sleep.js';
import { fenceEvidence } from './fencing.js';
import type { JournalStore } from './journal.js';
import type { Journal, Step, StepContext, StepKind, StepRecord } from './types.js';

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
  /** Base delay between automatic attempts; doubled each time. */
  backoffMs?: number;
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

export class Engine {
  /** What a dry run found, step by step. */
  readonly simulation: SimulatedStep[] = [];

  constructor(
    private readonly journal: Journal,
    private readonly steps: readonly Step[],
    private readonly deps: EngineDeps,
    private readonly options: EngineOptions,
  ) {}

  /** Whether anything may have changed: some step of this run has started, now or in an earlier attempt. */
  private mayHaveChanged(): boolean {
    return this.journal.steps.some((s) => s.status !== 'pending');
  }

  private async save(): Promise<void> {
    if (this.options.dryRun) return;
    this.journal.updated_at = this.deps.now().toISOString();
    try {
      await this.deps.journals.save(this.journal);
    } catch (error) {
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
          hint: `Fix the cause (disk space, permissions, the store), then resume: ${this.options.resumeCommand}\nA step recorded as running is verified before it runs again.`,
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
    const total = this.steps.length;
    for (const [i, step] of this.steps.entries()) {
      const record = this.record(step.kind);
      if (record.status === 'succeeded' || record.status === 'skipped') continue;
      await this.checkStop();
      if (record.status === 'running' || record.status === 'interrupted') {
        if (await this.verifiedAfterCrash(step, record)) continue;
      }
      if (step.needsFence) await this.checkFence(step, record);
      if (this.options.stepByStep) {
        const go = await this.deps.prompter.confirm(`Run step ${i + 1}/${total}: ${step.title}?`, {
          default: true,
          flag: '--yes',
        });
        if (!go) return await this.abort(`declined at step ${step.kind}`);
      }
      await this.runStep(step, record, i + 1, total);
    }
    this.journal.status = 'succeeded';
    await this.save();
    return this.journal;
  }

  /** A dry run: every step says what it would do, by looking; none runs, nothing is written. */
  private async simulate(): Promise<Journal> {
    for (const step of this.steps) {
      const record = this.record(step.kind);
      if (this.options.signal.aborted) throw this.interruptedError();
      let entry: SimulatedStep;
      if (record.status === 'succeeded' || record.status === 'skipped') {
        entry = { kind: step.kind, status: 'done', lines: [`already ${record.status} in this run`] };
      } else {
        let lines: string[];
        try {
          lines = await step.simulate(this.deps.context(this.options.signal, record));
        } catch (error) {
          lines = [`cannot simulate: ${toError(error)!.message}`];
        }
        const simulated = !lines.some((l) => l.startsWith('cannot simulate'));
        entry = { kind: step.kind, status: simulated ? 'simulated' : 'not simulated', lines };
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

  /** Between steps: an interruption or a lost lock stops the run through the same path as during a step. */
  private async checkStop(): Promise<void> {
    if (this.options.lockLost?.aborted) {
      const reason = this.options.lockLost.reason;
      throw await this.stop(
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

  /** A step found running after a crash: if its end state is already there, it is done; else it runs again. */
  private async verifiedAfterCrash(step: Step, record: StepRecord): Promise<boolean> {
    this.deps.reporter.info(`step ${step.kind} was interrupted in an earlier attempt; checking what it left`);
    if (!step.verify) return false;
    const ctx = this.deps.context(this.options.signal, record);
    let done = false;
    try {
      const verdict = await step.verify(ctx);
      done = verdict !== false;
      // A step whose evidence matters (fence) returns it with its verdict.
      if (typeof verdict === 'object') record.outputs = verdict;
    } catch (error) {
      if (this.options.signal.aborted) throw await this.stop('interrupted', this.interruptedError());
      ctx.log(`verification after the interruption failed: ${toError(error)!.message}`);
    }
    if (done) {
      record.status = 'succeeded';
      record.log.push('verified after an interruption: the end state was already there');
      record.finished_at = this.deps.now().toISOString();
      await this.save();
      this.deps.reporter.event('step', { run_id: this.journal.run_id, step: step.kind, status: 'verified' });
    }
    return done;
  }

  private async runStep(step: Step, record: StepRecord, index: number, total: number): Promise<void> {
    const attempts = step.attempts ?? 1;
    for (let attemptInRound = 1; ; attemptInRound++) {
      const task = this.deps.reporter.task(
        `[${index}/${total}] ${step.title}${record.attempts > 0 ? ` (attempt ${record.attempts + 1})` : ''}`,
      );
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
      let outputs: Record<string, unknown>;
      try {
        outputs = await step.run(this.deps.context(signal, record));
      } catch (error) {
        record.duration_ms = Date.now() - started;
        record.finished_at = this.deps.now().toISOString();
        if (this.options.signal.aborted) {
          record.status = 'interrupted';
          record.error = { code: 'E_INTERRUPTED', message: 'interrupted' };
          task.fail(`${step.title}: interrupted`);
          throw await this.stop('interrupted', this.interruptedError());
        }
        if (this.options.lockLost?.aborted) {
          record.status = 'failed';
          record.error = toError(this.options.lockLost.reason);
          task.fail(`${step.title}: the lock was lost`);
          throw await this.stop('failed', this.options.lockLost.reason as PersonaError);
        }
        const failure = timeout.aborted
          ? { code: 'E_STEP_FAILED', message: `${step.kind} took longer than its time limit` }
          : toError(error)!;
        record.status = 'failed';
        record.error = failure;
        await this.save();
        task.fail(`${step.title}: ${failure.message}`);
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
      await this.save();
      task.succeed();
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

  private async afterFailure(
    step: Step,
    record: StepRecord,
    failure: NonNullable<StepRecord['error']>,
  ): Promise<'retry' | 'skip' | 'abort'> {
    if (!this.options.interactive) return 'abort';
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
