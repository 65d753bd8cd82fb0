/**
 * Validation of persona profiles: all problems at once, each named by its JSON path and its rule.
 */
import type * as z from 'zod';
import { PersonaError, type Problem, ValidationError } from '../errors.js';
import { parseJsonText } from './json-text.js';
import { packageQuery } from './package-spec.js';
import { type Profile, profileSchema } from './schema.js';

export function jsonPointer(path: ReadonlyArray<PropertyKey>): string {
  return path.map((seg) => `/${String(seg).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}

/** A short, safe rendering of an offending value: never long, never multi-line. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}..."` : text;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestScore) {
      best = c;
      bestScore = d;
    }
  }
  return best;
}

/** The field names an object schema at `path` accepts, for "did you mean" hints. */
function knownKeys(schema: z.ZodType, path: ReadonlyArray<PropertyKey>, input: unknown): string[] {
  let node: unknown = schema;
  let value: unknown = input;
  for (const seg of path) {
    node = unwrap(node);
    const def = (node as { def?: Record<string, unknown> }).def;
    if (!def) return [];
    if (def.type === 'object') node = (def.shape as Record<string, unknown>)[String(seg)];
    else if (def.type === 'array') node = def.element;
    else if (def.type === 'union') {
      const item =
        value && typeof value === 'object' ? (value as Record<string, unknown>)[String(seg)] : undefined;
      node = pickUnionOption(def, item) ?? undefined;
      if (node) node = (unwrap(node) as { def: { shape: Record<string, unknown> } }).def.shape[String(seg)];
    } else return [];
    value =
      value && typeof value === 'object'
        ? (value as Record<string | number, unknown>)[seg as string]
        : undefined;
    if (!node) return [];
  }
  node = unwrap(node);
  let def = (node as { def?: Record<string, unknown> }).def;
  if (def?.type === 'union') {
    node = pickUnionOption(def, value);
    def = node ? (unwrap(node) as { def?: Record<string, unknown> }).def : undefined;
  }
  return def?.type === 'object' ? Object.keys(def.shape as object) : [];
}

function unwrap(node: unknown): unknown {
  let n = node as { def?: { type: string; innerType?: unknown } } | undefined;
  while (n?.def && (n.def.type === 'default' || n.def.type === 'optional' || n.def.type === 'pipe')) {
    n = (n.def.innerType ?? (n.def as { in?: unknown }).in) as typeof n;
  }
  return n;
}

function pickUnionOption(def: Record<string, unknown>, value: unknown): unknown {
  const disc = def.discriminator as string | undefined;
  const options = (def.options as unknown[]) ?? [];
  if (!disc || !value || typeof value !== 'object') return undefined;
  const tag = (value as Record<string, unknown>)[disc];
  return options.find((o) => {
    const shape = (unwrap(o) as { def: { shape: Record<string, { def?: { values?: unknown[] } }> } }).def
      .shape;
    return shape[disc]?.def?.values?.includes(tag);
  });
}

export function issuesToProblems(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  schema: z.ZodType = profileSchema,
): Problem[] {
  const problems: Problem[] = [];
  for (const issue of issues) {
    const path = jsonPointer(issue.path);
    const got = (issue as { input?: unknown }).input;
    switch (issue.code) {
      case 'unrecognized_keys': {
        const keys = knownKeys(schema, issue.path, input);
        for (const key of issue.keys) {
          const hint = suggest(key, keys);
          problems.push({
            path: `${path}${jsonPointer([key])}`,
            message: `unknown field${hint ? ` (did you mean "${hint}"?)` : ''}`,
          });
        }
        break;
      }
      case 'invalid_union': {
        const note = issue as { discriminator?: string; options?: unknown[] };
        if (note.discriminator) {
          problems.push({
            path: `${path}`,
            message: `${issue.message.startsWith('must') ? issue.message : `must be one of ${note.options?.map((o) => JSON.stringify(o)).join(', ')}`}, got ${describeValue(got && typeof got === 'object' ? (got as Record<string, unknown>)[note.discriminator] : got)}`,
          });
        } else problems.push({ path, message: `${issue.message}, got ${describeValue(got)}` });
        break;
      }
      case 'invalid_key': {
        // A record's key (a host_labels label, a fencing.power env name): the key rule's own message.
        const inner = (issue as { issues?: Array<{ message: string }> }).issues?.[0];
        problems.push({
          path,
          message: `${inner ? `the name ${inner.message}` : issue.message}, got ${describeValue(got)}`,
        });
        break;
      }
      case 'invalid_type':
        if (got === undefined) problems.push({ path, message: 'is required' });
        else
          problems.push({
            path,
            message: `${fixMessage(issue.message, issue.expected)}, got ${describeValue(got)}`,
          });
        break;
      default:
        problems.push({ path, message: `${issue.message}, got ${describeValue(got)}` });
    }
  }
  // One problem per path: the first rule a value breaks is the one to fix first.
  const seen = new Set<string>();
  return problems.filter((p) => !seen.has(p.path) && seen.add(p.path));
}

