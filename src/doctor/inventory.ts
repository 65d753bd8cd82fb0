/**
 * The inventory parses, and what persona leaves out of it is said plainly: every warning of the inventory loader
 * (the variables it ignored or could not use, the same ones `persona hosts list` shows), and host_vars/group_vars
 * directories, which it does not read.
 */
import { dirname, join, resolve } from 'node:path';
import { errorMessage, isPersonaError } from '../errors.js';
import type { Inventory } from '../hosts/inventory.js';
import type { Check, CheckResult } from './check.js';
import { plural } from './check.js';

export const checkInventory: Check = async (input, ports): Promise<CheckResult> => {
  const { value, source } = input.settings.inventory;
  const where = value.startsWith('consul:') ? value : resolve(input.cwd, value);
  const fix = 'name the inventory with --inventory FILE, PERSONA_INVENTORY or inventory in persona.yaml';
  const text = value.startsWith('consul:') ? undefined : await ports.readText(where);
  if (!value.startsWith('consul:') && text === undefined)
    return source.from === 'default'
      ? { id: 'inventory', status: 'warn', summary: `no inventory (${value} does not exist)`, fix }
      : { id: 'inventory', status: 'fail', summary: `${where} does not exist`, fix };
  let inventory: Inventory;
  try {
    inventory = await ports.loadInventory();
  } catch (error) {
    const message = errorMessage(error).split('\n');
    return {
      id: 'inventory',
      status: 'fail',
      summary: `${message[0]}${message.length > 1 ? `: ${message.slice(1, 4).join('; ')}` : ''}`,
      fix: (isPersonaError(error) && error.hint) || 'fix the inventory: persona refuses to run with it',
    };
  }
  const notes = [
    ...inventory.warnings.map(
      (w) => `${w.where}: ${w.variable} (${plural(w.hosts.length, 'host')}): ${w.message}`,
    ),
    ...(text === undefined ? [] : await unreadDirs(where, ports.exists)),
  ];
  const summary = `${where}: ${plural(inventory.hosts.length, 'host')}`;
  if (notes.length === 0) return { id: 'inventory', status: 'ok', summary };
  return {
    id: 'inventory',
    status: 'warn',
    summary: `${summary}; persona ignores: ${notes.join('; ')}`,
    fix: 'move what persona should know into labels, apps or ssh_config; remove the rest or ignore this warning',
    details: { ignored: notes },
  };
};

/** host_vars/ and group_vars/ beside an inventory file: Ansible reads them, persona does not (yet). */
async function unreadDirs(path: string, exists: (p: string) => Promise<boolean>): Promise<string[]> {
  const notes: string[] = [];
  for (const dir of ['host_vars', 'group_vars'])
    if (await exists(join(dirname(path), dir))) notes.push(`${dir}/ next to the inventory: not read`);
  return notes;
}
