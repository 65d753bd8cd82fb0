/**
 * The runbook's vocabulary: steps declare what they do and whether they change anything; the engine decides
 * when to ask, what to skip in a dry run, how to retry, and writes the journal around every step.
 */
import type { InventoryHost } from '../hosts/inventory.js';
import type { SshTransport } from '../hosts/ssh.js';
import type { Profile } from '../profile/schema.js';
import type { KvBackend } from '../stores/kv.js';
import type { Redactor } from '../ui/redact.js';
import type { Reporter } from '../ui/reporter.js';

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
  readonly ssh: SshTransport;
  readonly backend: KvBackend;
  readonly reporter: Reporter;
  readonly redactor: Redactor;
  readonly signal: AbortSignal;
  readonly stateDir: string;
  readonly env: NodeJS.ProcessEnv;
  /** An inventory host by name (a backup host, say). */
  findHost(name: string): InventoryHost;
  /** The record of an earlier step of this run. */
  previous(kind: StepKind): StepRecord | undefined;
  /** A named point inside a step where a test may stop the process (PERSONA_FAILPOINT); a no-op otherwise. */
  checkpoint(name: string): Promise<void>;
  /** A line for the human and the journal. */
  log(line: string): void;
  now(): Date;
}

export interface Step {
  kind: StepKind;
  title: string;
  /** Whether the step changes anything; the engine skips mutating steps in a dry run and asks before them. */
  mutates: boolean;
  /** What the step will do, for the plan shown before confirmation. */
  describe(ctx: StepContext): string[];
  /** A dry run: what the step would do, found by looking (never changing). Lines starting "cannot simulate" say so. */
  simulate(ctx: StepContext): Promise<string[]>;
  /**
   * After a crash mid-step: is the step's end state already there? A step whose evidence matters returns the
   * evidence (its outputs) instead of true.
   */
  verify?(ctx: StepContext): Promise<boolean | StepOutputs>;
  /** The engine runs this step only with fence evidence in the journal (or a recorded --force-no-fence). */
  needsFence?: boolean;
  run(ctx: StepContext): Promise<StepOutputs>;
  /** How often the engine tries before asking the human (default 1). */
  attempts?: number;
  /** The longest a single attempt may take. */
  timeoutMs?: (profile: Profile) => number;
}
