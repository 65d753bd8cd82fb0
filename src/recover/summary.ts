/** What a recovery returns for each application: the run's outcome, step by step (pure). */
import type { SimulatedStep } from '../runbook/engine.js';
import type { Journal } from '../runbook/types.js';

export interface RunSummary {
  run_id: string;
  app: string;
  /** A recovery, a planned move (persona migrate) or a rollout (persona profile rollout). */
  kind?: 'recover' | 'migrate' | 'rollout';
  status: Journal['status'] | 'dry-run';
  failed_host: string;
  target_host: string;
  profile_version: number;
  /** start_ms: when the step (its latest attempt) started, from the start of the run's first step. */
  steps: Array<{ kind: string; status: string; start_ms?: number; duration_ms?: number; lines?: string[] }>;
  /** Wall time from the first step's start to the last one's end (steps may overlap: not their sum). */
  total_ms?: number;
  /** A planned move: the longest gap between good answers a client saw through the balancer (monitor's prober). */
  downtime_ms?: number;
  journal?: string;
  /** A rollout: the comparison's decision, its reasons and table, and the version written when promoted. */
  rollout?: {
    decision?: 'promote' | 'revert';
    reasons: string[];
    table: unknown[];
    canary: string[];
    control: string[];
    from_version: number;
    version?: number;
  };
}

/** Where a run goes, in words: "lab-1 → lab-2", or a rollout's groups ("rollout: canary lab-1, control lab-2, lab-3"). */
export function runRoute(j: Pick<Journal, 'kind' | 'rollout' | 'failed_host' | 'target_host'>): string {
  if (j.kind === 'rollout' && j.rollout)
    return `rollout: canary ${j.rollout.canary.join(', ')}, control ${j.rollout.control.join(', ')}`;
  return `${j.failed_host.name} → ${j.target_host.name}`;
}

/** A rollout's outcome, from its compare and promote steps. */
function rolloutOf(journal: Journal): RunSummary['rollout'] | undefined {
  const r = journal.rollout;
  if (journal.kind !== 'rollout' || !r) return undefined;
  const out = (kind: string) => journal.steps.find((s) => s.kind === kind)?.outputs ?? {};
  const compared = out('compare') as {
    decision?: 'promote' | 'revert';
    reasons?: string[];
    table?: unknown[];
  };
  const promoted = out('promote') as { version?: number };
  return {
    ...(compared.decision ? { decision: compared.decision } : {}),
    reasons: compared.reasons ?? [],
    table: compared.table ?? [],
    canary: r.canary,
    control: r.control,
    from_version: r.from_version,
    ...(promoted.version !== undefined ? { version: promoted.version } : {}),
  };
}

export function summarize(journal: Journal, journalPath?: string): RunSummary {
  const t = (iso?: string) => (iso ? Date.parse(iso) : undefined);
  const starts = journal.steps.map((s) => t(s.started_at)).filter((x): x is number => x !== undefined);
  const t0 = starts.length > 0 ? Math.min(...starts) : undefined;
  const ends = journal.steps
    .map((s) => (s.started_at && s.duration_ms !== undefined ? t(s.started_at)! + s.duration_ms : undefined))
    .filter((x): x is number => x !== undefined);
  const total = t0 !== undefined && ends.length > 0 ? Math.max(...ends) - t0 : 0;
  const monitor = journal.steps.find((s) => s.kind === 'monitor')?.outputs as
    | { downtime?: { longest_ms?: number } }
    | undefined;
  const downtime = monitor?.downtime?.longest_ms;
  return {
    run_id: journal.run_id,
    app: journal.app,
    ...(journal.kind ? { kind: journal.kind } : {}),
    status: journal.status,
    failed_host: journal.failed_host.name,
    target_host: journal.target_host.name,
    profile_version: journal.profile.version,
    steps: journal.steps.map((s) => ({
      kind: s.kind,
      status: s.status,
      ...(s.started_at && t0 !== undefined ? { start_ms: t(s.started_at)! - t0 } : {}),
      ...(s.duration_ms !== undefined ? { duration_ms: s.duration_ms } : {}),
    })),
    total_ms: total,
    ...(downtime !== undefined ? { downtime_ms: downtime } : {}),
    ...(journalPath ? { journal: journalPath } : {}),
    ...(journal.kind === 'rollout' ? { rollout: rolloutOf(journal)! } : {}),
  };
}

/** A dry run's outcome: what each step would do (the human saw it as `simulate` events). */
export function dryRunSummary(journal: Journal, steps: readonly SimulatedStep[]): RunSummary {
  return {
    run_id: journal.run_id,
    app: journal.app,
    ...(journal.kind ? { kind: journal.kind } : {}),
    status: 'dry-run',
    failed_host: journal.failed_host.name,
    target_host: journal.target_host.name,
    profile_version: journal.profile.version,
    steps: steps.map((s) => ({ kind: s.kind, status: s.status, lines: s.lines })),
  };
}
