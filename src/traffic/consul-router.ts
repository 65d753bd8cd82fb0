/**
 * The `consul` traffic method. Consul DNS and consul-template serve the instances that pass their checks, and an
 * agent's anti-entropy puts back into the catalog whatever was registered through it: a catalog deregistration of
 * such a service lasts until the next sync. So the fence puts the failed host's instance into maintenance mode
 * through that host's agent (a critical check the agent itself keeps), and the switch registers through the new
 * host's agent. Where no agent answers (a node registered in the catalog only, or an agent that is down) the
 * catalog is used, and the evidence says whether the result can be undone by a returning agent.
 */
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import type { Profile } from '../profile/schema.js';
import type { ConsulApi } from '../stores/consul-api.js';
import { AgentCallError, type NodeAgent } from './consul-agent.js';
import type { Evidence, TrafficRouter } from './router.js';

type ConsulTraffic = Extract<Profile['traffic'], { method: 'consul' }>;

export class ConsulRouter implements TrafficRouter {
  readonly method = 'consul';
  readonly canFence = true;
  readonly canObserve = true;

  constructor(
    private readonly cfg: ConsulTraffic,
    private readonly deployPort: number | undefined,
    private readonly api: () => Promise<ConsulApi>,
    private readonly agentOf: (url: string) => NodeAgent,
  ) {}

  private agent(host: InventoryHost): NodeAgent {
    const url = this.cfg.agent_url.replaceAll('{host}', host.name).replaceAll('{address}', host.address);
    return this.agentOf(url);
  }

  /** The nodes whose instance of the service passes its checks. */
  private async serving(signal: AbortSignal): Promise<string[]> {
    if (signal.aborted) throw signal.reason;
    return await (await this.api()).passingNodes(this.cfg.service);
  }

  private async registered(signal: AbortSignal): Promise<string[]> {
    if (signal.aborted) throw signal.reason;
    return (await (await this.api()).serviceNodes(this.cfg.service)).map((e) => e.Node);
  }

  describeFence(failed: InventoryHost): string {
    return `Consul: service ${this.cfg.service} into maintenance mode on ${failed.name}'s agent (${this.agent(failed).url}); deregistered from the catalog if no agent answers there`;
  }

  describeSwitch(target: InventoryHost, failed: InventoryHost): string {
    return `Consul: register service ${this.cfg.service} through ${target.name}'s agent (else in the catalog), ${failed.name}'s stays out`;
  }

  async fence(failed: InventoryHost, signal: AbortSignal): Promise<Evidence> {
    const agent = this.agent(failed);
    const reason = `fenced by persona: ${failed.name} failed`;
    let how: Evidence;
    try {
      await agent.maintenance(this.cfg.service, true, reason, signal);
      how = { maintenance: true, agent: agent.url };
    } catch (error) {
      if (!(error instanceof AgentCallError) || error.kind === 'rejected') throw error;
      // No agent, or one that does not know the service: it lives in the catalog only, and there it is removed.
      await (await this.api()).deregister(failed.name, this.cfg.service);
      how = {
        maintenance: false,
        deregistered: true,
        agent: error.message,
        ...(error.kind === 'unreachable'
          ? {
              warning: `if an agent on ${failed.name} had registered ${this.cfg.service}, it registers it again when it comes back (anti-entropy); keep ${failed.name} down or stop the service there`,
            }
          : {}),
      };
    }
    const nodes = await this.serving(signal);
    if (nodes.includes(failed.name))
      throw new PersonaError('E_STEP_FAILED', `Consul still serves ${this.cfg.service} from ${failed.name}`);
    return { consul: { service: this.cfg.service, serving: nodes, ...how } };
  }

  async isFenced(failed: InventoryHost, signal: AbortSignal): Promise<boolean> {
    return !(await this.serving(signal)).includes(failed.name);
  }

  async switchTo(target: InventoryHost, failed: InventoryHost, signal: AbortSignal): Promise<Evidence> {
    const port = this.cfg.port ?? this.deployPort;
    const agent = this.agent(target);
    let via: string;
    try {
      await agent.register(
        {
          id: this.cfg.service,
          name: this.cfg.service,
          address: target.address,
          tags: this.cfg.tags,
          ...(port ? { port } : {}),
        },
        signal,
      );
      // A host fenced in an earlier run and now the target again: out of maintenance.
      await agent.maintenance(this.cfg.service, false, '', signal);
      via = `agent ${agent.url}`;
    } catch (error) {
      if (!(error instanceof AgentCallError) || error.kind !== 'unreachable') throw error;
      await (await this.api()).register({
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
      via = 'catalog';
    }
    // The failed host stays out, whatever happened to it since the fence.
    if (failed.name !== target.name && !(await this.isFenced(failed, signal)))
      await this.fence(failed, signal);
    return {
      consul: { service: this.cfg.service, registered_via: via, serving: await this.serving(signal) },
    };
  }

  async isSwitched(target: InventoryHost, failed: InventoryHost, signal: AbortSignal): Promise<boolean> {
    const nodes = await this.serving(signal);
    return nodes.includes(target.name) && !nodes.includes(failed.name);
  }

  async verify(target: InventoryHost, _names: readonly string[], signal: AbortSignal): Promise<Evidence> {
    const nodes = await this.serving(signal);
    if (nodes.length !== 1 || nodes[0] !== target.name) {
      throw new PersonaError(
        'E_STEP_FAILED',
        `Consul serves ${this.cfg.service} from ${nodes.join(', ') || 'no node'}, expected only ${target.name}`,
      );
    }
    return {
      consul: { service: this.cfg.service, serving: nodes, registered: await this.registered(signal) },
    };
  }
}
