/**
 * The configure playbook: what the native driver applies (configure.ts), as Ansible tasks of ansible.builtin only
 * (ansible-core has no collections). Pure: built from the profile and tested. Every task a plan reads carries a
 * `persona_id` var naming what it makes true ("packages", "user:demo", "file:/etc/app.conf"). Secrets are never in
 * the playbook: key tasks copy from files in the run's private directory (`secretFile`), with no_log and no diff.
 *
 * Check mode is the plan: a task that would change reports `changed`; a command that would run reports so; a task
 * that depends on an earlier change (a user's home before the user exists) may fail in check mode, and
 * `ignore_errors: "{{ ansible_check_mode }}"` lets the check go on (the plan reads it as "cannot tell yet").
 */
import { parsePackageSpec } from '../../profile/package-spec.js';
import type { Profile } from '../../profile/schema.js';
import { LOAD_NFT_SCRIPT, nftListingPath, nftRuleset, nftRulesetPath, nftTableName } from '../firewall.js';
import { NFT_LISTING_DIGEST } from '../host-state.js';
import { jinja, type YamlValue } from './yaml.js';

/** Where a key's secret lies for the copy task: relative to the private directory, never its value. */
export const secretFile = (index: number) => `secrets/key-${index}`;

/**
 * Creates a directory the way the native driver's writes do (mkdir -p, 0755 as `install -D` makes them, so the
 * owner of a file in it reaches the file); `creates` makes it observable.
 */
const MKDIR = 'umask 022 && mkdir -p -- "$1"';

/** "same" when the live table's listing is the one persona recorded when it loaded it, else "differs". */
export const NFT_STATE = [
  `nftdigest() { ${NFT_LISTING_DIGEST}; }`,
  'live=$(nftdigest "$1") || live=',
  'rec=$(head -c 64 -- "$2" 2>/dev/null) || rec=',
  'if [ -n "$live" ] && [ "$live" = "$rec" ]; then echo same; else echo differs; fi',
].join('\n');

type Task = Record<string, YamlValue | undefined>;

const CHECK_MAY_FAIL = jinja('{{ ansible_check_mode }}');

function task(id: string, name: string, body: Task): Task {
  return { name, ...body, vars: { persona_id: id, ...((body.vars as Record<string, YamlValue>) ?? {}) } };
}

const dirname = (path: string) => path.slice(0, path.lastIndexOf('/')) || '/';

/** The apt and dnf arguments of a spec: exact pins, globs and minimums as each module takes them. */
export function packageArgument(spec: string, manager: 'apt' | 'dnf'): string {
  const p = parsePackageSpec(spec);
  if (!p?.op || !p.version) return p?.query ?? spec;
  if (manager === 'apt') return p.op === '>=' ? `${p.query}>=${p.version}` : `${p.query}=${p.version}`;
  return p.op === '>=' ? `${p.query} >= ${p.version}` : `${p.query}-${p.version}`;
}

function packageTasks(p: Profile): Task[] {
  if (p.software_stack.length === 0) return [];
  const names = p.software_stack.join(' ');
  return [
    task('packages', `packages: ${names} (apt)`, {
      'ansible.builtin.apt': {
        name: p.software_stack.map((s) => packageArgument(s, 'apt')),
        state: 'present',
        update_cache: true,
        cache_valid_time: 3600,
        install_recommends: false,
        allow_downgrade: true,
      },
      environment: { DEBIAN_FRONTEND: 'noninteractive' },
      when: jinja("ansible_facts.pkg_mgr == 'apt'"),
      ignore_errors: CHECK_MAY_FAIL,
    }),
    task('packages', `packages: ${names} (dnf)`, {
      'ansible.builtin.dnf': {
        name: p.software_stack.map((s) => packageArgument(s, 'dnf')),
        state: 'present',
      },
      when: jinja("ansible_facts.pkg_mgr in ['dnf', 'dnf5', 'yum']"),
      ignore_errors: CHECK_MAY_FAIL,
    }),
    task('packages', 'packages: a package manager persona knows', {
      'ansible.builtin.fail': {
        msg: 'no package manager persona knows (apt or dnf) to install the software_stack',
      },
      when: jinja("ansible_facts.pkg_mgr not in ['apt', 'dnf', 'dnf5', 'yum']"),
    }),
  ];
}

function directoryTasks(paths: readonly string[]): Task[] {
  const dirs = [...new Set(paths.map(dirname))].filter((d) => d !== '/');
  return dirs.map((d) =>
    task(`dir:${d}`, `directory ${d}`, {
      'ansible.builtin.command': { argv: ['sh', '-c', MKDIR, 'persona-mkdir', d], creates: d },
    }),
  );
}

function firewallTasks(p: Profile): Task[] {
  const rules = p.network_configuration.firewall_rules.length;
  if (rules === 0) return [];
  const table = nftTableName(p.id);
  const path = nftRulesetPath(p.id);
  const listing = nftListingPath(p.id);
  return [
    ...directoryTasks([path]),
    task('firewall', `firewall ruleset ${path}`, {
      'ansible.builtin.copy': { content: nftRuleset(p), dest: path, mode: '0600', owner: 'root' },
      register: 'persona_ruleset',
    }),
    task('firewall-state', `firewall table inet ${table}: as persona loaded it?`, {
      'ansible.builtin.command': { argv: ['sh', '-c', NFT_STATE, 'persona-nft-state', table, listing] },
      check_mode: false,
      changed_when: false,
      register: 'persona_nft',
    }),
    task('firewall', `load firewall table inet ${table} (${rules} rules)`, {
      'ansible.builtin.command': { argv: ['sh', '-c', LOAD_NFT_SCRIPT, 'persona-nft', path, table, listing] },
      when: jinja("persona_ruleset is changed or persona_nft.stdout != 'same'"),
    }),
  ];
}

