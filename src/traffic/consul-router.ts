/**
 * The `consul` traffic method: the service moves in Consul's catalog. Fence deregisters it from the failed node;
 * switch registers it on the new node (and deregisters the old one), so Consul DNS and consul-template follow.
 */
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import type { Profile } from '../profile/schema.js';
import type { ConsulApi } from '../stores/consul-api.js';
import type { Evidence, TrafficRouter } from './router.js';

type ConsulTraffic = Extract<Profile['traffic'], { method: 'consul' }>;

export class ConsulRouter implements TrafficRouter {
  readonly method = 'consul';
  readonly canFence = true;

  constructor(
    private readonly cfg: ConsulTraffic,
    private readonly deployPort: number | undefined,
    private readonly api: () => Promise<ConsulApi>,
  ) {}

  private async nodes(signal: AbortSignal): Promise<string[]> {
    if (signal.aborted) throw signal.reason;
    return (await (await this.api()).serviceNodes(this.cfg.service)).map((e) => e.Node);
  }

  describeFence(failed: InventoryHost): string {
    return `Consul: deregister service ${this.cfg.service} from node ${failed.name}`;
  }

  describeSwitch(target: InventoryHost, failed: InventoryHost): string {
    return `Consul: register service ${this.cfg.service} on node ${target.name} (${target.address}), deregister it from ${failed.name}`;
  }

  async fence(failed: InventoryHost, signal: AbortSignal): Promise<Evidence> {
    await (await this.api()).deregister(failed.name, this.cfg.service);
    const nodes = await this.nodes(signal);
    if (nodes.includes(failed.name))
      throw new PersonaError('E_STEP_FAILED', `Consul still lists ${this.cfg.service} on ${failed.name}`);
    return { consul: { service: this.cfg.service, nodes } };
  }

  async isFenced(failed: InventoryHost, signal: AbortSignal): Promise<boolean> {
    return !(await this.nodes(signal)).includes(failed.name);
  }

  async switchTo(target: InventoryHost, failed: InventoryHost, signal: AbortSignal): Promise<Evidence> {
    const api = await this.api();
    const port = this.cfg.port ?? this.deployPort;
    await api.register({
      node: target.name,
      address: target.address,
      service: {
        id: this.cfg.service,
        service: this.cfg.service,
        address: target.address,
        tags: this.cfg.tags,
        ...(port ? { port } : {}),
      },
    });
    if (failed.name !== target.name) await api.deregister(failed.name, this.cfg.service);
    return { consul: { service: this.cfg.service, nodes: await this.nodes(signal) } };
  }

  async isSwitched(target: InventoryHost, failed: InventoryHost, signal: AbortSignal): Promise<boolean> {
    const nodes = await this.nodes(signal);
    return nodes.includes(target.name) && !nodes.includes(failed.name);
  }

  async verify(target: InventoryHost, _names: readonly string[], signal: AbortSignal): Promise<Evidence> {
    const nodes = await this.nodes(signal);
    if (nodes.length !== 1 || nodes[0] !== target.name) {
      throw new PersonaError(
        'E_STEP_FAILED',
        `Consul lists ${this.cfg.service} on ${nodes.join(', ') || 'no node'}, expected only ${target.name}`,
      );
    }
    return { consul: { service: this.cfg.service, nodes } };
  }
}
