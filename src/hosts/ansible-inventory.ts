/**
 * Reading an existing Ansible inventory (INI, YAML, the JSON of `ansible-inventory --list`, or a directory of them
 * with `group_vars/` and `host_vars/`) the way ansible-core reads it, then into persona's inventory shape.
 *
 * Ansible's rules, kept here: INI host lines are split like shlex and values go through literal_eval; `host:port`
 * and ranges (`[01:50:2]`, `[a:f]`, `[:5]`) expand as Ansible expands them; every group without a parent is a child
 * of `all`; a host's variables are `all`'s, then its groups' sorted by depth, `ansible_group_priority` and name,
 * then `group_vars/all`, then `group_vars/<group>` in the same order, then its own, then `host_vars/<host>`.
 *
 * What persona takes from them: `ansible_host` (or `ansible_ssh_host`), port, user, key file, a bastion out of the
 * ssh arguments, `ansible_connection=local`, `persona_apps`, each group as the label `group.<name>`, and every
 * other variable usable as a label. Everything else is left out with a warning that says why, for which hosts and
 * where it was written (file:line). Nothing is executed: scripts and inventory plugins are refused.
 */
import { constants } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { PersonaError } from '../errors.js';
import { applicationId, integer, label, labelValue } from '../profile/rules.js';
import { type PyValue, pyLiteral, shlexSplit } from './ansible-text.js';
import { address, jumpHost, keyFile, loginUser } from './inventory.js';
import {
  type InventoryWarning,
  looksSecret,
  SECRET_IGNORED,
  WarningCollector,
} from './inventory-warnings.js';

/** A variable's value as Ansible holds it, and where it was written (file:line when known). */
interface Var {
  value: unknown;
  where: string;
}

interface Group {
  name: string;
  vars: Map<string, Var>;
  /** ansible_group_priority: not a variable in Ansible, but the group's rank among groups of the same depth. */
  priority: number;
  children: string[];
  parents: Set<string>;
  hosts: string[];
}

interface Host {
  name: string;
  vars: Map<string, Var>;
  where: string;
}

/** The most hosts one pattern may expand to; more is an error that names the line, never a silent cut. */
export const MAX_RANGE_HOSTS = 10_000;

const fail = (where: string, message: string) =>
  new PersonaError('E_INVALID_INPUT', `${where}: ${message}`, {
    hint: 'persona reads Ansible inventories as ansible-core does; `ansible-inventory -i FILE --list` shows how Ansible reads this one.',
  });

/** Ansible's inventory data: groups, hosts and their inline variables, before precedence is applied. */
export class AnsibleData {
  readonly groups = new Map<string, Group>();
  readonly hosts = new Map<string, Host>();
  /** Directories whose group_vars/ and host_vars/ apply, in the order of the sources. */
  readonly varsDirs: string[] = [];
  /** The hostvars of `ansible-inventory --list` JSON: already final, applied as they are. */
  readonly finalVars = new Map<string, Map<string, Var>>();

  constructor() {
    this.group('all');
    this.group('ungrouped');
    this.addChild('all', 'ungrouped');
  }

  group(name: string): Group {
    let g = this.groups.get(name);
    if (!g) {
      g = { name, vars: new Map(), priority: 1, children: [], parents: new Set(), hosts: [] };
      this.groups.set(name, g);
    }
    return g;
  }

  setGroupVar(group: string, key: string, v: Var): void {
    const g = this.group(group);
    if (key === 'ansible_group_priority') {
      const n = Number(v.value);
      if (!Number.isInteger(n))
        throw fail(v.where, `ansible_group_priority must be an integer, not "${String(v.value)}"`);
      g.priority = n;
    } else g.vars.set(key, v);
  }

  addChild(parent: string, child: string): void {
    const p = this.group(parent);
    const c = this.group(child);
    if (!p.children.includes(child)) p.children.push(child);
    c.parents.add(parent);
  }

