/**
 * persona watch: every assignment in the store, checked in rounds from this machine and a peer host; events when
 * a failure counts (NDJSON file, reporter, --on-failure command, loopback --webhook); with --auto-recover (and
 * --yes, and a profile that opts in) a recovery, single-flight through the application's lock. `--once` runs one
 * window of rounds and exits 6 when a failure counts.
 */
import { resolve } from 'node:path';
import type { Context } from '../../context.js';
import { ExitCode, PersonaError } from '../../errors.js';
import { recoverHost } from '../../recover/runner.js';
import { NonInteractivePrompter } from '../../ui/prompter.js';
import { execaLocal } from '../../util/local-process.js';
import { sleep } from '../../util/sleep.js';
import { lookFromPersona } from '../../watch/look.js';
import { lookFromPeer } from '../../watch/peer.js';
import { ObservationKeeper } from '../../watch/record.js';
import { appendEvent, loopbackWebhook, postWebhook, runOnFailure } from '../../watch/sinks.js';
import type { Observation, WatchEvent } from '../../watch/types.js';
import { defaultPolicy, policyProblems, type VerdictPolicy } from '../../watch/verdict.js';
import { type AppStatus, type RecoverLauncher, Watcher } from '../../watch/watcher.js';
import { checkArgv } from '../settings.js';
import type { CommandRun } from '../spec.js';

/** A CPU/memory sample every this many rounds (and in the first). */
export const SAMPLE_EVERY = 6;

function count(opts: Record<string, unknown>, name: string, fallback: number): number {
  const v = opts[name];
  return typeof v === 'number' ? v : fallback;
}

function policyOf(opts: Record<string, unknown>): VerdictPolicy {
  const policy: VerdictPolicy = {
    ...defaultPolicy,
    failures: count(opts, 'failures', defaultPolicy.failures),
    rounds: count(opts, 'rounds', defaultPolicy.rounds),
    graceMs: count(opts, 'grace', defaultPolicy.graceMs / 1000) * 1000,
    flapBudget: count(opts, 'flapBudget', defaultPolicy.flapBudget),
  };
  const problems = policyProblems(policy);
  if (problems.length > 0)
    throw new PersonaError('E_USAGE', `watch: ${problems.join('; ')}`, {
      hint: 'For example --failures 3 --rounds 5: a failure counts when 3 of the last 5 rounds failed.',
    });
  return policy;
}

function onFailureArgv(text: unknown): string[] | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(checkArgv(String(text))) as string[];
  } catch (error) {
    throw new PersonaError('E_USAGE', `--on-failure ${(error as Error).message}`, {
      hint: `--on-failure '["/usr/local/bin/page-oncall", "--team", "ops"]' (the event's JSON comes on its stdin)`,
    });
  }
}

/** recover HOST --app APP, in this process, answered yes (watch itself was started with --yes). */
function launcher(ctx: Context): RecoverLauncher {
  const mode = { ...ctx.mode, interactive: false, yes: true };
  const sub: Context = { ...ctx, mode, prompter: new NonInteractivePrompter(mode, ctx.reporter) };
  return async ({ app, host }) => {
    const runs = await recoverHost(sub, {
      failedHost: host,
      apps: [app],
      dryRun: false,
      stepByStep: false,
      forceNoFence: false,
      dataFrom: 'auto',
      strategy: 'best-fit',
      exclude: [],
      commandLine: ['persona', 'recover', host, '--app', app, '--yes', '(persona watch --auto-recover)'],
    });
    return runs.map((r) => r.run_id);
  };
}

