/** The traffic router of a run, with the Consul agent the run can reach. */
import { resolveSecret } from '../runbook/secrets.js';
import type { StepContext } from '../runbook/types.js';
import type { ConsulApi } from '../stores/consul-api.js';
import { nodeAgent } from '../traffic/consul-agent.js';
import { routerFor, type TrafficRouter } from '../traffic/router.js';

const agents = new WeakMap<object, Promise<ConsulApi>>();

async function consulFor(ctx: StepContext): Promise<ConsulApi> {
  const { ConsulBackend, connectConsul } = await import('../stores/consul-backend.js');
  if (ctx.backend instanceof ConsulBackend) return ctx.backend.consulApi;
  const { consulTarget } = await import('../stores/store-url.js');
  return await connectConsul(consulTarget('consul:///persona', ctx.env));
}

export function trafficRouter(ctx: StepContext): TrafficRouter {
  return routerFor(ctx.profile, {
    env: ctx.env,
    consul: () => {
      let agent = agents.get(ctx.backend);
      if (!agent) {
        agent = consulFor(ctx);
        agents.set(ctx.backend, agent);
      }
      return agent;
    },
    consulAgent: (url) => nodeAgent(url, ctx.env.CONSUL_HTTP_TOKEN?.trim() || undefined),
    guard: () => ctx.assertHeld(),
    local: ctx.local,
    secret: (ref, where) =>
      resolveSecret(ref, where, {
        env: ctx.env,
        backend: ctx.backend,
        redactor: ctx.redactor,
        ...(ctx.allowedSources ? { allowed: ctx.allowedSources } : {}),
      }),
  });
}
