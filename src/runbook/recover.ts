/**
 * `persona recover <host>`: which applications ran there; for each, its profile (version pinned), its lock, the
 * ranked candidates, a target, the plan, a confirmation, the runbook, the record. And resuming a run from its
 * journal, on this machine or (with a shared store) another one.
 */
import { hostname } from 'node:os';
import { type RankedHost, rankHosts, requirementsOf, type Strategy } from '../broker/broker.js';
import { probeWithProgress } from '../cli/probe-ui.js';
import { renderRanking } from '../cli/ranking-table.js';
import type { Context } from '../context.js';
import { PersonaError } from '../errors.js';
import { findHost, type Inventory, type InventoryHost } from '../hosts/inventory.js';
import { notProbed } from '../hosts/probe.js';
import type { Profile } from '../profile/schema.js';
import { runbook } from '../steps/index.js';
import { assignmentKey } from '../steps/record.js';
import type { LockHandle } from '../stores/kv.js';
import { describeHolder } from '../stores/kv-lock.js';
import type { ProfileStore } from '../stores/profile-store.js';
import { sha256 } from '../util/hash.js';
import { Engine } from './engine.js';
import { JournalStore, newRunId } from './journal.js';
import type { DataFrom } from './journal-schema.js';
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

/** How long an application's lock outlives a crashed holder; PERSONA_LOCK_TTL (seconds) changes it. */
function lockTtlMs(env: NodeJS.ProcessEnv): number {
  const seconds = Number(env.PERSONA_LOCK_TTL ?? 30);
  return Number.isFinite(seconds) && seconds >= 1 ? seconds * 1000 : 30_000;
}

export const lockName = (app: string) => `app-${app}`;

/** Which applications run on a host: the store's record first (it moves with every recovery), else the inventory. */
export async function appsOn(
  host: InventoryHost,
  inventory: Inventory,
  store: ProfileStore,
): Promise<string[]> {
  const assigned = new Map<string, string>();
  for (const h of inventory.hosts) for (const app of h.apps) assigned.set(app, h.name);
  for (const entry of await store.backend.list('assignments/')) {
    try {
      const a = JSON.parse(entry.value) as { app: string; host: string };
      assigned.set(a.app, a.host);
    } catch {
      // An unreadable record is ignored here; `record` refuses to overwrite it blindly.
    }
  }
  return [...assigned.entries()]
    .filter(([, h]) => h === host.name)
    .map(([app]) => app)
    .sort();
}

function resumeCommand(ctx: Context, runId: string): string {
  const g = ctx.globals;
  const flags = [
    g.store ? `--store ${g.store}` : '',
    g.stateDir ? `--state-dir ${g.stateDir}` : '',
    g.inventory ? `--inventory ${g.inventory}` : '',
  ].filter(Boolean);
  return ['persona recover --resume', runId, ...flags].join(' ');
}

async function journals(ctx: Context): Promise<JournalStore> {
  const store = await ctx.store();
  return new JournalStore(ctx.stateDir, store.backend.shared ? store.backend : undefined);
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
  const ttlMs = lockTtlMs(ctx.env);
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

function freshRecords(): StepRecord[] {
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
): RunPieces {
  return {
    journal,
    profile,
    inventory,
    failed,
    target,
    ssh,
    backend: store.backend,
    reporter: ctx.reporter,
    redactor: ctx.redactor,
    stateDir: ctx.stateDir,
    env: ctx.env,
    now: () => ctx.now(),
  };
}

async function runEngine(
  ctx: Context,
  run: RunPieces,
  lock: LockHandle,
  stepByStep = false,
): Promise<RunSummary> {
  const js = await journals(ctx);
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
      stepByStep,
      resumeCommand: resumeCommand(ctx, run.journal.run_id),
      signal: ctx.signal,
      lockLost: lock.lost,
    },
  );
  try {
    await engine.run();
  } finally {
    await lock.release();
  }
  return summarize(run.journal, `${js.dir}/runs/${run.journal.run_id}.json`);
}

