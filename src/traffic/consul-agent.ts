/**
 * The Consul agent of one node, over its HTTP API (https://developer.hashicorp.com/consul/api-docs/agent/service).
 * An agent owns the services registered through it: anti-entropy puts them back into the catalog after a catalog
 * deregistration, so a fence must go through the agent (service maintenance mode), not around it.
 */
import { PersonaError } from '../errors.js';

export interface AgentService {
  id: string;
  name: string;
  address?: string;
  port?: number;
  tags?: string[];
}

/** unreachable: nothing answered (no agent there, or the node is down); unknown: the agent lacks the service. */
export class AgentCallError extends PersonaError {
  constructor(
    readonly kind: 'unreachable' | 'unknown-service' | 'rejected',
    message: string,
  ) {
    super('E_STEP_FAILED', message);
  }
}

export interface NodeAgent {
  readonly url: string;
  /** PUT /v1/agent/service/maintenance/:id: a critical `_service_maintenance:<id>` check, kept by the agent. */
  maintenance(serviceId: string, enable: boolean, reason: string, signal: AbortSignal): Promise<void>;
  /** PUT /v1/agent/service/register. */
  register(service: AgentService, signal: AbortSignal): Promise<void>;
}

export function nodeAgent(url: string, token?: string, timeoutMs = 3000): NodeAgent {
  const base = url.replace(/\/+$/, '');
  const call = async (path: string, signal: AbortSignal, body?: unknown): Promise<void> => {
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, {
        method: 'PUT',
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
        headers: token ? { 'X-Consul-Token': token } : {},
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      throw new AgentCallError('unreachable', `the Consul agent at ${base} does not answer (${cause})`);
    }
    if (response.ok) return;
    const text = (await response.text()).trim().slice(0, 200);
    throw new AgentCallError(
      response.status === 404 && /Unknown service/i.test(text) ? 'unknown-service' : 'rejected',
      `the Consul agent at ${base} answered ${response.status} to ${path.split('?')[0]}: ${text}`,
    );
  };
  return {
    url: base,
    async maintenance(serviceId, enable, reason, signal) {
      const q = new URLSearchParams({ enable: String(enable), ...(enable ? { reason } : {}) });
      await call(`/v1/agent/service/maintenance/${encodeURIComponent(serviceId)}?${q}`, signal);
    },
    async register(s, signal) {
      await call('/v1/agent/service/register', signal, {
        ID: s.id,
        Name: s.name,
        ...(s.address ? { Address: s.address } : {}),
        ...(s.port ? { Port: s.port } : {}),
        Tags: s.tags ?? [],
      });
    },
  };
}
