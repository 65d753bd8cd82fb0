/**
 * fence: make sure the failed host no longer serves. Out of the load balancer, and, when it still answers, the
 * application stopped there; with a power fence (STONITH, `fencing.power`), powered off, which alone decides. The plan says what is still missing; the conclusion weighs what is there now
 * (fenceVerdict) and leaves the evidence in the journal. The engine runs switch only with that evidence.
 */
import { PersonaError } from '../errors.js';
import { type FenceEvidence, type FenceFacts, fenceVerdict } from '../runbook/fencing.js';
import {
  describePowerOff,
  powerFacts,
  powerFenceOf,
  powerOff,
  powerStateText,
  powerStatus,
} from '../runbook/power-fence.js';
import { privileged } from '../runbook/remote.js';
import type { Action, Step, StepContext, StepPlan } from '../runbook/types.js';
import { caveatsOf, type TrafficRouter } from '../traffic/router.js';
import { hookActions, hooksRan } from './hooks.js';
import { type Reach, reachable } from './reach.js';
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

/** What the fence found: the facts of fenceVerdict that can be observed (the rest comes from the actions). */
type Observed = Omit<FenceFacts, 'stopExitCode'>;

/** What the traffic method and an SSH attempt showed about the failed host: the facts every fence plan has. */
function seen(router: TrafficRouter, takenOut: boolean | undefined, reach: Reach): Observed {
  return {
    method: router.method,
    canTakeOut: router.canFence,
    takenOut,
    takenOutBy: router.canObserve ? `${router.method} queried` : `${router.method}: its fence command`,
    reachable: reach.ok,
    ...(reach.ok ? {} : { unreachableReason: reach.reason, unreachableKind: reach.kind }),
  };
}

function stopAction(ctx: StepContext, observable: boolean): Action {
  return {
    id: 'stop',
    title: `stop ${ctx.profile.id} on ${ctx.failed.name}: ${ctx.profile.deploy.stop.join(' ')}`,
    touches: ctx.failed.name,
    mutates: true,
    observable,
    async apply(c) {
      const stop = await c.ssh.exec(c.failed, privileged(c.failed, c.profile.deploy.stop), {
        timeoutMs: 120_000,
        signal: c.signal,
      });
      if (stop.exitCode !== 0) c.log(`stop exited ${stop.exitCode}: ${stop.stderr.trim().slice(-200)}`);
      // Without deploy.status, the stop's exit status is the only evidence: a failed stop must run again.
      if (stop.exitCode !== 0 && !observable)
        throw new PersonaError(
          'E_STEP_FAILED',
          `${c.profile.deploy.stop.join(' ')} exited ${stop.exitCode} on ${c.failed.name}`,
          { hint: `Stop ${c.profile.id} by hand on ${c.failed.name}, then resume.` },
        );
      return { exitCode: stop.exitCode };
    },
  };
}

