/**
 * The inventory parses, and what persona reads of an Ansible inventory is said plainly: connection variables
 * other than ansible_host/port/user, structured variables, and host_vars/group_vars directories are ignored.
 */
import { dirname, join, resolve } from 'node:path';
import { errorMessage, isPersonaError } from '../errors.js';
import type { Check, CheckResult } from './check.js';
import { plural } from './check.js';

/** Ansible variables persona reads; every other ansible_* variable is ignored. */
const read = new Set(['ansible_host', 'ansible_port', 'ansible_user']);

/** What persona ignores in an inventory's text, one note each (pure). */
export function ignoredInInventory(text: string, parsedYaml?: unknown): string[] {
  const ignored = new Map<string, number>();
  const structured = new Set<string>();
  const note = (name: string) => {
    if (name.startsWith('ansible_') && !read.has(name)) ignored.set(name, (ignored.get(name) ?? 0) + 1);
  };
  if (parsedYaml === undefined) {
    for (const raw of text.split('\n')) {
      const line = raw.replace(/\s[#;].*$/, '').trim();
      if (line.startsWith('[') || line.startsWith('#') || line.startsWith(';')) continue;
      for (const m of line.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=/g)) note(m[1]!);
    }
  } else {
    const vars = (v: unknown) => {
      for (const [k, value] of Object.entries(isObject(v) ? v : {})) {
        note(k);
        if (isObject(value) || Array.isArray(value)) structured.add(k);
      }
    };
    const visit = (node: unknown) => {
      if (!isObject(node)) return;
      for (const hostVars of Object.values(isObject(node.hosts) ? node.hosts : {})) vars(hostVars);
      vars(node.vars);
      for (const child of Object.values(isObject(node.children) ? node.children : {})) visit(child);
    };
    for (const group of Object.values(isObject(parsedYaml) ? parsedYaml : {})) visit(group);
  }
  return [
    ...[...ignored].map(
      ([name, n]) =>
        `${name} (${plural(n, 'time')}): ignored${/^ansible_ssh_(host|port|user)$/.test(name) ? ` (persona reads ${name.replace('_ssh', '')})` : '; persona reads ssh_config, not Ansible connection variables'}`,
    ),
    ...[...structured].map((name) => `${name}: a list or mapping, ignored (labels are plain values)`),
  ];
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const isPersonaShape = (value: unknown) => isObject(value) && Array.isArray(value.hosts);

export const checkInventory: Check = async (input, ports): Promise<CheckResult> => {
  const { value, source } = input.settings.inventory;
  const where = value.startsWith('consul:') ? value : resolve(input.cwd, value);
  const fix = 'name the inventory with --inventory FILE, PERSONA_INVENTORY or inventory in persona.yaml';
  const text = value.startsWith('consul:') ? undefined : await ports.readText(where);
  if (!value.startsWith('consul:') && text === undefined)
    return source.from === 'default'
      ? { id: 'inventory', status: 'warn', summary: `no inventory (${value} does not exist)`, fix }
      : { id: 'inventory', status: 'fail', summary: `${where} does not exist`, fix };
  let hosts: number;
  try {
    hosts = (await ports.loadInventory()).hosts.length;
  } catch (error) {
    const message = errorMessage(error).split('\n');
    return {
      id: 'inventory',
      status: 'fail',
      summary: `${message[0]}${message.length > 1 ? `: ${message.slice(1, 4).join('; ')}` : ''}`,
      fix: (isPersonaError(error) && error.hint) || 'fix the inventory: persona refuses to run with it',
    };
  }
  const notes = text === undefined ? [] : await notesFor(text, where, ports.exists);
  const summary = `${where}: ${plural(hosts, 'host')}`;
  if (notes.length === 0) return { id: 'inventory', status: 'ok', summary };
  return {
    id: 'inventory',
    status: 'warn',
    summary: `${summary}; persona ignores: ${notes.join('; ')}`,
    fix: 'move what persona should know into labels, apps or ssh_config; remove the rest or ignore this warning',
    details: { ignored: notes },
  };
};

async function notesFor(
  text: string,
  path: string,
  exists: (p: string) => Promise<boolean>,
): Promise<string[]> {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) return [];
  const { looksLikeIni } = await import('../hosts/ansible-inventory.js');
  let notes: string[];
  if (looksLikeIni(text)) notes = ignoredInInventory(text);
  else {
    const { parse } = await import('yaml');
    const value: unknown = parse(text, { maxAliasCount: 100 });
    if (isPersonaShape(value)) return [];
    notes = ignoredInInventory(text, value);
  }
  for (const dir of ['host_vars', 'group_vars']) {
    if (await exists(join(dirname(path), dir))) notes.push(`${dir}/ next to the inventory: not read`);
  }
  return notes;
}