function securityTasks(p: Profile): Task[] {
  const sec = p.security_profile;
  const groups = [...new Set([...sec.groups, ...sec.users.flatMap((u) => u.groups)])];
  const tasks: Task[] = groups.map((g) =>
    task(`group:${g}`, `group ${g}`, { 'ansible.builtin.group': { name: g, state: 'present' } }),
  );
  for (const u of sec.users) {
    // The native driver gives a new user the group of its name (useradd -U, or -g when it exists).
    tasks.push(
      task(`group:${u.name}`, `group ${u.name} (${u.name}'s own)`, {
        'ansible.builtin.group': { name: u.name, state: 'present' },
      }),
      task(`user:${u.name}`, `user ${u.name}`, {
        'ansible.builtin.user': {
          name: u.name,
          group: u.name,
          ...(u.groups.length > 0 ? { groups: u.groups, append: true } : {}),
          ...(u.shell ? { shell: u.shell } : {}),
          create_home: true,
          state: 'present',
        },
        ignore_errors: CHECK_MAY_FAIL,
      }),
    );
    if (u.authorized_keys.length === 0) continue;
    // Names are unix names ([a-z0-9._-]): safe inside the quoted Jinja string.
    const entry = `ansible_facts.getent_passwd['${u.name}']`;
    tasks.push(
      task(`home:${u.name}`, `home of ${u.name}`, {
        'ansible.builtin.getent': { database: 'passwd', key: u.name },
        ignore_errors: CHECK_MAY_FAIL,
      }),
      task(`authorized_keys:${u.name}`, `${u.name}'s ~/.ssh`, {
        'ansible.builtin.file': {
          path: jinja(`{{ ${entry}[4] }}/.ssh`),
          state: 'directory',
          owner: u.name,
          group: jinja(`{{ ${entry}[2] }}`),
          mode: '0700',
        },
        ignore_errors: CHECK_MAY_FAIL,
      }),
      task(`authorized_keys:${u.name}`, `${u.name}'s authorized_keys (${u.authorized_keys.length} keys)`, {
        'ansible.builtin.copy': {
          content: `${u.authorized_keys.join('\n')}\n`,
          dest: jinja(`{{ ${entry}[4] }}/.ssh/authorized_keys`),
          owner: u.name,
          group: jinja(`{{ ${entry}[2] }}`),
          mode: '0600',
        },
        ignore_errors: CHECK_MAY_FAIL,
      }),
    );
  }
  tasks.push(...directoryTasks(sec.encryption_keys.map((k) => k.path)));
  sec.encryption_keys.forEach((k, i) => {
    tasks.push(
      task(`key:${k.name}`, `key ${k.name} → ${k.path} (mode ${k.mode})`, {
        'ansible.builtin.copy': {
          src: secretFile(i),
          dest: k.path,
          mode: k.mode,
          owner: k.owner,
          ...(k.group ? { group: k.group } : {}),
        },
        no_log: true,
        diff: false,
        ignore_errors: CHECK_MAY_FAIL,
      }),
    );
  });
  return tasks;
}

function fileTasks(p: Profile): Task[] {
  return [
    ...directoryTasks(p.deploy.files.map((f) => f.path)),
    ...p.deploy.files.map((f) =>
      task(`file:${f.path}`, `file ${f.path} (mode ${f.mode})`, {
        'ansible.builtin.copy': {
          content: f.content,
          dest: f.path,
          mode: f.mode,
          owner: f.owner,
          ...(f.group ? { group: f.group } : {}),
        },
        ignore_errors: CHECK_MAY_FAIL,
      }),
    ),
  ];
}

/** The privilege a play needs: root directly, anyone else through sudo (-n, as the native driver). */
export const becomeFor = (user: string | undefined): Task =>
  !user || user === 'root' ? { become: false } : { become: true, become_method: 'sudo' };

/**
 * The configure playbook for a profile: packages, the firewall table, groups, users, authorized keys, keys and
 * files, in the native driver's order. The deploy.install commands are not in it (see installPlaybook).
 */
export function configurePlaybook(p: Profile, user: string | undefined): YamlValue {
  return [
    {
      name: `persona configure ${p.id}`,
      hosts: 'all',
      // Facts only for the package manager, when there are packages: each gathering costs a round trip or more.
      ...(p.software_stack.length > 0
        ? { gather_facts: true, gather_subset: ['!all'] }
        : { gather_facts: false }),
      ...becomeFor(user),
      tasks: [...packageTasks(p), ...firewallTasks(p), ...securityTasks(p), ...fileTasks(p)],
    },
  ];
}

/** One deploy.install command as a playbook of one task (argv, no shell): run once per run, like the native one. */
export function installPlaybook(p: Profile, user: string | undefined, index: number): YamlValue {
  const argv = p.deploy.install[index]!;
  return [
    {
      name: `persona install ${p.id} #${index + 1}`,
      hosts: 'all',
      gather_facts: false,
      ...becomeFor(user),
      tasks: [task(`install:${index}`, `run: ${argv.join(' ')}`, { 'ansible.builtin.command': { argv } })],
    },
  ];
}

/** A role hook as a playbook: the role (a directory on this machine) applied to the hook's host. */
export function rolePlaybook(role: string, user: string | undefined): YamlValue {
  return [{ name: `persona hook role ${role}`, hosts: 'all', ...becomeFor(user), roles: [{ role }] }];
}
