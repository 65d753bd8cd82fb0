/**
 * configure: make the target host what the profile says. Packages at their versions, the firewall rules
 * (nftables), users, groups and keys (secrets resolved from their references, written with tight modes, never
 * logged), and the application's files. Each part checks before it changes, so running it twice is safe.
 */
import { PersonaError } from '../errors.js';
import { remoteSha256, runPrivileged, writeRemoteFile } from '../runbook/remote.js';
import { resolveSecret } from '../runbook/secrets.js';
import type { Step, StepContext } from '../runbook/types.js';
import { sha256 } from '../util/hash.js';
import { nftRuleset, nftTableName } from './firewall.js';
import { runHooks } from './hooks.js';
import { installPackages, missingPackages, packageState } from './packages.js';

const ENSURE_GROUP = 'getent group "$1" >/dev/null || groupadd -- "$1"';
const ENSURE_USER = [
  'set -e',
  'name=$1; shell=$2; groups=$3',
  'if ! id -u -- "$name" >/dev/null 2>&1; then',
  // A group of the user's name may exist already (the profile lists it): make it the primary group then.
  '  if getent group "$name" >/dev/null; then set -- -g "$name"; else set -- -U; fi',
  '  if [ -n "$shell" ]; then set -- "$@" -s "$shell"; fi',
  '  useradd -m "$@" -- "$name"',
  'fi',
  '[ -z "$groups" ] || usermod -a -G "$groups" -- "$name"',
  'home=$(getent passwd -- "$name" | cut -d: -f6)',
  'install -d -m 700 -o "$name" -g "$(id -gn -- "$name")" -- "$home/.ssh"',
  'echo "$home"',
].join('\n');

async function packages(ctx: StepContext) {
  const stack = ctx.profile.software_stack;
  const names = stack.map((s) => s.split('=')[0]!);
  const before = await packageState(ctx.ssh, ctx.target, names, ctx.signal);
  const missing = missingPackages(stack, before);
  if (missing.length > 0) {
    ctx.log(`installing ${missing.join(' ')} on ${ctx.target.name}`);
    await installPackages(ctx.ssh, ctx.target, missing, before.manager, ctx.signal);
    const after = await packageState(ctx.ssh, ctx.target, names, ctx.signal);
    const still = missingPackages(stack, after);
    if (still.length > 0)
      throw new PersonaError(
        'E_STEP_FAILED',
        `${ctx.target.name}: still missing after install: ${still.join(' ')}`,
      );
    return {
      installed: missing,
      already_present: stack.filter((s) => !missing.includes(s)),
      versions: after.installed,
    };
  }
  return { installed: [], already_present: [...stack], versions: before.installed };
}

