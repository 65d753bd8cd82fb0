/**
 * configure with `configure.driver: ansible`: the same profile fields the native driver applies, as a playbook
 * persona generates (ansible/playbook.ts), run by ansible-playbook against the target with persona's SSH settings.
 * Plan as data fits Ansible's check mode: the plan is `ansible-playbook --check`, and the tasks it reports as
 * changing (or running, or not knowable before an earlier change) make one observable action, the real run. The
 * engine's new plan is another check, which must find nothing to change. deploy.install commands are one-task
 * playbooks, run once per run as the native driver runs them; hooks are as in every step.
 */

import { PersonaError } from '../errors.js';
import { loginUser } from '../hosts/local-transport.js';
import { ruleCuttingSsh } from '../profile/validate.js';
import { resolveSecret } from '../runbook/secrets.js';
import type { Action, Applied, StepContext, StepOutputs, StepPlan } from '../runbook/types.js';
import { checkVerdict, type TaskResult } from './ansible/events.js';
import { configurePlaybook, installPlaybook, secretFile } from './ansible/playbook.js';
import { runPlaybook } from './ansible/runner.js';
import { securityFacts } from './configure-facts.js';
import { nftRulesetPath, nftTableName } from './firewall.js';
import { hookActions, hooksRan } from './hooks.js';

const CHECK_TIMEOUT_MS = 10 * 60_000;
const APPLY_TIMEOUT_MS = 20 * 60_000;

interface AnsibleFacts {
  driver: 'ansible';
  /** Tasks the check found as wanted, and those it did not (by name): the conclusion holds only with none. */
  tasks: number;
  pending: string[];
  firewall: { rules: number; table?: string; file?: string };
  groups: string[];
  users: Array<{ name: string; groups: string[]; authorized_keys: number }>;
  keys: Array<{ name: string; path: string; mode: string; owner: string; from: string }>;
  files: Array<{ path: string; mode: string }>;
  install_commands: number;
}

/** The secrets of the keys, each as a file for the playbook's copy tasks; a reference that cannot be read blocks. */
async function keyFiles(ctx: StepContext, notes: string[]) {
  const files = new Map<string, string>();
  let blocked: StepPlan['blocked'];
  for (const [i, key] of ctx.profile.security_profile.encryption_keys.entries()) {
    try {
      const value = await resolveSecret(key.secret, `security_profile key ${key.name}`, {
        env: ctx.env,
        backend: ctx.backend,
        redactor: ctx.redactor,
        ...(ctx.allowedSources ? { allowed: ctx.allowedSources } : {}),
      });
      files.set(secretFile(i), value);
      notes.push(`secret ${key.secret} for key ${key.name}: available`);
    } catch (error) {
      if (!(error instanceof PersonaError)) throw error;
      blocked ??= { message: error.message, ...(error.hint ? { hint: error.hint } : {}) };
    }
  }
  return { files, blocked };
}

/** What the check says is left to do, one name per task, in order. */
export function pendingTasks(results: readonly TaskResult[]): { name: string; why: string }[] {
  const seen = new Set<string>();
  const out: { name: string; why: string }[] = [];
  for (const r of results) {
    const verdict = checkVerdict(r);
    if (verdict === 'converged' || seen.has(r.task)) continue;
    seen.add(r.task);
    out.push({ name: r.task, why: verdict });
  }
  return out;
}

function facts(ctx: StepContext, tasks: number, pending: string[]): AnsibleFacts {
  const p = ctx.profile;
  const sec = p.security_profile;
  const rules = p.network_configuration.firewall_rules.length;
  return {
    driver: 'ansible',
    tasks,
    pending,
    firewall:
      rules > 0 ? { rules, table: `inet ${nftTableName(p.id)}`, file: nftRulesetPath(p.id) } : { rules },
    groups: [...new Set([...sec.groups, ...sec.users.flatMap((u) => u.groups)])],
    ...securityFacts(sec),
    files: p.deploy.files.map((f) => ({ path: f.path, mode: f.mode })),
    install_commands: p.deploy.install.length,
  };
}

