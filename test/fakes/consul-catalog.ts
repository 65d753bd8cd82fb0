// Catalog writes: PUT /v1/catalog/register and /v1/catalog/deregister
// (https://developer.hashicorp.com/consul/api-docs/catalog) and the Node,
// Service and Check operations of /v1/txn. Validation and error texts follow
// hashicorp/consul agent/consul/catalog_endpoint.go and state/catalog.go,
// state/txn.go. A check that turns critical, or goes away, invalidates the
// sessions that depend on it, as the state store does.
import { field, isUuid, json, parseJsonBody, type Reply, type Request } from './consul-http.js';
import type { CheckRecord, ConsulState, NodeRecord, ServiceRecord } from './consul-state.js';

export interface AgentIdentity {
  readonly nodeName: string;
  readonly nodeId: string;
  readonly datacenter: string;
}

type Obj = Record<string, unknown>;
type NodeInput = Omit<NodeRecord, 'CreateIndex' | 'ModifyIndex'>;
type ServiceInput = Omit<ServiceRecord, 'CreateIndex' | 'ModifyIndex'>;
type CheckInput = Omit<CheckRecord, 'CreateIndex' | 'ModifyIndex' | 'ServiceName' | 'ServiceTags'>;

const str = (o: unknown, name: string): string => {
  const v = field(o, name);
  return typeof v === 'string' ? v : '';
};
const strMap = (o: unknown, name: string): Record<string, string> | null => {
  const v = field(o, name);
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, string>) : null;
};

export function toNode(o: unknown, agent: AgentIdentity): NodeInput {
  return {
    ID: str(o, 'ID'),
    Node: str(o, 'Node'),
    Address: str(o, 'Address'),
    Datacenter: str(o, 'Datacenter') || agent.datacenter,
    TaggedAddresses: strMap(o, 'TaggedAddresses'),
    Meta: strMap(o, 'Meta') ?? strMap(o, 'NodeMeta'),
  };
}

/** servicePreApply: the ID defaults to the name, weights to 1/1. */
export function toService(o: unknown): ServiceInput {
  const name = str(o, 'Service');
  const id = str(o, 'ID') || name;
  if (id !== '' && name === '') throw new Error('Must provide service name with ID');
  const tags = field(o, 'Tags');
  const port = field(o, 'Port');
  const weights = field(o, 'Weights') as { Passing?: number; Warning?: number } | undefined;
  return {
    ID: id,
    Service: name,
    Tags: Array.isArray(tags) ? tags.map(String) : [],
    Address: str(o, 'Address'),
    Meta: strMap(o, 'Meta') ?? {},
    Port: typeof port === 'number' ? port : 0,
    Weights: { Passing: weights?.Passing ?? 1, Warning: weights?.Warning ?? 1 },
    EnableTagOverride: field(o, 'EnableTagOverride') === true,
  };
}

/** checkPreApply: the CheckID defaults to the Name; an unset status is critical. */
export function toCheck(o: unknown, node: string): CheckInput {
  const definition = field(o, 'Definition');
  return {
    Node: str(o, 'Node') || node,
    CheckID: str(o, 'CheckID') || str(o, 'Name'),
    Name: str(o, 'Name'),
    Status: str(o, 'Status') || 'critical',
    Notes: str(o, 'Notes'),
    Output: str(o, 'Output'),
    ServiceID: str(o, 'ServiceID'),
    Type: str(o, 'Type'),
    Definition: definition && typeof definition === 'object' ? (definition as Obj) : {},
  };
}

function upsert<T extends { CreateIndex: number; ModifyIndex: number }>(
  existing: T | undefined,
  input: Omit<T, 'CreateIndex' | 'ModifyIndex'>,
  idx: number,
): T {
  if (existing) {
    const { CreateIndex: _c, ModifyIndex: _m, ...rest } = existing;
    if (JSON.stringify(rest) === JSON.stringify(input)) return existing;
  }
  return { ...input, CreateIndex: existing?.CreateIndex ?? idx, ModifyIndex: idx } as T;
}

