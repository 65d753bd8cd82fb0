/**
 * Reading an existing Ansible inventory (INI or YAML) into persona's inventory shape. Host variables become labels
 * (ansible_* aside); `ansible_host`, `ansible_port` and `ansible_user` say how to reach a host; `persona_apps`
 * (comma-separated) says what runs there; each group a host belongs to becomes a label `group.<name>: "true"`.
 */
import { PersonaError } from '../errors.js';

type Vars = Record<string, string>;

interface Group {
  hosts: Map<string, Vars>;
  vars: Vars;
  children: Set<string>;
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

function splitVars(text: string): Vars {
  const vars: Vars = {};
  for (const m of text.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S+)/g)) {
    vars[m[1]!] = m[2]!.replace(/^(["'])(.*)\1$/, '$2');
  }
  return vars;
}

export function fromAnsibleIni(source: string, text: string): unknown {
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
    if (section.kind === 'vars') Object.assign(g.vars, splitVars(line));
    else if (section.kind === 'children') g.children.add(line.split(/\s+/)[0]!);
    else {
      const [pattern, ...rest] = line.split(/\s+/);
      if (!pattern)
        throw new PersonaError('E_INVALID_INPUT', `${source}:${i + 1}: cannot read this host line`);
      for (const name of expandHostPattern(pattern))
        g.hosts.set(name, { ...g.hosts.get(name), ...splitVars(rest.join(' ')) });
    }
  });
  return toPersona(groups);
}

export function fromAnsibleYaml(source: string, value: unknown): unknown {
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
        g.hosts.set(host, { ...g.hosts.get(host), ...stringVars(vars) });
    }
    Object.assign(g.vars, stringVars(n.vars));
    for (const [child, childNode] of Object.entries(n.children ?? {})) {
      g.children.add(child);
      visit(child, childNode);
    }
  };
  for (const [name, node] of Object.entries(value as Record<string, unknown>)) visit(name, node);
  return toPersona(groups);
}

function stringVars(vars: unknown): Vars {
  const out: Vars = {};
  if (!vars || typeof vars !== 'object') return out;
  for (const [k, v] of Object.entries(vars))
    if (['string', 'number', 'boolean'].includes(typeof v)) out[k] = String(v);
  return out;
}

/** Group vars flow down to children; host vars win; then the persona shape. */
function toPersona(groups: Map<string, Group>): unknown {
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
  const hosts = [...hostVars.entries()].map(([name, vars]) => {
    const labels: Record<string, string> = {};
    for (const [k, v] of Object.entries(vars))
      if (!k.startsWith('ansible_') && k !== 'persona_apps') labels[k] = v;
    for (const g of memberOf.get(name) ?? []) labels[`group.${g}`] = 'true';
    return {
      name,
      ...(vars.ansible_host ? { address: vars.ansible_host } : {}),
      ...(vars.ansible_port ? { port: Number(vars.ansible_port) } : {}),
      ...(vars.ansible_user ? { user: vars.ansible_user } : {}),
      labels,
      apps: vars.persona_apps
        ? vars.persona_apps
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : [],
    };
  });
  return { hosts };
}
