/**
 * `persona recover <host>`: which applications ran there; for each, its profile (version pinned), its lock, the
 * ranked candidates, a target, the plan, a confirmation, the runbook, the record. And resuming a run from its
 * journal, on this machine or (with a shared store) another one.
 *
 * The runner reads the world, asks, holds the lock and drives the engine; plan.ts decides, from what it read.
 * It prints nothing itself: it reports events (runbook/events.ts), which the reporters render.
 */
import { hostname } from 'node:os';
import { type RankedHost, rankHosts, requirementsOf } from '../broker/broker.js';
import type { Context } from '../context.js';
import { readRankHistory } from '../feedback/host-history.js';
import { findHost, type Inventory, type InventoryHost } from '../hosts/inventory.js';
import { notProbed, type ProbeResult } from '../hosts/probe.js';
import type { Profile } from '../profile/schema.js';
import { Engine } from '../runbook/engine.js';
import { JournalStore, newRunId } from '../runbook/journal.js';
import type { Provisioned } from '../runbook/journal-schema.js';
import { registerSecrets, resolveSecret } from '../runbook/secrets.js';
import { type RunPieces, stepContext } from '../runbook/step-context.js';
import type { Journal } from '../runbook/types.js';
import { runbookOf } from '../steps/index.js';
import { askReach, rememberReach } from '../steps/reach.js';
import { fencedBackend } from '../stores/fenced-backend.js';
import type { KvBackend, LockHandle } from '../stores/kv.js';
import type { ProfileStore } from '../stores/profile-store.js';
import { confirmOrDecline } from '../ui/prompter.js';
import { declareApps, selectApps, whereAppsRun } from './apps.js';
import { chooseFreshTarget, gatherFacts, maxFactAge, probeDecisive } from './decide.js';
import { takeLock } from './lock.js';
import {
  chooseTarget,
  type Driver,
  forceNoFenceQuestion,
  planRecovery,
  planResume,
  type RecoverRequest,
  type ResumeRequest,
} from './plan.js';
import {
  provisionCommand,
  provisionEnv,
  provisionedTarget,
  provisionNeed,
  wouldProvision,
} from './provision.js';
import { provisionHost } from './provision-run.js';
import { dryRunSummary, type RunSummary, summarize } from './summary.js';

function resumeCommand(ctx: Context, runId: string): string {
  const g = ctx.globals;
  const flags = [
    g.store ? `--store ${g.store}` : '',
    g.stateDir ? `--state-dir ${g.stateDir}` : '',
    g.inventory ? `--inventory ${g.inventory}` : '',
  ].filter(Boolean);
  return ['persona recover --resume', runId, ...flags].join(' ');
}

export const driver = (ctx: Context): Driver => ({
  who: ctx.author,
  pid: process.pid,
  host: hostname(),
  at: ctx.now(),
});

/** The run's journals; with the run's lock, their mirror writes carry its fence. */
export async function journals(ctx: Context, lock?: LockHandle): Promise<JournalStore> {
  const store = await ctx.store();
  const held = lock ? () => lock.assertHeld() : undefined;
  const mirror = !store.backend.shared
    ? undefined
    : lock
      ? fencedBackend(store.backend, lock)
      : store.backend;
  return new JournalStore(ctx.stateDir, mirror, ctx.redactor, held);
}

export interface World {
  profile: Profile;
  inventory: Inventory;
  failed: InventoryHost;
  target: InventoryHost;
  store: ProfileStore;
  ssh: RunPieces['ssh'];
  lock: LockHandle | undefined;
}

export function pieces(ctx: Context, journal: Journal, w: World): RunPieces {
  return {
    journal,
    profile: w.profile,
    inventory: w.inventory,
    failed: w.failed,
    target: w.target,
    ssh: w.ssh,
    // Every store write of the run (the record step's) carries the lock's fence.
    backend: w.lock ? fencedBackend(w.store.backend, w.lock) : w.store.backend,
    reporter: ctx.reporter,
    redactor: ctx.redactor,
    stateDir: ctx.stateDir,
    env: ctx.env,
    allowedSources: ctx.settings.values.allowed_sources.value.split(','),
    observationRetentionDays: ctx.settings.values.observation_retention.value,
    now: () => ctx.now(),
  };
}