async function firewall(ctx: StepContext) {
  const net = ctx.profile.network_configuration;
  const notApplied = {
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
  for (const [what, v] of Object.entries(notApplied))
    if (v) ctx.log(`${what} ${JSON.stringify(v.values)}: ${v.status}`);
  if (net.firewall_rules.length === 0) return { rules: 0, not_applied: notApplied };
  const check = await ctx.ssh.exec(ctx.target, ['sh', '-c', 'command -v nft'], { signal: ctx.signal });
  if (check.exitCode !== 0) {
    throw new PersonaError(
      'E_STEP_FAILED',
      `${ctx.target.name} has no nft: the firewall rules cannot be applied`,
      {
        hint: 'Add "nftables" to software_stack.',
      },
    );
  }
  const path = `/etc/persona/nftables/${ctx.profile.id}.nft`;
  await writeRemoteFile(
    ctx.ssh,
    ctx.target,
    { path, content: nftRuleset(ctx.profile), mode: '0600', owner: 'root' },
    ctx.signal,
  );
  await runPrivileged(ctx.ssh, ctx.target, ['nft', '-f', path], ctx.signal);
  ctx.log(
    `firewall: table inet ${nftTableName(ctx.profile.id)} with ${net.firewall_rules.length} rules loaded`,
  );
  return {
    rules: net.firewall_rules.length,
    table: `inet ${nftTableName(ctx.profile.id)}`,
    file: path,
    not_applied: notApplied,
  };
}

async function security(ctx: StepContext) {
  const sec = ctx.profile.security_profile;
  const groups = new Set([...sec.groups, ...sec.users.flatMap((u) => u.groups)]);
  for (const g of groups)
    await runPrivileged(ctx.ssh, ctx.target, ['sh', '-c', ENSURE_GROUP, 'persona-group', g], ctx.signal);
  const users = [];
  for (const u of sec.users) {
    const r = await runPrivileged(
      ctx.ssh,
      ctx.target,
      ['sh', '-c', ENSURE_USER, 'persona-user', u.name, u.shell ?? '', u.groups.join(',')],
      ctx.signal,
    );
    const home = r.stdout.trim().split('\n').pop()!;
    if (u.authorized_keys.length > 0) {
      await writeRemoteFile(
        ctx.ssh,
        ctx.target,
        {
          path: `${home}/.ssh/authorized_keys`,
          content: `${u.authorized_keys.join('\n')}\n`,
          mode: '0600',
          owner: u.name,
        },
        ctx.signal,
      );
    }
    users.push({ name: u.name, groups: u.groups, authorized_keys: u.authorized_keys.length });
  }
  const keys = [];
  for (const key of sec.encryption_keys) {
    const value = await resolveSecret(key.secret, `security_profile key ${key.name}`, {
      env: ctx.env,
      backend: ctx.backend,
      redactor: ctx.redactor,
    });
    const owner = key.group ? `${key.owner}:${key.group}` : key.owner;
    const current = await remoteSha256(ctx.ssh, ctx.target, key.path, ctx.signal);
    if (current !== sha256(value)) {
      await writeRemoteFile(
        ctx.ssh,
        ctx.target,
        { path: key.path, content: value, mode: key.mode, owner },
        ctx.signal,
      );
    }
    keys.push({
      name: key.name,
      path: key.path,
      mode: key.mode,
      owner,
      from: key.secret.split(':')[0],
      changed: current !== sha256(value),
    });
    ctx.log(`key ${key.name} written to ${key.path} (mode ${key.mode}, owner ${owner})`);
  }
  return { groups: [...groups], users, keys };
}

async function deployFiles(ctx: StepContext) {
  const files = [];
  for (const f of ctx.profile.deploy.files) {
    const current = await remoteSha256(ctx.ssh, ctx.target, f.path, ctx.signal);
    const changed = current !== sha256(f.content);
    if (changed) await writeRemoteFile(ctx.ssh, ctx.target, f, ctx.signal);
    files.push({ path: f.path, mode: f.mode, changed });
  }
  for (const cmd of ctx.profile.deploy.install) await runPrivileged(ctx.ssh, ctx.target, cmd, ctx.signal);
  return { files, install_commands: ctx.profile.deploy.install.length };
}

export const configureStep: Step = {
  kind: 'configure',
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
    ];
  },
  async simulate(ctx) {
    const names = ctx.profile.software_stack.map((s) => s.split('=')[0]!);
    const state = await packageState(ctx.ssh, ctx.target, names, ctx.signal);
    const missing = missingPackages(ctx.profile.software_stack, state);
    const lines = [
      missing.length
        ? `would install on ${ctx.target.name}: ${missing.join(' ')}`
        : `all packages already present on ${ctx.target.name}`,
    ];
    for (const key of ctx.profile.security_profile.encryption_keys) {
      try {
        await resolveSecret(key.secret, `key ${key.name}`, {
          env: ctx.env,
          backend: ctx.backend,
          redactor: ctx.redactor,
        });
        lines.push(`secret ${key.secret} for ${key.name}: available`);
      } catch (error) {
        lines.push(`secret ${key.secret} for ${key.name}: MISSING (${(error as Error).message})`);
      }
    }
    lines.push(
      `would load ${ctx.profile.network_configuration.firewall_rules.length} firewall rule(s), ensure ${ctx.profile.security_profile.users.length} user(s), write ${ctx.profile.deploy.files.length} file(s)`,
    );
    return lines;
  },
  async verify(ctx) {
    const names = ctx.profile.software_stack.map((s) => s.split('=')[0]!);
    if (
      missingPackages(ctx.profile.software_stack, await packageState(ctx.ssh, ctx.target, names, ctx.signal))
        .length > 0
    )
      return false;
    for (const f of ctx.profile.deploy.files)
      if ((await remoteSha256(ctx.ssh, ctx.target, f.path, ctx.signal)) !== sha256(f.content)) return false;
    for (const u of ctx.profile.security_profile.users) {
      if ((await ctx.ssh.exec(ctx.target, ['id', '-u', '--', u.name], { signal: ctx.signal })).exitCode !== 0)
        return false;
    }
    if (ctx.profile.network_configuration.firewall_rules.length > 0) {
      const r = await ctx.ssh.exec(
        ctx.target,
        ['nft', 'list', 'table', 'inet', nftTableName(ctx.profile.id)],
        { signal: ctx.signal },
      );
      if (r.exitCode !== 0) return false;
    }
    // Keys are checked by writing them again: configure is idempotent and secrets are not kept anywhere to compare.
    return ctx.profile.security_profile.encryption_keys.length === 0;
  },
  async run(ctx) {
    const hooks = await runHooks(ctx, 'pre_configure');
    const pkgs = await packages(ctx);
    await ctx.checkpoint('after-packages');
    const fw = await firewall(ctx);
    const sec = await security(ctx);
    await ctx.checkpoint('after-security');
    const deploy = await deployFiles(ctx);
    hooks.push(...(await runHooks(ctx, 'post_configure')));
    return { packages: pkgs, firewall: fw, security: sec, deploy, hooks };
  },
};
