/**
 * configure: make the target host what the profile says. Packages at their versions, the firewall rules
 * (nftables), users, groups and keys (secrets resolved from their references, written with tight modes, never
 * logged), and the application's files. The plan asks the target for the state of all of it in one SSH call
 * (host-state.ts) and plans an action for each thing that differs; a second plan after the actions sees them done.
 */

import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import { packageQuery, parsePackageSpec } from '../profile/package-spec.js';
import { ruleCuttingSsh } from '../profile/validate.js';
import { runPrivileged, writeRemoteFile } from '../runbook/remote.js';
import { resolveSecret } from '../runbook/secrets.js';
import type { Action, Applied, Step, StepContext, StepOutputs, StepPlan } from '../runbook/types.js';
import { sha256 } from '../util/hash.js';
import { ansibleConclude, ansiblePlan } from './configure-ansible.js';
import { securityFacts } from './configure-facts.js';
import { LOAD_NFT_SCRIPT, nftListingPath, nftRuleset, nftRulesetPath, nftTableName } from './firewall.js';
import { hookActions, hooksRan } from './hooks.js';
import { Ask, fileDiff, firewallDiff, hostReport, userDiff } from './host-state.js';
import { installPackages, missingPackages, type PackageState, packageState } from './packages.js';

const ENSURE_GROUP = 'getent group "$1" >/dev/null || groupadd -- "$1"';
const ENSURE_USER = [
  'set -e',
  'name=$1; shell=$2; groups=$3',
  'if ! id -u -- "$name" >/dev/null 2>&1; then',
  // A group of the user's name may exist already (the profile lists it): make it the primary group then.
  '  if getent group "$name" >/dev/null; then set -- -g "$name"; else set -- -U; fi',
  '  if [ -n "$shell" ]; then set -- "$@" -s "$shell"; fi',
  '  useradd -m "$@" -- "$name"',
  'elif [ -n "$shell" ]; then usermod -s "$shell" -- "$name"',
  'fi',
  '[ -z "$groups" ] || usermod -a -G "$groups" -- "$name"',
].join('\n');

/** The user's ~/.ssh (mode 700) and authorized_keys (0600, the user's), written atomically; content on stdin. */
const WRITE_AUTHORIZED_KEYS = [
  'set -e',
  'name=$1',
  'home=$(getent passwd "$name" | cut -d: -f6)',
  '[ -n "$home" ] || { echo "no home directory for $name" >&2; exit 1; }',
  'grp=$(id -gn -- "$name")',
  'install -d -m 700 -o "$name" -g "$grp" -- "$home/.ssh"',
  'umask 077',
  'tmp=$(mktemp -- "$home/.ssh/authorized_keys.persona.XXXXXX")',
  'trap \'rm -f -- "$tmp"\' EXIT',
  'cat > "$tmp"',
  'chown -- "$name:$grp" "$tmp"',
  'chmod 600 "$tmp"',
  'mv -f -- "$tmp" "$home/.ssh/authorized_keys"',
  'trap - EXIT',
].join('\n');

/** The ruleset loader, shared with the Ansible driver (firewall.ts). */
export const LOAD_NFT = LOAD_NFT_SCRIPT;
const rulesetPath = nftRulesetPath;
const listingPath = nftListingPath;

/** The facts a plan leaves for the conclusion; never a secret, nor a digest of one. */
interface ConfigureFacts {
  packages: { manager: PackageState['manager']; versions: Record<string, string>; missing: string[] };
  firewall: { rules: number; table?: string; file?: string; not_applied: Record<string, unknown> };
  groups: string[];
  users: Array<{ name: string; groups: string[]; authorized_keys: number }>;
  keys: Array<{ name: string; path: string; mode: string; owner: string; from: string }>;
  files: Array<{ path: string; mode: string; owner?: string }>;
  install_commands: number;
  /** Observable actions of this plan: the conclusion holds only when there are none. */
  pending: string[];
}

function notApplied(ctx: StepContext): Record<string, unknown> {
  const net = ctx.profile.network_configuration;
  return {
    ip_ranges: net.ip_ranges.length
      ? {
          values: net.ip_ranges,
          status: 'not applied: persona records IP ranges; addressing is managed outside it',
        }
      : undefined,
    vlans: net.vlans.length
      ? {
          values: net.vlans,
          status: 'not applied: VLAN membership is managed by the network, not on the host',
        }
      : undefined,
  };
}

/** An observable, mutating action on the target. */
function onTarget(
  target: InventoryHost,
  id: string,
  title: string,
  apply: (ctx: StepContext) => Promise<StepOutputs | undefined>,
): Action {
  return { id, title, touches: target.name, mutates: true, observable: true, apply };
}