export interface EngineRun {
  dryRun?: boolean;
  stepByStep?: boolean;
  serial?: boolean;
  /** The question that confirms the run; the engine asks it before anything is written. */
  confirm?: string;
}

/** Runs (or, in a dry run, simulates) a run's steps through the engine, which alone decides what may change. */
export async function runEngine(
  ctx: Context,
  run: RunPieces,
  lock: LockHandle | undefined,
  js: JournalStore,
  how: EngineRun,
): Promise<RunSummary> {
  const engine = new Engine(
    run.journal,
    runbookOf(run.journal),
    {
      journals: js,
      reporter: ctx.reporter,
      prompter: ctx.prompter,
      context: (signal, record) =>
        stepContext({ ...run, ...(lock ? { assertHeld: () => lock.assertHeld() } : {}) }, signal, record),
      now: () => ctx.now(),
    },
    {
      interactive: ctx.mode.interactive,
      dryRun: how.dryRun === true,
      stepByStep: how.stepByStep === true,
      serial: how.serial === true,
      ...(how.confirm ? { confirm: how.confirm } : {}),
      resumeCommand: resumeCommand(ctx, run.journal.run_id),
      signal: ctx.signal,
      ...(lock ? { lockLost: lock.lost, assertHeld: () => lock.assertHeld() } : {}),
    },
  );
  try {
    await engine.run();
  } finally {
    await lock?.release();
  }
  if (how.dryRun) return dryRunSummary(run.journal, engine.simulation);
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
  await registerSecrets(profile, {
    env: ctx.env,
    backend: store.backend,
    redactor: ctx.redactor,
    allowed: ctx.settings.values.allowed_sources.value.split(','),
  });
  const runId = newRunId(app, ctx.now());
  const lock = req.dryRun ? undefined : await takeLock(ctx, app, runId, `recover ${app} from ${failed.name}`);
  try {
    const ssh = await ctx.ssh();
    // The failed host is asked now, beside the probe of the candidates: a dead host's connect timeout then runs
    // while they answer, and the fence waits for this answer instead of asking again (reach.ts).
    const lookedAt = performance.now();
    const failedReach = askReach(ssh, failed, ctx.signal);
    failedReach.catch(() => {});
    const skip = (h: InventoryHost) => h.name === failed.name || req.exclude.includes(h.name);
    const requirements = requirementsOf(profile);
    // Fresh cached facts where there are some (the target is probed again before acting), a probe for the rest.
    const probed = await gatherFacts(
      ctx,
      inventory.hosts.filter((h) => !skip(h)),
      requirements,
      req.maxFactAge ?? maxFactAge(ctx, undefined),
    );
    const skipped = inventory.hosts.filter(skip).map(notProbed);
    const found = await targetFor(ctx, {
      req,
      app,
      profile,
      failed,
      inventory,
      ssh,
      lock,
      runId,
      probed: [...probed, ...skipped],
      backend: store.backend,
    });
    if ('dryRun' in found) return wouldProvision(runId, app, failed.name, stored.version);
    const { chosen, ranking, provisioned } = found;
    const world: World = {
      profile,
      inventory,
      failed,
      target: findHost(inventory, chosen),
      store,
      ssh,
      lock,
    };
    const planned = planRecovery({
      runId,
      app,
      profile,
      stored,
      inventory,
      store: store.describe,
      failedHost: failed.name,
      targetHost: chosen,
      ranking,
      ...(provisioned ? { provisioned } : {}),
      request: req,
      driver: driver(ctx),
      describeContext: (journal, record) => stepContext(pieces(ctx, journal, world), ctx.signal, record),
    });
    rememberReach(planned.journal, failed, failedReach, lookedAt);
    const run = pieces(ctx, planned.journal, world);
    ctx.reporter.event('plan', planned.plan);
    if (req.dryRun) return await runEngine(ctx, run, undefined, await journals(ctx), { dryRun: true });
    if (req.forceNoFence) await confirmOrDecline(ctx.prompter, forceNoFenceQuestion(failed.name, chosen));
    if (req.stepByStep) ctx.reporter.info('--step: each step is confirmed before it runs');
    const js = await journals(ctx, lock);
    ctx.reporter.event('run', { run_id: runId, journal: `${js.dir}/runs/${runId}.json` });
    return await runEngine(ctx, run, lock, js, {
      stepByStep: req.stepByStep,
      serial: req.serial === true,
      confirm: planned.confirm,
    });
  } catch (error) {
    await lock?.release();
    throw error;
  }
}