  addHost(name: string, group: string | undefined, port: number | undefined, where: string): Host {
    let h = this.hosts.get(name);
    if (!h) {
      h = { name, vars: new Map(), where };
      this.hosts.set(name, h);
      // Ansible sets the port of `host:port` when it first creates the host only.
      if (port !== undefined) h.vars.set('ansible_port', { value: port, where });
    }
    if (group) {
      const g = this.group(group);
      if (!g.hosts.includes(name)) g.hosts.push(name);
    }
    return h;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Host patterns: ansible.parsing.utils.addresses.parse_address and expand_hostname_range.

const NUM_RANGE = String.raw`\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const HEX_RANGE = String.raw`\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]`;
const ALNUM_RANGE = String.raw`\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const V6 = `(?:[0-9a-f]{1,4}|${HEX_RANGE})`;
const V4 = `(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|${NUM_RANGE})`;
const LABEL = `(?:[\\p{L}\\p{N}_]|${ALNUM_RANGE})(?:[\\p{L}\\p{N}_-]|${ALNUM_RANGE})*(?<![_-])`;
const PATTERNS = {
  bracketedHostport: /^\[(.+)\]:([0-9]+)$/,
  hostport: /^((?:[^:[\]]|\[[^\]]*\])*):([0-9]+)$/,
  ipv4: new RegExp(`^(?:${V4}\\.){3}${V4}$`, 'i'),
  ipv6: new RegExp(
    `^(?:(?:${V6}:){7}${V6}|(?:${V6}:){1,6}:|(?:${V6}:)(?::${V6}){1,6}|(?:${V6}:){2}(?::${V6}){1,5}|` +
      `(?:${V6}:){3}(?::${V6}){1,4}|(?:${V6}:){4}(?::${V6}){1,3}|(?:${V6}:){5}(?::${V6}){1,2}|` +
      `(?:${V6}:){6}(?::${V6})|:(?::${V6}){1,6}|${V6}?::|(?:0:){6}(?:${V6}\\.){3}${V6}|` +
      `::(?:ffff:)?(?:${V6}\\.){3}${V6}|(?:0:){5}ffff:(?:${V6}\\.){3}${V6})$`,
    'i',
  ),
  hostname: new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, 'iu'),
};