function fixMessage(message: string, expected: string): string {
  if (message.startsWith('must')) return message;
  const article = /^[aeiou]/.test(expected) ? 'an' : 'a';
  return `must be ${article} ${expected}`;
}

export interface ParsedProfile {
  profile: Profile;
  /** The text as written by its author; stores keep this, not a normalised copy. */
  text: string;
}

/** Checks a parsed JSON value; returns the normalised profile or throws ValidationError with every problem. */
export function validateProfileValue(source: string, value: unknown, expectedId?: string): Profile {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ValidationError(source, [
      { path: '', message: `must be a JSON object, got ${describeValue(value)}` },
    ]);
  }
  const result = profileSchema.safeParse(value, { reportInput: true });
  const problems = result.success ? [] : issuesToProblems(result.error.issues, value);
  const id = (value as { id?: unknown }).id;
  if (expectedId !== undefined && typeof id === 'string' && id !== expectedId) {
    problems.push({
      path: '/id',
      message: `must match the profile being written ("${expectedId}"), got "${id}"`,
    });
  }
  if (result.success) problems.push(...crossFieldProblems(result.data));
  if (problems.length > 0) throw new ValidationError(source, problems);
  return (result as { data: Profile }).data;
}

export function parseProfileText(source: string, text: string, expectedId?: string): ParsedProfile {
  if (text.trim() === '') {
    throw new PersonaError('E_INVALID_PROFILE', `${source}: is empty`, { details: { source } });
  }
  const value = parseJsonText(source, text);
  return { profile: validateProfileValue(source, value, expectedId), text };
}

/** Rules that span fields. */
function crossFieldProblems(profile: Profile): Problem[] {
  const problems: Problem[] = [];
  if (profile.application_dependencies.includes(profile.id)) {
    const at = profile.application_dependencies.indexOf(profile.id);
    problems.push({
      path: `/application_dependencies/${at}`,
      message: 'an application cannot depend on itself',
    });
  }
  const seen = new Map<string, number>();
  profile.software_stack.forEach((spec, i) => {
    const name = packageQuery(spec);
    const first = seen.get(name);
    if (first !== undefined) {
      problems.push({
        path: `/software_stack/${i}`,
        message: `package "${name}" is listed twice (also at /software_stack/${first})`,
      });
    } else seen.set(name, i);
  });
  problems.push(...dataPathProblems(profile));
  problems.push(...firewallProblems(profile));
  const sec = profile.security_profile;
  sec.encryption_keys.forEach((key, i) => {
    const mode = Number.parseInt(key.mode, 8);
    if ((mode & 0o007) !== 0)
      problems.push({
        path: `/security_profile/encryption_keys/${i}/mode`,
        message: `mode ${key.mode} lets every user on the host ${mode & 0o004 ? 'read' : 'use'} the key: use "0600", or "0640" with a group`,
      });
    if (isAuthorizedKeys(key.path))
      problems.push({
        path: `/security_profile/encryption_keys/${i}/path`,
        message:
          "is an authorized_keys file: writing a key there would replace the SSH access to the host (persona's own included); give users their keys in security_profile.users[].authorized_keys",
      });
  });
  profile.deploy.files.forEach((file, i) => {
    if (isAuthorizedKeys(file.path))
      problems.push({
        path: `/deploy/files/${i}/path`,
        message:
          "is an authorized_keys file: writing it would replace the SSH access to the host (persona's own included); give users their keys in security_profile.users[].authorized_keys",
      });
  });
  profile.health_checks.forEach((check, i) => {
    if (check.type === 'http' && check.ca_file && check.scheme !== 'https')
      problems.push({
        path: `/health_checks/${i}/ca_file`,
        message: 'is for https checks only: add "scheme": "https" or drop ca_file',
      });
  });
  problems.push(...postgresqlProblems(profile));
  if (
    profile.data.migration !== 'none' &&
    profile.data.migration !== 'postgresql' &&
    profile.data.paths.length === 0 &&
    profile.data.backup
  ) {
    problems.push({ path: '/data/paths', message: 'a backup is given but no data paths to restore it to' });
  }
  const names = new Set<string>();
  profile.health_checks.forEach((check, i) => {
    if (check.name && names.has(check.name)) {
      problems.push({
        path: `/health_checks/${i}/name`,
        message: `duplicate health check name "${check.name}"`,
      });
    }
    if (check.name) names.add(check.name);
  });
  return problems;
}

