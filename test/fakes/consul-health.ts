// Catalog and health reads, all blocking queries on the catalog index:
// https://developer.hashicorp.com/consul/api-docs/catalog (nodes, services,
// service/:name, node/:name) and .../api-docs/health (node, checks, service).
// Empty results are [] (or null for an unknown node), as agent/catalog_endpoint.go does.
import { checkJson, nodeJson, serviceJson } from './consul-catalog.js';
import { blockingQuery, HttpError, json, queryMeta, type Reply, type Request } from './consul-http.js';
import type { CheckRecord, ConsulState, NodeRecord, ServiceRecord } from './consul-state.js';

type Obj = Record<string, unknown>;

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

async function read(state: ConsulState, req: Request, build: () => unknown): Promise<Reply> {
  const result = await blockingQuery(req, state, () => ({ index: state.catalogTableIndex, value: build() }));
  return json(result.value, 200, queryMeta(result.index, req));
}

function pathArg(req: Request, prefix: string, what: string): string {
  const value = req.path.slice(prefix.length);
  if (value === '') throw new HttpError(400, `Missing ${what} name`);
  return value;
}

function instances(
  state: ConsulState,
  name: string,
  tags: string[],
): { node: NodeRecord; service: ServiceRecord }[] {
  const found: { node: NodeRecord; service: ServiceRecord }[] = [];
  for (const node of [...state.nodes.values()].sort((a, b) => byName(a.Node, b.Node))) {
    for (const service of state.services.get(node.Node)?.values() ?? []) {
      const lowerTags = service.Tags.map((t) => t.toLowerCase());
      if (service.Service === name && tags.every((t) => lowerTags.includes(t.toLowerCase()))) {
        found.push({ node, service });
      }
    }
  }
  return found;
}

function checksOf(state: ConsulState, node: string): CheckRecord[] {
  return [...(state.checks.get(node)?.values() ?? [])].sort((a, b) => byName(a.CheckID, b.CheckID));
}

export function catalogNodes(state: ConsulState, req: Request): Promise<Reply> {
  return read(state, req, () =>
    [...state.nodes.values()].sort((a, b) => byName(a.Node, b.Node)).map(nodeJson),
  );
}

export function catalogServices(state: ConsulState, req: Request): Promise<Reply> {
  return read(state, req, () => {
    const services: Record<string, string[]> = {};
    for (const perNode of state.services.values()) {
      for (const s of perNode.values()) {
        const tags = new Set([...(services[s.Service] ?? []), ...s.Tags]);
        services[s.Service] = [...tags].sort(byName);
      }
    }
    return services;
  });
}

export function catalogService(state: ConsulState, req: Request): Promise<Reply> {
  const name = pathArg(req, '/v1/catalog/service/', 'service');
  return read(state, req, () =>
    instances(state, name, req.query.getAll('tag')).map(({ node, service }) => ({
      ID: node.ID,
      Node: node.Node,
      Address: node.Address,
      Datacenter: node.Datacenter,
      TaggedAddresses: node.TaggedAddresses,
      NodeMeta: node.Meta,
      ServiceKind: '',
      ServiceID: service.ID,
      ServiceName: service.Service,
      ServiceTags: [...service.Tags],
      ServiceAddress: service.Address,
      ServiceWeights: service.Weights,
      ServiceMeta: service.Meta,
      ServicePort: service.Port,
      ServiceEnableTagOverride: service.EnableTagOverride,
      CreateIndex: service.CreateIndex,
      ModifyIndex: service.ModifyIndex,
    })),
  );
}

export function catalogNode(state: ConsulState, req: Request): Promise<Reply> {
  const name = pathArg(req, '/v1/catalog/node/', 'node');
  return read(state, req, () => {
    const node = state.nodes.get(name);
    if (!node) return null;
    const services: Record<string, Obj> = {};
    for (const s of state.services.get(name)?.values() ?? []) services[s.ID] = serviceJson(s);
    return { Node: nodeJson(node), Services: services };
  });
}

export function healthNode(state: ConsulState, req: Request): Promise<Reply> {
  const name = pathArg(req, '/v1/health/node/', 'node');
  return read(state, req, () => checksOf(state, name).map(checkJson));
}

export function healthChecks(state: ConsulState, req: Request): Promise<Reply> {
  const name = pathArg(req, '/v1/health/checks/', 'service');
  return read(state, req, () =>
    [...state.nodes.keys()]
      .sort(byName)
      .flatMap((node) => checksOf(state, node).filter((c) => c.ServiceName === name))
      .map(checkJson),
  );
}

/** ?passing keeps only instances whose node and service checks all pass (warning is filtered too). */
export function healthService(state: ConsulState, req: Request): Promise<Reply> {
  const name = pathArg(req, '/v1/health/service/', 'service');
  const passingParam = req.query.get('passing');
  let passingOnly = req.query.has('passing');
  if (passingParam) {
    if (!/^(1|t|T|TRUE|true|True|0|f|F|FALSE|false|False)$/.test(passingParam)) {
      throw new HttpError(400, 'Invalid value for ?passing');
    }
    passingOnly = /^(1|t|T|TRUE|true|True)$/.test(passingParam);
  }
  return read(state, req, () =>
    instances(state, name, req.query.getAll('tag'))
      .map(({ node, service }) => ({
        node,
        service,
        checks: checksOf(state, node.Node).filter((c) => c.ServiceID === '' || c.ServiceID === service.ID),
      }))
      .filter(({ checks }) => !passingOnly || checks.every((c) => c.Status === 'passing'))
      .map(({ node, service, checks }) => ({
        Node: nodeJson(node),
        Service: serviceJson(service),
        Checks: checks.map(checkJson),
      })),
  );
}
