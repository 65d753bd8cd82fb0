/**
 * fence: make sure the failed host no longer serves. Out of the load balancer, and, when it still answers, the
 * application stopped there. The evidence goes to the journal; switch refuses to run without it.
 */
import { PersonaError } from '../errors.js';
import { privileged } from '../runbook/remote.js';
import type { Step, StepContext } from '../runbook/types.js';
import { runHooks } from './hooks.js';
import { reachable } from './reach.js';
import { trafficRouter } from './traffic.js';

async function appStopped(ctx: StepContext): Promise<boolean> {
  const { deploy } = ctx.profile;
  if (deploy.status) {
    const r = await ctx.ssh.exec(ctx.failed, privileged(ctx.failed, deploy.status), {
      timeoutMs: 30_000,
      signal: ctx.signal,
    });
    return r.exitCode !== 0;
  }
  return true;
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
  async verify(ctx) {
    const router = trafficRouter(ctx);
    if (router.canFence && !(await router.isFenced(ctx.failed, ctx.signal))) return false;
    const r = await reachable(ctx, ctx.failed);
    return !r.ok || (await appStopped(ctx));
  },
  async run(ctx) {
    const router = trafficRouter(ctx);
    const hooks = await runHooks(ctx, 'pre_fence');
    const traffic = await router.fence(ctx.failed, ctx.signal);
    ctx.log(`${ctx.failed.name} is out of rotation (${router.method})`);
    await ctx.checkpoint('after-traffic');
    const reach = await reachable(ctx, ctx.failed);
    let app: Record<string, unknown>;
    if (reach.ok) {
      const stop = await ctx.ssh.exec(ctx.failed, privileged(ctx.failed, ctx.profile.deploy.stop), {
        timeoutMs: 120_000,
        signal: ctx.signal,
      });
      const stopped = stop.exitCode === 0 && (await appStopped(ctx));
      app = { host_reachable: true, stop_exit_code: stop.exitCode, stopped };
      if (!stopped) {
        throw new PersonaError(
          'E_STEP_FAILED',
          `could not stop ${ctx.profile.id} on ${ctx.failed.name} (stop exited ${stop.exitCode}: ${stop.stderr.trim().slice(-200)})`,
          {
            hint: `Stop it by hand on ${ctx.failed.name}, then resume.`,
          },
        );
      }
      ctx.log(`${ctx.profile.id} stopped on ${ctx.failed.name}`);
    } else {
      app = { host_reachable: false, kind: reach.kind, reason: reach.reason };
      ctx.log(`${ctx.failed.name} does not answer: ${reach.reason}`);
      if (!router.canFence) {
        throw new PersonaError(
          'E_STEP_FAILED',
          `cannot fence ${ctx.failed.name}: it does not answer, and traffic method "${router.method}" cannot take it out of rotation`,
          {
            hint: 'Power it off out of band (IPMI, cloud console), then resume; or pass --force-no-fence to switch anyway.',
          },
        );
      }
    }
    hooks.push(...(await runHooks(ctx, 'post_fence')));
    return { fenced: true, traffic, app, hooks };
  },
};
