/**
 * The runbook's vocabulary: steps declare what they do and whether they change anything; the engine decides
 * when to ask, what to skip in a dry run, how to retry, and writes the journal around every step.
 */
import type { InventoryHost } from '../hosts/inventory.js';
import type { Transport } from '../hosts/ssh.js';
import type { Profile } from '../profile/schema.js';
import type { KvBackend } from '../stores/kv.js';
import type { Redactor } from '../ui/redact.js';
import type { Reporter } from '../ui/reporter.js';
import type { LocalRunner } from '../util/local-process.js';

import type { Journal, StepKind, StepRecord } from './journal-schema.js';

export type { HostRef, Journal, RunStatus, StepKind, StepRecord, StepStatus } from './journal-schema.js';
export { stepKinds } from './journal-schema.js';

/** What a step leaves in the journal: facts and evidence, never secrets. */
export type StepOutputs = Record<string, unknown>;

export interface StepContext {
  readonly journal: Readonly<Journal>;
  readonly profile: Profile;
  readonly failed: InventoryHost;
  readonly target: InventoryHost;
  readonly ssh: Transport;
  readonly backend: KvBackend;
  readonly reporter: Reporter;
  readonly redactor: Redactor;
  readonly signal: AbortSignal;
  readonly stateDir: string;
  readonly env: NodeJS.ProcessEnv;
  /** The allowed_sources patterns for env: and file: secrets (secret-allow.ts); absent: the default. */
  readonly allowedSources?: readonly string[];
  /** Days observations are kept (the observation_retention setting); absent: the default. */
  readonly observationRetentionDays?: number;
  /** An inventory host by name (a backup host, say). */
  findHost(name: string): InventoryHost;
  /** The record of an earlier step of this run. */
  previous(kind: StepKind): StepRecord | undefined;
  /** A named point inside a step where a test may stop the process (PERSONA_FAILPOINT); a no-op otherwise. */
  checkpoint(name: string): Promise<void>;
  /** A line for the human and the journal. */
  log(line: string): void;
  /** Runs a command on this machine (local hooks, traffic commands): no shell, only the environment given. */
  local: LocalRunner;
  /**
   * Throws E_LOCK_LOST when the run's lock can no longer be trusted. The engine calls it before every mutating
   * action, the transport before every remote command, the router before every traffic change, hooks before
   * they run; a step calls it before any other change it makes itself.
   */
  assertHeld(): void;
  now(): Date;
  /**
   * A planned move's client view: a prober GETting the route's verify_url through the balancer since the run's
   * steps began; monitor stops it and records the downtime. Absent in recoveries and resumed runs.
   */
  readonly clientView?: ClientView;
}

export interface ClientView {
  stop(): Promise<import('../traffic/prober.js').ProberReport>;
}

/**
 * One thing a step will do, as data: what it touches and whether it changes anything. Steps return actions from
 * `plan`; only the engine applies them, one by one, journalling each before and after, checking the run's lock
 * before every mutating one, and never in a dry run. No step sees the mode.
 */
export interface Action {
  /** Stable within the step across plans ("traffic:out", "file:/etc/app.conf"): the journal keys actions by it. */
  id: string;
  /** One line for the plan, the dry run and the journal: "take lab-1 out of rotation (haproxy web/lab-1)". */
  title: string;
  /** What it acts on: a host name, "load balancer", "store", "this machine". */
  touches: string;
  mutates: boolean;
  /**
   * Whether a new plan sees this action's effect. An observable action that ran must not be planned again: if it
   * is, the step did not converge and fails. An unobservable one (a hook, an install command, deploy.stop without
   * deploy.status) runs once per run: the journal records that it ran, and the engine drops it from later plans.
   */
  observable: boolean;
  /** Does it. What it returns is kept in the journal (facts, never secrets). */
  apply(ctx: StepContext): Promise<StepOutputs | undefined>;
}

/** What a step found, and what needs doing. */
export interface StepPlan {
  /** In order. Empty: the step's end state is there (after a crash, the step is done once its conclusion holds). */
  actions: Action[];
  /** Actions for after the conclusion holds (post-hooks): a fence's post_fence hook runs only once it is fenced. */
  after?: Action[];
  /** What the step found while looking, one line each: shown in the dry run, logged in the journal. */
  notes: string[];
  /** The step cannot go on from here (no data source, no space): the engine fails it before any action. */
  blocked?: { message: string; hint?: string };
  /** Facts found while planning, for the conclusion (a manifest, the data source): never secrets. */
  facts?: StepOutputs;
}

/** What the actions of this run did, by action id (from every attempt; the latest wins). */
export type Applied = ReadonlyMap<string, StepOutputs>;

export interface Step {
  kind: StepKind;
  title: string;
  /** Whether the step may change anything (for the plan shown before confirmation; the actions say exactly what). */
  mutates: boolean;
  /** What the step will do, from the profile alone, for the plan shown before confirmation. */
  describe(ctx: StepContext): string[];
  /** Looks at the world (never changing it) and returns what needs doing. A dry run shows exactly this. */
  plan(ctx: StepContext): Promise<StepPlan>;
  /**
   * After the actions (or with none to apply): the step's outputs, from the final plan's facts, the world and
   * what the actions returned. Throws when the end state is not what the step promises (not fenced, unhealthy).
   * Read-only; in a dry run it does not run, and `checks` says what it would check.
   */
  conclude(ctx: StepContext, done: { plan: StepPlan; applied: Applied }): Promise<StepOutputs>;
  /** What `conclude` checks, for the dry run (it cannot run there: it may need earlier steps' changes). */
  checks?(ctx: StepContext): string[];
  /**
   * The steps that must have succeeded (or been skipped) before this one starts; steps with nothing between them
   * run at the same time. Absent: the step before it in the runbook (a line). Every step named must come earlier
   * in the runbook, so the runbook's order is always a valid order to run them one by one (--serial).
   */
  dependsOn?: readonly StepKind[];
  /**
   * Work the step may do before its `dependsOn` are all done, because it is right whatever they find: migrate
   * copies the backup into a root-only staging directory on the new host while the fence still waits to hear from
   * the failed host; only once migrate chose the backup is it moved into place (else it is removed). The engine
   * applies these actions (journalled like the step's own, in its record) once the steps in
   * `early.dependsOn` are done and only when steps run overlapping (not with --serial or --step); a failure of one
   * is reported and left to the step, which plans from what is there. Never in a dry run, which shows the plan.
   */
  early?: { dependsOn: readonly StepKind[]; plan(ctx: StepContext): Promise<StepPlan> };
  /** The engine runs this step only with fence evidence in the journal (or a recorded --force-no-fence). */
  needsFence?: boolean;
  /** How often the engine tries before asking the human (default 1). */
  attempts?: number;
  /** The longest a single attempt may take. */
  timeoutMs?: (profile: Profile) => number;
}
