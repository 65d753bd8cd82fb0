/**
 * Every inventory host needs a known_hosts entry, since persona checks host keys strictly. Read the way ssh would
 * read them (`ssh -G` names the files, the host name and port; `ssh-keygen -F` finds hashed entries too), without
 * ever connecting to a host.
 */

import type { InventoryHost } from '../hosts/inventory.js';
import { targetArgs } from '../hosts/ssh.js';
import { mapPool } from '../util/pool.js';
import type { Check, CheckResult, DoctorPorts } from './check.js';
import { plural } from './check.js';
import { sshG } from './tools.js';

export interface HostKeyLookup {
  host: string;
  /** The name known_hosts is searched for: HostKeyAlias, else host name with [ ]:port off port 22. */
  lookup: string;
  files: string[];
  found: boolean;
  error?: string;
}

/** The known_hosts name and files for one host, from `ssh -G` options (pure). */
export function lookupFrom(options: Map<string, string>): { lookup: string; files: string[] } {
  const alias = options.get('hostkeyalias');
  const name = options.get('hostname') ?? '';
  const port = options.get('port') ?? '22';
  const lookup = alias ?? (port === '22' ? name : `[${name}]:${port}`);
  const files = [options.get('userknownhostsfile'), options.get('globalknownhostsfile')]
    .flatMap((list) => (list ? list.split(/\s+/) : []))
    .filter((f) => f !== '' && f !== 'none');
  return { lookup, files };
}

export async function lookupHost(
  ports: DoctorPorts,
  configFile: string | undefined,
  host: InventoryHost,
): Promise<HostKeyLookup> {
  // The same target arguments as every ssh persona starts, so ssh -G resolves the host as a connection would.
  const g = await sshG(ports, configFile, targetArgs(host));
  if (!g.ok) return { host: host.name, lookup: host.address, files: [], found: false, error: g.error };
  const { lookup, files } = lookupFrom(g.options);
  for (const file of files) {
    if (!(await ports.exists(file))) continue;
    const r = await ports.exec('ssh-keygen', ['-F', lookup, '-f', file]);
    if (!r) return { host: host.name, lookup, files, found: false, error: 'ssh-keygen is not on PATH' };
    if (r.exitCode === 0 && r.stdout.trim() !== '') return { host: host.name, lookup, files, found: true };
  }
  return { host: host.name, lookup, files, found: false };
}

export const checkKnownHosts: Check = async (input, ports, shared): Promise<CheckResult> => {
  const id = 'known-hosts';
  const inventory = await shared.inventory();
  if (!inventory || inventory.hosts.length === 0)
    return { id, status: 'skip', summary: 'no inventory hosts to look up (see the inventory check)' };
  const configFile = await shared.sshConfig();
  const results = await mapPool(inventory.hosts, 8, (h) => lookupHost(ports, configFile, h));
  const missing = results.filter((r) => !r.found);
  const total = inventory.hosts.length;
  if (missing.length === 0)
    return { id, status: 'ok', summary: `all ${plural(total, 'inventory host')} have a known_hosts entry` };
  const files = [...new Set(missing.flatMap((m) => m.files.slice(0, 1)))];
  const named = missing
    .slice(0, 8)
    .map((m) => `${m.host} (${m.error ?? m.lookup})`)
    .join(', ');
  return {
    id,
    status: input.acceptNewHostKeys ? 'warn' : 'fail',
    summary: `${missing.length} of ${plural(total, 'host')} without a known_hosts entry${files.length ? ` in ${files.join(', ')}` : ''}: ${named}${missing.length > 8 ? ', …' : ''}`,
    fix: 'check each host key out of band, then add it (ssh-keyscan -p PORT ADDRESS >> FILE), or trust first contact with --accept-new-host-keys',
    details: {
      missing: missing.map((m) => ({
        host: m.host,
        lookup: m.lookup,
        ...(m.error ? { error: m.error } : {}),
      })),
    },
  };
};
