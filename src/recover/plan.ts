/**
 * The recovery's decisions, as pure functions of what the runner found: which host to recover onto, the run's
 * journal skeleton and the plan shown before the confirmation, and what a resume will do. No I/O, no clock, no
 * prompt: the runner (runner.ts) reads the world, asks, takes the lock and drives the engine.
 */
import type { RankedHost, Strategy } from '../broker/broker.js';
import { PersonaError } from '../errors.js';
import { findHost, type Inventory, type InventoryHost } from '../hosts/inventory.js';
import type { Profile } from '../profile/schema.js';
import type { PlannedHook, RunPlanEvent } from '../runbook/events.js';
import { journalRanking } from '../runbook/journal-ranking.js';
import type { DataFrom, Provisioned } from '../runbook/journal-schema.js';
import { secretUses } from '../runbook/secrets.js';
import type { HostRef, Journal, Step, StepContext, StepKind, StepRecord } from '../runbook/types.js';
import { hookWords } from '../steps/hooks.js';
import { runbook } from '../steps/index.js';
import type { StoredProfile } from '../stores/profile-store.js';
import { sha256 } from '../util/hash.js';
import { withProvisioned } from './provision.js';

export interface RecoverRequest {
  failedHost: string;
  apps: string[];
  target?: string;
  dryRun: boolean;
  stepByStep: boolean;
  /** One step at a time in the runbook's order, instead of the steps that can overlap (to compare, or to read). */
  serial?: boolean;
  forceNoFence: boolean;
  /** Where migrate takes the data from; `auto` unless the operator chose. */
  dataFrom: DataFrom;
  strategy: Strategy;
  exclude: string[];
  commandLine: string[];
  /** Seconds cached host facts may be used for ranking (recover/decide.ts); absent: the max_fact_age setting. */
  maxFactAge?: number;
}

export interface ResumeRequest {
  dryRun: boolean;
  stepByStep: boolean;
  serial?: boolean;
  /** Switch without fence evidence; confirmed separately and recorded in the journal's options. */
  forceNoFence: boolean;
  /** Overrides the run's data source from here on (recorded in the journal). */
  dataFrom?: DataFrom;
}

/** The fields of the run's plan event. */
export type RunPlan = Omit<RunPlanEvent, 'type'>;

/** Who drives the run, from where, and when: facts the runner reads from the world. */
export interface Driver {
  who: string;
  pid: number;
  host: string;
  at: Date;
}

export function freshStepRecords(steps: readonly Step[] = runbook): StepRecord[] {
  return steps.map((s) => ({
    kind: s.kind,
    title: s.title,
    mutates: s.mutates,
    status: 'pending',
    attempts: 0,
    log: [],
  }));
}

export function hostRef(h: InventoryHost): HostRef {
  return {
    name: h.name,
    address: h.address,
    ...(h.port ? { port: h.port } : {}),
    ...(h.user ? { user: h.user } : {}),
  };
}

/** A host of the journal, as the inventory knows it now, or as the journal recorded it if it left the inventory. */
export function hostOfJournal(inventory: Inventory, ref: HostRef): InventoryHost {
  return inventory.hosts.find((h) => h.name === ref.name) ?? { ...ref, labels: {}, apps: [] };
}

/** The target: decided (by --target, or the top of the ranking when nobody is asked), or a question to ask. */
export type TargetChoice =
  | { decided: RankedHost; by: '--target' | 'top of the ranking' }
  | { ask: RankedHost[]; default: RankedHost };

/**
 * Where to recover `app`, from its ranking. `--target` must name an eligible candidate; without it, the best
 * eligible host, or (when someone can be asked) a question defaulting to it. No eligible host is E_NO_CANDIDATE.
 */