/**
 * data.migration postgresql restores a cluster from a base backup and a WAL archive on an inventory host; its data
 * directory is the one data path (or none is listed).
 */
function postgresqlProblems(profile: Profile): Problem[] {
  const { data } = profile;
  if (data.migration !== 'postgresql')
    return data.postgresql
      ? [
          {
            path: '/data/postgresql',
            message: 'is for data.migration "postgresql" only: set it, or drop this',
          },
        ]
      : [];
  const problems: Problem[] = [];
  if (!data.postgresql)
    problems.push({
      path: '/data/postgresql',
      message: 'is needed with data.migration "postgresql": the cluster (version, name, port) and max_lag',
    });
  if (!data.backup?.host)
    problems.push({
      path: data.backup ? '/data/backup/host' : '/data/backup',
      message:
        'is needed with data.migration "postgresql": the inventory host holding the base backup and the WAL archive',
    });
  if (data.postgresql && data.paths.length > 0) {
    const dir = postgresqlDataDirectory(data.postgresql);
    if (data.paths.length > 1 || normalPath(data.paths[0]!) !== dir)
      problems.push({
        path: '/data/paths',
        message: `with data.migration "postgresql" must be empty or exactly ["${dir}"], the cluster's data directory`,
      });
  }
  return problems;
}

/** The data directory of a data.postgresql cluster: given, else Debian's /var/lib/postgresql/VERSION/CLUSTER. */
export function postgresqlDataDirectory(pg: NonNullable<Profile['data']['postgresql']>): string {
  return normalPath(pg.data_directory ?? `/var/lib/postgresql/${pg.version}/${pg.cluster}`);
}

/** `/home/x/.ssh/authorized_keys`, `/root/.ssh/authorized_keys2`: sshd's files of who may log in. */
const isAuthorizedKeys = (path: string) => /\/\.ssh\/authorized_keys[^/]*$/.test(path);

/** Directories no application owns: copying onto them with `rsync --delete` would wipe the system. */
export const SYSTEM_DIRECTORIES = [
  '/',
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/home',
  '/lib',
  '/lib64',
  '/opt',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/srv',
  '/sys',
  '/tmp',
  '/usr',
  '/usr/local',
  '/var',
  '/var/lib',
  '/var/log',
];

const normalPath = (p: string) => (p.length > 1 ? p.replace(/\/+$/, '') : p);
const inside = (path: string, dir: string) => dir === '/' || path === dir || path.startsWith(`${dir}/`);

/**
 * Data paths are copied with `rsync --delete`, each onto itself: a system directory, the same path twice, or one
 * path inside another would wipe or fight over files. A deploy file or key inside a data path would be replaced
 * by the source's copy (or deleted) when migrate runs after configure.
 */
