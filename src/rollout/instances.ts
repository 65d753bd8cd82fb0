/**
 * Where an application's instances run, for a rollout. One application may run on several hosts (behind a balancer):
 * the store's assignment record may list them all in an optional `hosts` array (`{"app", "host", "hosts": [...]}`);
 * without it, the instances are the assignment's `host` and every inventory host whose `apps` lists the application.
 * Every existing reader keeps reading `host` (recover, migrate, whereAppsRun): `hosts` only adds.
 */
import type { Inventory } from '../hosts/inventory.js';
import { assignmentKey } from '../steps/record.js';
import type { KvBackend } from '../stores/kv.js';

/** The hosts the application runs on, in a stable order: the record's `hosts`, else its `host` then the inventory's. */
export async function instancesOf(app: string, inventory: Inventory, backend: KvBackend): Promise<string[]> {
  const entry = await backend.get(assignmentKey(app));
  let recorded: { host?: unknown; hosts?: unknown } = {};
  try {
    recorded = entry ? (JSON.parse(entry.value) as typeof recorded) : {};
  } catch {
    // An unreadable record says nothing here; the inventory does.
  }
  if (Array.isArray(recorded.hosts) && recorded.hosts.every((h) => typeof h === 'string'))
    return [...new Set(recorded.hosts as string[])];
  const hosts = typeof recorded.host === 'string' ? [recorded.host] : [];
  for (const h of inventory.hosts) if (h.apps.includes(app)) hosts.push(h.name);
  return [...new Set(hosts)];
}
