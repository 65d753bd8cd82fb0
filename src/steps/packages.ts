/**
 * Installing the software stack through the host's package manager, exact versions when the profile pins them.
 */
import type { InventoryHost } from '../hosts/inventory.js';
import type { ExecResult, Transport } from '../hosts/ssh.js';
import { installArgument, parsePackageSpec, satisfies } from '../profile/package-spec.js';
import { privileged, runPrivileged } from '../runbook/remote.js';

const lastLine = (text: string) => text.trim().split('\n').slice(-1)[0] ?? '';

export interface PackageState {
  manager: 'dpkg' | 'rpm' | 'none';
  /** name -> installed version */
  installed: Record<string, string>;
}

// The ${...} below are dpkg-query's format and sh parameter expansions, not template placeholders.
const QUERY = [
  'if command -v dpkg-query >/dev/null 2>&1; then echo manager dpkg',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query format, run by sh
  '  for n in "$@"; do v=$(dpkg-query -W -f=\'${db:Status-Abbrev} ${Version}\' "$n" 2>/dev/null) || continue',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: sh parameter expansion
  '    case $v in ii*) echo "pkg $n ${v#* }" ;; esac; done',
  'elif command -v rpm >/dev/null 2>&1; then echo manager rpm',
  '  for n in "$@"; do v=$(rpm -q --qf "%{VERSION}-%{RELEASE}" "$n" 2>/dev/null) && echo "pkg $n $v"; done',
  'else echo manager none; fi',
].join('\n');

export async function packageState(
  ssh: Transport,
  host: InventoryHost,
  names: readonly string[],
  signal?: AbortSignal,
): Promise<PackageState> {
  const r = await ssh.run(host, ['sh', '-c', QUERY, 'persona-packages', ...names], signal ? { signal } : {});
  const state: PackageState = { manager: 'none', installed: {} };
  for (const line of r.stdout.split('\n')) {
    const [tag, a, b] = line.trim().split(/\s+/);
    if (tag === 'manager') state.manager = a as PackageState['manager'];
    if (tag === 'pkg' && a && b) state.installed[a] = b.trim();
  }
  return state;
}

/**
 * The specs still to install: absent, or present at a version the spec does not accept (another exact version,
 * one outside the glob, one older than the minimum, compared as dpkg or rpm compares versions).
 */
export function missingPackages(stack: readonly string[], state: PackageState): string[] {
  return stack.filter((spec) => {
    const p = parsePackageSpec(spec);
    if (!p) return true;
    return !satisfies(p, state.installed[p.query], state.manager);
  });
}

/** The arguments apt-get or dnf gets for the specs (see installArgument). */
export function installArguments(specs: readonly string[], manager: 'dpkg' | 'rpm'): string[] {
  return specs.map((spec) => {
    const p = parsePackageSpec(spec);
    return p ? installArgument(p, manager) : spec;
  });
}

/**
 * How old apt's package lists may be before an install updates them first (apt-get update, about 2 s in the lab):
 * Ansible's apt `cache_valid_time`, at one hour. Lists that do not know a wanted package or version, or point to a
 * file the mirror no longer has, make the install fail: then persona updates them and installs once more.
 */
export const APT_LISTS_VALID_S = 3600;

/** Seconds since apt last replaced its lists (the directory's mtime, as Ansible reads it); huge when absent. */
const LISTS_AGE = 'now=$(date +%s); t=$(stat -c %Y /var/lib/apt/lists 2>/dev/null) || t=0; echo $((now - t))';

const aptInstall = (specs: readonly string[]) => [
  'env',
  'DEBIAN_FRONTEND=noninteractive',
  'apt-get',
  'install',
  '-y',
  '-q',
  '--no-install-recommends',
  '--allow-downgrades',
  '-o',
  'Dpkg::Options::=--force-confdef',
  '-o',
  'Dpkg::Options::=--force-confold',
  // After "--": a package argument is never an option.
  '--',
  ...installArguments(specs, 'dpkg'),
];

export interface Installed {
  /** apt-get's "Setting up" and "Unpacking" lines, or dnf's last output. */
  output: string;
  /** Why apt's lists were, or were not, updated first (dpkg only). */
  lists?: string;
}

export async function installPackages(
  ssh: Transport,
  host: InventoryHost,
  specs: readonly string[],
  manager: PackageState['manager'],
  signal?: AbortSignal,
): Promise<Installed> {
  if (manager === 'dpkg') {
    const update = () => runPrivileged(ssh, host, ['apt-get', 'update', '-q'], signal);
    const said = (
      await runPrivileged(ssh, host, ['sh', '-c', LISTS_AGE, 'persona-apt-lists-age'], signal)
    ).stdout.trim();
    // Anything but a number of seconds (an odd shell, a clock before the lists' mtime) counts as unknown: update.
    const age = /^\d+$/.test(said) ? Number(said) : Number.NaN;
    let lists: string;
    let r: ExecResult | undefined;
    if (Number.isFinite(age) && age >= 0 && age < APT_LISTS_VALID_S) {
      lists = `apt's lists are ${age} s old (under ${APT_LISTS_VALID_S} s): not updated first`;
      r = await ssh.exec(host, privileged(host, aptInstall(specs)), signal ? { signal } : {});
      if (r.exitCode !== 0) {
        lists += `; the install failed (${lastLine(r.stderr)}): updated them and installed again`;
        r = undefined;
      }
    } else {
      lists = Number.isFinite(age)
        ? `apt's lists are ${age} s old (${APT_LISTS_VALID_S} s or more): updated first`
        : `the age of apt's lists is unknown (${said.slice(0, 40) || 'no answer'}): updated first`;
    }
    if (!r) {
      await update();
      r = await runPrivileged(ssh, host, aptInstall(specs), signal);
    }
    return {
      output: r.stdout
        .split('\n')
        .filter((l) => /^(Setting up|Unpacking) /.test(l))
        .join('\n'),
      lists,
    };
  }
  if (manager === 'rpm') {
    const r = await runPrivileged(
      ssh,
      host,
      ['dnf', 'install', '-y', '--', ...installArguments(specs, 'rpm')],
      signal,
    );
    return { output: r.stdout.slice(-2000) };
  }
  throw new Error(`${host.name} has no package manager persona knows (dpkg or rpm)`);
}