function dataPathProblems(profile: Profile): Problem[] {
  const problems: Problem[] = [];
  const paths = profile.data.paths.map(normalPath);
  paths.forEach((path, i) => {
    const at = `/data/paths/${i}`;
    if (SYSTEM_DIRECTORIES.includes(path)) {
      problems.push({
        path: at,
        message: `is the system directory ${path}: migrate copies data paths with rsync --delete; name the application's own directory (like ${path === '/' ? '/srv/app' : `${path}/app`})`,
      });
      return;
    }
    const same = paths.indexOf(path);
    if (same < i) {
      problems.push({ path: at, message: `is listed twice (also at /data/paths/${same}): drop one` });
      return;
    }
    const outer = paths.findIndex((other, j) => j !== i && other !== path && inside(path, other));
    if (outer >= 0)
      problems.push({
        path: at,
        message: `is inside ${paths[outer]} (/data/paths/${outer}), which is copied with it: drop the inner path`,
      });
  });
  const within = (path: string) => paths.findIndex((d) => inside(normalPath(path), d));
  const wiped = (path: string, where: string) => {
    const d = within(path);
    if (d >= 0 && !SYSTEM_DIRECTORIES.includes(paths[d]!))
      problems.push({
        path: where,
        message: `is inside the data path ${paths[d]} (/data/paths/${d}): migrate would replace it with the source's copy (rsync --delete); put it outside the data`,
      });
  };
  for (const [i, f] of profile.deploy.files.entries()) wiped(f.path, `/deploy/files/${i}/path`);
  for (const [i, k] of profile.security_profile.encryption_keys.entries())
    wiped(k.path, `/security_profile/encryption_keys/${i}/path`);
  return problems;
}

type FirewallRule = Profile['network_configuration']['firewall_rules'][number];

const portRange = (port: number | string): [number, number] => {
  if (typeof port === 'number') return [port, port];
  const [lo = 0, hi = 0] = port.split('-').map(Number);
  return [lo, hi];
};
const covers = (rule: FirewallRule, port: number) => {
  if (rule.protocol !== 'tcp' || rule.port === undefined) return false;
  const [lo, hi] = portRange(rule.port);
  return lo <= port && port <= hi;
};

/**
 * The index of the first rule that drops or rejects TCP to `sshPort` with no earlier rule accepting it, or -1.
 * persona decides this without knowing its own address: an accept rule for the port from any source is taken as
 * the operator's way in (nft evaluates rules in order, and the table's policy is accept).
 */
export function ruleCuttingSsh(rules: readonly FirewallRule[], sshPort: number): number {
  for (const [i, rule] of rules.entries()) {
    if (!covers(rule, sshPort)) continue;
    if (rule.action === 'accept') return -1;
    return i;
  }
  return -1;
}

function firewallProblems(profile: Profile): Problem[] {
  const problems: Problem[] = [];
  const rules = profile.network_configuration.firewall_rules;
  rules.forEach((rule, i) => {
    const at = `/network_configuration/firewall_rules/${i}`;
    const icmp = rule.protocol === 'icmp' || rule.protocol === 'icmpv6';
    if (!icmp && rule.port === undefined)
      problems.push({ path: `${at}/port`, message: `is required for ${rule.protocol}` });
    if (icmp && rule.port !== undefined)
      problems.push({
        path: `${at}/port`,
        message: `must be absent for ${rule.protocol} (ICMP has no ports)`,
      });
    const v6 = rule.source !== 'any' && rule.source.includes(':');
    if (rule.source !== 'any' && ((rule.protocol === 'icmp' && v6) || (rule.protocol === 'icmpv6' && !v6)))
      problems.push({
        path: `${at}/source`,
        message: `is an ${v6 ? 'IPv6' : 'IPv4'} range, but ${rule.protocol} is ${v6 ? 'IPv4' : 'IPv6'} only: use ${rule.protocol === 'icmp' ? 'icmpv6' : 'icmp'} or an ${v6 ? 'IPv4' : 'IPv6'} range`,
      });
  });
  const cut = ruleCuttingSsh(rules, 22);
  if (cut >= 0)
    problems.push({
      path: `/network_configuration/firewall_rules/${cut}`,
      message: `${rules[cut]!.action}s SSH (tcp port 22), which persona needs to reach the host: first accept that port from your network in an earlier rule`,
    });
  return problems;
}
