/**
 * When a failure counts (pure): per application, a sliding window of rounds. A round counts as failed when the
 * application failed as seen from two vantage points (this machine and a peer host), or from the only one there
 * is when no peer can be asked; a failure counts when N of the last M rounds failed (Consul's
 * failures_before_critical, orchestrator's "a primary is dead only when its replicas lose it too"). Guards: a
 * grace period after a deploy (the assignment's `at`), a recovery or an ack's end; an ack silences the
 * application; an anti-flap budget of K failure events per application per hour, beyond which one `flapping`
 * event and silence.
 */
import type { Ack, CheckOutcome, Round } from './types.js';

export interface VerdictPolicy {
  /** N: failed rounds, among the last `rounds`, that make a failure count. */
  failures: number;
  /** M: the window. */
  rounds: number;
  /** Rounds are not counted for this long after a deploy, a recovery or an ack's end. */
  graceMs: number;
  /** K: failure (and degraded) events per application within `flapWindowMs`; beyond it, one flapping event. */
  flapBudget: number;
  flapWindowMs: number;
}

export const defaultPolicy: VerdictPolicy = {
  failures: 3,
  rounds: 5,
  graceMs: 120_000,
  flapBudget: 3,
  flapWindowMs: 3_600_000,
};

/** What one round says, before the window weighs it. */
export interface RoundVerdict {
  /** Failed from enough vantage points to count. */
  failed: boolean;
  /** A failure seen but not confirmed: the other vantage could not look. Neither failed nor healthy. */
  inconclusive: boolean;
  /** Some performance target was missed. */
  degraded: boolean;
  /** The vantage points that saw it fail. */
  failedFrom: string[];
  /** Only one vantage point exists (no peer host). */
  singleVantage: boolean;
  checks: CheckOutcome[];
  degradedWhy: string[];
}

/** The state the window keeps per application between rounds. */
export interface AppWatchState {
  window: RoundVerdict[];
  failing: boolean;
  degraded: boolean;
  /** When failure/degraded events were emitted (epoch ms), for the flap budget. */
  emitted: number[];
  /** Silent until then (epoch ms): the flap budget is spent. */
  flappingUntil?: number;
  /** No counting until then (epoch ms): after a recovery or an ack's end. */
  graceUntil?: number;
  /** The ack already announced (its `by` and `at`). */
  ackSeen?: string;
}

export const freshState = (): AppWatchState => ({ window: [], failing: false, degraded: false, emitted: [] });

export interface Verdict {
  kind: 'failure' | 'recovered' | 'degraded' | 'flapping' | 'acked';
  reason: string;
  vantages: string[];
  checks: CheckOutcome[];
  single_vantage?: boolean;
  ack?: Ack;
}

export function judgeRound(round: Round): RoundVerdict {
  const failedFrom = round.results.filter((r) => r.status === 'failed').map((r) => r.vantage);
  const answered = round.results.filter((r) => r.status !== 'unknown').length;
  const required = Math.min(2, round.results.length);
  const failed = required > 0 && failedFrom.length >= required;
  const degradedWhy = round.results.flatMap((r) => (r.degraded ?? []).map((d) => `${r.vantage}: ${d}`));
  return {
    failed,
    inconclusive: !failed && failedFrom.length > 0 && answered < required,
    degraded: degradedWhy.length > 0,
    failedFrom,
    singleVantage: round.results.length < 2,
    checks: round.results.flatMap((r) => r.checks.map((c) => ({ ...c, name: `${r.vantage}: ${c.name}` }))),
    degradedWhy,
  };
}

export interface StepInput {
  now: Date;
  policy: VerdictPolicy;
  /** The assignment's `at`: when the application was last placed (deployed or recovered) there. */
  assignedAt?: Date;
  /** The application's ack, if one is stored (active or lapsed). */
  ack?: Ack;
}

const ackId = (a: Ack) => `${a.by}@${a.at}`;
const ackActive = (a: Ack | undefined, now: number): boolean =>
  a !== undefined && (a.until === undefined || Date.parse(a.until) > now);