export function ensureNode(state: ConsulState, idx: number, input: NodeInput): NodeRecord {
  if (input.Node === '') throw new Error('Must provide node');
  if (input.ID !== '' && !isUuid(input.ID)) throw new Error(`Bad node ID: uuid string is wrong length`);
  const record = upsert(state.nodes.get(input.Node), input, idx);
  if (record.ModifyIndex === idx) {
    state.nodes.set(record.Node, record);
    state.catalogTableIndex = idx;
  }
  return record;
}

export function ensureService(
  state: ConsulState,
  idx: number,
  node: string,
  input: ServiceInput,
): ServiceRecord {
  if (!state.nodes.has(node)) throw new Error('Missing node registration');
  const services = state.services.get(node) ?? new Map<string, ServiceRecord>();
  const record = upsert(services.get(input.ID), input, idx);
  if (record.ModifyIndex === idx) {
    state.services.set(node, services.set(record.ID, record));
    state.catalogTableIndex = idx;
  }
  return record;
}

export function ensureCheck(state: ConsulState, idx: number, input: CheckInput): CheckRecord {
  if (!state.nodes.has(input.Node)) throw new Error('Missing node registration');
  let service: ServiceRecord | undefined;
  if (input.ServiceID !== '') {
    service = state.services.get(input.Node)?.get(input.ServiceID);
    if (!service) throw new Error('Missing service registration');
  }
  const checks = state.checks.get(input.Node) ?? new Map<string, CheckRecord>();
  const full = { ...input, ServiceName: service?.Service ?? '', ServiceTags: service?.Tags ?? [] };
  const record = upsert(checks.get(input.CheckID), full, idx);
  if (record.ModifyIndex === idx) {
    state.checks.set(input.Node, checks.set(record.CheckID, record));
    state.catalogTableIndex = idx;
  }
  if (record.Status === 'critical') state.invalidateSessions(idx, input.Node, record.CheckID);
  return record;
}

export function deleteCheck(state: ConsulState, idx: number, node: string, checkId: string): void {
  if (!state.checks.get(node)?.delete(checkId)) return;
  state.catalogTableIndex = idx;
  state.invalidateSessions(idx, node, checkId);
}

export function deleteService(state: ConsulState, idx: number, node: string, serviceId: string): void {
  if (!state.services.get(node)?.delete(serviceId)) return;
  state.catalogTableIndex = idx;
  for (const check of [...(state.checks.get(node)?.values() ?? [])]) {
    if (check.ServiceID === serviceId) deleteCheck(state, idx, node, check.CheckID);
  }
}

export function deleteNode(state: ConsulState, idx: number, node: string): void {
  if (!state.nodes.delete(node)) return;
  state.services.delete(node);
  state.checks.delete(node);
  state.catalogTableIndex = idx;
  state.invalidateSessions(idx, node);
}

export function handleRegister(state: ConsulState, req: Request, agent: AgentIdentity): Reply {
  const body = parseJsonBody(req, 'Request decode failed');
  const node = toNode(body, agent);
  const skipNodeUpdate = field(body, 'SkipNodeUpdate') === true;
  if (node.Node === '') throw new Error('Must provide node');
  if (node.Address === '' && !skipNodeUpdate)
    throw new Error('Must provide address if SkipNodeUpdate is not set');
  const serviceBody = field(body, 'Service');
  const service = serviceBody ? toService(serviceBody) : undefined;
  const checkBodies = [field(body, 'Check'), ...((field(body, 'Checks') as unknown[] | undefined) ?? [])];
  const checks = checkBodies.filter((c) => c).map((c) => toCheck(c, node.Node));
  state.applyAtomic((idx) => {
    if (!(skipNodeUpdate && state.nodes.has(node.Node))) ensureNode(state, idx, node);
    if (service) ensureService(state, idx, node.Node, service);
    for (const check of checks) ensureCheck(state, idx, check);
  });
  return json(true);
}

