/**
 * The inventory parses, and what persona leaves out of it is said plainly: every warning of the inventory loader
 * (the variables it ignored or could not use, the same ones `persona hosts list` shows). An Ansible inventory may
 * be a directory; group_vars/ and host_vars/ beside it are read as Ansible reads them.
 */
import { resolve } from 'node:path';
import { errorMessage, isPersonaError } from '../errors.js';
import type { Inventory } from '../hosts/inventory.js';
import type { Check, CheckResult } from './check.js';
import { plural } from './check.js';

export const checkInventory: Check = async (input, ports): Promise<CheckResult> => {
  const { value, source } = input.settings.inventory;
  const where = value.startsWith('consul:') ? value : resolve(input.cwd, value);
  const fix = 'name the inventory with --inventory FILE, PERSONA_INVENTORY or inventory in persona.yaml';
  if (!value.startsWith('consul:') && !(await ports.exists(where)))
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
  const notes = inventory.warnings.map(
    (w) => `${w.where}: ${w.variable} (${plural(w.hosts.length, 'host')}): ${w.message}`,
  );
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
