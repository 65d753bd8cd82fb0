/**
 * switch: move traffic to the new host and prove it arrives there. The engine runs it only with fence evidence in
 * the journal, unless --force-no-fence was given (and confirmed).
 */
import { fenceEvidence } from '../runbook/fencing.js';
import type { Step } from '../runbook/types.js';
import { runHooks } from './hooks.js';
import { trafficRouter } from './traffic.js';

export const switchStep: Step = {
  kind: 'switch',
  title: 'switch traffic to the new host',
  mutates: true,
  needsFence: true,
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
    // The engine runs this step only with fence evidence, or with a confirmed --force-no-fence (needsFence).
    const forced = fenceEvidence(ctx.journal) === undefined;
    if (forced) ctx.log(`switching WITHOUT fence evidence for ${ctx.failed.name} (--force-no-fence)`);
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
    return { traffic, verified, forced_without_fence: forced, hooks };
  },
};