export function chooseTarget(
  ranking: readonly RankedHost[],
  req: Pick<RecoverRequest, 'target'>,
  app: string,
  canAsk: boolean,
): TargetChoice {
  if (req.target) {
    const forced = ranking.find((r) => r.host === req.target);
    if (!forced)
      throw new PersonaError('E_USAGE', `--target ${req.target} is not a candidate host in the inventory`);
    if (forced.verdict !== 'eligible') {
      throw new PersonaError(
        'E_NO_CANDIDATE',
        `--target ${req.target} cannot take ${app}: ${forced.reasons.map((r) => r.message).join('; ')}`,
        {
          hint:
            forced.reasons
              .map((r) => r.fix)
              .filter(Boolean)
              .join('; ') || undefined,
        },
      );
    }
    return { decided: forced, by: '--target' };
  }
  const eligible = ranking.filter((r) => r.verdict === 'eligible');
  if (eligible.length === 0) {
    const why = ranking.map((r) => `${r.host}: ${r.reasons.map((x) => x.message).join('; ')}`).join('\n  ');
    throw new PersonaError('E_NO_CANDIDATE', `no host can take ${app}:\n  ${why}`, {
      hint: "Free resources on a host, add one to the inventory, or adjust the profile; or give persona a provision command that creates a host (the provision setting, or the profile's provision). Nothing was changed.",
    });
  }
  if (!canAsk) return { decided: eligible[0]!, by: 'top of the ranking' };
  return { ask: [...ranking], default: eligible[0]! };
}

/** Every hook of the profile, local ones included: they run on this machine with a minimal environment. */
export function plannedHooks(profile: Profile): PlannedHook[] {
  return Object.entries(profile.hooks ?? {}).flatMap(([phase, list]) =>
    (list ?? []).map((h) => ({ phase, on: h.on, run: hookWords(h) })),
  );
}

export interface PlanInput {
  runId: string;
  app: string;
  profile: Profile;
  /** The profile's stored version, which the run pins. */
  stored: Pick<StoredProfile, 'version' | 'text'>;
  inventory: Inventory;
  /** The store's description, for the journal. */
  store: string;
  failedHost: string;
  /** The chosen target (see chooseTarget). */
  targetHost: string;
  ranking: readonly RankedHost[];
  /** The host the provision command made for this run, recorded so that a resume finds it. */
  provisioned?: Provisioned;
  request: Pick<RecoverRequest, 'forceNoFence' | 'strategy' | 'dataFrom' | 'commandLine'>;
  driver: Driver;
  steps?: readonly Step[];
  /** A planned move (persona migrate), with its options; absent: a recovery. */
  planned?: { precopy: boolean; verify: 'metadata' | 'contents' };
  /**
   * The context a step describes itself with. `describe` reads the profile and the hosts only; the runner passes
   * the run's context, a test one whose transport and store refuse to be used.
   */
  describeContext(journal: Journal, record: StepRecord): StepContext;
}

export interface RecoveryPlan {
  /** The run's journal as it starts: planned, every step pending. */
  journal: Journal;
  /** What is shown (and emitted) before the confirmation. */
  plan: RunPlan;
  /** The question that confirms the run. */
  confirm: string;
  failed: InventoryHost;
  target: InventoryHost;
}

/** A fresh run of one application: its journal skeleton and its plan. */
export function planRecovery(input: PlanInput): RecoveryPlan {
  const { app, runId, stored, inventory, request: req, driver } = input;
  const steps = input.steps ?? runbook;
  const failed = findHost(inventory, input.failedHost);
  const target = findHost(inventory, input.targetHost);
  if (target.name === failed.name)
    throw new PersonaError(
      'E_USAGE',
      input.planned
        ? `cannot move ${app} onto ${failed.name}: it runs there`
        : `cannot recover ${app} onto ${failed.name}: it is the failed host`,
    );
  const at = driver.at.toISOString();
  const journal: Journal = {
    format: 'persona-run',
    version: 1,
    run_id: runId,
    app,
    ...(input.planned ? { kind: 'migrate' as const } : {}),
    status: 'planned',
    created_at: at,
    updated_at: at,
    who: driver.who,
    command_line: req.commandLine,
    driver: { pid: driver.pid, host: driver.host },
    store: input.store,
    inventory: inventory.source,
    profile: { id: app, version: stored.version, sha256: sha256(stored.text) },
    failed_host: hostRef(failed),
    target_host: hostRef(target),
    options: {
      force_no_fence: req.forceNoFence,
      strategy: req.strategy,
      ...(req.dataFrom !== 'auto' ? { data_from: req.dataFrom } : {}),
      ...(input.planned ? { precopy: input.planned.precopy, verify: input.planned.verify } : {}),
    },
    ...journalRanking(input.ranking, target.name),
    ...(input.provisioned ? { provisioned: input.provisioned } : {}),
    steps: freshStepRecords(steps),
  };
  const plan: RunPlan = {
    run_id: runId,
    app,
    failed_host: failed.name,
    target_host: target.name,
    profile_version: stored.version,
    steps: steps.map((step, i) => ({
      kind: step.kind,
      mutates: step.mutates,
      lines: step.describe(input.describeContext(journal, journal.steps[i]!)),
    })),
    hooks: plannedHooks(input.profile),
    secrets: secretUses(input.profile),
  };
  return {
    journal,
    plan,
    confirm: input.planned
      ? `Move ${app} from ${failed.name} onto ${target.name} (${failed.name} will be stopped): run these ${plan.steps.length} steps?`
      : `Recover ${app} from ${failed.name} onto ${target.name}: run these ${plan.steps.length} steps?`,
    failed,
    target,
  };
}

