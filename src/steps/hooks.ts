/**
 * Profile hooks: commands run around steps, on the target, on the failed host, or on the machine running persona.
 * Steps plan them as actions (hookActions); the engine runs them.
 */
import { PersonaError } from '../errors.js';
import type { Hook, Profile } from '../profile/schema.js';
import { localEnv } from '../runbook/local-env.js';
import { privileged } from '../runbook/remote.js';
import type { Action, StepContext } from '../runbook/types.js';
import { substitute } from '../traffic/router.js';

export type HookPhase = keyof NonNullable<Profile['hooks']>;

/** Runs one hook; what ran, for the journal. */
async function runHook(ctx: StepContext, phase: HookPhase, hook: Hook, argv: string[]): Promise<string> {
  ctx.log(`hook ${phase} on ${hook.on}: ${argv.join(' ')}`);
  if (hook.on === 'local') {
    ctx.assertHeld();
    const { execa } = await import('execa');
    const r = await execa(argv[0]!, argv.slice(1), {
      reject: false,
      timeout: hook.timeout_ms,
      cancelSignal: ctx.signal,
      env: localEnv(ctx.env),
      extendEnv: false,
    });
    if (r.exitCode !== 0)
      throw new PersonaError(
        'E_STEP_FAILED',
        `hook ${phase} \`${argv.join(' ')}\` exited with ${r.exitCode ?? r.signal}: ${String(r.stderr).trim().slice(-300)}`,
      );
  } else {
    const host = hook.on === 'failed' ? ctx.failed : ctx.target;
    await ctx.ssh.run(host, privileged(host, argv), { timeoutMs: hook.timeout_ms, signal: ctx.signal });
  }
  return `${hook.on}: ${argv.join(' ')}`;
}

/** Runs a phase's hooks now, in order (for code that does not plan yet). */
export async function runHooks(ctx: StepContext, phase: HookPhase): Promise<string[]> {
  const ran: string[] = [];
  for (const a of hookActions(ctx, phase)) ran.push(String((await a.apply(ctx))?.ran));
  return ran;
}

/**
 * A phase's hooks as actions: persona cannot see what a hook did, so each runs once per run (the journal says it
 * ran) and is planned again only until it has.
 */
export function hookActions(ctx: StepContext, phase: HookPhase): Action[] {
  return (ctx.profile.hooks?.[phase] ?? []).map((hook, i) => {
    const argv = substitute(hook.run, {
      host: ctx.target.name,
      address: ctx.target.address,
      app: ctx.profile.id,
      failed: ctx.failed.name,
    });
    const where =
      hook.on === 'local' ? 'this machine' : hook.on === 'failed' ? ctx.failed.name : ctx.target.name;
    return {
      id: `hook:${phase}:${i}`,
      title: `hook ${phase}: ${argv.join(' ')}`,
      touches: where,
      mutates: true,
      observable: false,
      async apply(c) {
        return { ran: await runHook(c, phase, hook, argv) };
      },
    };
  });
}
