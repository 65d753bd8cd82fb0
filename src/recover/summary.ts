/** What a recovery returns for each application: the run's outcome, step by step (pure). */
import type { SimulatedStep } from '../runbook/engine.js';
import type { Journal } from '../runbook/types.js';

export interface RunSummary {
  run_id: string;
  app: string;
  status: Journal['status'] | 'dry-run';
  failed_host: string;
  target_host: string;
  profile_version: number;
  steps: Array<{ kind: string; status: string; duration_ms?: number; lines?: string[] }>;
  total_ms?: number;
  journal?: string;
}

export function summarize(journal: Journal, journalPath?: string): RunSummary {
  const total = journal.steps.reduce((acc, s) => acc + (s.duration_ms ?? 0), 0);
  return {
    run_id: journal.run_id,
    app: journal.app,
    status: journal.status,
    failed_host: journal.failed_host.name,
    target_host: journal.target_host.name,
    profile_version: journal.profile.version,
    steps: journal.steps.map((s) => ({
      kind: s.kind,
      status: s.status,
      ...(s.duration_ms !== undefined ? { duration_ms: s.duration_ms } : {}),
    })),
    total_ms: total,
    ...(journalPath ? { journal: journalPath } : {}),
  };
}

/** A dry run's outcome: what each step would do (the human saw it as `simulate` events). */
export function dryRunSummary(journal: Journal, steps: readonly SimulatedStep[]): RunSummary {
  return {
    run_id: journal.run_id,
    app: journal.app,
    status: 'dry-run',
    failed_host: journal.failed_host.name,
    target_host: journal.target_host.name,
    profile_version: journal.profile.version,
    steps: steps.map((s) => ({ kind: s.kind, status: s.status, lines: s.lines })),
  };
}
