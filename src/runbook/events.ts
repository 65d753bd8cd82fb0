/**
 * What a run reports, as data: every event the engine, the steps, the recovery and the prompter emit. The JSON
 * reporter writes each one as an NDJSON line (`{"type": …, "ts": …, …fields}`); the human reporter renders the
 * ones people need. Adding a field is fine; renaming or removing one breaks --json consumers.
 */
import type { RankedHost, Requirements } from '../broker/broker.js';
import type { ProbeFailureKind } from '../hosts/probe.js';
import type { WatchEvent } from '../watch/types.js';
import type { Provisioned, StepKind, StepRecord } from './journal-schema.js';
import type { SecretUse } from './secrets.js';

/** An action as the plan and the journal show it (what it is; never how it is done). */
export interface ActionView {
  id: string;
  title: string;
  touches: string;
  mutates: boolean;
}

/** One step of the plan shown before confirmation: what it will do, from the profile alone. */
export interface PlannedStep {
  kind: StepKind;
  mutates: boolean;
  lines: string[];
}

/** A hook of the profile, shown in the plan (local ones run on this machine). */
export interface PlannedHook {
  phase: string;
  on: string;
  run: string[];
}

export type StepError = NonNullable<StepRecord['error']>;

/** A step's progress (the engine). */
export interface StepEvent {
  type: 'step';
  run_id: string;
  step: StepKind;
  status: 'running' | 'succeeded' | 'failed' | 'skipped' | 'verified';
  attempt?: number;
  duration_ms?: number;
  error?: StepError;
  outputs?: Record<string, unknown>;
}

/** What a step would do, found by looking (the engine, in a dry run). */
export interface SimulateEvent {
  type: 'simulate';
  run_id: string;
  step: StepKind;
  lines: string[];
}

/** What a step found and will do (the engine, before the step's actions). */
export interface StepPlanEvent {
  type: 'step-plan';
  run_id: string;
  step: StepKind;
  notes: string[];
  actions: ActionView[];
  blocked?: string;
}

/** The run's plan, shown before the confirmation (the recovery). No `step`: that is how it differs from a step's. */
export interface RunPlanEvent {
  type: 'plan';
  run_id: string;
  app: string;
  /** The plan's heading when it is not a recovery's (a rollout's). */
  title?: string;
  failed_host: string;
  target_host: string;
  profile_version: number;
  steps: PlannedStep[];
  /** Every hook, local ones included. */
  hooks: PlannedHook[];
  /** Where secrets are referenced and from what source; never their values. */
  secrets: SecretUse[];
}

/** One action of a step (the engine). */
export interface ActionEvent {
  type: 'action';
  run_id: string;
  step: StepKind;
  action: ActionView;
  status: 'running' | 'done' | 'failed' | 'skipped';
  error?: StepError;
}

/** A line a step logged (also kept in the journal). */
export interface LogEvent {
  type: 'log';
  run_id: string;
  step: StepKind;
  message: string;
}

/** The run starts for real: its journal is there. */
export interface RunStartEvent {
  type: 'run';
  run_id: string;
  journal: string;
}

/** The candidates for an application, ranked (the recovery). */
export interface RankingEvent {
  type: 'ranking';
  app: string;
  hosts: RankedHost[];
  /** What the application needs, for the table's header. */
  requirements?: Requirements;
}

/** One host answered the probe, or did not. */
export type ProbeEvent =
  | { type: 'probe'; host: string; ok: true; duration_ms: number }
  | {
      type: 'probe';
      host: string;
      ok: false;
      failure: { kind: ProbeFailureKind; message: string; hint?: string };
    };

/**
 * No host could take an application: a host is provisioned for it (the recovery). `would-run` in a dry run (nothing
 * runs); `started`, then one `output` per line of the command's stderr (terminal controls stripped), then
 * `succeeded` with the entry it printed. A failure is the command's error, as any other.
 */
export interface ProvisionEvent {
  type: 'provision';
  app: string;
  status: 'would-run' | 'started' | 'output' | 'succeeded';
  command: string[];
  /** The variables the command gets besides PATH, HOME, LANG, LC_ALL and TZ. */
  env?: Record<string, string>;
  timeout_ms?: number;
  /** A line of the command's stderr (`output`). */
  line?: string;
  /** The new host's inventory entry (`succeeded`). */
  entry?: Provisioned['entry'];
  duration_ms?: number;
}

/** A question answered without asking (by --yes, or by a default when nobody can be asked). */
export interface ConfirmEvent {
  type: 'confirm';
  question: string;
  answer: boolean;
  by: string;
}

export interface SelectEvent {
  type: 'select';
  question: string;
  answer: string;
  by: string;
}

/** A long task's progress (the JSON reporter's form of the human's spinner). */
export interface TaskEvent {
  type: 'task';
  label: string;
  status: 'started' | 'progress' | 'succeeded' | 'failed' | 'warning';
  duration_ms?: number;
}

/** What persona watch saw and did (src/watch/types.ts): a failure that counts, a recovery, an ack, ... */
export type WatchRunEvent = { type: 'watch' } & WatchEvent;

export type RunEvent =
  | WatchRunEvent
  | StepEvent
  | SimulateEvent
  | StepPlanEvent
  | RunPlanEvent
  | ActionEvent
  | LogEvent
  | RunStartEvent
  | RankingEvent
  | ProbeEvent
  | ProvisionEvent
  | ConfirmEvent
  | SelectEvent
  | TaskEvent;

export type RunEventType = RunEvent['type'];

/** The fields of an event of type T, without `type` (distributes over the variants of a type). */
export type EventData<T extends RunEventType> =
  Extract<RunEvent, { type: T }> extends infer E ? (E extends unknown ? Omit<E, 'type'> : never) : never;

/** Builds a typed event from its type and fields (what `Reporter.event(type, data)` receives). */
export function runEvent<T extends RunEventType>(
  type: T,
  data: EventData<T>,
): Extract<RunEvent, { type: T }> {
  return { type, ...data } as unknown as Extract<RunEvent, { type: T }>;
}
