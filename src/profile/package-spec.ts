/**
 * One entry of software_stack, parsed: a package name (Debian or RPM, capitals allowed), an optional Debian
 * architecture (`libc6:amd64`), and an optional version constraint:
 *   - `name=VERSION`   exactly that version (`redis-server=5:7.0.15-1~deb12u1`, `postgresql16=16.4-1PGDG.rhel9`);
 *   - `name=1.22.*`    any version matching the glob (`*` only);
 *   - `name>=VERSION`  that version or a newer one, compared as the host's package manager compares versions.
 * Pure: validation, configure (what counts as installed, how apt/dnf is asked) and the broker share it.
 */

export type VersionOp = '=' | '=*' | '>=';

export interface PackageSpec {
  /** The name without the architecture. */
  name: string;
  arch?: string;
  /** The name as the package manager is asked about it: `libc6:amd64`, `nginx`. */
  query: string;
  op?: VersionOp;
  version?: string;
}

const NAME = '[A-Za-z0-9][A-Za-z0-9+._-]{0,99}';
const ARCH = '[a-z0-9][a-z0-9_-]{0,31}';
const VERSION = '[A-Za-z0-9][A-Za-z0-9.+~:_*-]{0,99}';
export const packageSpecPattern = new RegExp(`^(${NAME})(?::(${ARCH}))?(?:(>=|=)(${VERSION}))?$`);

export function parsePackageSpec(spec: string): PackageSpec | undefined {
  const m = packageSpecPattern.exec(spec);
  if (!m) return undefined;
  const [, name = '', arch, op, version] = m;
  if (op === '>=' && version?.includes('*')) return undefined;
  const query = arch ? `${name}:${arch}` : name;
  const out: PackageSpec = { name, query, ...(arch ? { arch } : {}) };
  if (op && version) {
    out.op = op === '=' && version.includes('*') ? '=*' : (op as VersionOp);
    out.version = version;
  }
  return out;
}

/** The name as the package manager is asked about it, for a spec that validation accepted. */
export const packageQuery = (spec: string): string => parsePackageSpec(spec)?.query ?? spec.split(/>?=/)[0]!;

/** `1.22.*` as a whole-string match; only `*` is special. */
export function globMatches(glob: string, value: string): boolean {
  const re = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*');
  return new RegExp(`^${re}$`).test(value);
}

// ---- Version comparison -------------------------------------------------------------------------------------

/** dpkg's order of characters in a non-digit part: `~` before everything, even the end; letters before others. */
function debOrder(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === '~') return -1;
  if (/\d/.test(c)) return 0;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

function debPart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let diff = 0;
    while ((i < a.length && !/\d/.test(a[i]!)) || (j < b.length && !/\d/.test(b[j]!))) {
      const ac = debOrder(a[i]);
      const bc = debOrder(b[j]);
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    while (i < a.length && /\d/.test(a[i]!) && j < b.length && /\d/.test(b[j]!)) {
      if (!diff) diff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && /\d/.test(a[i]!)) return 1;
    if (j < b.length && /\d/.test(b[j]!)) return -1;
    if (diff) return diff;
  }
  return 0;
}

function splitDeb(v: string): [number, string, string] {
  const colon = v.indexOf(':');
  const epoch = colon > 0 ? Number(v.slice(0, colon)) || 0 : 0;
  const rest = colon > 0 ? v.slice(colon + 1) : v;
  const dash = rest.lastIndexOf('-');
  return dash > 0 ? [epoch, rest.slice(0, dash), rest.slice(dash + 1)] : [epoch, rest, ''];
}

/** dpkg --compare-versions: negative, 0 or positive. */
export function compareDebVersions(a: string, b: string): number {
  const [ea, ua, ra] = splitDeb(a);
  const [eb, ub, rb] = splitDeb(b);
  if (ea !== eb) return ea - eb;
  return debPart(ua, ub) || debPart(ra, rb);
}

/** rpmvercmp on one part: alternating runs of digits and letters, `~` before everything, `^` after the end. */
function rpmPart(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  for (;;) {
    while (i < a.length && !/[A-Za-z0-9~^]/.test(a[i]!)) i++;
    while (j < b.length && !/[A-Za-z0-9~^]/.test(b[j]!)) j++;
    if (a[i] === '~' || b[j] === '~') {
      if (a[i] !== '~') return 1;
      if (b[j] !== '~') return -1;
      i++;
      j++;
      continue;
    }
    if (a[i] === '^' || b[j] === '^') {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (a[i] !== '^') return 1;
      if (b[j] !== '^') return -1;
      i++;
      j++;
      continue;
    }
    if (i >= a.length || j >= b.length) break;
    const digits = /\d/.test(a[i]!);
    const run = digits ? /^\d+/ : /^[A-Za-z]+/;
    const sa = run.exec(a.slice(i))?.[0] ?? '';
    const sb = run.exec(b.slice(j))?.[0] ?? '';
    if (sb === '') return digits ? 1 : -1;
    i += sa.length;
    j += sb.length;
    if (digits) {
      const na = sa.replace(/^0+/, '');
      const nb = sb.replace(/^0+/, '');
      if (na.length !== nb.length) return na.length - nb.length;
    }
    if (sa !== sb) {
      const x = digits ? sa.replace(/^0+/, '') : sa;
      const y = digits ? sb.replace(/^0+/, '') : sb;
      return x < y ? -1 : 1;
    }
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

/** RPM's order of [epoch:]version[-release]; a side without a release compares on version alone. */
export function compareRpmVersions(a: string, b: string): number {
  const [ea, va, ra] = splitDeb(a);
  const [eb, vb, rb] = splitDeb(b);
  if (ea !== eb) return ea - eb;
  return rpmPart(va, vb) || (ra && rb ? rpmPart(ra, rb) : 0);
}

/** Whether an installed version satisfies the spec, as the host's package manager orders versions. */
export function satisfies(spec: PackageSpec, installed: string | undefined, manager: string): boolean {
  if (installed === undefined) return false;
  if (!spec.op || !spec.version) return true;
  if (spec.op === '=*')
    return globMatches(spec.version, installed) || globMatches(spec.version, noEpoch(installed));
  const cmp = manager === 'rpm' ? compareRpmVersions : compareDebVersions;
  if (spec.op === '>=') return cmp(installed, spec.version) >= 0;
  // rpm -q prints no epoch: an exact pin with one matches the installed version-release.
  return installed === spec.version || (manager === 'rpm' && installed === noEpoch(spec.version));
}

const noEpoch = (v: string) => v.replace(/^\d+:/, '');

/** How the package manager is asked to install the spec: one argument each, never through a shell. */
export function installArgument(spec: PackageSpec, manager: 'dpkg' | 'rpm'): string {
  if (!spec.op || !spec.version) return spec.query;
  if (manager === 'dpkg') {
    // apt-get takes `name=version` and `name=1.22.*`; a minimum is met by the candidate (checked afterwards).
    return spec.op === '>=' ? spec.query : `${spec.query}=${spec.version}`;
  }
  // dnf: `name-version[-release]`, globs in the same place, and `name >= version` as a provide.
  return spec.op === '>=' ? `${spec.query} >= ${spec.version}` : `${spec.query}-${spec.version}`;
}

/** What to ask the probe about a spec: the exact pin (so the probe says whether the sources offer it), else the name. */
export function probeSpec(spec: string): string {
  const p = parsePackageSpec(spec);
  if (!p) return spec;
  return p.op === '=' ? `${p.query}=${p.version}` : p.query;
}