interface TargetInput {
  req: RecoverRequest;
  app: string;
  profile: Profile;
  failed: InventoryHost;
  inventory: Inventory;
  ssh: RunPieces['ssh'];
  lock: LockHandle | undefined;
  runId: string;
  probed: ProbeResult[];
  /** The profile store's backend, for store: secret references. */
  backend: KvBackend;
}

/**
 * Ranks the probed hosts and finds the target. When none can take the application, a provision command (if there
 * is one) creates a host, which is probed and ranked like the others and must pass the same requirements; in a dry
 * run it only says it would.
 */
async function targetFor(
  ctx: Context,
  t: TargetInput,
): Promise<{ dryRun: true } | { chosen: string; ranking: RankedHost[]; provisioned?: Provisioned }> {
  const { req, app, failed, lock } = t;
  const requirements = requirementsOf(t.profile);
  const past = await readRankHistory(t.backend, app, ctx.now());
  if (past.note) ctx.reporter.warn(past.note);
  const rank = (results: readonly ProbeResult[]) =>
    rankHosts(requirements, results, {
      strategy: req.strategy,
      failedHost: failed.name,
      exclude: req.exclude,
      history: past.history,
    });
  const show = (hosts: RankedHost[]) => ctx.reporter.event('ranking', { app, hosts, requirements });
  // Before a host is created (or the run refused) because none fits, the hosts ranked from the cache are asked again.
  const probed = await probeDecisive(ctx, t.probed, requirements, rank, req.target);
  const ranking = rank(probed);
  const command = provisionCommand(t.profile, ctx.settings.values);
  show(ranking);
  const need = provisionNeed(ranking, req, command);
  if (need === 'no' || !command) {
    const decided = await chooseFreshTarget(
      ctx,
      probed,
      requirements,
      { rank, show, choose: (r) => pickTarget(ctx, r, req, app) },
      ranking,
    );
    return { chosen: decided.chosen, ranking: decided.ranking };
  }
  const vars = provisionEnv(requirements, { failedHost: failed.name, runId: t.runId });
  if (need === 'would-provision') {
    ctx.reporter.event('provision', {
      app,
      status: 'would-run',
      command: command.argv,
      env: vars,
      timeout_ms: command.timeoutMs,
    });
    return { dryRun: true };
  }
  const made = await provisionHost(
    {
      reporter: ctx.reporter,
      prompter: ctx.prompter,
      ssh: t.ssh,
      env: ctx.env,
      cwd: ctx.cwd,
      signal: lock ? AbortSignal.any([ctx.signal, lock.lost]) : ctx.signal,
      ...(lock ? { assertHeld: () => lock.assertHeld() } : {}),
      // Only the profile's own command has secrets (`provision.env`); the setting's command gets none.
      ...(t.profile.provision ? { secretEnv: () => provisionSecrets(ctx, t) } : {}),
      now: () => ctx.now(),
    },
    {
      app,
      command,
      vars,
      inventory: t.inventory,
      probe: { dataPath: requirements.dataPath, packages: requirements.packages },
    },
  );
  // In the inventory for the rest of this run: this application's steps, and the failed host's other applications.
  t.inventory.hosts.push(made.host);
  const reranked = rank([...probed, made.probe]);
  ctx.reporter.event('ranking', { app, hosts: reranked, requirements });
  const chosen = provisionedTarget(reranked, made.host.name, app);
  ctx.reporter.event('select', {
    question: `target for ${app}`,
    answer: chosen,
    by: 'provisioned for this run',
  });
  return { chosen, ranking: reranked, provisioned: made.record };
}

/** The profile's `provision.env`: each variable from its secret reference, without a final newline. */
async function provisionSecrets(ctx: Context, t: TargetInput): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const [name, ref] of Object.entries(t.profile.provision?.env ?? {}))
    env[name] = (
      await resolveSecret(ref, `provision env ${name}`, {
        env: ctx.env,
        backend: t.backend,
        redactor: ctx.redactor,
        allowed: ctx.settings.values.allowed_sources.value.split(','),
      })
    ).replace(/\r?\n$/, '');
  return env;
}