export async function recoverHost(ctx: Context, req: RecoverRequest): Promise<RunSummary[]> {
  const [inventory, store] = await Promise.all([ctx.inventory(), ctx.store()]);
  const failed = findHost(inventory, req.failedHost);
  const running = await appsOn(failed, inventory, store);
  const apps = req.apps.length > 0 ? req.apps : running;
  for (const app of req.apps) {
    if (!running.includes(app)) {
      throw new PersonaError(
        'E_NOT_FOUND',
        `${app} is not recorded on ${failed.name} (it runs: ${running.join(', ') || 'nothing'})`,
        {
          hint: `Check with \`persona hosts probe ${failed.name}\`; the record lives in ${store.describe} (${assignmentKey(app)}) and the inventory.`,
        },
      );
    }
  }
  if (apps.length === 0) {
    throw new PersonaError(
      'E_NOT_FOUND',
      `no application is recorded on ${failed.name} (inventory ${inventory.source}, store ${store.describe})`,
    );
  }
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
    ctx.reporter.event('ranking', { app, hosts: ranking });
    if (!ctx.mode.json) renderRanking(ctx.out, ranking, requirements);
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
      ranking: ranking.map((r) => ({
        host: r.host,
        verdict: r.verdict,
        ...(r.rank ? { rank: r.rank } : {}),
        ...(r.score ? { score: r.score.total } : {}),
        reasons: r.reasons.map((x) => x.message),
      })),
      steps: freshRecords(),
    };
    const run = pieces(ctx, journal, profile, inventory, failed, target, store, ssh);
    const plan = runbook.map((step, i) => ({
      kind: step.kind,
      mutates: step.mutates,
      lines: step.describe(stepContext(run, ctx.signal, journal.steps[i]!)),
    }));
    ctx.reporter.event('plan', {
      run_id: runId,
      app,
      failed_host: failed.name,
      target_host: target.name,
      profile_version: stored.version,
      steps: plan,
    });
    if (!ctx.mode.json) printPlan(ctx, app, failed, target, stored.version, plan);
    if (req.dryRun) return await dryRun(ctx, run);
    if (req.forceNoFence) {
      await confirmOrRefuse(
        ctx,
        `--force-no-fence: traffic will move to ${target.name} even if ${failed.name} was not fenced and may still serve. Continue?`,
      );
    }
    await confirmOrRefuse(
      ctx,
      `Recover ${app} from ${failed.name} onto ${target.name}: run these ${plan.length} steps?`,
    );
    if (req.stepByStep) ctx.reporter.info('--step: each step is confirmed before it runs');
    const js = await journals(ctx);
    await js.save(journal);
    ctx.reporter.event('run', { run_id: runId, journal: `${js.dir}/runs/${runId}.json` });
    return await runEngine(ctx, run, lock!, req.stepByStep);
  } catch (error) {
    await lock?.release();
    throw error;
  }
}

async function confirmOrRefuse(ctx: Context, question: string): Promise<void> {
  const yes = await ctx.prompter.confirm(question, { default: false, flag: '--yes' });
  if (!yes) throw new PersonaError('E_DECLINED', 'not confirmed: nothing was changed');
}

function printPlan(
  ctx: Context,
  app: string,
  failed: InventoryHost,
  target: InventoryHost,
  version: number,
  plan: Array<{ kind: string; mutates: boolean; lines: string[] }>,
): void {
  const { out } = ctx;
  out.line(
    out.c.bold(`Plan: recover ${app} (profile version ${version}) from ${failed.name} onto ${target.name}`),
  );
  plan.forEach((step, i) => {
    out.line(`  ${i + 1}. ${out.c.bold(step.kind)}${step.mutates ? '' : out.c.dim(' (read-only)')}`);
    for (const line of step.lines) out.line(`     ${line}`);
  });
}

async function dryRun(ctx: Context, run: RunPieces): Promise<RunSummary> {
  const steps: RunSummary['steps'] = [];
  for (const [i, step] of runbook.entries()) {
    let lines: string[];
    try {
      lines = await step.simulate(stepContext(run, ctx.signal, run.journal.steps[i]!));
    } catch (error) {
      lines = [`cannot simulate: ${(error as Error).message}`];
    }
    steps.push({
      kind: step.kind,
      status: lines.some((l) => l.startsWith('cannot simulate')) ? 'not simulated' : 'simulated',
      lines,
    });
    ctx.reporter.event('simulate', { run_id: run.journal.run_id, step: step.kind, lines });
  }
  if (!ctx.mode.json) {
    ctx.out.line(ctx.out.c.bold('Dry run: nothing was changed. What each step would do:'));
    for (const s of steps) {
      ctx.out.line(`  ${s.kind}:`);
      for (const l of s.lines ?? []) ctx.out.line(`     ${l}`);
    }
  }
  return {
    run_id: run.journal.run_id,
    app: run.journal.app,
    status: 'dry-run',
    failed_host: run.failed.name,
    target_host: run.target.name,
    profile_version: run.journal.profile.version,
    steps,
  };
}

/** Goes on with a run from its journal. */
export interface ResumeOptions {
  /** Overrides the run's data source from here on (recorded in the journal). */
  dataFrom?: DataFrom;
}

export async function resumeRun(ctx: Context, runId: string, opts: ResumeOptions = {}): Promise<RunSummary> {
  const js = await journals(ctx);
  const journal = await js.load(runId);
  if (journal.status === 'succeeded') {
    ctx.reporter.info(`run ${runId} already succeeded; nothing to do`);
    return summarize(journal);
  }
  const [inventory, store] = await Promise.all([ctx.inventory(), ctx.store()]);
  const lock = await takeLock(ctx, journal.app, runId, `resume ${runId}`, true);
  try {
    const { stored, profile } = await store.load(journal.app);
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
      await confirmOrRefuse(ctx, `Continue run ${runId} with profile version ${stored.version}?`);
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
    if (opts.dataFrom && opts.dataFrom !== (journal.options.data_from ?? 'auto')) {
      ctx.reporter.warn(
        `--data-from ${opts.dataFrom}: migrate's data source changes for the rest of run ${runId}`,
      );
      journal.options.data_from = opts.dataFrom;
    }
    const pending = journal.steps
      .filter((s) => s.status !== 'succeeded' && s.status !== 'skipped')
      .map((s) => s.kind);
    ctx.reporter.info(
      `resuming run ${runId} (${journal.app}: ${failed.name} → ${target.name}), last driven by pid ${previous.pid} on ${previous.host}; to do: ${pending.join(', ')}`,
    );
    const ssh = await ctx.ssh();
    return await runEngine(ctx, pieces(ctx, journal, profile, inventory, failed, target, store, ssh), lock);
  } catch (error) {
    await lock.release();
    throw error;
  }
}

export { summarize };