export function handleDeregister(state: ConsulState, req: Request): Reply {
  const body = parseJsonBody(req, 'Request decode failed');
  const node = str(body, 'Node');
  const serviceId = str(body, 'ServiceID');
  const checkId = str(body, 'CheckID');
  if (node === '') throw new Error('Must provide node');
  state.apply((idx) => {
    if (serviceId === '' && checkId === '') deleteNode(state, idx, node);
    if (serviceId !== '') deleteService(state, idx, node, serviceId);
    if (checkId !== '') deleteCheck(state, idx, node, checkId);
  });
  return json(true);
}

export function nodeJson(n: NodeRecord): Obj {
  return { ...n };
}

export function serviceJson(s: ServiceRecord): Obj {
  return { ...s, Tags: [...s.Tags] };
}

export function checkJson(c: CheckRecord): Obj {
  return { ...c, ServiceTags: [...c.ServiceTags] };
}

export type CatalogTxnOp =
  | { readonly kind: 'Node'; readonly verb: string; readonly node: NodeInput; readonly index: number }
  | {
      readonly kind: 'Service';
      readonly verb: string;
      readonly node: string;
      readonly service: Obj;
      readonly index: number;
    }
  | { readonly kind: 'Check'; readonly verb: string; readonly check: CheckInput; readonly index: number };

export function parseCatalogOp(op: unknown): CatalogTxnOp | undefined {
  const index = (o: unknown): number => Number(field(o, 'ModifyIndex') ?? 0);
  const nodeOp = field(op, 'Node');
  if (nodeOp) {
    const node = field(nodeOp, 'Node');
    const agent = { nodeName: '', nodeId: '', datacenter: 'dc1' };
    return { kind: 'Node', verb: str(nodeOp, 'Verb'), node: toNode(node, agent), index: index(node) };
  }
  const serviceOp = field(op, 'Service');
  if (serviceOp) {
    const service = (field(serviceOp, 'Service') ?? {}) as Obj;
    return {
      kind: 'Service',
      verb: str(serviceOp, 'Verb'),
      node: str(serviceOp, 'Node'),
      service,
      index: index(service),
    };
  }
  const checkOp = field(op, 'Check');
  if (checkOp) {
    const check = field(checkOp, 'Check');
    return { kind: 'Check', verb: str(checkOp, 'Verb'), check: toCheck(check, ''), index: index(check) };
  }
  return undefined;
}

export function isCatalogWrite(op: CatalogTxnOp): boolean {
  return op.verb !== 'get';
}

/** A CAS write with index 0 only creates; otherwise the index must match. */
function casAllows(existing: { ModifyIndex: number } | undefined, index: number): boolean {
  return index === 0 ? existing === undefined : existing?.ModifyIndex === index;
}

export function catalogTxn(state: ConsulState, idx: number, op: CatalogTxnOp): Obj[] {
  if (op.kind === 'Node') return nodeTxn(state, idx, op);
  if (op.kind === 'Service') return serviceTxn(state, idx, op);
  return checkTxn(state, idx, op);
}

function nodeTxn(state: ConsulState, idx: number, op: Extract<CatalogTxnOp, { kind: 'Node' }>): Obj[] {
  const name = op.node.Node;
  const existing = state.nodes.get(name);
  const stale = (what: string): Error =>
    new Error(`failed to ${what} node ${JSON.stringify(name)}, index is stale`);
  switch (op.verb) {
    case 'get':
      if (!existing) throw new Error(`node ${JSON.stringify(name)} doesn't exist`);
      return [{ Node: nodeJson(existing) }];
    case 'cas':
      if (!casAllows(existing, op.index)) throw stale('set');
      return [{ Node: nodeJson(ensureNode(state, idx, op.node)) }];
    case 'set':
      return [{ Node: nodeJson(ensureNode(state, idx, op.node)) }];
    case 'delete-cas':
      if (!existing || existing.ModifyIndex !== op.index) throw stale('delete');
      deleteNode(state, idx, name);
      return [];
    case 'delete':
      deleteNode(state, idx, name);
      return [];
    default:
      throw new Error(`unknown Node verb ${JSON.stringify(op.verb)}`);
  }
}

