/**
 * What configure needs to know about the target, asked in one SSH call: a fixed script reports the state of every
 * queried thing (packages, groups, users, files, the firewall table), one line each, keyed by the query's index.
 * Every profile value travels as a positional argument of the script, never in its text. Building the arguments
 * and reading the report are pure, and tested.
 */
import type { InventoryHost } from '../hosts/inventory.js';
import type { Transport } from '../hosts/ssh.js';
import { privileged } from '../runbook/remote.js';

export type Query =
  | { kind: 'pkg'; name: string }
  | { kind: 'group'; name: string }
  | { kind: 'user'; name: string }
  /** A file at an absolute path. */
  | { kind: 'file'; path: string }
  /** The user's ~/.ssh/authorized_keys (the home directory from the passwd database). */
  | { kind: 'akeys'; user: string }
  /** The live table `inet <table>` and the listing digest persona recorded in `record` when it loaded it. */
  | { kind: 'nft'; table: string; record: string };

export interface FileState {
  sha256: string;
  /** Octal, as stat prints it ("600", "4755"). */
  mode: string;
  owner: string;
  group: string;
}

export interface UserState {
  /** Every group the user is in (`id -nG`), the primary one included. */
  groups: string[];
  shell?: string;
}

export interface NftState {
  /** sha256 of `nft list table inet <table>` now; undefined when there is no such table. */
  live?: string;
  /** What persona recorded right after loading it; undefined when nothing is recorded. */
  recorded?: string;
}

export interface HostReport {
  manager: 'dpkg' | 'rpm' | 'none';
  /** Whether `nft` is on the PATH. */
  nft: boolean;
  /** By query index: the fields of its report line after "r <index> <kind>", or undefined when it printed none. */
  lines: Map<number, string[]>;
}

/**
 * The digest of a table's listing, computed the same way when persona records it and when it checks it:
 * `printf '%s\n' "$(nft list table inet T)" | sha256sum`.
 */
export const NFT_LISTING_DIGEST =
  'l=$(nft list table inet "$1" 2>/dev/null) && printf "%s\\n" "$l" | sha256sum | cut -d" " -f1';

// The ${...} below are dpkg-query's format and sh parameter expansions, not template placeholders.
export const STATE_SCRIPT = [
  'LC_ALL=C; export LC_ALL',
  'if command -v dpkg-query >/dev/null 2>&1; then mgr=dpkg; elif command -v rpm >/dev/null 2>&1; then mgr=rpm; else mgr=none; fi',
  'echo "manager $mgr"',
  'if command -v nft >/dev/null 2>&1; then echo "nft 1"; else echo "nft 0"; fi',
  'filestate() {',
  '  [ -f "$1" ] || return 0',
  '  s=$(sha256sum -- "$1" | cut -d" " -f1) && m=$(stat -c "%a %U %G" -- "$1") && echo "r $i $2 $s $m"',
  '}',
  `nftdigest() { ${NFT_LISTING_DIGEST}; }`,
  'i=0',
  'while [ $# -gt 0 ]; do',
  '  kind=$1; shift',
  '  case $kind in',
  '    pkg) n=$1; shift',
  '      case $mgr in',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query format, run by sh
  '        dpkg) v=$(dpkg-query -W -f=\'${db:Status-Abbrev} ${Version}\' "$n" 2>/dev/null) &&',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: sh parameter expansion
  '          case $v in ii*) echo "r $i pkg ${v#* }" ;; esac ;;',
  '        rpm) v=$(rpm -q --qf "%{VERSION}-%{RELEASE}" "$n" 2>/dev/null) && echo "r $i pkg $v" ;;',
  '      esac ;;',
  '    group) getent group "$1" >/dev/null && echo "r $i group"; shift ;;',
  '    user) n=$1; shift',
  // The shell is the passwd entry's last field; printed last, it may be empty.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: sh parameter expansion
  '      if e=$(getent passwd "$n"); then echo "r $i user $(id -nG -- "$n" | tr " " ",") ${e##*:}"; fi ;;',
  '    file) filestate "$1" file; shift ;;',
  '    akeys) n=$1; shift',
  '      if e=$(getent passwd "$n"); then h=$(printf "%s\\n" "$e" | cut -d: -f6); filestate "$h/.ssh/authorized_keys" akeys; fi ;;',
  '    nft) live=$(nftdigest "$1") || live=; [ -n "$live" ] || live=-',
  '      rec=$(head -c 64 -- "$2" 2>/dev/null) || rec=; [ -n "$rec" ] || rec=-',
  '      echo "r $i nft $live $rec"; shift 2 ;;',
  '    *) echo "persona-state: unknown query $kind" >&2; exit 2 ;;',
  '  esac',
  '  i=$((i + 1))',
  'done',
].join('\n');

/** The script's arguments for the queries, in order. */
export function queryArgs(queries: readonly Query[]): string[] {
  const fields = (q: Query): string[] => {
    if (q.kind === 'file') return [q.kind, q.path];
    if (q.kind === 'akeys') return [q.kind, q.user];
    if (q.kind === 'nft') return [q.kind, q.table, q.record];
    return [q.kind, q.name];
  };
  return queries.flatMap(fields);
}

