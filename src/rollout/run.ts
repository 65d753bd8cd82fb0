/**
 * `persona profile rollout APP --candidate FILE`: a candidate profile tried on some of an application's instances
 * (the canary) while the others (the control) stay on the current version, compared over a window, then promoted
 * (written as the next version and rolled to the rest in batches) or reverted (the current version re-applied on the
 * canary), automatically. A run like a recovery: under the application's lock, journalled (kind "rollout"), confirmed,
 * resumable with `persona runs resume RUN`. The steps are in steps/rollout.ts; the verdict in rollout/compare.ts.
 */
import type { Context } from '../context.js';
import { PersonaError } from '../errors.js';
import { findHost } from '../hosts/inventory.js';
import type { Profile } from '../profile/schema.js';
import { parseProfileText } from '../profile/validate.js';
import { takeLock } from '../recover/lock.js';
import { freshStepRecords, hostRef } from '../recover/plan.js';
import { driver, journals, pieces, runEngine } from '../recover/runner.js';
import type { RunSummary } from '../recover/summary.js';
import { newRunId } from '../runbook/journal.js';
import type { RolloutFacts } from '../runbook/journal-schema.js';
import { registerSecrets } from '../runbook/secrets.js';
import { stepContext } from '../runbook/step-context.js';
import type { Journal } from '../runbook/types.js';
import { rolloutRunbook } from '../steps/rollout.js';
import type { ProfileStore } from '../stores/profile-store.js';
import { sha256 } from '../util/hash.js';
import { instancesOf } from './instances.js';

export interface RolloutRequest {
  app: string;
  /** The candidate's file name (for messages) and text. */
  candidate: { file: string; text: string };
  canary: number;
  windowS: number;
  batch: number;
  healthWaitS: number;
  maxCpuIncreasePct?: number;
  maxMemoryIncreasePct?: number;
  dryRun: boolean;
  commandLine: string[];
}

async function secretsOf(ctx: Context, store: ProfileStore, profiles: readonly Profile[]): Promise<void> {
  for (const profile of profiles)
    await registerSecrets(profile, {
      env: ctx.env,
      backend: store.backend,
      redactor: ctx.redactor,
      allowed: ctx.settings.values.allowed_sources.value.split(','),
    });
}

/** The canary and control groups: the first N instances, and the rest (at least one each). */
export function splitGroups(app: string, instances: readonly string[], canary: number) {
  if (instances.length < 2)
    throw new PersonaError(
      'E_USAGE',
      `${app} runs on ${instances.length === 0 ? 'no host' : `one host only (${instances[0]})`}: a rollout needs a canary and a control group`,
      {
        hint: 'List its hosts in the inventory (each host\'s "apps"), or in the store\'s assignment record as "hosts": [...] (README, Profile rollout).',
      },
    );
  if (canary < 1 || canary >= instances.length)
    throw new PersonaError(
      'E_USAGE',
      `--canary ${canary}: ${app} runs on ${instances.length} hosts (${instances.join(', ')}); the canary must be 1 to ${instances.length - 1}`,
    );
  return { canary: instances.slice(0, canary), control: instances.slice(canary) };
}

