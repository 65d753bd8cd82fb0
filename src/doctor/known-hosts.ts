/**
 * Every inventory host needs a known_hosts entry, since persona checks host keys strictly. Read the way ssh would
 * read them (`ssh -G` names the files, the host name and port; `ssh-keygen -F` finds hashed entries too), without
 * ever connecting to a host.
 */

import type { InventoryHost } from '../hosts/inventory.js';
import { targetArgs } from '../hosts/ssh.js';
import { type Hop, hopName, parseJump } from '../hosts/ssh-jump.js';
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
): Promise<HostKeyLookup & { hops: Hop[] }> {
  // The same target arguments as every ssh persona starts, so ssh -G resolves the host as a connection would.
  const g = await sshG(ports, configFile, targetArgs(host));
  if (!g.ok)
    return { host: host.name, lookup: host.address, files: [], found: false, error: g.error, hops: [] };
  // The jump hosts persona would go through: the inventory's, else the config's ProxyJump (ssh-jump.ts).
  const proxyJump = g.options.get('proxyjump');
  let hops: Hop[] = [];
  try {
    hops = host.jump
      ? parseJump(host.jump)
      : proxyJump && proxyJump !== 'none'
        ? parseJump(proxyJump, 'ProxyJump')
        : [];
  } catch {
    // An unusable jump spec is reported by the connection itself; the host's own key is still looked up.
  }
  return { ...(await lookupIn(ports, host.name, g.options)), hops };
}

/** A jump host, started as persona starts it (ssh-jump.ts: -l, -p, then the host), looked up the same way. */
async function lookupHop(
  ports: DoctorPorts,
  configFile: string | undefined,
  hop: Hop,
): Promise<HostKeyLookup> {
  const name = `bastion ${hopName(hop)}`;
  const args = [
    ...(hop.user ? ['-l', hop.user] : []),
    ...(hop.port ? ['-p', String(hop.port)] : []),
    '--',
    hop.host,
  ];
  const g = await sshG(ports, configFile, args);
  if (!g.ok) return { host: name, lookup: hop.host, files: [], found: false, error: g.error };
  return await lookupIn(ports, name, g.options);
}

async function lookupIn(
  ports: DoctorPorts,
  host: string,
  options: Map<string, string>,
): Promise<HostKeyLookup> {
  const { lookup, files } = lookupFrom(options);
  for (const file of files) {
    if (!(await ports.exists(file))) continue;
    const r = await ports.exec('ssh-keygen', ['-F', lookup, '-f', file]);
    if (!r) return { host, lookup, files, found: false, error: 'ssh-keygen is not on PATH' };
    if (r.exitCode === 0 && r.stdout.trim() !== '') return { host, lookup, files, found: true };
  }
  return { host, lookup, files, found: false };
}

export const checkKnownHosts: Check = async (input, ports, shared): Promise<CheckResult> => {
  const id = 'known-hosts';
  const inventory = await shared.inventory();
  if (!inventory || inventory.hosts.length === 0)
    return { id, status: 'skip', summary: 'no inventory hosts to look up (see the inventory check)' };
  const configFile = await shared.sshConfig();
  // A local host (connection: local) is this machine, reached without ssh: it has no key to check.
  const remote = inventory.hosts.filter((h) => h.connection !== 'local');
  const local = inventory.hosts.length - remote.length;
  const found = await mapPool(remote, 8, (h) => lookupHost(ports, configFile, h));
  const hops = new Map(found.flatMap((r) => r.hops).map((hop) => [hopName(hop), hop]));
  const bastions = await mapPool([...hops.values()], 8, (hop) => lookupHop(ports, configFile, hop));
  const results: HostKeyLookup[] = [...found, ...bastions];
  const missing = results.filter((r) => !r.found);
  const total = remote.length;
  const andBastions = bastions.length > 0 ? ` and ${plural(bastions.length, 'bastion')}` : '';
  const localNote = local > 0 ? `; ${plural(local, 'local host')} reached without ssh` : '';
  if (missing.length === 0)
    return {
      id,
      status: 'ok',
      summary: `${total + bastions.length === 1 ? 'the' : 'all'} ${plural(total, 'inventory host')}${andBastions} ${total + bastions.length === 1 ? 'has' : 'have'} a known_hosts entry${localNote}`,
    };
  const files = [...new Set(missing.flatMap((m) => m.files.slice(0, 1)))];
  const named = missing
    .slice(0, 8)
    .map((m) => `${m.host} (${m.error ?? m.lookup})`)
    .join(', ');
  return {
    id,
    status: input.acceptNewHostKeys ? 'warn' : 'fail',
    summary: `${missing.length} of ${plural(total, 'host')}${andBastions} without a known_hosts entry${files.length ? ` in ${files.join(', ')}` : ''}: ${named}${missing.length > 8 ? ', …' : ''}`,
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