export const fenceStep: Step = {
  kind: 'fence',
  /** Nothing: it starts at once, beside configure. */
  dependsOn: [],
  title: 'fence the failed host',
  mutates: true,
  describe(ctx) {
    const power = powerFenceOf(ctx.profile);
    return [
      trafficRouter(ctx).describeFence(ctx.failed),
      power
        ? describePowerOff(power, ctx)
        : `if ${ctx.failed.name} answers over SSH: stop ${ctx.profile.id} there (${ctx.profile.deploy.stop.join(' ')})`,
    ];
  },
  checks(ctx) {
    return [`that ${ctx.failed.name} no longer serves: out of rotation, and stopped or not answering`];
  },
  async plan(ctx): Promise<StepPlan> {
    const router = trafficRouter(ctx);
    const actions: Action[] = [...hookActions(ctx, 'pre_fence')];
    const notes: string[] = [];
    let takenOut: boolean | undefined;
    if (router.canFence && router.canObserve) {
      takenOut = await router.isFenced(ctx.failed, ctx.signal);
      notes.push(`${ctx.failed.name} out of rotation (${router.method}): ${takenOut ? 'yes' : 'no'}`);
    }
    if (router.canFence && takenOut !== true) {
      actions.push({
        id: 'traffic:out',
        title: router.describeFence(ctx.failed),
        touches: router.method,
        mutates: true,
        observable: router.canObserve,
        async apply(c) {
          const traffic = await router.fence(c.failed, c.signal);
          c.log(`${c.failed.name} is out of rotation (${router.method})`);
          for (const caveat of caveatsOf(traffic)) c.log(caveat);
          await c.checkpoint('after-traffic');
          return traffic;
        },
      });
    }
    const power = powerFenceOf(ctx.profile);
    if (power) {
      // The power decides (Pacemaker's STONITH): off, as its status reports, and silent. Before any other look.
      const state = await powerStatus(power, ctx);
      notes.push(`${ctx.failed.name} power (fence agent status): ${powerStateText(state)}`);
      const reach = await reachable(ctx, ctx.failed);
      if (state !== 'off') {
        actions.push({
          id: 'power:off',
          title: describePowerOff(power, ctx),
          touches: ctx.failed.name,
          mutates: true,
          observable: true,
          async apply(c) {
            c.assertHeld();
            const result = await powerOff(power, c);
            c.log(
              `power off ${c.failed.name}: ${result.off.ended}; status ${powerStateText(result.state)} after ${result.checks} check(s)`,
            );
            // Whether it answered when persona cut its power: then its data may be newer than any backup.
            return { ...result, state: powerStateText(result.state), answered_before: reach.ok };
          },
        });
      }
      const observed: Observed = { ...seen(router, takenOut, reach), ...powerFacts(state) };
      notes.push(`${ctx.failed.name} ${reach.ok ? 'answers' : `does not answer (${reach.reason})`} over SSH`);
      return { actions, after: hookActions(ctx, 'post_fence'), notes, facts: { observed } };
    }
    const reach = await reachable(ctx, ctx.failed);
    const observed: Observed = seen(router, takenOut, reach);
    if (!reach.ok) {
      notes.push(`${ctx.failed.name} does not answer over SSH (${reach.reason})`);
    } else {
      const status = await statusExitCode(ctx);
      if (status !== undefined) observed.statusExitCode = status;
      notes.push(
        status === undefined
          ? `${ctx.failed.name} answers over SSH; the profile has no deploy.status, so only deploy.stop proves ${ctx.profile.id} stopped`
          : `${ctx.failed.name} answers over SSH; deploy.status exits ${status} (${status === 0 ? 'running' : 'stopped'})`,
      );
      // With deploy.status the plan sees whether it is stopped; without it, the stop runs once per run.
      if (status === undefined || status === 0) actions.push(stopAction(ctx, status !== undefined));
    }
    return {
      actions,
      after: hookActions(ctx, 'post_fence'),
      notes,
      facts: { observed },
    };
  },
  async conclude(ctx, { plan, applied }) {
    const observed = plan.facts!.observed as Observed;
    const facts: FenceFacts = { ...observed };
    const traffic = applied.get('traffic:out');
    // A command router cannot look: its fence command's success (in this run) is what took the host out.
    if (!observed.canTakeOut || observed.takenOut === undefined)
      facts.takenOut = observed.canTakeOut ? traffic !== undefined : undefined;
    const stop = applied.get('stop') as { exitCode?: number } | undefined;
    if (observed.reachable && stop?.exitCode !== undefined) facts.stopExitCode = stop.exitCode;
    const power = applied.get('power:off') as { answered_before?: boolean } | undefined;
    if (power?.answered_before !== undefined) facts.answeredBeforePowerOff = power.answered_before;
    const evidence: FenceEvidence = { ...facts, ...fenceVerdict(facts), checked_at: ctx.now().toISOString() };
    ctx.log(`${evidence.fenced ? 'fenced' : 'NOT fenced'}: ${evidence.reason}`);
    if (!evidence.fenced) {
      throw new PersonaError('E_STEP_FAILED', `cannot fence ${ctx.failed.name}: ${evidence.reason}`, {
        hint: evidence.reachable
          ? `Stop ${ctx.profile.id} by hand on ${ctx.failed.name}, then resume.`
          : 'Power it off out of band (IPMI, cloud console), then resume; or resume with --force-no-fence to switch anyway.',
      });
    }
    const hooks = hooksRan('pre_fence', applied);
    return { fenced: true, ...(traffic ? { traffic } : {}), evidence, hooks };
  },
};
