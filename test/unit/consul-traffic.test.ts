/**
 * The `consul` traffic method against the fake cluster with real agent behaviour: services registered through a
 * node's agent come back into the catalog after a catalog deregistration (anti-entropy); maintenance mode stays.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import { connectConsul } from '../../src/stores/consul-backend.js';
import { consulTarget } from '../../src/stores/store-url.js';
import { nodeAgent } from '../../src/traffic/consul-agent.js';
import { routerFor } from '../../src/traffic/router.js';
import { type ConsulServer, startConsulServer } from '../fakes/consul-server.js';
import { repoRoot } from '../helpers/cli.js';

const servers: ConsulServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

const host = (name: string): InventoryHost => ({ name, address: name, labels: {}, apps: [] });
const signal = new AbortController().signal;

async function get<T>(consul: ConsulServer, path: string): Promise<T> {
  return (await (await fetch(`${consul.url}${path}`)).json()) as T;
}
const passing = async (consul: ConsulServer) =>
  (await get<Array<{ Node: { Node: string } }>>(consul, '/v1/health/service/demo-web?passing')).map(
    (e) => e.Node.Node,
  );
const inCatalog = async (consul: ConsulServer) =>
  (await get<Array<{ Node: string }>>(consul, '/v1/catalog/service/demo-web')).map((e) => e.Node);

/** web-1 runs demo-web, registered through its agent; web-2 has an agent and nothing else. */
async function cluster() {
  const consul = await startConsulServer();
  servers.push(consul);
  const agents = { 'web-1': await consul.nodeAgent('web-1'), 'web-2': await consul.nodeAgent('web-2') };
  const r = await fetch(`${agents['web-1'].url}/v1/agent/service/register`, {
    method: 'PUT',
    body: JSON.stringify({ ID: 'demo-web', Name: 'demo-web', Port: 8080 }),
  });
  expect(r.status).toBe(200);
  const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
  raw.traffic = { method: 'consul', service: 'demo-web' };
  const profile = validateProfileValue('demo-web.json', raw, 'demo-web');
  const api = connectConsul(consulTarget(`consul://127.0.0.1:${consul.port}/persona`, {}));
  // The profile's agent_url is http://{address}:8500; here each host's agent listens on its own port.
  const byUrl: Record<string, string> = {
    'http://web-1:8500': agents['web-1'].url,
    'http://web-2:8500': agents['web-2'].url,
  };
  const router = routerFor(profile, {
    consul: () => api,
    consulAgent: (url) => nodeAgent(byUrl[url] ?? url),
  });
  return { consul, agents, router };
}

describe('the fake agent models anti-entropy', () => {
  test('a catalog deregistration of an agent-registered service comes back after the next sync', async () => {
    const { consul, agents } = await cluster();
    await fetch(`${consul.url}/v1/catalog/deregister`, {
      method: 'PUT',
      body: JSON.stringify({ Node: 'web-1', ServiceID: 'demo-web' }),
    });
    expect(await inCatalog(consul)).toEqual([]);
    agents['web-1'].sync();
    expect(await inCatalog(consul)).toEqual(['web-1']);
    expect(await passing(consul)).toEqual(['web-1']);
  });

  test('maintenance mode takes the instance out of passing, and a sync keeps it out', async () => {
    const { consul, agents } = await cluster();
    const r = await fetch(
      `${agents['web-1'].url}/v1/agent/service/maintenance/demo-web?enable=true&reason=test`,
      {
        method: 'PUT',
      },
    );
    expect(r.status).toBe(200);
    agents['web-1'].sync();
    expect(await inCatalog(consul)).toEqual(['web-1']);
    expect(await passing(consul)).toEqual([]);
    const checks = await get<Array<{ CheckID: string; Status: string; Notes: string }>>(
      consul,
      '/v1/health/checks/demo-web',
    );
    expect(checks).toContainEqual(
      expect.objectContaining({
        CheckID: '_service_maintenance:demo-web',
        Status: 'critical',
        Notes: 'test',
      }),
    );
  });

  test('maintenance of an unknown service is a 404 naming it', async () => {
    const { agents } = await cluster();
    const r = await fetch(`${agents['web-2'].url}/v1/agent/service/maintenance/demo-web?enable=true`, {
      method: 'PUT',
    });
    expect(r.status).toBe(404);
    expect(await r.text()).toContain('Unknown service ID "demo-web"');
  });
});

describe('consul traffic method with agents', () => {
  test('the fence survives anti-entropy: web-1 stays out of service after its agent syncs', async () => {
    const { consul, agents, router } = await cluster();
    const evidence = await router.fence(host('web-1'), signal);
    expect(evidence).toMatchObject({ consul: { maintenance: true } });
    agents['web-1'].sync();
    expect(await passing(consul)).toEqual([]);
    expect(await router.isFenced(host('web-1'), signal)).toBe(true);
  });

  test('the switch registers through the new host agent and survives syncs of both agents', async () => {
    const { consul, agents, router } = await cluster();
    await router.fence(host('web-1'), signal);
    const evidence = await router.switchTo(host('web-2'), host('web-1'), signal);
    expect(evidence).toMatchObject({ consul: { registered_via: expect.stringContaining('agent') } });
    agents['web-1'].sync();
    agents['web-2'].sync();
    expect(await passing(consul)).toEqual(['web-2']);
    expect(await router.isSwitched(host('web-2'), host('web-1'), signal)).toBe(true);
    await expect(router.verify(host('web-2'), [], signal)).resolves.toMatchObject({
      consul: { serving: ['web-2'] },
    });
  });

  test('a failed host whose agent is down: deregistered from the catalog, and the evidence warns of its return', async () => {
    const { consul, agents, router } = await cluster();
    await agents['web-1'].stop();
    const evidence = await router.fence(host('web-1'), signal);
    expect(evidence).toMatchObject({
      consul: { maintenance: false, deregistered: true, warning: expect.stringContaining('anti-entropy') },
    });
    expect(await passing(consul)).toEqual([]);
  });
});
