/**
 * The engine runs a plan's steps in order, journalling before and after each one. It alone decides about
 * confirmation (per step with --step), retries with backoff, timeouts, what to do after a failure (interactive:
 * retry / skip / abort; otherwise stop with the resume command), and what a step found "running" after a crash
 * needs (verified before it runs again). Steps never see the mode.
 */
import { isPersonaError, PersonaError } from '../errors.js';
import type { Prompter } from '../ui/prompter.js';
import type { Reporter } from '../ui/reporter.js';
import type { JournalStore } from './journal.js';
import type { Journal, Step, StepContext, StepKind, StepRecord } from './types.js';

export interface EngineOptions {
  interactive: boolean;
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

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

function toError(error: unknown): StepRecord['error'] {
  if (isPersonaError(error))
    return { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) };
  return { code: 'E_INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

export class Engine {
  constructor(
    private readonly journal: Journal,
    private readonly steps: readonly Step[],
    private readonly deps: EngineDeps,
    private readonly options: EngineOptions,
  ) {}

  private async save(): Promise<void> {
    this.journal.updated_at = this.deps.now().toISOString();
    await this.deps.journals.save(this.journal);
  }

  private record(kind: StepKind): StepRecord {
    const r = this.journal.steps.find((s) => s.kind === kind);
    if (!r)
      throw new PersonaError('E_STATE', `run ${this.journal.run_id} has no ${kind} step in its journal`);
    return r;
  }

  /** Runs every step that has not succeeded yet. Resolves when the run succeeded; throws otherwise. */
  async run(): Promise<Journal> {
    this.journal.status = 'running';
    await this.save();
    const total = this.steps.length;
    for (const [i, step] of this.steps.entries()) {
      const record = this.record(step.kind);
      if (record.status === 'succeeded' || record.status === 'skipped') continue;
      this.checkStop(record);
      if (record.status === 'running' || record.status === 'interrupted') {
        if (await this.verifiedAfterCrash(step, record)) continue;
      }
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

  private checkStop(record: StepRecord): void {
    if (this.options.lockLost?.aborted) {
      throw (
        (this.options.lockLost.reason as Error) ??
        new PersonaError('E_LOCK_LOST', 'the application lock was lost')
      );
    }
    if (this.options.signal.aborted) {
      void record;
      throw this.interruptedError();
    }
  }

  /** A step found running after a crash: if its end state is already there, it is done; else it runs again. */
  private async verifiedAfterCrash(step: Step, record: StepRecord): Promise<boolean> {
    this.deps.reporter.info(`step ${step.kind} was interrupted in an earlier attempt; checking what it left`);
    if (!step.verify) return false;
    const ctx = this.deps.context(this.options.signal, record);
    let done = false;
    try {
      done = await step.verify(ctx);
    } catch (error) {
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
      try {
        const outputs = await step.run(this.deps.context(signal, record));
        record.outputs = outputs;
        record.status = 'succeeded';
        record.finished_at = this.deps.now().toISOString();
        record.duration_ms = Date.now() - started;
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
