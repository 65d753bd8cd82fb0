/**
 * Candidate hosts from Consul's catalog: every node with its address, its services (what runs there) and its
 * health. Node meta `ssh_user` / `ssh_port` say how to reach it; other meta become labels, and the worst of
 * the node's checks becomes the label `consul.health`. The same rules as any inventory apply to every value.
 */
import { PersonaError } from '../errors.js';
import { label, labelValue } from '../profile/rules.js';
import { connectConsul } from '../stores/consul-backend.js';
import { consulTarget } from '../stores/store-url.js';
import { type Inventory, normaliseInventory } from './inventory.js';
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
    const hosts = await Promise.all(
      nodes.map(async (n) => {
        const [apps, checks] = await Promise.all([api.nodeServices(n.Node), api.nodeHealth(n.Node)]);
        const meta = n.Meta ?? {};
        const labels: Record<string, string> = { 'consul.health': worst(checks.map((c) => c.Status)) };
        for (const [k, v] of Object.entries(meta)) {
          if (k === 'ssh_user' || k === 'ssh_port') continue;
          const ignore = (message: string) =>
            warnings.add({ variable: k, value: v, message, host: n.Node, where: `${source}, node meta` });
          if (looksSecret(k)) ignore(SECRET_IGNORED);
          else if (!label.safeParse(k).success || !labelValue.safeParse(v).success)
            ignore('not usable as a label: letters, digits, . _ / - only, at most 63 characters');
          else labels[k] = v;
        }
        return {
          name: n.Node,
          address: n.Address,
          ...(meta.ssh_port ? { port: Number(meta.ssh_port) } : {}),
          ...(meta.ssh_user ? { user: meta.ssh_user } : {}),
          labels,
          apps: apps.filter((a) => a !== 'consul'),
        };
      }),
    );
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