/** The target from the ranking: decided (by --target, or the top when nobody is asked), or the human's pick. */
export async function pickTarget(
  ctx: Context,
  ranking: readonly RankedHost[],
  req: Pick<RecoverRequest, 'target'>,
  app: string,
  verb = 'Recover',
): Promise<string> {
  const choice = chooseTarget(ranking, req, app, ctx.mode.interactive && !ctx.mode.yes);
  if ('decided' in choice) {
    if (choice.by === 'top of the ranking')
      ctx.reporter.event('select', {
        question: `target for ${app}`,
        answer: choice.decided.host,
        by: choice.by,
      });
    return choice.decided.host;
  }
  const picked = await ctx.prompter.select(
    `${verb} ${app} onto which host?`,
    choice.ask.map((r) => ({
      name: r.verdict === 'eligible' ? `${r.rank}. ${r.host}  score ${r.score!.total}` : `   ${r.host}`,
      value: r,
      ...(r.verdict === 'eligible' ? {} : { disabled: r.reasons.map((x) => x.message).join('; ') }),
    })),
    { default: choice.default },
  );
  return picked.host;
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
  if (before.kind === 'rollout') {
    // Its own resume: a rollout has no failed host or target, but groups and a candidate (rollout/run.ts).
    const { resumeRollout } = await import('../rollout/run.js');
    return await resumeRollout(ctx, runId, req.dryRun);
  }
  const [inventory, store] = await Promise.all([ctx.inventory(), ctx.store()]);
  // A dry run changes nothing, the lock included.
  const lock = req.dryRun ? undefined : await takeLock(ctx, before.app, runId, `resume ${runId}`, true);
  try {
    // Read again under the lock: the previous driver may have saved since; our saves must follow that copy.
    const js = await journals(ctx, lock);
    const loaded = await js.load(runId);
    const { stored, profile } = await store.load(loaded.app);
    await registerSecrets(profile, {
      env: ctx.env,
      backend: store.backend,
      redactor: ctx.redactor,
      allowed: ctx.settings.values.allowed_sources.value.split(','),
    });
    const plan = planResume(loaded, { inventory, stored, request: req, driver: driver(ctx) });
    const { journal, failed, target } = plan;
    if (journal.provisioned)
      ctx.reporter.info(
        `run ${runId} provisioned ${journal.provisioned.entry.name} (${journal.provisioned.entry.address}) at ${journal.provisioned.at}`,
      );
    if (plan.profileChanged) {
      const { from, to } = plan.profileChanged;
      ctx.reporter.warn(`profile ${journal.app} changed since run ${runId} started: version ${from} → ${to}`);
      const { unifiedDiff } = await import('../ui/diff.js');
      const then = await store.version(journal.app, from);
      if (then)
        ctx.reporter.info(
          unifiedDiff(`version ${from} (the run's)`, `version ${to} (now)`, then.text, stored.text),
        );
      if (!req.dryRun)
        await confirmOrDecline(ctx.prompter, `Continue run ${runId} with profile version ${to}?`);
    }
    if (plan.dataFromChanged)
      ctx.reporter.warn(
        `--data-from ${plan.dataFromChanged}: migrate's data source changes for the rest of run ${runId}`,
      );
    ctx.reporter.info(plan.describe);
    const ssh = await ctx.ssh();
    const run = pieces(ctx, journal, {
      profile,
      inventory: plan.inventory,
      failed,
      target,
      store,
      ssh,
      lock,
    });
    if (req.dryRun) return await runEngine(ctx, run, undefined, js, { dryRun: true });
    if (plan.confirmForceNoFence) {
      await confirmOrDecline(ctx.prompter, forceNoFenceQuestion(failed.name, target.name));
      journal.options.force_no_fence = true;
    }
    if (req.stepByStep) ctx.reporter.info('--step: each step is confirmed before it runs');
    return await runEngine(ctx, run, lock, js, {
      stepByStep: req.stepByStep,
      serial: req.serial === true,
      confirm: plan.confirm,
    });
  } catch (error) {
    await lock?.release();
    throw error;
  }
}