function serviceTxn(state: ConsulState, idx: number, op: Extract<CatalogTxnOp, { kind: 'Service' }>): Obj[] {
  const id = str(op.service, 'ID');
  const existing = state.services.get(op.node)?.get(id);
  const where = `service ${JSON.stringify(id)} on node ${JSON.stringify(op.node)}`;
  switch (op.verb) {
    case 'get':
      if (!existing) throw new Error(`${where} doesn't exist`);
      return [{ Service: serviceJson(existing) }];
    case 'cas':
      if (!casAllows(existing, op.index)) throw new Error(`failed to set ${where}, index is stale`);
      return [{ Service: serviceJson(ensureService(state, idx, op.node, toService(op.service))) }];
    case 'set':
      return [{ Service: serviceJson(ensureService(state, idx, op.node, toService(op.service))) }];
    case 'delete-cas':
      if (!existing || existing.ModifyIndex !== op.index)
        throw new Error(`failed to delete ${where}, index is stale`);
      deleteService(state, idx, op.node, id);
      return [];
    case 'delete':
      deleteService(state, idx, op.node, id);
      return [];
    default:
      throw new Error(`unknown Service verb ${JSON.stringify(op.verb)}`);
  }
}

function checkTxn(state: ConsulState, idx: number, op: Extract<CatalogTxnOp, { kind: 'Check' }>): Obj[] {
  const { Node: node, CheckID: id } = op.check;
  const existing = state.checks.get(node)?.get(id);
  const where = `check ${JSON.stringify(id)} on node ${JSON.stringify(node)}`;
  switch (op.verb) {
    case 'get':
      if (!existing) throw new Error(`${where} doesn't exist`);
      return [{ Check: checkJson(existing) }];
    case 'cas':
      if (!casAllows(existing, op.index)) throw new Error(`failed to set ${where}, index is stale`);
      return [{ Check: checkJson(ensureCheck(state, idx, op.check)) }];
    case 'set':
      return [{ Check: checkJson(ensureCheck(state, idx, op.check)) }];
    case 'delete-cas':
      if (!existing || existing.ModifyIndex !== op.index)
        throw new Error(`failed to delete ${where}, index is stale`);
      deleteCheck(state, idx, node, id);
      return [];
    case 'delete':
      deleteCheck(state, idx, node, id);
      return [];
    default:
      throw new Error(`unknown Check verb ${JSON.stringify(op.verb)}`);
  }
}

/** The agent registers itself, with the serfHealth check that sessions depend on by default. */
export function registerAgentNode(state: ConsulState, agent: AgentIdentity): void {
  state.apply((idx) => {
    const address = '127.0.0.1';
    const tagged = { lan: address, lan_ipv4: address, wan: address, wan_ipv4: address };
    ensureNode(state, idx, {
      ID: agent.nodeId,
      Node: agent.nodeName,
      Address: address,
      Datacenter: agent.datacenter,
      TaggedAddresses: tagged,
      Meta: { 'consul-network-segment': '' },
    });
    ensureService(state, idx, agent.nodeName, toService({ ID: 'consul', Service: 'consul', Port: 8300 }));
    const serf = {
      CheckID: 'serfHealth',
      Name: 'Serf Health Status',
      Status: 'passing',
      Output: 'Agent alive and reachable',
    };
    ensureCheck(state, idx, toCheck(serf, agent.nodeName));
  });
}