export interface ResumePlan {
  /** The journal to go on with: this driver, the request's data source, the current profile version. */
  journal: Journal;
  /** The inventory, with the host the run provisioned (if it did) though no inventory file lists it. */
  inventory: Inventory;
  failed: InventoryHost;
  target: InventoryHost;
  /** Steps still to do, in order. */
  pending: StepKind[];
  /** Who drove the run before. */
  previous: Journal['driver'];
  /** The run's data source changes from here on. */
  dataFromChanged?: DataFrom;
  /** The profile changed since the run started (the runner shows the diff and asks). */
  profileChanged?: { from: number; to: number };
  /** --force-no-fence is new for this run: it must be confirmed, then recorded. */
  confirmForceNoFence: boolean;
  /** The question that confirms the resume. */
  confirm: string;
  /** What the runner says before it goes on. */
  describe: string;
}

/** Going on with a run from its journal (a copy: the loaded journal is left as it was). */
export function planResume(
  loaded: Journal,
  input: {
    inventory: Inventory;
    stored: Pick<StoredProfile, 'version' | 'text'>;
    request: ResumeRequest;
    driver: Pick<Driver, 'pid' | 'host'>;
  },
): ResumePlan {
  const journal: Journal = structuredClone(loaded);
  const { request: req, stored } = input;
  const runId = journal.run_id;
  const inventory = withProvisioned(input.inventory, journal.provisioned);
  const failed = hostOfJournal(inventory, journal.failed_host);
  const target = hostOfJournal(inventory, journal.target_host);
  const digest = sha256(stored.text);
  const profileChanged =
    stored.version !== journal.profile.version || digest !== journal.profile.sha256
      ? { from: journal.profile.version, to: stored.version }
      : undefined;
  if (profileChanged) journal.profile = { id: journal.app, version: stored.version, sha256: digest };
  const previous = journal.driver;
  journal.driver = { pid: input.driver.pid, host: input.driver.host };
  const dataFromChanged =
    req.dataFrom && req.dataFrom !== (journal.options.data_from ?? 'auto') ? req.dataFrom : undefined;
  if (dataFromChanged) journal.options.data_from = dataFromChanged;
  const pending = journal.steps
    .filter((s) => s.status !== 'succeeded' && s.status !== 'skipped')
    .map((s) => s.kind);
  return {
    journal,
    inventory,
    failed,
    target,
    pending,
    previous,
    ...(dataFromChanged ? { dataFromChanged } : {}),
    ...(profileChanged ? { profileChanged } : {}),
    confirmForceNoFence: req.forceNoFence && !journal.options.force_no_fence,
    confirm: `Resume run ${runId}: ${journal.kind === 'migrate' ? 'move' : 'recover'} ${journal.app} from ${failed.name} onto ${target.name}, running ${pending.join(', ')}?`,
    describe: `resuming run ${runId} (${journal.app}: ${failed.name} → ${target.name}), last driven by pid ${previous.pid} on ${previous.host}; to do: ${pending.join(', ')}`,
  };
}

/** The question that confirms --force-no-fence. */
export const forceNoFenceQuestion = (failed: string, target: string) =>
  `--force-no-fence: traffic will move to ${target} even if ${failed} was not fenced and may still serve. Continue?`;