export async function ansiblePlan(ctx: StepContext): Promise<StepPlan> {
  const p = ctx.profile;
  const t = ctx.target;
  const notes: string[] = [];
  const keys = await keyFiles(ctx, notes);
  let blocked = keys.blocked;
  const sshPort = t.port ?? 22;
  const cut = ruleCuttingSsh(p.network_configuration.firewall_rules, sshPort);
  if (p.network_configuration.firewall_rules.length > 0 && cut >= 0) {
    const rule = p.network_configuration.firewall_rules[cut]!;
    blocked ??= {
      message: `firewall rule ${cut + 1} (/network_configuration/firewall_rules/${cut}) ${rule.action}s tcp port ${sshPort}, ${t.name}'s SSH port, which persona needs: loading it would cut persona off`,
      hint: `Put a rule that accepts tcp port ${sshPort} from your network before it, then resume.`,
    };
  }
  for (const [what, values] of [
    ['ip_ranges', p.network_configuration.ip_ranges],
    ['vlans', p.network_configuration.vlans],
  ] as const)
    if (values.length > 0)
      notes.push(`${what} ${JSON.stringify(values)}: not applied (managed by the network)`);
  if (blocked) return { actions: [], notes, blocked, facts: facts(ctx, 0, []) as unknown as StepOutputs };

  const plays = configurePlaybook(p, loginUser(t));
  const check = await runPlaybook(ctx, {
    host: t,
    what: 'configure',
    playbook: { plays },
    check: true,
    timeoutMs: CHECK_TIMEOUT_MS,
    files: keys.files,
  });
  const pending = pendingTasks(check.results);
  notes.push(
    `ansible-playbook --check on ${t.name}: ${check.results.length} task results, ${pending.length} task(s) to change`,
  );
  for (const task of pending.filter((x) => x.why === 'unknown'))
    notes.push(`${task.name}: check mode cannot tell before the changes before it; the real run will`);

  const actions: Action[] = [...hookActions(ctx, 'pre_configure')];
  if (pending.length > 0)
    actions.push({
      id: 'ansible:configure',
      title: `ansible-playbook on ${t.name}: ${pending.map((x) => x.name).join('; ')}`,
      touches: t.name,
      mutates: true,
      observable: true,
      apply: async (c) => {
        const changed: string[] = [];
        const run = await runPlaybook(c, {
          host: t,
          what: 'configure',
          playbook: { plays },
          check: false,
          timeoutMs: APPLY_TIMEOUT_MS,
          files: keys.files,
          progress: (r) => {
            if (r.status === 'changed') changed.push(r.task);
            if (r.status !== 'ok' && r.status !== 'skipped') c.log(`ansible ${r.status}: ${r.task}`);
          },
        });
        await c.checkpoint('after-ansible');
        return { tasks: run.results.length, changed };
      },
    });
  p.deploy.install.forEach((cmd, i) => {
    actions.push({
      id: `install:${i}`,
      title: `run on ${t.name} (ansible-playbook): ${cmd.join(' ')}`,
      touches: t.name,
      mutates: true,
      observable: false,
      apply: async (c) => {
        await runPlaybook(c, {
          host: t,
          what: `configure install command ${i + 1}`,
          playbook: { plays: installPlaybook(p, loginUser(t), i) },
          check: false,
          timeoutMs: APPLY_TIMEOUT_MS,
        });
        return { ran: cmd.join(' ') };
      },
    });
  });
  return {
    actions,
    after: hookActions(ctx, 'post_configure'),
    notes,
    facts: facts(
      ctx,
      check.results.length,
      pending.map((x) => x.name),
    ) as unknown as StepOutputs,
  };
}

export function ansibleConclude(ctx: StepContext, final: StepPlan, applied: Applied): StepOutputs {
  const f = final.facts as unknown as AnsibleFacts | undefined;
  if (!f) throw new PersonaError('E_STEP_FAILED', `configure found no facts about ${ctx.target.name}`);
  if (f.pending.length > 0)
    throw new PersonaError(
      'E_STEP_FAILED',
      `${ctx.target.name} is not configured as the profile says (ansible-playbook --check would still change: ${f.pending.join('; ')})`,
    );
  const run = applied.get('ansible:configure');
  return {
    driver: 'ansible',
    ansible: { tasks: f.tasks, changed: (run?.changed as string[] | undefined) ?? [] },
    packages: { wanted: ctx.profile.software_stack },
    firewall: f.firewall,
    security: {
      groups: f.groups,
      users: f.users,
      keys: f.keys,
    },
    deploy: { files: f.files, install_commands: f.install_commands },
    hooks: [...hooksRan('pre_configure', applied), ...hooksRan('post_configure', applied)],
  };
}