export const run: CommandRun = async (ctx, { opts }) => {
  const policy = policyOf(opts);
  const once = opts.once === true;
  const intervalMs = count(opts, 'interval', 10) * 1000;
  const webhook = opts.webhook === undefined ? undefined : loopbackWebhook(String(opts.webhook));
  const onFailure = onFailureArgv(opts.onFailure);
  const eventsFile = opts.events === undefined ? undefined : resolve(ctx.cwd, String(opts.events));
  const autoRecover = opts.autoRecover === true;
  if (autoRecover && !ctx.mode.yes)
    throw new PersonaError(
      'E_CONFIRM_REQUIRED',
      '--auto-recover starts recoveries unattended: it needs --yes too',
      {
        hint: 'persona watch --auto-recover --yes (only applications whose profile says "watch": {"auto_recover": true})',
      },
    );
  const [store, inventory, ssh] = await Promise.all([ctx.store(), ctx.inventory(), ctx.ssh()]);
  const signal = ctx.signal;

  const emit = async (raw: WatchEvent) => {
    const e = ctx.redactor.deep(raw);
    ctx.reporter.event('watch', e);
    if (eventsFile) await appendEvent(eventsFile, e);
    if (webhook) {
      const failed = await postWebhook(webhook, e, signal);
      if (failed) ctx.reporter.warn(`webhook ${webhook.origin}: ${failed}`);
    }
    if (onFailure && e.kind === 'failure') {
      const failed = await runOnFailure(execaLocal, onFailure, e, ctx.env, signal);
      if (failed) ctx.reporter.warn(`--on-failure: ${failed}`);
    }
  };
  const observations: Observation[] = [];
  const keeper = new ObservationKeeper();
  const watcher = new Watcher(
    {
      backend: store.backend,
      inventory,
      loadProfile: async (app) => {
        const { stored, profile } = await store.load(app);
        return { profile, version: stored.version };
      },
      looks: {
        persona: (host, profile, withSample) => lookFromPersona({ ssh, host, profile, signal }, withSample),
        peer: (host, profile, peer) => lookFromPeer({ ssh, host, profile, signal }, peer),
      },
      now: () => ctx.now(),
      emit,
      // Into the store for ranking and tuning, at a bounded rate (watch/record.ts); all of them in --once's result.
      onObservation: (o) => {
        keeper.offer(o);
        if (once) observations.push(o);
      },
      ...(autoRecover ? { recover: launcher(ctx) } : {}),
    },
    { apps: (opts.app as string[] | undefined) ?? [], policy, sampleEvery: SAMPLE_EVERY },
  );
  const watched = await watcher.assignments();
  if (watched.length === 0)
    throw new PersonaError(
      'E_NOT_FOUND',
      `no assignment to watch in ${store.describe}${opts.app ? ` for ${(opts.app as string[]).join(', ')}` : ''}`,
      {
        hint: 'Assignments are recorded by persona recover (or recover --app APP on its current host).',
      },
    );
  ctx.reporter.info(
    `watching ${watched.map((a) => `${a.app} on ${a.host}`).join(', ')}: every ${intervalMs / 1000} s, a failure counts at ${policy.failures} of ${policy.rounds} rounds`,
  );
  let statuses: AppStatus[] = [];
  let rounds = 0;
  // --once: the widest window among the watched applications (profiles may set their own rounds).
  const onceRounds = once
    ? await widestWindow(
        watcher,
        watched.map((a) => a.app),
        store,
        policy,
      )
    : 0;
  for (;;) {
    try {
      statuses = await watcher.round();
    } catch (error) {
      // --once says it; a long run says it and tries again next round (a store that blinked, say).
      if (once || signal.aborted) throw error;
      ctx.reporter.warn(
        `round ${rounds + 1}: ${(error as Error).message}; trying again in ${intervalMs / 1000} s`,
      );
    }
    rounds++;
    // --verbose: one line per round (the soak counts them).
    if (ctx.globals.verbose)
      ctx.reporter.info(`round ${rounds}: ${statuses.map((s) => `${s.app} ${s.state}`).join(', ')}`);
    const unkept = await keeper.flush(store.backend);
    if (unkept)
      ctx.reporter.warn(`observations of round ${rounds} not recorded in ${store.describe}: ${unkept}`);
    if (signal.aborted || (once && rounds >= onceRounds)) break;
    await sleep(intervalMs, signal);
    if (signal.aborted) break;
  }
  await watcher.settle();
  const failing = statuses.filter((s) => s.state === 'failing');
  return {
    data: { rounds, apps: statuses, ...(once ? { observations } : {}) },
    exitCode: failing.length > 0 ? ExitCode.unhealthy : ExitCode.ok,
    human: (out) => {
      out.table(
        ['app', 'host', 'state'],
        statuses.map((s) => [s.app, s.host, s.state]),
      );
      out.line(
        failing.length > 0
          ? `failure counts for ${failing.map((s) => s.app).join(', ')} (exit ${ExitCode.unhealthy})`
          : `no failure counts after ${rounds} round${rounds === 1 ? '' : 's'}`,
      );
    },
  };
};

async function widestWindow(
  watcher: Watcher,
  apps: string[],
  store: Awaited<ReturnType<Context['store']>>,
  policy: VerdictPolicy,
): Promise<number> {
  let widest = policy.rounds;
  for (const app of apps) {
    const profile = await store
      .load(app)
      .then((l) => l.profile)
      .catch(() => undefined);
    widest = Math.max(widest, watcher.policyFor(profile).rounds);
  }
  return widest;
}
