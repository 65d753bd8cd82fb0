/**
 * Profile hooks: commands run around steps, on the target, on the failed host, or on the machine running persona;
 * or an Ansible playbook or role, run by ansible-playbook against the hook's host with persona's SSH settings.
 */

import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import { loginUser } from '../hosts/local-transport.js';
import type { Hook, Profile } from '../profile/schema.js';
import { localEnv } from '../runbook/local-env.js';
import { privileged } from '../runbook/remote.js';
import type { Action, StepContext } from '../runbook/types.js';
import { substitute } from '../traffic/router.js';
import { endedAs } from '../util/local-process.js';
import { rolePlaybook } from './ansible/playbook.js';
import { runPlaybook } from './ansible/runner.js';

export type HookPhase = keyof NonNullable<Profile['hooks']>;

/** What a hook runs, as words for people: its command, or the playbook or role. */
export function hookWords(hook: Hook): string[] {
  if (hook.playbook) return ['ansible-playbook', hook.playbook];
  if (hook.role) return ['ansible role', hook.role];
  return hook.run ?? [];
}

function hookArgv(ctx: StepContext, hook: Hook): string[] {
  if (!hook.run) return hookWords(hook);
  return substitute(hook.run, {
    host: ctx.target.name,
    address: ctx.target.address,
    app: ctx.profile.id,
    failed: ctx.failed.name,
  });
}

/** A playbook or role hook: ansible-playbook against the hook's host alone (once per run, like any hook). */
async function runAnsibleHook(ctx: StepContext, phase: HookPhase, hook: Hook, host: InventoryHost) {
  ctx.assertHeld();
  await runPlaybook(ctx, {
    host,
    what: `hook ${phase}`,
    playbook: hook.playbook ? { path: hook.playbook } : { plays: rolePlaybook(hook.role!, loginUser(host)) },
    check: false,
    timeoutMs: hook.timeout_ms,
    extraVars: {
      persona_app: ctx.profile.id,
      persona_host: ctx.target.name,
      persona_failed: ctx.failed.name,
    },
  });
}

/** Runs one hook; what it ran, as "on: argv". */
async function runHook(ctx: StepContext, phase: HookPhase, hook: Hook): Promise<string> {
  const host = hook.on === 'failed' ? ctx.failed : ctx.target;
  const argv = hookArgv(ctx, hook);
  ctx.log(`hook ${phase} on ${hook.on}: ${argv.join(' ')}`);
  if (!hook.run) {
    await runAnsibleHook(ctx, phase, hook, host);
  } else if (hook.on === 'local') {
    ctx.assertHeld();
    const r = await ctx.local(argv, {
      env: localEnv(ctx.env),
      timeoutMs: hook.timeout_ms,
      signal: ctx.signal,
    });
    if (r.exitCode !== 0)
      throw new PersonaError(
        'E_STEP_FAILED',
        `hook ${phase} \`${argv.join(' ')}\` ended with ${endedAs(r)}: ${r.stderr.trim().slice(-300)}`,
      );
  } else {
    await ctx.ssh.run(host, privileged(host, argv), { timeoutMs: hook.timeout_ms, signal: ctx.signal });
  }
  return `${hook.on}: ${argv.join(' ')}`;
}

/**
 * A phase's hooks as actions, in order: one per hook (id `hook:<phase>:<index>`), mutating and unobservable (a
 * plan cannot see that a hook ran, so the engine runs each once per run). Its outputs: `{ ran: "on: argv" }`.
 */
export function hookActions(ctx: StepContext, phase: HookPhase): Action[] {
  return (ctx.profile.hooks?.[phase] ?? []).map((hook, index) => ({
    id: `hook:${phase}:${index}`,
    title: `hook ${phase} on ${hook.on}: ${hookArgv(ctx, hook).join(' ')}`,
    touches: hook.on === 'local' ? 'this machine' : hook.on === 'failed' ? ctx.failed.name : ctx.target.name,
    mutates: true,
    observable: false,
    apply: async (actx) => ({ ran: await runHook(actx, phase, hook) }),
  }));
}

/** What the hooks of a phase ran in this run, in order, from the actions' outputs ("on: argv"). */
export function hooksRan(phase: HookPhase, applied: ReadonlyMap<string, Record<string, unknown>>): string[] {
  const prefix = `hook:${phase}:`;
  return [...applied.entries()]
    .filter(([id, out]) => id.startsWith(prefix) && typeof out.ran === 'string')
    .sort(([a], [b]) => Number(a.slice(prefix.length)) - Number(b.slice(prefix.length)))
    .map(([, out]) => out.ran as string);
}
