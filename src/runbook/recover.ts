/**
 * `persona recover <host>`: which applications ran there; for each, its profile (version pinned), its lock, the
 * ranked candidates, a target, the plan, a confirmation, the runbook, the record. And resuming a run from its
 * journal, on this machine or (with a shared store) another one.
 */
import { hostname } from 'node:os';
import { type RankedHost, rankHosts, requirementsOf, type Strategy } from '../broker/broker.js';
import { probeWithProgress } from '../cli/probe-ui.js';
import type { Context } from '../context.js';
import { PersonaError } from '../errors.js';
import { findHost, type Inventory, type InventoryHost } from '../hosts/inventory.js';
import { notProbed } from '../hosts/probe.js';
import type { Profile } from '../profile/schema.js';
import { runbook } from '../steps/index.js';
import { fencedBackend } from '../stores/fenced-backend.js';
import type { LockHandle } from '../stores/kv.js';
import { describeHolder } from '../stores/kv-lock.js';
import type { ProfileStore } from '../stores/profile-store.js';
import { confirmOrDecline } from '../ui/prompter.js';
import { sha256 } from '../util/hash.js';
import { Engine, type SimulatedStep } from './engine.js';
import { JournalStore, newRunId } from './journal.js';
import { journalRanking } from './journal-ranking.js';
import type { DataFrom } from './journal-schema.js';
import { declareApps, selectApps, whereAppsRun } from './recover-apps.js';
import { registerSecrets, type SecretUse, secretUses } from './secrets.js';
import { type RunPieces, stepContext } from './step-context.js';
import type { Journal, StepRecord } from './types.js';

export interface RecoverRequest {
  failedHost: string;
  apps: string[];
  target?: string;
  dryRun: boolean;
  stepByStep: boolean;
  forceNoFence: boolean;
  /** Where migrate takes the data from; `auto` unless the operator chose. */
  dataFrom: DataFrom;
  strategy: Strategy;
  exclude: string[];
  commandLine: string[];
}

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

/** How long an application's lock outlives a crashed holder: the lock_ttl setting (PERSONA_LOCK_TTL, seconds). */
const lockTtlMs = (ctx: Context) => ctx.settings.values.lock_ttl.value * 1000;

export const lockName = (app: string) => `app-${app}`;

function resumeCommand(ctx: Context, runId: string): string {
  const g = ctx.globals;
  const flags = [
    g.store ? `--store ${g.store}` : '',
    g.stateDir ? `--state-dir ${g.stateDir}` : '',
    g.inventory ? `--inventory ${g.inventory}` : '',
  ].filter(Boolean);
  return ['persona recover --resume', runId, ...flags].join(' ');
}

/** The run's journals; with the run's lock, their mirror writes carry its fence. */
async function journals(ctx: Context, lock?: LockHandle): Promise<JournalStore> {
  const store = await ctx.store();
  const held = lock ? () => lock.assertHeld() : undefined;
  const mirror = !store.backend.shared
    ? undefined
    : lock
      ? fencedBackend(store.backend, lock)
      : store.backend;
  return new JournalStore(ctx.stateDir, mirror, ctx.redactor, held);
}

/**
 * Takes the application's lock. When resuming, a lock still held for this very run belongs to a driver that
 * died: wait for it to lapse (up to its TTL) rather than fail.
 */
