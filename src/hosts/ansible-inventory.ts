/**
 * Reading an existing Ansible inventory (INI or YAML) into persona's inventory shape. Host variables become labels
 * when they are usable as labels; `ansible_host`, `ansible_port`, `ansible_user`, `ansible_ssh_private_key_file`
 * and a ProxyJump in `ansible_ssh_common_args` say how to reach a host; `persona_apps` (comma-separated) says
 * what runs there; each group a host belongs to becomes a label `group.<name>: "true"`. Every other variable is
 * left out with a warning that says why and where it was written.
 */
import { PersonaError } from '../errors.js';
import { label, labelValue } from '../profile/rules.js';
import {
  type InventoryWarning,
  looksSecret,
  SECRET_IGNORED,
  WarningCollector,
} from './inventory-warnings.js';

/** A variable's value and the line it was written on (INI; YAML values carry no line here). */
interface Var {
  value: string;
  line?: number;
}
type Vars = Record<string, Var>;

interface Group {
  hosts: Map<string, Vars>;
  vars: Vars;
  children: Set<string>;
}

/** The persona-shaped value for normaliseInventory, and what was left out. */
export interface AnsibleReading {
  value: unknown;
  warnings: InventoryWarning[];
}

const group = (groups: Map<string, Group>, name: string): Group => {
  let g = groups.get(name);
  if (!g) {
    g = { hosts: new Map(), vars: {}, children: new Set() };
    groups.set(name, g);
  }
  return g;
};

export function looksLikeIni(text: string): boolean {
  return text.split('\n').some((l) => /^\s*\[[^\]]+\]\s*$/.test(l));
}

/** web[01:03].example.com -> web01.example.com, web02.example.com, web03.example.com */
export function expandHostPattern(pattern: string): string[] {
  const m = /^(.*)\[(\d+):(\d+)\](.*)$/.exec(pattern);
  if (!m) return [pattern];
  const [, pre = '', from = '', to = '', post = ''] = m;
  const width = from.length;
  const out: string[] = [];
  for (let i = Number(from); i <= Number(to) && out.length < 10_000; i++) {
    out.push(...expandHostPattern(`${pre}${String(i).padStart(width, '0')}${post}`));
  }
  return out;
}

