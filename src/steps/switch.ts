/**
 * switch: move traffic to the new host and prove it arrives there. The engine runs it only with fence evidence in
 * the journal, unless --force-no-fence was given (and confirmed).
 */
import { fenceEvidence } from '../runbook/fencing.js';
import type { Action, Step, StepContext, StepPlan } from '../runbook/types.js';
import { caveatsOf } from '../traffic/router.js';
import { hookActions, hooksRan } from './hooks.js';
import { trafficRouter } from './traffic.js';

const hostnames = new WeakMap<object, Promise<string>>();

/** The target's kernel hostname (what an answer through the router may name), asked once per step attempt (one context). */
function targetHostname(ctx: StepContext): Promise<string> {
  let asked = hostnames.get(ctx);
  if (!asked) {
    asked = ctx.ssh
      .exec(ctx.target, ['cat', '/proc/sys/kernel/hostname'], { signal: ctx.signal })
      .then((r) => r.stdout.trim());
    hostnames.set(ctx, asked);
  }
  return asked;
}

export const switchStep: Step = {
  kind: 'switch',
  dependsOn: ['fence', 'validate'],
  title: 'switch traffic to the new host',
  mutates: true,
  needsFence: true,
  attempts: 2,
  describe(ctx) {
    return [trafficRouter(ctx).describeSwitch(ctx.target, ctx.failed)];
  },
  checks(ctx) {
    return [`that requests through ${ctx.profile.traffic.method} reach ${ctx.target.name}`];
  },
  async plan(ctx): Promise<StepPlan> {
    const router = trafficRouter(ctx);
    const notes: string[] = [];
    const actions: Action[] = [...hookActions(ctx, 'pre_switch')];
    // Asked now, beside the router's state: the verification after the switch needs it at once.
    targetHostname(ctx).catch(() => {});
    const switched = router.canObserve ? await router.isSwitched(ctx.target, ctx.failed, ctx.signal) : false;
    if (router.canObserve) notes.push(`traffic already on ${ctx.target.name}: ${switched ? 'yes' : 'no'}`);
    if (!switched) {
      actions.push({
        id: 'traffic:in',
        title: router.describeSwitch(ctx.target, ctx.failed),
        touches: router.method,
        mutates: true,
        observable: router.canObserve,
        async apply(c) {
          // The engine applies this only with fence evidence, or with a confirmed --force-no-fence (needsFence).
          if (fenceEvidence(c.journal) === undefined)
            c.log(`switching WITHOUT fence evidence for ${c.failed.name} (--force-no-fence)`);
          const traffic = await router.switchTo(c.target, c.failed, c.signal);
          for (const caveat of caveatsOf(traffic)) c.log(caveat);
          await c.checkpoint('after-switch');
          return traffic;
        },
      });
    }
    return { actions, after: hookActions(ctx, 'post_switch'), notes };
  },
  async conclude(ctx, { applied }) {
    const router = trafficRouter(ctx);
    const hostname = await targetHostname(ctx);
    const verified = await router.verify(ctx.target, [ctx.target.name, hostname].filter(Boolean), ctx.signal);
    ctx.log(`traffic now reaches ${ctx.target.name}: ${JSON.stringify(verified)}`);
    const traffic = applied.get('traffic:in');
    const hooks = hooksRan('pre_switch', applied);
    return {
      ...(traffic ? { traffic } : {}),
      verified,
      forced_without_fence: fenceEvidence(ctx.journal) === undefined,
      hooks,
    };
  },
};