/** The same action, hitting a checkpoint at the end of its apply. */
function thenCheckpoint(action: Action, name: string): Action {
  return {
    ...action,
    apply: async (ctx) => {
      const out = await action.apply(ctx);
      await ctx.checkpoint(name);
      return out;
    },
  };
}

async function plan(ctx: StepContext): Promise<StepPlan> {
  const p = ctx.profile;
  const t = ctx.target;
  const sec = p.security_profile;
  const notes: string[] = [];
  let blocked: StepPlan['blocked'];

  // Secrets first, on this machine: one that cannot be read stops the step before anything changes.
  const secrets = new Map<string, string>();
  for (const key of sec.encryption_keys) {
    try {
      secrets.set(
        key.name,
        await resolveSecret(key.secret, `security_profile key ${key.name}`, {
          env: ctx.env,
          backend: ctx.backend,
          redactor: ctx.redactor,
          ...(ctx.allowedSources ? { allowed: ctx.allowedSources } : {}),
        }),
      );
      notes.push(`secret ${key.secret} for key ${key.name}: available`);
    } catch (error) {
      if (!(error instanceof PersonaError)) throw error;
      blocked ??= { message: error.message, ...(error.hint ? { hint: error.hint } : {}) };
    }
  }

  const ask = new Ask();
  const names = p.software_stack.map(packageQuery);
  const pkgs = names.map((n) => [n, ask.pkg(n)] as const);
  const rules = p.network_configuration.firewall_rules.length;
  const table = nftTableName(p.id);
  const fw =
    rules > 0 ? { file: ask.file(rulesetPath(p.id)), nft: ask.nft(table, listingPath(p.id)) } : undefined;
  const groups = [...new Set([...sec.groups, ...sec.users.flatMap((u) => u.groups)])];
  const groupState = groups.map((g) => [g, ask.group(g)] as const);
  const users = sec.users.map(
    (u) =>
      [u, ask.user(u.name), u.authorized_keys.length > 0 ? ask.authorizedKeys(u.name) : undefined] as const,
  );
  const keys = sec.encryption_keys.map((k) => [k, ask.file(k.path)] as const);
  const files = p.deploy.files.map((f) => [f, ask.file(f.path)] as const);
  const report = await hostReport(ctx.ssh, t, ask.queries, ctx.signal);

  const actions: Action[] = [...hookActions(ctx, 'pre_configure')];

  // Packages.
  const state: PackageState = { manager: report.manager, installed: {} };
  for (const [n, version] of pkgs) {
    const v = version(report);
    if (v !== undefined) state.installed[n] = v;
  }
  const missing = missingPackages(p.software_stack, state);
  if (missing.length === 0) notes.push(`all packages already present on ${t.name}`);
  else if (state.manager === 'none')
    blocked ??= {
      message: `${t.name} has no package manager persona knows (dpkg or rpm) to install ${missing.join(' ')}`,
      hint: `Install them on ${t.name} by hand, then resume.`,
    };
  else
    actions.push(
      thenCheckpoint(
        onTarget(t, 'packages', `install on ${t.name}: ${missing.join(' ')}`, async (c) => {
          c.log(`installing ${missing.join(' ')} on ${t.name}`);
          const done = await installPackages(c.ssh, t, missing, state.manager, c.signal);
          if (done.lists) c.log(done.lists);
          const after = await packageState(c.ssh, t, names, c.signal);
          const still = missingPackages(p.software_stack, after);
          if (still.length > 0)
            throw new PersonaError(
              'E_STEP_FAILED',
              `${t.name}: still missing after install: ${still.join(' ')}`,
            );
          return { installed: missing, versions: after.installed };
        }),
        'after-packages',
      ),
    );

  // Firewall.
  const net = notApplied(ctx);
  for (const [what, v] of Object.entries(net))
    if (v)
      notes.push(
        `${what} ${JSON.stringify((v as { values: unknown }).values)}: ${(v as { status: string }).status}`,
      );
  // The rules must leave persona a way in: the target's own SSH port, which validation (port 22) cannot know.
  const sshPort = t.port ?? 22;
  const cut = ruleCuttingSsh(p.network_configuration.firewall_rules, sshPort);
  if (fw && cut >= 0) {
    const rule = p.network_configuration.firewall_rules[cut]!;
    blocked ??= {
      message: `firewall rule ${cut + 1} (/network_configuration/firewall_rules/${cut}) ${rule.action}s tcp port ${sshPort}, ${t.name}'s SSH port, which persona needs: loading it would cut persona off`,
      hint: `Put a rule that accepts tcp port ${sshPort} from your network before it, then resume.`,
    };
  } else if (fw) {
    const ruleset = nftRuleset(p);
    const why = firewallDiff(sha256(ruleset), fw.file(report), fw.nft(report));
    const nftComing = missing.some((s) => parsePackageSpec(s)?.name === 'nftables');
    if (why && !report.nft && !nftComing) {
      blocked ??= {
        message: `${t.name} has no nft: the firewall rules cannot be applied`,
        hint: 'Add "nftables" to software_stack.',
      };
    } else if (why) {
      actions.push(
        onTarget(
          t,
          'firewall',
          `load firewall table inet ${table} (${rules} rules) on ${t.name}: ${why}`,
          async (c) => {
            const path = rulesetPath(p.id);
            await writeRemoteFile(
              c.ssh,
              t,
              { path, content: ruleset, mode: '0600', owner: 'root' },
              c.signal,
            );
            await runPrivileged(
              c.ssh,
              t,
              ['sh', '-c', LOAD_NFT, 'persona-nft', path, table, listingPath(p.id)],
              c.signal,
            );
            c.log(`firewall: table inet ${table} with ${rules} rules loaded`);
            return { table: `inet ${table}`, rules, file: path };
          },
        ),
      );
    } else notes.push(`firewall table inet ${table} on ${t.name} is as persona loaded it`);
  }

  // Users, groups, keys.
  const security: Action[] = [];
  for (const [g, exists] of groupState) {
    if (exists(report)) continue;
    security.push(
      onTarget(t, `group:${g}`, `create group ${g} on ${t.name}`, async (c) => {
        await runPrivileged(c.ssh, t, ['sh', '-c', ENSURE_GROUP, 'persona-group', g], c.signal);
        return { group: g };
      }),
    );
  }
  for (const [u, have, akeys] of users) {
    const why = userDiff(u, have(report));
    if (why)
      security.push(
        onTarget(t, `user:${u.name}`, `ensure user ${u.name} on ${t.name}: ${why}`, async (c) => {
          await runPrivileged(
            c.ssh,
            t,
            ['sh', '-c', ENSURE_USER, 'persona-user', u.name, u.shell ?? '', u.groups.join(',')],
            c.signal,
          );
          return { user: u.name, groups: u.groups };
        }),
      );
    const content = `${u.authorized_keys.join('\n')}\n`;
    const keysWhy =
      akeys && fileDiff({ sha256: sha256(content), mode: '0600', owner: u.name }, akeys(report));
    if (keysWhy)
      security.push(
        onTarget(
          t,
          `authorized_keys:${u.name}`,
          `write ${u.name}'s authorized_keys (${u.authorized_keys.length} keys) on ${t.name}: ${keysWhy}`,
          async (c) => {
            await runPrivileged(
              c.ssh,
              t,
              ['sh', '-c', WRITE_AUTHORIZED_KEYS, 'persona-authorized-keys', u.name],
              c.signal,
              content,
            );
            return { user: u.name, authorized_keys: u.authorized_keys.length };
          },
        ),
      );
  }
  for (const [k, have] of keys) {
    const value = secrets.get(k.name);
    if (value === undefined) continue; // blocked above
    const owner = k.group ? `${k.owner}:${k.group}` : k.owner;
    const why = fileDiff(
      { sha256: sha256(value), mode: k.mode, owner: k.owner, ...(k.group ? { group: k.group } : {}) },
      have(report),
    );
    if (why)
      security.push(
        onTarget(
          t,
          `key:${k.name}`,
          `write key ${k.name} to ${k.path} (mode ${k.mode}, owner ${owner}): ${why}`,
          async (c) => {
            await writeRemoteFile(c.ssh, t, { path: k.path, content: value, mode: k.mode, owner }, c.signal);
            c.log(`key ${k.name} written to ${k.path} (mode ${k.mode}, owner ${owner})`);
            return { key: k.name, path: k.path };
          },
        ),
      );
  }
  if (security.length > 0) security.push(thenCheckpoint(security.pop()!, 'after-security'));
  actions.push(...security);

  // The application's files, then its install commands (which cannot be seen: once per run).
  for (const [f, have] of files) {
    const owner = f.group ? `${f.owner}:${f.group}` : f.owner;
    const why = fileDiff(
      { sha256: sha256(f.content), mode: f.mode, owner: f.owner, ...(f.group ? { group: f.group } : {}) },
      have(report),
    );
    if (why)
      actions.push(
        onTarget(
          t,
          `file:${f.path}`,
          `write ${f.path} (mode ${f.mode}, owner ${owner}) on ${t.name}: ${why}`,
          async (c) => {
            await writeRemoteFile(c.ssh, t, { ...f, owner }, c.signal);
            return { path: f.path };
          },
        ),
      );
  }
  p.deploy.install.forEach((cmd, i) => {
    actions.push({
      id: `install:${i}`,
      title: `run on ${t.name}: ${cmd.join(' ')}`,
      touches: t.name,
      mutates: true,
      observable: false,
      apply: async (c) => {
        await runPrivileged(c.ssh, t, cmd, c.signal);
        return { ran: cmd.join(' ') };
      },
    });
  });

  const facts: ConfigureFacts = {
    packages: { manager: state.manager, versions: state.installed, missing },
    firewall: fw
      ? { rules, table: `inet ${table}`, file: rulesetPath(p.id), not_applied: net }
      : { rules: 0, not_applied: net },
    groups,
    ...securityFacts(sec),
    files: p.deploy.files.map((f) => ({
      path: f.path,
      mode: f.mode,
      ...(f.group ? { owner: `${f.owner}:${f.group}` } : {}),
    })),
    install_commands: p.deploy.install.length,
    pending: actions.filter((a) => a.observable && a.mutates).map((a) => a.title),
  };
  return {
    actions,
    after: hookActions(ctx, 'post_configure'),
    notes,
    ...(blocked ? { blocked } : {}),
    facts: facts as unknown as StepOutputs,
  };
}

