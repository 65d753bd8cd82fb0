/**
 * `persona migrate APP --to HOST`: a planned move. Both hosts are healthy: the application's data is copied while
 * it serves, then it is stopped on the source, the final changes copied, started on the target and traffic moved
 * (steps/planned.ts). The same lock, journal, confirmation, fence evidence and resume as a recovery; a prober GETs
 * the route's verify_url through the balancer at 20 Hz from the start of the steps to the end of monitor, and the
 * longest gap between good answers is the move's downtime, in the journal and the summary.
 */
import { rm } from 'node:fs/promises';
import { type RankedHost, rankHosts, requirementsOf, type Strategy } from '../broker/broker.js';
import type { Context } from '../context.js';
import { PersonaError } from '../errors.js';
import { readRankHistory } from '../feedback/host-history.js';
import { findHost } from '../hosts/inventory.js';
import type { ProbeResult } from '../hosts/probe.js';
import { newRunId } from '../runbook/journal.js';
import { registerSecrets } from '../runbook/secrets.js';
import { stepContext } from '../runbook/step-context.js';
import type { ClientView } from '../runbook/types.js';
import { plannedRunbook } from '../steps/index.js';
import { finishedStaging } from '../steps/planned.js';
import { type ProberReport, startProber } from '../traffic/prober.js';
import { whereAppsRun } from './apps.js';
import { chooseFreshTarget, gatherFacts, maxFactAge, probeDecisive } from './decide.js';
import { takeLock } from './lock.js';
import { planRecovery } from './plan.js';
import { driver, journals, pickTarget, pieces, runEngine, type World } from './runner.js';
import type { RunSummary } from './summary.js';

export interface MoveRequest {
  app: string;
  /** The target; absent: the top of the ranking (or the human's pick). */
  to?: string;
  /** Where it runs now; absent: the store's record (else the inventory's apps). */
  from?: string;
  dryRun: boolean;
  stepByStep: boolean;
  serial?: boolean;
  /** false: stop-copy-start (no copy while it serves), to compare. */
  precopy: boolean;
  verify: 'metadata' | 'contents';
  strategy: Strategy;
  exclude: string[];
  commandLine: string[];
  /** Seconds cached host facts may be used for ranking (decide.ts); absent: the max_fact_age setting. */
  maxFactAge?: number;
}

/** The prober's rate: a gap is measured to 50 ms. */
export const PROBE_HZ = 20;

/** A prober that stops once, whoever asks first (monitor, or the runner after a failed run). */
function clientView(url: string): ClientView & { stopped(): Promise<ProberReport> } {
  const prober = startProber(url, { hz: PROBE_HZ, timeoutMs: 1000 });
  let report: Promise<ProberReport> | undefined;
  const stop = () => {
    report ??= prober.stop();
    return report;
  };
  return { stop, stopped: stop };
}

