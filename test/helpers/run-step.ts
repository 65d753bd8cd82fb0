/**
 * Runs real steps through the real engine in-process, with a context the test builds (a fake SSH transport, say):
 * the engine plans, applies, plans again and concludes exactly as in a recovery.
 */
import { Engine, type EngineOptions } from '../../src/runbook/engine.js';
import { JournalStore } from '../../src/runbook/journal.js';
import type { Journal, Step, StepContext, StepRecord } from '../../src/runbook/types.js';
import type { Reporter } from '../../src/ui/reporter.js';
import { execaLocal } from '../../src/util/local-process.js';
import { ScriptedPrompter } from './cli.js';
import { testJournal } from './journal.js';
import { tempDir } from './tmp.js';

const quiet: Reporter = {
  info() {},
  warn() {},
  event() {},
  task: () => ({ update() {}, succeed() {}, fail() {}, warn() {} }),
};

export interface StepRun {
  journal: Journal;
  engine: Engine;
  /** What the run threw, if it did. */
  error?: unknown;
  record(kind: Step['kind']): StepRecord;
}

/** `ctx` is completed with the run's signal, journal and log (into the step's record). */
export async function runSteps(
  steps: Step[],
  ctx: Partial<StepContext>,
  options: { journal?: Journal; engine?: Partial<EngineOptions> } = {},
): Promise<StepRun> {
  const journal =
    options.journal ??
    testJournal({
      steps: steps.map((s) => ({
        kind: s.kind,
        title: s.title,
        mutates: s.mutates,
        status: 'pending' as const,
        attempts: 0,
        log: [],
      })),
    });
  const engine = new Engine(
    journal,
    steps,
    {
      journals: new JournalStore(tempDir()),
      reporter: quiet,
      prompter: new ScriptedPrompter([]),
      context: (signal, record) =>
        ({
          checkpoint: async () => {},
          assertHeld: () => {},
          local: execaLocal,
          now: () => new Date('2026-11-27T00:00:00Z'),
          previous: (kind: Step['kind']) => journal.steps.find((s) => s.kind === kind),
          ...ctx,
          journal,
          signal,
          log: (line: string) => record.log.push(line),
        }) as StepContext,
      now: () => new Date('2026-11-27T00:00:00Z'),
    },
    {
      interactive: false,
      stepByStep: false,
      resumeCommand: 'persona recover --resume R',
      signal: new AbortController().signal,
      backoffMs: 1,
      ...options.engine,
    },
  );
  let error: unknown;
  try {
    await engine.run();
  } catch (e) {
    error = e;
  }
  return {
    journal,
    engine,
    ...(error === undefined ? {} : { error }),
    record: (kind) => journal.steps.find((s) => s.kind === kind)!,
  };
}