export async function rolloutApp(ctx: Context, req: RolloutRequest): Promise<RunSummary> {
  const { app } = req;
  const candidate = parseProfileText(req.candidate.file, req.candidate.text, app).profile;
  const [inventory, store] = await Promise.all([ctx.inventory(), ctx.store()]);
  const { stored, profile } = await store.load(app);
  if (stored.text === req.candidate.text || sha256(stored.text) === sha256(req.candidate.text))
    throw new PersonaError(
      'E_USAGE',
      `${req.candidate.file} is ${app}'s current version (${stored.version}): nothing to roll out`,
    );
  await secretsOf(ctx, store, [profile, candidate]);
  const groups = splitGroups(app, await instancesOf(app, inventory, store.backend), req.canary);
  for (const h of [...groups.canary, ...groups.control]) findHost(inventory, h);
  const runId = newRunId(app, ctx.now());
  const lock = req.dryRun ? undefined : await takeLock(ctx, app, runId, `rollout of a candidate for ${app}`);
  try {
    const first = findHost(inventory, groups.canary[0]!);
    const rollout: RolloutFacts = {
      candidate_text: req.candidate.text,
      candidate_sha256: sha256(req.candidate.text),
      from_version: stored.version,
      ...groups,
      window_s: req.windowS,
      batch: req.batch,
      health_wait_s: req.healthWaitS,
      ...(req.maxCpuIncreasePct !== undefined ? { max_cpu_increase_pct: req.maxCpuIncreasePct } : {}),
      ...(req.maxMemoryIncreasePct !== undefined
        ? { max_memory_increase_pct: req.maxMemoryIncreasePct }
        : {}),
    };
    const d = driver(ctx);
    const at = d.at.toISOString();
    const journal: Journal = {
      format: 'persona-run',
      version: 1,
      run_id: runId,
      app,
      kind: 'rollout',
      status: 'planned',
      created_at: at,
      updated_at: at,
      who: d.who,
      command_line: req.commandLine,
      driver: { pid: d.pid, host: d.host },
      store: store.describe,
      inventory: inventory.source,
      profile: { id: app, version: stored.version, sha256: sha256(stored.text) },
      failed_host: hostRef(first),
      target_host: hostRef(first),
      options: { force_no_fence: false, strategy: 'rollout' },
      ranking: [],
      rollout,
      steps: freshStepRecords(rolloutRunbook),
    };
    const ssh = await ctx.ssh();
    const world = { profile, inventory, failed: first, target: first, store, ssh, lock };
    const run = pieces(ctx, journal, world);
    ctx.reporter.event('plan', {
      run_id: runId,
      app,
      title: `Plan: roll out a candidate for ${app} (replacing version ${stored.version}): canary ${groups.canary.join(', ')}, control ${groups.control.join(', ')}`,
      failed_host: first.name,
      target_host: first.name,
      profile_version: stored.version,
      steps: rolloutRunbook.map((step, i) => ({
        kind: step.kind,
        mutates: step.mutates,
        lines: step.describe(stepContext(run, ctx.signal, journal.steps[i]!)),
      })),
      hooks: [],
      secrets: [],
    });
    if (req.dryRun) return await runEngine(ctx, run, undefined, await journals(ctx), { dryRun: true });
    const js = await journals(ctx, lock);
    ctx.reporter.event('run', { run_id: runId, journal: `${js.dir}/runs/${runId}.json` });
    return await runEngine(ctx, run, lock, js, {
      confirm: `Roll out the candidate for ${app} (${req.candidate.file}) on ${groups.canary.join(', ')}, compare with ${groups.control.join(', ')} over ${req.windowS} s, then promote or revert automatically: run these ${rolloutRunbook.length} steps?`,
    });
  } catch (error) {
    await lock?.release();
    throw error;
  }
}

/**
 * Goes on with a rollout from its journal, under the lock: the old version as the run saw it (its history entry if the
 * rollout already promoted), the candidate from the journal.
 */
export async function resumeRollout(ctx: Context, runId: string, dryRun = false): Promise<RunSummary> {
  const [inventory, store] = await Promise.all([ctx.inventory(), ctx.store()]);
  const before = await (await journals(ctx)).load(runId);
  const lock = dryRun ? undefined : await takeLock(ctx, before.app, runId, `resume ${runId}`, true);
  try {
    const js = await journals(ctx, lock);
    const journal = structuredClone(await js.load(runId));
    const r = journal.rollout;
    if (!r) throw new PersonaError('E_STATE', `run ${runId} is a rollout without its rollout facts`);
    const current = await store.require(journal.app);
    const text =
      current.version === r.from_version
        ? current.text
        : (await store.version(journal.app, r.from_version))?.text;
    if (text === undefined)
      throw new PersonaError(
        'E_STATE',
        `version ${r.from_version} of ${journal.app} is no longer in ${store.describe}`,
      );
    const profile = parseProfileText(`${journal.app} version ${r.from_version}`, text, journal.app).profile;
    const candidate = parseProfileText(`run ${runId}'s candidate`, r.candidate_text, journal.app).profile;
    await secretsOf(ctx, store, [profile, candidate]);
    const previous = journal.driver;
    const d = driver(ctx);
    journal.driver = { pid: d.pid, host: d.host };
    const pending = journal.steps
      .filter((s) => s.status !== 'succeeded' && s.status !== 'skipped')
      .map((s) => s.kind);
    ctx.reporter.info(
      `resuming rollout ${runId} (${journal.app}: canary ${r.canary.join(', ')}, control ${r.control.join(', ')}), last driven by pid ${previous.pid} on ${previous.host}; to do: ${pending.join(', ')}`,
    );
    const first = findHost(inventory, r.canary[0]!);
    const ssh = await ctx.ssh();
    const run = pieces(ctx, journal, { profile, inventory, failed: first, target: first, store, ssh, lock });
    if (dryRun) return await runEngine(ctx, run, undefined, js, { dryRun: true });
    return await runEngine(ctx, run, lock, js, {
      confirm: `Resume rollout ${runId} of ${journal.app}, running ${pending.join(', ')}?`,
    });
  } catch (error) {
    await lock?.release();
    throw error;
  }
}
