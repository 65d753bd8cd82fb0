/**
 * switch: move traffic to the new host and prove it arrives there. Refuses without a successful fence, unless
 * --force-no-fence was given (and confirmed when the plan was).
 */
import { PersonaError } from '../errors.js';
import type { Step } from '../runbook/types.js';
import { runHooks } from './hooks.js';
import { trafficRouter } from './traffic.js';

export const switchStep: Step = {
  kind: 'switch',
  title: 'switch traffic to the new host',
  mutates: true,
  attempts: 2,
  describe(ctx) {
    return [trafficRouter(ctx).describeSwitch(ctx.target, ctx.failed)];
  },
  async simulate(ctx) {
    const router = trafficRouter(ctx);
    const switched = await router
      .isSwitched(ctx.target, ctx.failed, ctx.signal)
      .catch((e: Error) => `unknown (${e.message})`);
    return [`would run: ${router.describeSwitch(ctx.target, ctx.failed)} (already switched: ${switched})`];
  },
  async verify(ctx) {
    return await trafficRouter(ctx).isSwitched(ctx.target, ctx.failed, ctx.signal);
  },
  async run(ctx) {
    const fence = ctx.previous('fence');
    const forced = ctx.journal.options.force_no_fence;
    if (fence?.status !== 'succeeded') {
      if (!forced) {
        throw new PersonaError(
          'E_STEP_FAILED',
          `refusing to switch traffic: ${ctx.failed.name} was not fenced (fence ${fence?.status ?? 'missing'})`,
          {
            hint: 'Fence it (resume and retry the fence step), or pass --force-no-fence if you are sure it no longer serves.',
          },
        );
      }
      ctx.log(`switching WITHOUT a successful fence of ${ctx.failed.name} (--force-no-fence)`);
    }
    const router = trafficRouter(ctx);
    const hooks = await runHooks(ctx, 'pre_switch');
    const traffic = await router.switchTo(ctx.target, ctx.failed, ctx.signal);
    await ctx.checkpoint('after-switch');
    const hostname = (
      await ctx.ssh.exec(ctx.target, ['cat', '/proc/sys/kernel/hostname'], { signal: ctx.signal })
    ).stdout.trim();
    const verified = await router.verify(ctx.target, [ctx.target.name, hostname].filter(Boolean), ctx.signal);
    ctx.log(`traffic now reaches ${ctx.target.name}: ${JSON.stringify(verified)}`);
    hooks.push(...(await runHooks(ctx, 'post_switch')));
    return { traffic, verified, forced_without_fence: fence?.status !== 'succeeded', hooks };
  },
};