export async function moveApp(ctx: Context, req: MoveRequest): Promise<RunSummary> {
  const [inventory, store] = await Promise.all([ctx.inventory(), ctx.store()]);
  const { app } = req;
  const recorded = (await whereAppsRun(inventory, store)).get(app);
  if (req.from && recorded && recorded !== req.from)
    throw new PersonaError(
      'E_USAGE',
      `${app} runs on ${recorded} (${store.describe}), not on --from ${req.from}`,
      {
        hint: `Leave out --from, or correct the record: it moves with every recovery and move.`,
      },
    );
  const sourceName = req.from ?? recorded;
  if (!sourceName) throw new PersonaError('E_USAGE', `nothing records where ${app} runs: give --from HOST`);
  const source = findHost(inventory, sourceName);
  if (req.to && req.to === source.name)
    throw new PersonaError('E_USAGE', `${app} already runs on ${source.name}`);
  const { stored, profile } = await store.load(app);
  await registerSecrets(profile, {
    env: ctx.env,
    backend: store.backend,
    redactor: ctx.redactor,
    allowed: ctx.settings.values.allowed_sources.value.split(','),
  });
  if (profile.data.migration === 'postgresql' && !profile.data.postgresql?.replication)
    throw new PersonaError(
      'E_USAGE',
      `persona migrate moves ${app}'s PostgreSQL as a streaming replica: its profile needs data.postgresql.replication (the role and its password's secret reference)`,
      { hint: 'Add it (see the README, PostgreSQL: the planned move); nothing was changed.' },
    );
  const runId = newRunId(app, ctx.now());
  const lock = req.dryRun ? undefined : await takeLock(ctx, app, runId, `migrate ${app} from ${source.name}`);
  let view: ReturnType<typeof clientView> | undefined;
  try {
    const ssh = await ctx.ssh();
    const candidates = inventory.hosts.filter(
      (h) => h.name !== source.name && !req.exclude.includes(h.name) && (!req.to || h.name === req.to),
    );
    if (req.to && candidates.length === 0)
      throw new PersonaError(
        'E_USAGE',
        `--to ${req.to} is not a host of the inventory (${inventory.source})`,
      );
    const requirements = requirementsOf(profile);
    const gathered = await gatherFacts(
      ctx,
      candidates,
      requirements,
      req.maxFactAge ?? maxFactAge(ctx, undefined),
    );
    const past = await readRankHistory(store.backend, app, ctx.now());
    if (past.note) ctx.reporter.warn(past.note);
    const rank = (results: readonly ProbeResult[]) =>
      rankHosts(requirements, results, {
        strategy: req.strategy,
        failedHost: source.name,
        exclude: req.exclude,
        history: past.history,
      });
    const show = (hosts: RankedHost[]) => ctx.reporter.event('ranking', { app, hosts, requirements });
    const probed = await probeDecisive(ctx, gathered, requirements, rank, req.to);
    const first = rank(probed);
    show(first);
    // A target chosen from cached facts is probed again before the move: it must still fit.
    const { chosen, ranking } = await chooseFreshTarget(
      ctx,
      probed,
      requirements,
      { rank, show, choose: (r) => pickTarget(ctx, r, req.to ? { target: req.to } : {}, app, 'Move') },
      first,
    );
    const world: World = {
      profile,
      inventory,
      failed: source,
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
      failedHost: source.name,
      targetHost: chosen,
      ranking,
      request: {
        forceNoFence: false,
        strategy: req.strategy,
        dataFrom: 'failed-host',
        commandLine: req.commandLine,
      },
      driver: driver(ctx),
      steps: plannedRunbook,
      planned: { precopy: req.precopy, verify: req.verify },
      describeContext: (journal, record) => stepContext(pieces(ctx, journal, world), ctx.signal, record),
    });
    ctx.reporter.event('plan', planned.plan);
    if (req.dryRun)
      return await runEngine(ctx, pieces(ctx, planned.journal, world), undefined, await journals(ctx), {
        dryRun: true,
      });
    if (req.stepByStep) ctx.reporter.info('--step: each step is confirmed before it runs');
    const url = (profile.traffic as { verify_url?: string }).verify_url;
    if (url) view = clientView(url);
    else ctx.reporter.warn(`${app}'s traffic has no verify_url: the move's downtime is not measured`);
    const js = await journals(ctx, lock);
    ctx.reporter.event('run', { run_id: runId, journal: `${js.dir}/runs/${runId}.json` });
    return await runEngine(
      ctx,
      { ...pieces(ctx, planned.journal, world), ...(view ? { clientView: view } : {}) },
      lock,
      js,
      { stepByStep: req.stepByStep, serial: req.serial === true, confirm: planned.confirm },
    );
  } catch (error) {
    await lock?.release();
    throw error;
  } finally {
    await view?.stopped();
    await rm(finishedStaging(ctx.stateDir, runId), { recursive: true, force: true });
  }
}
