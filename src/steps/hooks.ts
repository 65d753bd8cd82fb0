/**
 * Profile hooks: commands run around steps, on the target, on the failed host, or on the machine running persona.
 */
import { PersonaError } from '../errors.js';
import type { Profile } from '../profile/schema.js';
import { localEnv } from '../runbook/local-env.js';
import { privileged } from '../runbook/remote.js';
import type { StepContext } from '../runbook/types.js';
import { substitute } from '../traffic/router.js';

export type HookPhase = keyof NonNullable<Profile['hooks']>;

export async function runHooks(ctx: StepContext, phase: HookPhase): Promise<string[]> {
  const hooks = ctx.profile.hooks?.[phase] ?? [];
  const ran: string[] = [];
  for (const hook of hooks) {
    const host = hook.on === 'failed' ? ctx.failed : ctx.target;
    const argv = substitute(hook.run, {
      host: ctx.target.name,
      address: ctx.target.address,
      app: ctx.profile.id,
      failed: ctx.failed.name,
    });
    ctx.log(`hook ${phase} on ${hook.on}: ${argv.join(' ')}`);
    if (hook.on === 'local') {
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
      await ctx.ssh.run(host, privileged(host, argv), { timeoutMs: hook.timeout_ms, signal: ctx.signal });
    }
    ran.push(`${hook.on}: ${argv.join(' ')}`);
  }
  return ran;
}