function splitVars(text: string, line: number): Vars {
  const vars: Vars = {};
  for (const m of text.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S+)/g)) {
    vars[m[1]!] = { value: m[2]!.replace(/^(["'])(.*)\1$/, '$2'), line };
  }
  return vars;
}

export function fromAnsibleIni(source: string, text: string): AnsibleReading {
  const groups = new Map<string, Group>();
  let section = { name: 'ungrouped', kind: 'hosts' as 'hosts' | 'vars' | 'children' };
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\s[#;].*$/, '').trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const header = /^\[([^\]:]+)(?::(vars|children))?\]$/.exec(line);
    if (header) {
      section = { name: header[1]!, kind: (header[2] as 'vars' | 'children') ?? 'hosts' };
      group(groups, section.name);
      return;
    }
    const g = group(groups, section.name);
    if (section.kind === 'vars') Object.assign(g.vars, splitVars(line, i + 1));
    else if (section.kind === 'children') g.children.add(line.split(/\s+/)[0]!);
    else {
      const [pattern, ...rest] = line.split(/\s+/);
      if (!pattern)
        throw new PersonaError('E_INVALID_INPUT', `${source}:${i + 1}: cannot read this host line`);
      for (const name of expandHostPattern(pattern))
        g.hosts.set(name, { ...g.hosts.get(name), ...splitVars(rest.join(' '), i + 1) });
    }
  });
  return toPersona(source, groups);
}

export function fromAnsibleYaml(source: string, value: unknown): AnsibleReading {
  if (!value || typeof value !== 'object') {
    throw new PersonaError(
      'E_INVALID_INPUT',
      `${source}: not an inventory (expected {hosts: [...]} or an Ansible inventory)`,
    );
  }
  const groups = new Map<string, Group>();
  const visit = (name: string, node: unknown) => {
    const g = group(groups, name);
    if (!node || typeof node !== 'object') return;
    const n = node as {
      hosts?: Record<string, unknown>;
      vars?: Record<string, unknown>;
      children?: Record<string, unknown>;
    };
    for (const [pattern, vars] of Object.entries(n.hosts ?? {})) {
      for (const host of expandHostPattern(pattern))
        g.hosts.set(host, { ...g.hosts.get(host), ...yamlVars(vars) });
    }
    Object.assign(g.vars, yamlVars(n.vars));
    for (const [child, childNode] of Object.entries(n.children ?? {})) {
      g.children.add(child);
      visit(child, childNode);
    }
  };
  for (const [name, node] of Object.entries(value as Record<string, unknown>)) visit(name, node);
  return toPersona(source, groups);
}

/** Lists and maps are kept as a marker so that they are reported, not silently dropped. */
const NOT_SCALAR = '\0not-scalar';

function yamlVars(vars: unknown): Vars {
  const out: Vars = {};
  if (!vars || typeof vars !== 'object') return out;
  for (const [k, v] of Object.entries(vars))
    out[k] = { value: ['string', 'number', 'boolean'].includes(typeof v) ? String(v) : NOT_SCALAR };
  return out;
}

/** Group vars flow down to children; host vars win; then the persona shape. */
function toPersona(source: string, groups: Map<string, Group>): AnsibleReading {
  const hostVars = new Map<string, Vars>();
  const memberOf = new Map<string, Set<string>>();
  const apply = (name: string, inherited: Vars, path: string[]) => {
    const g = groups.get(name);
    if (!g || path.includes(name)) return;
    const vars = { ...inherited, ...g.vars };
    for (const [host, own] of g.hosts) {
      hostVars.set(host, { ...vars, ...hostVars.get(host), ...own });
      const groupsOfHost = memberOf.get(host) ?? new Set();
      for (const member of [...path, name])
        if (member !== 'all' && member !== 'ungrouped') groupsOfHost.add(member);
      memberOf.set(host, groupsOfHost);
    }
    for (const child of g.children) apply(child, vars, [...path, name]);
  };
  const roots = [...groups.keys()].filter((n) => ![...groups.values()].some((g) => g.children.has(n)));
  for (const root of roots) apply(root, {}, []);
  const warnings = new WarningCollector();
  const hosts = [...hostVars.entries()].map(([name, vars]) => {
    const host = readHostVars(source, name, vars, warnings);
    for (const g of memberOf.get(name) ?? []) host.labels[`group.${g}`] = 'true';
    return host;
  });
  return { value: { hosts }, warnings: warnings.warnings };
}

const CONNECTION: Record<string, 'address' | 'port' | 'user' | 'key_file'> = {
  ansible_host: 'address',
  ansible_ssh_host: 'address',
  ansible_port: 'port',
  ansible_ssh_port: 'port',
  ansible_user: 'user',
  ansible_ssh_user: 'user',
  ansible_ssh_private_key_file: 'key_file',
  ansible_private_key_file: 'key_file',
};

interface PersonaHost {
  name: string;
  address?: string;
  port?: number;
  user?: string;
  key_file?: string;
  jump?: string;
  labels: Record<string, string>;
  apps: string[];
}

/** One host's variables, each used for reaching the host, as its apps, as a label, or reported. */
function readHostVars(source: string, name: string, vars: Vars, warnings: WarningCollector): PersonaHost {
  const host: PersonaHost = { name, labels: {}, apps: [] };
  for (const [variable, v] of Object.entries(vars)) {
    const ignore = (message: string) =>
      warnings.add({
        variable,
        ...(v.value !== NOT_SCALAR ? { value: v.value } : {}),
        message,
        host: name,
        where: v.line ? `${source}:${v.line}` : source,
      });
    if (looksSecret(variable)) ignore(SECRET_IGNORED);
    else if (v.value === NOT_SCALAR) ignore('not a string, number or boolean: persona cannot use it');
    else if (variable in CONNECTION) {
      const field = CONNECTION[variable]!;
      if (field === 'port') host.port = Number(v.value);
      else host[field] = v.value;
    } else if (variable === 'persona_apps')
      host.apps = v.value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    else if (variable === 'ansible_ssh_common_args' || variable === 'ansible_ssh_extra_args') {
      const { jump, rest } = proxyJump(v.value);
      if (jump) host.jump = jump;
      if (rest) ignore(`persona uses only ProxyJump (-J) from it; put other ssh options in an ssh_config`);
    } else if (variable === 'ansible_connection') {
      if (!['ssh', 'smart', 'paramiko'].includes(v.value))
        ignore('persona reaches hosts over SSH only; this host may be unreachable to it');
    } else if (variable.startsWith('ansible_')) ignore('an Ansible setting persona does not use');
    else {
      const problem = labelProblem(variable, v.value);
      if (problem) ignore(`not usable as a label: ${problem}`);
      else host.labels[variable] = v.value;
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