/** parse_address(pattern, allow_ranges=True), or the pattern itself without a port when it is not an address. */
function splitPort(pattern: string): { pattern: string; port?: number } {
  let address = pattern;
  let port: number | undefined;
  for (const re of [PATTERNS.bracketedHostport, PATTERNS.hostport]) {
    const m = re.exec(address);
    if (m) {
      address = m[1]!;
      port = Number(m[2]);
    }
  }
  if (![PATTERNS.ipv4, PATTERNS.ipv6, PATTERNS.hostname].some((re) => re.test(address))) return { pattern };
  return { pattern: address, ...(port !== undefined ? { port } : {}) };
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** How many hosts a pattern makes, without making them. */
function rangeSize(pattern: string): number {
  if (!pattern.includes('[')) return 1;
  const { head, seq, tail } = parseRange(pattern);
  const rest = head + tail;
  return seq.count * (rest.includes('[') ? rangeSize(`${head}0${tail}`) : 1);
}

function parseRange(line: string) {
  const open = line.indexOf('[');
  const close = line.indexOf(']', open);
  // Ansible replaces the first '[' and the first ']' after it (or before it: then the split fails).
  const firstClose = line.indexOf(']');
  if (firstClose < open || close < 0) throw new Error('host range must be begin:end or begin:end:step');
  const head = line.slice(0, open);
  const nrange = line.slice(open + 1, close);
  const tail = line.slice(close + 1);
  const bounds = nrange.split(':');
  if (bounds.length !== 2 && bounds.length !== 3)
    throw new Error('host range must be begin:end or begin:end:step');
  const beg = bounds[0] || '0';
  const end = bounds[1]!;
  const stepText = bounds[2] ?? '1';
  if (!end) throw new Error('host range must specify end value');
  if (!/^[+-]?\d+$/.test(stepText.trim()) || Number(stepText) === 0)
    throw new Error(`host range step must be a non-zero integer, not "${stepText}"`);
  const step = Number(stepText);
  let width = 0;
  if (beg[0] === '0' && beg.length > 1) {
    width = beg.length;
    if (width !== end.length) throw new Error('host range must specify equal-length begin and end formats');
  }
  const ib = LETTERS.indexOf(beg);
  const ie = LETTERS.indexOf(end);
  if (beg.length === 1 && end.length === 1 && ib >= 0 && ie >= 0) {
    if (ib > ie) throw new Error('host range must have begin <= end');
    if (step < 0) return { head, tail, seq: { count: 0, items: () => [] as string[] } };
    const items = () => {
      const out: string[] = [];
      for (let i = ib; i <= ie; i += step) out.push(LETTERS[i]!);
      return out;
    };
    return { head, tail, seq: { count: Math.floor((ie - ib) / step) + 1, items } };
  }
  if (!/^\s*[+-]?\d+\s*$/.test(beg) || !/^\s*[+-]?\d+\s*$/.test(end))
    throw new Error(`invalid range "[${nrange}]": bounds must be numbers or single letters`);
  const b = Number(beg);
  const e = Number(end);
  const count =
    step > 0 ? (e >= b ? Math.floor((e - b) / step) + 1 : 0) : b > e ? Math.floor((b - e) / -step) + 1 : 0;
  const items = () => {
    const out: string[] = [];
    for (let k = 0; k < count; k++) {
      const n = b + k * step;
      out.push(
        width
          ? String(Math.abs(n))
              .padStart(width - (n < 0 ? 1 : 0), '0')
              .replace(/^/, n < 0 ? '-' : '')
          : String(n),
      );
    }
    return out;
  };
  return { head, tail, seq: { count, items } };
}

function expandRange(line: string): string[] {
  if (!line.includes('[')) return [line];
  const { head, tail, seq } = parseRange(line);
  return seq.items().flatMap((item) => expandRange(`${head}${item}${tail}`));
}

/**
 * A host pattern as Ansible expands it: `web[01:03].example.com:2222` -> three names and port 2222. More than
 * MAX_RANGE_HOSTS names is an error.
 */
export function expandHostPattern(text: string, where = 'host pattern'): { names: string[]; port?: number } {
  const { pattern, port } = splitPort(text);
  if (!pattern.includes('[')) return { names: [pattern], ...(port !== undefined ? { port } : {}) };
  let size: number;
  try {
    size = rangeSize(pattern);
  } catch (error) {
    throw fail(where, `${(error as Error).message} in "${text}"`);
  }
  if (size > MAX_RANGE_HOSTS)
    throw fail(
      where,
      `the range "${text}" makes ${size} hosts; persona reads at most ${MAX_RANGE_HOSTS} from one pattern (split it)`,
    );
  return { names: expandRange(pattern), ...(port !== undefined ? { port } : {}) };
}

// ---------------------------------------------------------------------------------------------------------------
// INI: ansible.plugins.inventory.ini.

const SECTION = /^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$/;
const GROUP_NAME = /^([^:\]\s]+)\s*(?:#.*)?$/;

export function readIni(data: AnsibleData, source: string, text: string): void {
  let group = 'ungrouped';
  let state = 'hosts';
  const pending = new Map<string, { line: number; state: string; parents: string[] }>();
  const lines = text.split(/\r?\n|\r/);
  lines.forEach((raw, index) => {
    const n = index + 1;
    const where = `${source}:${n}`;
    const line = raw.trim();
    if (line === '' || line[0] === '#' || line[0] === ';') return;
    const header = SECTION.exec(line);
    if (header) {
      group = header[1]!;
      state = header[2] ?? 'hosts';
      if (!['hosts', 'children', 'vars'].includes(state))
        throw fail(where, `section [${group}:${state}] has unknown type: ${state}`);
      if (!data.groups.has(group)) {
        if (state === 'vars' && !pending.has(group)) pending.set(group, { line: n, state, parents: [] });
        data.group(group);
      }
      const p = pending.get(group);
      if (p && state !== 'vars') {
        if (p.state === 'children') for (const parent of p.parents) data.addChild(parent, group);
        pending.delete(group);
      }
      return;
    }
    if (line.startsWith('[') && line.endsWith(']'))
      throw fail(where, `invalid section "${line}": no spaces or other invalid characters in a section name`);
    if (state === 'hosts') {
      let tokens: string[];
      try {
        tokens = shlexSplit(line);
      } catch (error) {
        throw fail(where, `cannot read this host line: ${(error as Error).message}`);
      }
      if (tokens.length === 0) return;
      const { names, port } = expandHostPattern(tokens[0]!, where);
      const vars: Array<[string, PyValue]> = [];
      for (const t of tokens.slice(1)) {
        const eq = t.indexOf('=');
        if (eq < 0) throw fail(where, `expected key=value host variable assignment, got: ${t}`);
        vars.push([t.slice(0, eq), pyLiteral(t.slice(eq + 1))]);
      }
      for (const name of names) {
        const h = data.addHost(name, group, port, where);
        for (const [k, v] of vars) h.vars.set(k, { value: v, where });
      }
    } else if (state === 'vars') {
      const eq = line.indexOf('=');
      if (eq < 0) throw fail(where, `expected key=value, got: ${line}`);
      data.setGroupVar(group, line.slice(0, eq).trim(), {
        value: pyLiteral(line.slice(eq + 1).trim()),
        where,
      });
    } else {
      const m = GROUP_NAME.exec(line);
      if (!m) throw fail(where, `expected group name, got: ${line}`);
      const child = m[1]!;
      if (!data.groups.has(child)) {
        const p = pending.get(child);
        if (p) p.parents.push(group);
        else pending.set(child, { line: n, state: 'children', parents: [group] });
      } else data.addChild(group, child);
    }
  });
  for (const [name, p] of pending) {
    if (p.state === 'vars')
      throw fail(`${source}:${p.line}`, `section [${name}:vars] is not valid for undefined group: ${name}`);
    throw fail(
      `${source}:${p.line}`,
      `section [${p.parents.at(-1)}:children] includes undefined group: ${name}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// YAML: ansible.plugins.inventory.yaml, with the line of every key.

type YamlNode = import('yaml').Node | null | undefined;

interface YamlReader {
  doc: import('yaml').Document;
  where: (node: YamlNode) => string;
  isMap: (node: unknown) => node is import('yaml').YAMLMap;
  isScalar: (node: unknown) => node is import('yaml').Scalar;
}

async function yamlDocument(source: string, text: string): Promise<YamlReader | undefined> {
  const { parseDocument, LineCounter, isMap, isScalar } = await import('yaml');
  const lineCounter = new LineCounter();
  // PyYAML reads YAML 1.1 (yes/no/on/off are booleans); a repeated key is the last one, as in Ansible.
  const doc = parseDocument(text, { version: '1.1', uniqueKeys: false, lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) return undefined;
  return {
    doc,
    isMap,
    isScalar,
    where: (node) => (node?.range ? `${source}:${lineCounter.linePos(node.range[0]).line}` : source),
  };
}

const toJs = (y: YamlReader, node: unknown): unknown =>
  node && typeof node === 'object' && 'toJS' in node
    ? (node as { toJS: (d: unknown, o: unknown) => unknown }).toJS(y.doc, { maxAliasCount: 100 })
    : node;

/** The entries of a YAML map as [key, value node, where]; a scalar string is `{string: null}` as in Ansible. */
function entries(y: YamlReader, node: unknown): Array<[string, unknown, string]> | undefined {
  if (node === null || node === undefined) return [];
  if (y.isScalar(node) && node.value === null) return [];
  if (y.isScalar(node) && typeof node.value === 'string') return [[node.value, null, y.where(node)]];
  if (!y.isMap(node)) return undefined;
  return node.items.map((pair) => {
    const key = y.isScalar(pair.key) ? String(pair.key.value) : String(toJs(y, pair.key));
    return [key, pair.value, y.where(pair.key as YamlNode)];
  });
}

/** Reads an Ansible YAML inventory; false when the text is not one (so the INI reader gets it, as in Ansible). */
export async function readYaml(data: AnsibleData, source: string, text: string): Promise<boolean> {
  const y = await yamlDocument(source, text);
  if (!y?.isMap(y.doc.contents)) return false;
  const top = entries(y, y.doc.contents) ?? [];
  if (top.some(([k]) => k === 'plugin'))
    throw fail(
      source,
      'an inventory plugin configuration: persona runs no inventory plugins (it only parses files)',
    );
  if (top.some(([k]) => k === '_meta')) {
    readListJson(data, source, toJs(y, y.doc.contents) as Record<string, unknown>);
    return true;
  }
  const parseGroup = (name: string, node: unknown, where: string): void => {
    const sections = entries(y, node);
    if (sections === undefined) return; // Ansible: "not a valid group definition", skipped
    data.group(name);
    for (const [key, value, at] of sections) {
      const items = entries(y, value);
      if (items === undefined) {
        if (['vars', 'children', 'hosts'].includes(key))
          throw fail(at, `invalid "${key}" entry for group "${name}": it must be a mapping`);
        continue;
      }
      if (key === 'vars')
        for (const [k, v, w] of items) data.setGroupVar(name, k, { value: toJs(y, v), where: w });
      else if (key === 'children')
        for (const [child, childNode, w] of items) {
          parseGroup(child, childNode, w);
          data.addChild(name, child);
        }
      else if (key === 'hosts')
        for (const [pattern, hostNode, w] of items) {
          const { names, port } = expandHostPattern(pattern, w);
          const hostVars = entries(y, hostNode) ?? [];
          for (const host of names) {
            const h = data.addHost(host, name, port, w);
            for (const [k, v, vw] of hostVars) h.vars.set(k, { value: toJs(y, v), where: vw });
          }
        }
    }
    void where;
  };
  for (const [name, node, where] of top) parseGroup(name, node, where);
  return true;
}

/** The JSON printed by `ansible-inventory --list`: groups with hosts and children, and `_meta.hostvars`. */
function readListJson(data: AnsibleData, source: string, value: Record<string, unknown>): void {
  const meta = value._meta as { hostvars?: Record<string, Record<string, unknown>> } | undefined;
  for (const [name, node] of Object.entries(value)) {
    if (name === '_meta' || !node || typeof node !== 'object') continue;
    data.group(name);
    const g = node as { hosts?: unknown; children?: unknown; vars?: unknown };
    if (Array.isArray(g.children)) for (const child of g.children) data.addChild(name, String(child));
    if (Array.isArray(g.hosts))
      for (const host of g.hosts) data.addHost(String(host), name, undefined, source);
    if (g.vars && typeof g.vars === 'object')
      for (const [k, v] of Object.entries(g.vars)) data.setGroupVar(name, k, { value: v, where: source });
  }
  for (const [host, vars] of Object.entries(meta?.hostvars ?? {})) {
    const h = data.addHost(host, undefined, undefined, source);
    for (const [k, v] of Object.entries(vars ?? {}))
      h.vars.set(k, { value: v, where: `${source} (hostvars of ${host})` });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Sources: files, directories, group_vars/ and host_vars/.

/** Names Ansible skips in an inventory directory (INVENTORY_IGNORE_EXTS and the always-ignored names). */
const IGNORED =
  /^\.|^host_vars$|^group_vars$|^vars_plugins$|(?:\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.ini|\.cfg|\.retry)$/;

/** Reads one inventory source (a file or a directory) into data, as Ansible's inventory manager does. */
export async function readAnsibleSource(data: AnsibleData, path: string, text?: string): Promise<void> {
  const info = text === undefined ? await stat(path) : undefined;
  if (info?.isDirectory()) {
    for (const name of (await readdir(path)).sort()) {
      if (IGNORED.test(name)) continue;
      await readAnsibleSource(data, join(path, name));
    }
    return;
  }
  const content = text ?? (await readFile(path, 'utf8'));
  if (content.startsWith('#!')) {
    const executable = await access(path, constants.X_OK).then(
      () => true,
      () => false,
    );
    if (executable)
      throw fail(
        path,
        'an executable inventory script: persona never runs inventory scripts (save its --list output as JSON)',
      );
  }
  const ext = extname(path);
  if (ext === '.toml') throw fail(path, 'a TOML inventory: persona reads INI, YAML and JSON inventories');
  if (['', '.yml', '.yaml', '.json'].includes(ext) && (await readYaml(data, path, content))) return;
  readIni(data, path, content.replace(/^\ufeff/, ''));
}

/** group_vars/<name> or host_vars/<name>: the file (no extension, .yml, .yaml, .json) or every file in the directory. */
async function varsFiles(dir: string, name: string): Promise<string[]> {
  for (const ext of ['', '.yml', '.yaml', '.json']) {
    const path = join(dir, name + ext);
    const info = await stat(path).catch(() => undefined);
    if (!info) continue;
    return info.isDirectory() ? await dirVarsFiles(path) : [path];
  }
  return [];
}

async function dirVarsFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    if (name.startsWith('.') || name.endsWith('~')) continue;
    const path = join(dir, name);
    const ext = extname(name);
    const info = await stat(path);
    if (info.isDirectory() && !ext) found.push(...(await dirVarsFiles(path)));
    else if (info.isFile() && (!ext || ['.yml', '.yaml', '.json'].includes(ext))) found.push(path);
  }
  return found;
}

async function readVarsFile(path: string): Promise<Map<string, Var>> {
  const text = await readFile(path, 'utf8');
  if (text.startsWith('$ANSIBLE_VAULT'))
    throw fail(
      path,
      'an Ansible Vault file: persona cannot decrypt it (leave secrets out of the inventory it reads)',
    );
  const y = await yamlDocument(path, text);
  if (!y) throw fail(path, 'invalid YAML');
  const out = new Map<string, Var>();
  if (y.doc.contents === null) return out;
  const items = entries(y, y.doc.contents);
  if (items === undefined) throw fail(path, 'a vars file must be a mapping of variables');
  for (const [k, v, w] of items) out.set(k, { value: toJs(y, v), where: w });
  return out;
}

async function varsFromDirs(dirs: readonly string[], kind: 'group_vars' | 'host_vars', name: string) {
  const out = new Map<string, Var>();
  if (name.startsWith('/')) return out;
  for (const dir of dirs)
    for (const file of await varsFiles(join(dir, kind), name))
      for (const [k, v] of await readVarsFile(file)) out.set(k, v);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Precedence: ansible.vars.manager.VariableManager.get_vars for an inventory host.

function reconcile(data: AnsibleData): void {
  for (const g of data.groups.values())
    if (g.name !== 'all' && g.parents.size === 0) data.addChild('all', g.name);
  const member = new Set<string>();
  for (const g of data.groups.values())
    if (g.name !== 'all' && g.name !== 'ungrouped') for (const h of g.hosts) member.add(h);
  const ungrouped = data.group('ungrouped');
  ungrouped.hosts = ungrouped.hosts.filter((h) => !member.has(h));
  for (const h of data.hosts.keys())
    if (!member.has(h) && !ungrouped.hosts.includes(h)) ungrouped.hosts.push(h);
}

function depths(data: AnsibleData): Map<string, number> {
  const depth = new Map<string, number>([['all', 0]]);
  const visit = (name: string, d: number, path: string[]) => {
    if (path.includes(name)) throw fail(name, `the group "${name}" has a recursive dependency loop`);
    if ((depth.get(name) ?? -1) >= d && name !== 'all') return;
    depth.set(name, d);
    for (const c of data.groups.get(name)?.children ?? []) visit(c, d + 1, [...path, name]);
  };
  visit('all', 0, []);
  return depth;
}

export interface ResolvedHost {
  name: string;
  /** Groups the host belongs to, directly or through children, without `all` (and `ungrouped`). */
  groups: string[];
  vars: Map<string, Var>;
  where: string;
}

/** Every host with its groups and its variables after Ansible's precedence. */
export async function resolveHosts(data: AnsibleData): Promise<ResolvedHost[]> {
  reconcile(data);
  const depth = depths(data);
  const priority = (g: Group) => g.priority;
  const direct = new Map<string, Set<string>>();
  for (const g of data.groups.values())
    for (const h of g.hosts) (direct.get(h) ?? direct.set(h, new Set()).get(h)!).add(g.name);
  const ancestors = (name: string, out: Set<string>) => {
    for (const p of data.groups.get(name)?.parents ?? [])
      if (!out.has(p)) {
        out.add(p);
        ancestors(p, out);
      }
    return out;
  };
  const groupFiles = new Map<string, Map<string, Var>>();
  const groupFileVars = async (name: string) => {
    let v = groupFiles.get(name);
    if (!v) {
      v = await varsFromDirs(data.varsDirs, 'group_vars', name);
      groupFiles.set(name, v);
    }
    return v;
  };
  const out: ResolvedHost[] = [];
  for (const host of data.hosts.values()) {
    const all = new Set<string>();
    for (const g of direct.get(host.name) ?? []) {
      all.add(g);
      ancestors(g, all);
    }
    all.delete('all');
    const sorted = [...all]
      .map((n) => data.groups.get(n)!)
      .sort(
        (a, b) =>
          (depth.get(a.name) ?? 0) - (depth.get(b.name) ?? 0) ||
          priority(a) - priority(b) ||
          (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
      );
    const vars = new Map<string, Var>();
    const put = (m: Map<string, Var>) => {
      for (const [k, v] of m) vars.set(k, v);
    };
    put(data.groups.get('all')!.vars);
    for (const g of sorted) put(g.vars);
    put(await groupFileVars('all'));
    for (const g of sorted) put(await groupFileVars(g.name));
    put(host.vars);
    put(await varsFromDirs(data.varsDirs, 'host_vars', host.name));
    put(data.finalVars.get(host.name) ?? new Map());
    out.push({
      name: host.name,
      groups: sorted.map((g) => g.name).filter((g) => g !== 'ungrouped'),
      vars,
      where: host.where,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Into persona's shape.

/** The persona-shaped value for normaliseInventory, and what was left out. */
export interface AnsibleReading {
  value: unknown;
  warnings: InventoryWarning[];
}

/** Reads an inventory file or directory; group_vars/ and host_vars/ next to it apply when varsDir says where. */
export async function readAnsibleInventory(
  path: string,
  options: { text?: string; varsDir?: string } = {},
): Promise<AnsibleReading> {
  const data = new AnsibleData();
  if (options.varsDir !== undefined) data.varsDirs.push(options.varsDir);
  await readAnsibleSource(data, path, options.text);
  return toPersona(await resolveHosts(data));
}

/** The directory whose group_vars/ and host_vars/ apply to an inventory path (the path itself for a directory). */
export async function varsDirOf(path: string): Promise<string> {
  const info = await stat(path);
  return info.isDirectory() ? path : dirname(path);
}

interface PersonaHost {
  name: string;
  address?: string;
  port?: number;
  user?: string;
  key_file?: string;
  jump?: string;
  connection?: 'local';
  labels: Record<string, string>;
  apps: string[];
}

function toPersona(hosts: ResolvedHost[]): AnsibleReading {
  const warnings = new WarningCollector();
  const problems: string[] = [];
  const value = hosts.map((h) => {
    const host = readHostVars(h, warnings, problems);
    for (const g of h.groups) {
      const name = `group.${g}`;
      if (label.safeParse(name).success) host.labels[name] = 'true';
      else
        warnings.add({
          variable: name,
          message:
            'the group name is not usable as a label (letters, digits, . _ / -, at most 63 characters)',
          host: h.name,
          where: h.where,
        });
    }
    return host;
  });
  if (problems.length > 0)
    throw new PersonaError('E_INVALID_INPUT', `cannot use this inventory:\n  ${problems.join('\n  ')}`, {
      hint: 'persona puts host names, addresses and users on an ssh command line, so it refuses values ssh could misread.',
    });
  return { value: { hosts: value }, warnings: warnings.warnings };
}

/** A value persona can use as text: strings, numbers and booleans as Ansible prints them. */
export function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return undefined;
}

const isJinja = (text: string) => /\{\{|\{%|\{#/.test(text);

/** The variables that say how to reach a host; the legacy ansible_ssh_* win, as in Ansible. */
const REACH = {
  address: ['ansible_ssh_host', 'ansible_host'],
  port: ['ansible_ssh_port', 'ansible_port'],
  user: ['ansible_ssh_user', 'ansible_user'],
  key_file: ['ansible_ssh_private_key_file', 'ansible_private_key_file'],
} as const;
const REACH_VARS = new Set<string>(Object.values(REACH).flat());

const hostNameRe =
  /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/;

/** One host's variables, each used for reaching the host, as its apps, as a label, or reported. */
function readHostVars(h: ResolvedHost, warnings: WarningCollector, problems: string[]): PersonaHost {
  const host: PersonaHost = { name: h.name, labels: {}, apps: [] };
  if (!hostNameRe.test(h.name) || h.name.length > 253)
    problems.push(`${h.where}: host "${h.name}": not a host name persona can pass to ssh`);
  const ignore = (variable: string, v: Var, message: string, show = true) => {
    const text = scalarText(v.value);
    warnings.add({
      variable,
      ...(show && text !== undefined ? { value: text } : {}),
      message,
      host: h.name,
      where: v.where,
    });
  };
  for (const [field, names] of Object.entries(REACH) as Array<[keyof typeof REACH, readonly string[]]>) {
    const name = names.find((n) => h.vars.has(n));
    if (!name) continue;
    const v = h.vars.get(name)!;
    for (const other of names)
      if (other !== name && h.vars.has(other))
        ignore(other, h.vars.get(other)!, `${name} is used instead (Ansible gives it precedence)`);
    const text = scalarText(v.value);
    if (text === undefined) {
      ignore(name, v, 'not a string or number: persona cannot use it');
      continue;
    }
    if (isJinja(text)) {
      ignore(
        name,
        v,
        `a Jinja template: persona does not evaluate templates${field === 'address' ? `; it reaches the host as "${h.name}"` : ''}`,
      );
      continue;
    }
    if (field === 'port') {
      const port = integer(1, 65535).safeParse(Number(text));
      if (!/^\d+$/.test(text.trim()) || !port.success)
        problems.push(`${v.where}: host "${h.name}": ${name} "${text}" is not a port (1-65535)`);
      else host.port = Number(text);
    } else {
      const rule = { address, user: loginUser, key_file: keyFile }[field];
      const checked = rule.safeParse(text);
      if (!checked.success)
        problems.push(
          `${v.where}: host "${h.name}": ${name} "${text}" ${checked.error.issues[0]?.message ?? 'is invalid'}`,
        );
      else host[field] = text;
    }
  }
  for (const [variable, v] of h.vars) {
    if (REACH_VARS.has(variable)) continue;
    const text = scalarText(v.value);
    if (looksSecret(variable)) ignore(variable, v, SECRET_IGNORED, false);
    else if (variable === 'persona_apps') {
      if (text === undefined) ignore(variable, v, 'must be a comma-separated list of application ids');
      else {
        const apps = text
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const bad = apps.filter((a) => !applicationId.safeParse(a).success);
        if (bad.length)
          problems.push(
            `${v.where}: host "${h.name}": persona_apps: "${bad.join('", "')}" not application ids`,
          );
        host.apps = apps;
      }
    } else if (variable === 'ansible_ssh_common_args' || variable === 'ansible_ssh_extra_args') {
      if (text === undefined || isJinja(text)) {
        ignore(variable, v, 'persona cannot read these ssh arguments');
        continue;
      }
      const { jump, rest, problem } = sshArgsJump(text);
      if (jump && !jumpHost.safeParse(jump).success)
        problems.push(
          `${v.where}: host "${h.name}": ${variable}: the bastion "${jump}" must be [user@]host[:port]`,
        );
      else if (jump && !host.jump) host.jump = jump;
      if (problem) ignore(variable, v, problem);
      else if (rest)
        ignore(
          variable,
          v,
          'persona uses only the bastion (ProxyJump, -J or ProxyCommand ssh -W) from it; put other ssh options in an ssh_config',
        );
    } else if (variable === 'ansible_connection') {
      if (text === 'local') host.connection = 'local';
      else if (!['ssh', 'smart', 'paramiko'].includes(text ?? ''))
        ignore(variable, v, 'persona reaches hosts over SSH only; this host may be unreachable to it');
    } else if (
      variable === 'ansible_become' ||
      variable === 'ansible_become_user' ||
      variable === 'ansible_become_method'
    ) {
      const becomeOk =
        (variable === 'ansible_become' && ['true', 'yes', '1'].includes((text ?? '').toLowerCase())) ||
        (variable === 'ansible_become_user' && text === 'root') ||
        (variable === 'ansible_become_method' && text === 'sudo');
      if (!becomeOk)
        ignore(
          variable,
          v,
          'persona runs root commands directly as root, or through `sudo -n` for any other user; it does not become another user or use another method',
        );
    } else if (variable.startsWith('ansible_'))
      ignore(variable, v, 'an Ansible setting persona does not use');
    else if (text === undefined)
      ignore(variable, v, v.value === null ? 'has no value' : 'a list or a mapping: not usable as a label');
    else if (isJinja(text)) ignore(variable, v, 'a Jinja template: persona does not evaluate templates');
    else {
      const problem = labelProblem(variable, text);
      if (problem) ignore(variable, v, `not usable as a label: ${problem}`);
      else host.labels[variable] = text;
    }
  }
  return host;
}

function labelProblem(name: string, value: string): string | undefined {
  const n = label.safeParse(name);
  if (!n.success) return `the name ${n.error.issues[0]?.message ?? 'is invalid'}`;
  const v = labelValue.safeParse(value);
  if (!v.success) return `the value ${v.error.issues[0]?.message ?? 'is invalid'}`;
  return undefined;
}

/** `-J bastion`, `-o ProxyJump=bastion` or `-oProxyJump=bastion` out of ssh arguments; the rest as it was. */
export function proxyJump(args: string): { jump?: string; rest: string } {
  let jump: string | undefined;
  const rest = args
    .replace(/(?:^|\s)(?:-J\s*|-o\s*ProxyJump[=\s]\s*)(["']?)([^\s"']+)\1/gi, (_m, _q, value: string) => {
      jump = value;
      return ' ';
    })
    .trim();
  return { ...(jump ? { jump } : {}), rest };
}

/**
 * The bastion in ansible_ssh_common_args / ansible_ssh_extra_args: ProxyJump, or a ProxyCommand of the usual
 * shape `ssh -W %h:%p [-q] [-p PORT] [-l USER] [user@]bastion`, which is the same hop as `-J`. Any other
 * ProxyCommand is a problem: persona does not run commands from an inventory.
 */
export function sshArgsJump(args: string): { jump?: string; rest: string; problem?: string } {
  let tokens: string[];
  try {
    tokens = shlexSplit(args);
  } catch {
    return { rest: args, problem: 'persona cannot split these ssh arguments' };
  }
  const { jump, rest } = proxyJump(tokens.map((t) => (/\s/.test(t) ? `'${t}'` : t)).join(' '));
  let found = jump;
  const left: string[] = [];
  let problem: string | undefined;
  const restTokens = shlexSplit(rest);
  for (let i = 0; i < restTokens.length; i++) {
    const t = restTokens[i]!;
    let option: string | undefined;
    if (t === '-o') option = restTokens[++i];
    else if (t.startsWith('-o')) option = t.slice(2);
    const m = option ? /^ProxyCommand[=\s]\s*(.*)$/is.exec(option) : null;
    if (!m) {
      if (option !== undefined) left.push('-o', option);
      else left.push(t);
      continue;
    }
    const hop = proxyCommandHop(m[1]!);
    if (hop) found ??= hop;
    else problem = `a ProxyCommand persona cannot use (only "ssh -W %h:%p [user@]bastion"): ${m[1]}`;
  }
  return { ...(found ? { jump: found } : {}), rest: left.join(' '), ...(problem ? { problem } : {}) };
}

function proxyCommandHop(command: string): string | undefined {
  let t: string[];
  try {
    t = shlexSplit(command);
  } catch {
    return undefined;
  }
  if (basename(t[0] ?? '') !== 'ssh') return undefined;
  let port: string | undefined;
  let user: string | undefined;
  let host: string | undefined;
  let forward = false;
  for (let i = 1; i < t.length; i++) {
    const a = t[i]!;
    if (a === '-W' && t[i + 1] === '%h:%p') {
      forward = true;
      i++;
    } else if (a === '-q') continue;
    else if (a === '-p') port = t[++i];
    else if (a === '-l') user = t[++i];
    else if (a.startsWith('-') || host) return undefined;
    else host = a;
  }
  if (!forward || !host) return undefined;
  return `${user && !host.includes('@') ? `${user}@` : ''}${host}${port ? `:${port}` : ''}`;
}