async function takeLock(
  ctx: Context,
  app: string,
  runId: string,
  purpose: string,
  resuming = false,
): Promise<LockHandle> {
  const store = await ctx.store();
  const ttlMs = lockTtlMs(ctx);
  const deadline = Date.now() + ttlMs * 2 + 20_000;
  const info = { holder: ctx.author, host: hostname(), pid: process.pid, run_id: runId, purpose };
  for (let waited = false; ; ) {
    try {
      return await store.backend.acquireLock(
        lockName(app),
        { ...info, started_at: ctx.now().toISOString() },
        {
          ttlMs,
          onTakeover: (previous, why) =>
            ctx.reporter.warn(`took over the lock on ${app} from ${describeHolder(previous)}: ${why}`),
        },
      );
    } catch (error) {
      const holder = (error as PersonaError).details?.holder as { run_id?: string } | undefined;
      const ownRun = resuming && (error as PersonaError).code === 'E_LOCK_HELD' && holder?.run_id === runId;
      if (!ownRun || Date.now() > deadline || ctx.signal.aborted) throw error;
      if (!waited)
        ctx.reporter.info(
          `${(error as Error).message}; it is this run's previous driver: waiting for it to lapse`,
        );
      waited = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

export function freshStepRecords(): StepRecord[] {
  return runbook.map((s) => ({
    kind: s.kind,
    title: s.title,
    mutates: s.mutates,
    status: 'pending',
    attempts: 0,
    log: [],
  }));
}

function hostRef(h: InventoryHost) {
  return {
    name: h.name,
    address: h.address,
    ...(h.port ? { port: h.port } : {}),
    ...(h.user ? { user: h.user } : {}),
  };
}

async function chooseTarget(
  ctx: Context,
  ranking: RankedHost[],
  req: RecoverRequest,
  app: string,
): Promise<RankedHost> {
  const eligible = ranking.filter((r) => r.verdict === 'eligible');
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
    return forced;
  }
  if (eligible.length === 0) {
    const why = ranking.map((r) => `${r.host}: ${r.reasons.map((x) => x.message).join('; ')}`).join('\n  ');
    throw new PersonaError('E_NO_CANDIDATE', `no host can take ${app}:\n  ${why}`, {
      hint: 'Free resources on a host, add one to the inventory, or adjust the profile; nothing was changed.',
    });
  }
  if (!ctx.mode.interactive || ctx.mode.yes) {
    ctx.reporter.event('select', {
      question: `target for ${app}`,
      answer: eligible[0]!.host,
      by: 'top of the ranking',
    });
    return eligible[0]!;
  }
  return await ctx.prompter.select(
    `Recover ${app} onto which host?`,
    ranking.map((r) => ({
      name: r.verdict === 'eligible' ? `${r.rank}. ${r.host}  score ${r.score!.total}` : `   ${r.host}`,
      value: r,
      ...(r.verdict === 'eligible' ? {} : { disabled: r.reasons.map((x) => x.message).join('; ') }),
    })),
    { default: eligible[0] },
  );
}

function summarize(journal: Journal, journalPath?: string): RunSummary {
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

function pieces(
  ctx: Context,
  journal: Journal,
  profile: Profile,
  inventory: Inventory,
  failed: InventoryHost,
  target: InventoryHost,
  store: ProfileStore,
  ssh: RunPieces['ssh'],
  lock: LockHandle | undefined,
): RunPieces {
  return {
    journal,
    profile,
    inventory,
    failed,
    target,
    ssh,
    // Every store write of the run (the record step's) carries the lock's fence.
    backend: lock ? fencedBackend(store.backend, lock) : store.backend,
    reporter: ctx.reporter,
    redactor: ctx.redactor,
    stateDir: ctx.stateDir,
    env: ctx.env,
    now: () => ctx.now(),
  };
}

interface EngineRun {
  dryRun?: boolean;
  stepByStep?: boolean;
  /** The question that confirms the run; the engine asks it before anything is written. */
  confirm?: string;
}

/** Runs (or, in a dry run, simulates) a run's steps through the engine, which alone decides what may change. */
async function runEngine(
  ctx: Context,
  run: RunPieces,
  lock: LockHandle | undefined,
  js: JournalStore,
  how: EngineRun,
): Promise<RunSummary> {
  const engine = new Engine(
    run.journal,
    runbook,
    {
      journals: js,
      reporter: ctx.reporter,
      prompter: ctx.prompter,
      context: (signal, record) => stepContext(run, signal, record),
      now: () => ctx.now(),
    },
    {
      interactive: ctx.mode.interactive,
      dryRun: how.dryRun === true,
      stepByStep: how.stepByStep === true,
      ...(how.confirm ? { confirm: how.confirm } : {}),
      resumeCommand: resumeCommand(ctx, run.journal.run_id),
      signal: ctx.signal,
      ...(lock ? { lockLost: lock.lost } : {}),
    },
  );
  try {
    await engine.run();
  } finally {
    await lock?.release();
  }
  if (how.dryRun) return dryRunSummary(run, engine.simulation);
  return summarize(run.journal, `${js.dir}/runs/${run.journal.run_id}.json`);
}

export async function recoverHost(ctx: Context, req: RecoverRequest): Promise<RunSummary[]> {
  const [inventory, store] = await Promise.all([ctx.inventory(), ctx.store()]);
  const failed = findHost(inventory, req.failedHost);
  const { apps, undeclared } = selectApps(failed.name, req.apps, await whereAppsRun(inventory, store), {
    inventory: inventory.source,
    store: store.describe,
    exampleApp: (await store.backend.list('profiles/'))[0]?.key.slice('profiles/'.length) ?? 'APP',
  });
  await declareApps(ctx, store, failed.name, undeclared, req.dryRun);
  ctx.reporter.info(`${failed.name} ran: ${apps.join(', ')}`);
  const results: RunSummary[] = [];
  for (const app of apps) results.push(await recoverApp(ctx, req, app, failed, inventory, store));
  return results;
}

async function recoverApp(
  ctx: Context,
  req: RecoverRequest,
  app: string,
  failed: InventoryHost,
  inventory: Inventory,
  store: ProfileStore,
): Promise<RunSummary> {
  const { stored, profile } = await store.load(app);
  await registerSecrets(profile, { env: ctx.env, backend: store.backend, redactor: ctx.redactor });
  const runId = newRunId(app, ctx.now());
  const lock = req.dryRun ? undefined : await takeLock(ctx, app, runId, `recover ${app} from ${failed.name}`);
  try {
    const ssh = await ctx.ssh();
    const skip = (h: InventoryHost) => h.name === failed.name || req.exclude.includes(h.name);
    const requirements = requirementsOf(profile);
    const probed = await probeWithProgress(
      ctx,
      inventory.hosts.filter((h) => !skip(h)),
      { dataPath: requirements.dataPath, packages: requirements.packages },
    );
    const skipped = inventory.hosts.filter(skip).map(notProbed);
    const ranking = rankHosts(requirements, [...probed, ...skipped], {
      strategy: req.strategy,
      failedHost: failed.name,
      exclude: req.exclude,
    });
    ctx.reporter.event('ranking', { app, hosts: ranking, requirements });
    const chosen = await chooseTarget(ctx, ranking, req, app);
    const target = findHost(inventory, chosen.host);
    const journal: Journal = {
      format: 'persona-run',
      version: 1,
      run_id: runId,
      app,
      status: 'planned',
      created_at: ctx.now().toISOString(),
      updated_at: ctx.now().toISOString(),
      who: ctx.author,
      command_line: req.commandLine,
      driver: { pid: process.pid, host: hostname() },
      store: store.describe,
      inventory: inventory.source,
      profile: { id: app, version: stored.version, sha256: sha256(stored.text) },
      failed_host: hostRef(failed),
      target_host: hostRef(target),
      options: {
        force_no_fence: req.forceNoFence,
        strategy: req.strategy,
        ...(req.dataFrom !== 'auto' ? { data_from: req.dataFrom } : {}),
      },
      ...journalRanking(ranking, target.name),
      steps: freshStepRecords(),
    };
    const run = pieces(ctx, journal, profile, inventory, failed, target, store, ssh, lock);
    const plan = runbook.map((step, i) => ({
      kind: step.kind,
      mutates: step.mutates,
      lines: step.describe(stepContext(run, ctx.signal, journal.steps[i]!)),
    }));
    const extras = planExtras(profile);
    ctx.reporter.event('plan', {
      run_id: runId,
      app,
      failed_host: failed.name,
      target_host: target.name,
      profile_version: stored.version,
      steps: plan,
      ...extras,
    });
    if (req.dryRun) return await runEngine(ctx, run, undefined, await journals(ctx), { dryRun: true });
    if (req.forceNoFence) {
      await confirmOrDecline(
        ctx.prompter,
        `--force-no-fence: traffic will move to ${target.name} even if ${failed.name} was not fenced and may still serve. Continue?`,
      );
    }
    if (req.stepByStep) ctx.reporter.info('--step: each step is confirmed before it runs');
    const js = await journals(ctx, lock);
    ctx.reporter.event('run', { run_id: runId, journal: `${js.dir}/runs/${runId}.json` });
    return await runEngine(ctx, run, lock, js, {
      stepByStep: req.stepByStep,
      confirm: `Recover ${app} from ${failed.name} onto ${target.name}: run these ${plan.length} steps?`,
    });
  } catch (error) {
    await lock?.release();
    throw error;
  }
}

interface PlanExtras {
  /** Every hook, local ones included: they run on this machine with a minimal environment. */
  hooks: Array<{ phase: string; on: string; run: string[] }>;
  secrets: SecretUse[];
}

function planExtras(profile: Profile): PlanExtras {
  const hooks = Object.entries(profile.hooks ?? {}).flatMap(([phase, list]) =>
    (list ?? []).map((h) => ({ phase, on: h.on, run: h.run })),
  );
  return { hooks, secrets: secretUses(profile) };
}

/** The human saw the dry run as `simulate` events; this is its result. */
function dryRunSummary(run: RunPieces, steps: SimulatedStep[]): RunSummary {
  return {
    run_id: run.journal.run_id,
    app: run.journal.app,
    status: 'dry-run',
    failed_host: run.failed.name,
    target_host: run.target.name,
    profile_version: run.journal.profile.version,
    steps: steps.map((s) => ({ kind: s.kind, status: s.status, lines: s.lines })),
  };
}

export interface ResumeRequest {
  dryRun: boolean;
  stepByStep: boolean;
  /** Switch without fence evidence; confirmed separately and recorded in the journal's options. */
  forceNoFence: boolean;
  /** Overrides the run's data source from here on (recorded in the journal). */
  dataFrom?: DataFrom;
}

/** Goes on with a run from its journal. */
export async function resumeRun(
  ctx: Context,
  runId: string,
  req: ResumeRequest = { dryRun: false, stepByStep: false, forceNoFence: false },
): Promise<RunSummary> {
  const before = await (await journals(ctx)).load(runId);
  if (before.status === 'succeeded') {
    ctx.reporter.info(`run ${runId} already succeeded; nothing to do`);
    return summarize(before);
  }
  const [inventory, store] = await Promise.all([ctx.inventory(), ctx.store()]);
  // A dry run changes nothing, the lock included.
  const lock = req.dryRun ? undefined : await takeLock(ctx, before.app, runId, `resume ${runId}`, true);
  try {
    // Read again under the lock: the previous driver may have saved since; our saves must follow that copy.
    const js = await journals(ctx, lock);
    const journal = await js.load(runId);
    const { stored, profile } = await store.load(journal.app);
    await registerSecrets(profile, { env: ctx.env, backend: store.backend, redactor: ctx.redactor });
    if (stored.version !== journal.profile.version || sha256(stored.text) !== journal.profile.sha256) {
      ctx.reporter.warn(
        `profile ${journal.app} changed since run ${runId} started: version ${journal.profile.version} → ${stored.version}`,
      );
      const { unifiedDiff } = await import('../ui/diff.js');
      const before = await store.version(journal.app, journal.profile.version);
      if (before)
        ctx.reporter.info(
          unifiedDiff(
            `version ${journal.profile.version} (the run's)`,
            `version ${stored.version} (now)`,
            before.text,
            stored.text,
          ),
        );
      if (!req.dryRun)
        await confirmOrDecline(ctx.prompter, `Continue run ${runId} with profile version ${stored.version}?`);
      journal.profile = { id: journal.app, version: stored.version, sha256: sha256(stored.text) };
    }
    const failed = inventory.hosts.find((h) => h.name === journal.failed_host.name) ?? {
      ...journal.failed_host,
      labels: {},
      apps: [],
    };
    const target = inventory.hosts.find((h) => h.name === journal.target_host.name) ?? {
      ...journal.target_host,
      labels: {},
      apps: [],
    };
    const previous = journal.driver;
    journal.driver = { pid: process.pid, host: hostname() };
    if (req.dataFrom && req.dataFrom !== (journal.options.data_from ?? 'auto')) {
      ctx.reporter.warn(
        `--data-from ${req.dataFrom}: migrate's data source changes for the rest of run ${runId}`,
      );
      journal.options.data_from = req.dataFrom;
    }
    const pending = journal.steps
      .filter((s) => s.status !== 'succeeded' && s.status !== 'skipped')
      .map((s) => s.kind);
    ctx.reporter.info(
      `resuming run ${runId} (${journal.app}: ${failed.name} → ${target.name}), last driven by pid ${previous.pid} on ${previous.host}; to do: ${pending.join(', ')}`,
    );
    const ssh = await ctx.ssh();
    const run = pieces(ctx, journal, profile, inventory, failed, target, store, ssh, lock);
    if (req.dryRun) return await runEngine(ctx, run, undefined, js, { dryRun: true });
    if (req.forceNoFence && !journal.options.force_no_fence) {
      await confirmOrDecline(
        ctx.prompter,
        `--force-no-fence: traffic will move to ${target.name} even if ${failed.name} was not fenced and may still serve. Continue?`,
      );
      journal.options.force_no_fence = true;
    }
    if (req.stepByStep) ctx.reporter.info('--step: each step is confirmed before it runs');
    return await runEngine(ctx, run, lock, js, {
      stepByStep: req.stepByStep,
      confirm: `Resume run ${runId}: recover ${journal.app} from ${failed.name} onto ${target.name}, running ${pending.join(', ')}?`,
    });
  } catch (error) {
    await lock?.release();
    throw error;
  }
}

export { summarize };
