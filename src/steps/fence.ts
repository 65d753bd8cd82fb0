/**
 * fence: make sure the failed host no longer serves. Out of the load balancer, and, when it still answers, the
 * application stopped there. The evidence goes to the journal; switch refuses to run without it.
 */
import { PersonaError } from '../errors.js';
import { type FenceEvidence, type FenceFacts, fenceVerdict } from '../runbook/fencing.js';
import { privileged } from '../runbook/remote.js';
import type { Step, StepContext } from '../runbook/types.js';
import { runHooks } from './hooks.js';
import { reachable } from './reach.js';
import { trafficRouter } from './traffic.js';

/** deploy.status's exit code on the failed host; undefined when the profile has none. */
async function statusExitCode(ctx: StepContext): Promise<number | undefined> {
  const { deploy } = ctx.profile;
  if (!deploy.status) return undefined;
  const r = await ctx.ssh.exec(ctx.failed, privileged(ctx.failed, deploy.status), {
    timeoutMs: 30_000,
    signal: ctx.signal,
  });
  return r.exitCode;
}

/** Looks at the host (reachable? application stopped?) and decides, with what this attempt did so far. */
async function assess(
  ctx: StepContext,
  traffic: Pick<FenceFacts, 'method' | 'canTakeOut' | 'takenOut' | 'takenOutBy'>,
  stop: (ctx: StepContext) => Promise<number | undefined>,
): Promise<FenceEvidence> {
  const reach = await reachable(ctx, ctx.failed);
  const facts: FenceFacts = { ...traffic, reachable: reach.ok };
  if (!reach.ok) {
    facts.unreachableReason = reach.reason;
    facts.unreachableKind = reach.kind;
  } else {
    const stopExitCode = await stop(ctx);
    if (stopExitCode !== undefined) facts.stopExitCode = stopExitCode;
    const status = await statusExitCode(ctx);
    if (status !== undefined) facts.statusExitCode = status;
  }
  return { ...facts, ...fenceVerdict(facts), checked_at: ctx.now().toISOString() };
}

export const fenceStep: Step = {
  kind: 'fence',
  title: 'fence the failed host',
  mutates: true,
  describe(ctx) {
    return [
      trafficRouter(ctx).describeFence(ctx.failed),
      `if ${ctx.failed.name} answers over SSH: stop ${ctx.profile.id} there (${ctx.profile.deploy.stop.join(' ')})`,
    ];
  },
  async simulate(ctx) {
    const r = await reachable(ctx, ctx.failed);
    const router = trafficRouter(ctx);
    const fenced = await router
      .isFenced(ctx.failed, ctx.signal)
      .catch((e: Error) => `unknown (${e.message})`);
    return [
      `would run: ${router.describeFence(ctx.failed)} (taken out already: ${fenced})`,
      r.ok
        ? `${ctx.failed.name} answers over SSH: would stop ${ctx.profile.id} there`
        : `${ctx.failed.name} does not answer (${r.reason}): the load balancer is the only fence`,
    ];
  },
  /** The same decision as `run`, from what is there now; nothing is changed. */
  async verify(ctx) {
    const router = trafficRouter(ctx);
    const takenOut = router.canFence ? await router.isFenced(ctx.failed, ctx.signal) : undefined;
    const evidence = await assess(
      ctx,
      {
        method: router.method,
        canTakeOut: router.canFence,
        takenOut,
        takenOutBy: `${router.method} queried`,
      },
      async () => undefined,
    );
    ctx.log(`fence check after the interruption: ${evidence.reason}`);
    return evidence.fenced ? { fenced: true, evidence } : false;
  },
  async run(ctx) {
    const router = trafficRouter(ctx);
    const hooks = await runHooks(ctx, 'pre_fence');
    const traffic = await router.fence(ctx.failed, ctx.signal);
    if (router.canFence) ctx.log(`${ctx.failed.name} is out of rotation (${router.method})`);
    await ctx.checkpoint('after-traffic');
    const evidence = await assess(
      ctx,
      {
        method: router.method,
        canTakeOut: router.canFence,
        takenOut: router.canFence ? true : undefined,
        takenOutBy: `${router.method}: the fence action succeeded`,
      },
      async () => {
        const stop = await ctx.ssh.exec(ctx.failed, privileged(ctx.failed, ctx.profile.deploy.stop), {
          timeoutMs: 120_000,
          signal: ctx.signal,
        });
        if (stop.exitCode !== 0) ctx.log(`stop exited ${stop.exitCode}: ${stop.stderr.trim().slice(-200)}`);
        return stop.exitCode;
      },
    );
    ctx.log(`${evidence.fenced ? 'fenced' : 'NOT fenced'}: ${evidence.reason}`);
    if (!evidence.fenced) {
      throw new PersonaError('E_STEP_FAILED', `cannot fence ${ctx.failed.name}: ${evidence.reason}`, {
        hint: evidence.reachable
          ? `Stop ${ctx.profile.id} by hand on ${ctx.failed.name}, then resume.`
          : 'Power it off out of band (IPMI, cloud console), then resume; or resume with --force-no-fence to switch anyway.',
      });
    }
    hooks.push(...(await runHooks(ctx, 'post_fence')));
    return { fenced: true, traffic, evidence, hooks };
  },
};