/** Weighs one more round: the next state and the events it makes (none, mostly). */
export function stepVerdict(
  previous: AppWatchState,
  round: Round,
  input: StepInput,
): { state: AppWatchState; events: Verdict[] } {
  const now = input.now.getTime();
  const { policy } = input;
  const state: AppWatchState = { ...previous, window: [...previous.window], emitted: [...previous.emitted] };
  const events: Verdict[] = [];
  const judged = judgeRound(round);

  const ack = input.ack;
  if (ack && ackActive(ack, now)) {
    if (state.ackSeen !== ackId(ack)) {
      state.ackSeen = ackId(ack);
      events.push({
        kind: 'acked',
        reason: `silenced by ${ack.by} since ${ack.at}${ack.until ? ` until ${ack.until}` : ' until cleared'}: ${ack.reason}`,
        vantages: round.results.map((r) => r.vantage),
        checks: [],
        ack,
      });
    }
    state.window = [];
    return { state, events };
  }
  if (state.ackSeen !== undefined) {
    // The ack lapsed or was cleared: a fresh start, after a grace period.
    const ended = ack?.until ? Math.min(Date.parse(ack.until), now) : now;
    delete state.ackSeen;
    state.graceUntil = Math.max(state.graceUntil ?? 0, ended + policy.graceMs);
  }
  const deployGrace = input.assignedAt ? input.assignedAt.getTime() + policy.graceMs : 0;
  if (now < Math.max(deployGrace, state.graceUntil ?? 0)) {
    state.window = [];
    return { state, events };
  }

  state.window.push(judged);
  if (state.window.length > policy.rounds) state.window.splice(0, state.window.length - policy.rounds);
  const failedRounds = state.window.filter((v) => v.failed).length;
  const degradedRounds = state.window.filter((v) => v.degraded).length;
  const recent = state.window.slice(-policy.failures);

  if (!state.failing && failedRounds >= policy.failures) {
    state.failing = true;
    const from = judged.failed ? judged : [...state.window].reverse().find((v) => v.failed)!;
    events.push(
      ...budgeted(state, now, policy, {
        kind: 'failure',
        reason: `failed in ${failedRounds} of the last ${state.window.length} rounds, ${
          from.singleVantage
            ? `seen from ${from.failedFrom.join(', ')} only (no peer host could look)`
            : `seen from ${from.failedFrom.join(' and ')}`
        }`,
        vantages: from.failedFrom,
        checks: from.checks,
        ...(from.singleVantage ? { single_vantage: true } : {}),
      }),
    );
  } else if (
    state.failing &&
    recent.length >= policy.failures &&
    recent.every((v) => !v.failed && !v.inconclusive)
  ) {
    state.failing = false;
    state.window = [];
    state.graceUntil = now + policy.graceMs;
    events.push(
      ...quiet(state, now, {
        kind: 'recovered',
        reason: `healthy in the last ${recent.length} rounds`,
        vantages: round.results.map((r) => r.vantage),
        checks: judged.checks,
      }),
    );
  }

  if (!state.degraded && degradedRounds >= policy.failures) {
    state.degraded = true;
    events.push(
      ...budgeted(state, now, policy, {
        kind: 'degraded',
        reason: `performance targets missed in ${degradedRounds} of the last ${state.window.length} rounds: ${judged.degradedWhy.join('; ') || 'see earlier rounds'}`,
        vantages: round.results.filter((r) => r.degraded?.length).map((r) => r.vantage),
        checks: judged.checks,
      }),
    );
  } else if (state.degraded && recent.length >= policy.failures && recent.every((v) => !v.degraded)) {
    state.degraded = false;
  }
  return { state, events };
}

/** Nothing while the flap budget is spent. */
function quiet(state: AppWatchState, now: number, verdict: Verdict): Verdict[] {
  if (state.flappingUntil !== undefined && now < state.flappingUntil) return [];
  delete state.flappingUntil;
  return [verdict];
}

/** A failure-like event, within the budget; the first one beyond it becomes one flapping event. */
function budgeted(state: AppWatchState, now: number, policy: VerdictPolicy, verdict: Verdict): Verdict[] {
  if (state.flappingUntil !== undefined && now < state.flappingUntil) return [];
  delete state.flappingUntil;
  state.emitted = state.emitted.filter((t) => t > now - policy.flapWindowMs);
  if (state.emitted.length < policy.flapBudget) {
    state.emitted.push(now);
    return [verdict];
  }
  state.flappingUntil = state.emitted[0]! + policy.flapWindowMs;
  return [
    {
      kind: 'flapping',
      reason: `${state.emitted.length} events within ${policy.flapWindowMs / 60_000} min (budget ${policy.flapBudget}); silent until ${new Date(state.flappingUntil).toISOString()}. Last: ${verdict.kind}: ${verdict.reason}`,
      vantages: verdict.vantages,
      checks: verdict.checks,
    },
  ];
}

/** Checks a policy's numbers, naming the flag or field that is wrong. */
export function policyProblems(p: VerdictPolicy): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(p.rounds) || p.rounds < 1) problems.push('rounds (M) must be an integer ≥ 1');
  if (!Number.isInteger(p.failures) || p.failures < 1 || p.failures > p.rounds)
    problems.push(`failures (N) must be an integer from 1 to rounds (${p.rounds})`);
  if (p.graceMs < 0) problems.push('the grace period must not be negative');
  if (!Number.isInteger(p.flapBudget) || p.flapBudget < 1) problems.push('the flap budget must be ≥ 1');
  return problems;
}