export function parseReport(queries: readonly Query[], stdout: string): HostReport {
  const report: HostReport = { manager: 'none', nft: false, lines: new Map() };
  for (const line of stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'manager' && (f[1] === 'dpkg' || f[1] === 'rpm' || f[1] === 'none')) report.manager = f[1];
    if (f[0] === 'nft') report.nft = f[1] === '1';
    if (f[0] !== 'r') continue;
    const index = Number(f[1]);
    // A line for another kind than the query at its index is not trusted: the query reads as "nothing found".
    if (Number.isInteger(index) && queries[index]?.kind === f[2]) report.lines.set(index, f.slice(3));
  }
  return report;
}

/** Reads one query's fields from the report. */
type Reader<T> = (report: HostReport) => T;

/**
 * Collects the queries for one report, each returning how to read its answer:
 * `const v = ask.pkg('rsync'); ...; v(await hostReport(ssh, host, ask.queries))`.
 */
export class Ask {
  readonly queries: Query[] = [];

  private add<T>(q: Query, read: (fields: string[] | undefined) => T): Reader<T> {
    const index = this.queries.push(q) - 1;
    return (report) => read(report.lines.get(index));
  }

  /** The installed version, or undefined. */
  pkg(name: string): Reader<string | undefined> {
    return this.add({ kind: 'pkg', name }, (f) => f?.[0]);
  }

  group(name: string): Reader<boolean> {
    return this.add({ kind: 'group', name }, (f) => f !== undefined);
  }

  user(name: string): Reader<UserState | undefined> {
    return this.add({ kind: 'user', name }, (f) =>
      f ? { groups: (f[0] ?? '').split(',').filter(Boolean), ...(f[1] ? { shell: f[1] } : {}) } : undefined,
    );
  }

  file(path: string): Reader<FileState | undefined> {
    return this.add({ kind: 'file', path }, fileState);
  }

  authorizedKeys(user: string): Reader<FileState | undefined> {
    return this.add({ kind: 'akeys', user }, fileState);
  }

  nft(table: string, record: string): Reader<NftState> {
    return this.add({ kind: 'nft', table, record }, (f) => {
      const [live, recorded] = f ?? [];
      return {
        ...(live && live !== '-' ? { live } : {}),
        ...(recorded && recorded !== '-' ? { recorded } : {}),
      };
    });
  }
}

function fileState(f: string[] | undefined): FileState | undefined {
  const [sha256, mode, owner, group] = f ?? [];
  return sha256 && mode && owner && group ? { sha256, mode, owner, group } : undefined;
}

/** Asks the host, as root (it reads other users' files and the firewall), in one SSH call. */
export async function hostReport(
  ssh: Transport,
  host: InventoryHost,
  queries: readonly Query[],
  signal?: AbortSignal,
): Promise<HostReport> {
  const r = await ssh.run(
    host,
    privileged(host, ['sh', '-c', STATE_SCRIPT, 'persona-state', ...queryArgs(queries)]),
    signal ? { signal } : {},
  );
  return parseReport(queries, r.stdout);
}

/** Octal modes compared by value: "0600" and "600" are the same mode. */
export const sameMode = (a: string, b: string) => Number.parseInt(a, 8) === Number.parseInt(b, 8);

/** What a file should be; `group` only when the profile names one. */
export interface WantedFile {
  sha256: string;
  mode: string;
  owner: string;
  group?: string;
}

/** Why the file is not as wanted ("absent", "content differs, mode 644 not 0600"), or undefined when it is. */
export function fileDiff(want: WantedFile, have: FileState | undefined): string | undefined {
  if (!have) return 'absent';
  const why: string[] = [];
  if (have.sha256 !== want.sha256) why.push('content differs');
  if (!sameMode(have.mode, want.mode)) why.push(`mode ${have.mode} not ${want.mode}`);
  if (have.owner !== want.owner) why.push(`owner ${have.owner} not ${want.owner}`);
  if (want.group !== undefined && have.group !== want.group)
    why.push(`group ${have.group} not ${want.group}`);
  return why.length > 0 ? why.join(', ') : undefined;
}

/** Why the user is not as wanted (absent, not in some groups, another shell), or undefined when it is. */
export function userDiff(want: { groups: readonly string[]; shell?: string }, have: UserState | undefined) {
  if (!have) return 'absent';
  const why: string[] = [];
  const missing = want.groups.filter((g) => !have.groups.includes(g));
  if (missing.length > 0) why.push(`not in ${missing.join(', ')}`);
  if (want.shell !== undefined && have.shell !== want.shell)
    why.push(`shell ${have.shell ?? '(none)'} not ${want.shell}`);
  return why.length > 0 ? why.join(', ') : undefined;
}

/**
 * Why the firewall must be (re)loaded, or undefined: the ruleset file is not persona's, or the live table is
 * not what persona loaded from it (absent, flushed, edited: its listing's digest differs from the one recorded).
 */
export function firewallDiff(rulesetSha256: string, file: FileState | undefined, nft: NftState) {
  if (!file) return 'ruleset file absent';
  if (file.sha256 !== rulesetSha256) return 'ruleset file differs';
  if (!nft.live) return 'table not loaded';
  if (!nft.recorded) return 'no record of the table persona loaded';
  if (nft.live !== nft.recorded) return 'live table differs from what persona loaded';
  return undefined;
}
