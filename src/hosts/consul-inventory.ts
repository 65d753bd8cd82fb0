/**
 * Candidate hosts from Consul's catalog: every node with its address, its services (what runs there) and its
 * health. Node meta `ssh_user` / `ssh_port` say how to reach it; other meta become labels, and the worst of
 * the node's checks becomes the label `consul.health`. The same rules as any inventory apply to every value: a
 * value that cannot be a label, or a service name that is not an application id, is a warning; a node whose name,
 * address or ssh_user/ssh_port persona cannot pass to ssh is left out with a warning. One odd node never makes
 * the whole catalog unusable.
 */
import { PersonaError } from '../errors.js';
import { applicationId, integer, label, labelValue } from '../profile/rules.js';
import { connectConsul } from '../stores/consul-backend.js';
import { consulTarget } from '../stores/store-url.js';
import { address, hostName, type Inventory, loginUser, normaliseInventory } from './inventory.js';
import { looksSecret, SECRET_IGNORED, WarningCollector } from './inventory-warnings.js';

const worst = (statuses: string[]) =>
  statuses.includes('critical') ? 'critical' : statuses.includes('warning') ? 'warning' : 'passing';

export async function loadConsulInventory(
  url: string,
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<Inventory> {
  const target = consulTarget(url.startsWith('consul://') ? url : 'consul:///persona', env, url);
  const api = await connectConsul(target);
  const source = `Consul catalog at ${target.describe.replace(/\/[^/]*$/, '')}`;
  const warnings = new WarningCollector();
  try {
    const nodes = await api.nodes();
    const read = await Promise.all(
      nodes.map(async (n) => {
        const [services, checks] = await Promise.all([api.nodeServices(n.Node), api.nodeHealth(n.Node)]);
        const meta = n.Meta ?? {};
        const where = `${source}, node ${n.Node}`;
        const note = (variable: string, value: string | undefined, message: string) =>
          warnings.add({ variable, ...(value !== undefined ? { value } : {}), message, host: n.Node, where });
        // A node persona could not reach safely is left out, with a warning; the rest of the catalog still counts.
        const reach: Array<
          [string, string | undefined, { safeParse: (v: unknown) => { success: boolean } }, unknown]
        > = [
          ['Node', n.Node, hostName, n.Node],
          ['Address', n.Address, address, n.Address],
          ['ssh_user', meta.ssh_user, loginUser, meta.ssh_user],
          ['ssh_port', meta.ssh_port, integer(1, 65535), Number(meta.ssh_port)],
        ];
        for (const [variable, value, rule, parsed] of reach)
          if (value !== undefined && !rule.safeParse(parsed).success) {
            note(
              variable,
              value,
              'persona cannot pass this to ssh safely: the node is left out of the inventory',
            );
            return undefined;
          }
        const labels: Record<string, string> = { 'consul.health': worst(checks.map((c) => c.Status)) };
        for (const [k, v] of Object.entries(meta)) {
          if (k === 'ssh_user' || k === 'ssh_port') continue;
          if (looksSecret(k)) note(k, v, SECRET_IGNORED);
          else if (!label.safeParse(k).success || !labelValue.safeParse(v).success)
            note(k, v, 'not usable as a label: letters, digits, . _ / - only, at most 63 characters');
          else labels[k] = v;
        }
        const apps: string[] = [];
        for (const service of services.filter((a) => a !== 'consul')) {
          if (applicationId.safeParse(service).success) apps.push(service);
          else
            note(
              `service ${service}`,
              undefined,
              'not an application id (lowercase letters, digits, . _ -): this service is not counted as an app of the node',
            );
        }
        return {
          name: n.Node,
          address: n.Address,
          ...(meta.ssh_port ? { port: Number(meta.ssh_port) } : {}),
          ...(meta.ssh_user ? { user: meta.ssh_user } : {}),
          labels,
          apps,
        };
      }),
    );
    const hosts = read.filter((h) => h !== undefined);
    return normaliseInventory(source, { hosts }, cwd, warnings.warnings);
  } catch (error) {
    if (error instanceof PersonaError) throw error;
    throw new PersonaError(
      'E_STORE_UNAVAILABLE',
      `cannot read the Consul catalog at ${target.host}:${target.port}: ${(error as Error).message}`,
    );
  } finally {
    api.close();
  }
}