/** The outputs, in the shape configure always recorded, from the final plan's facts and what the actions did. */
export function configureOutputs(ctx: StepContext, facts: ConfigureFacts, applied: Applied): StepOutputs {
  const installed = (applied.get('packages')?.installed as string[] | undefined) ?? [];
  const { rules, not_applied, ...firewall } = facts.firewall;
  return {
    packages: {
      installed,
      already_present: ctx.profile.software_stack.filter((s) => !installed.includes(s)),
      versions: facts.packages.versions,
    },
    firewall:
      rules > 0
        ? { rules, ...firewall, not_applied, loaded: applied.has('firewall') }
        : { rules, not_applied },
    security: {
      groups: facts.groups,
      users: facts.users,
      keys: facts.keys.map((k) => ({ ...k, changed: applied.has(`key:${k.name}`) })),
    },
    deploy: {
      files: facts.files.map((f) => ({ ...f, changed: applied.has(`file:${f.path}`) })),
      install_commands: facts.install_commands,
    },
    hooks: [...hooksRan('pre_configure', applied), ...hooksRan('post_configure', applied)],
  };
}

export const configureStep: Step = {
  kind: 'configure',
  /** Nothing: it touches only the new host, which serves nothing yet; it runs beside the fence. */
  dependsOn: [],
  title: 'configure the new host',
  mutates: true,
  timeoutMs: () => 20 * 60_000,
  describe(ctx) {
    const p = ctx.profile;
    return [
      `packages on ${ctx.target.name}: ${p.software_stack.join(' ') || '(none)'}`,
      `firewall: ${p.network_configuration.firewall_rules.length} nftables rule(s) in table inet ${nftTableName(p.id)}`,
      `users: ${p.security_profile.users.map((u) => u.name).join(' ') || '(none)'}; keys: ${p.security_profile.encryption_keys.map((k) => `${k.name} → ${k.path}`).join(', ') || '(none)'}`,
      `deploy: ${p.deploy.files.length} file(s), ${p.deploy.install.length} install command(s)`,
      ...(p.configure.driver === 'ansible'
        ? ['driver: ansible (a playbook generated from the profile, run by ansible-playbook)']
        : []),
    ];
  },
  plan: (ctx) => (ctx.profile.configure.driver === 'ansible' ? ansiblePlan(ctx) : plan(ctx)),
  checks(ctx) {
    const p = ctx.profile;
    if (p.configure.driver === 'ansible')
      return [`ansible-playbook --check on ${ctx.target.name} finds nothing left to change`];
    return [
      `every package of software_stack on ${ctx.target.name}, at its pinned version`,
      ...(p.network_configuration.firewall_rules.length > 0
        ? [
            `table inet ${nftTableName(p.id)} loaded from persona's ruleset, its listing as persona recorded it`,
          ]
        : []),
      'groups, users (with their groups and shell), authorized_keys, keys and deploy files as the profile says (content, mode, owner)',
    ];
  },
  async conclude(ctx, { plan: final, applied }) {
    if (ctx.profile.configure.driver === 'ansible') return ansibleConclude(ctx, final, applied);
    const facts = final.facts as unknown as ConfigureFacts | undefined;
    if (!facts) throw new PersonaError('E_STEP_FAILED', `configure found no facts about ${ctx.target.name}`);
    if (facts.pending.length > 0)
      throw new PersonaError(
        'E_STEP_FAILED',
        `${ctx.target.name} is not configured as the profile says: ${facts.pending.join('; ')}`,
      );
    return configureOutputs(ctx, facts, applied);
  },
};
