// The Consul agent of one node (client mode), sharing the fake cluster's state: its local
// services and checks (PUT /v1/agent/service/register, /deregister/:id,
// /maintenance/:id, GET /v1/agent/services, following
// https://developer.hashicorp.com/consul/api-docs/agent/service) and anti-entropy
// (https://developer.hashicorp.com/consul/docs/architecture/anti-entropy): a sync makes the
// catalog's entries for its node equal its local state, so a service deregistered through the
// catalog comes back, a catalog entry it does not know goes, and maintenance mode (a local
// critical check `_service_maintenance:<id>`) stays. Syncs run after every local change and
// when a test calls sync(), which stands for the periodic one.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  deleteCheck,
  deleteService,
  ensureCheck,
  ensureNode,
  ensureService,
  toCheck,
  toService,
} from './consul-catalog.js';
import { field, json, parseJsonBody, type Reply, type Request, text } from './consul-http.js';
import type { ConsulState } from './consul-state.js';

type ServiceInput = ReturnType<typeof toService>;
type CheckInput = ReturnType<typeof toCheck>;

export interface FakeNodeAgent {
  readonly node: string;
  readonly url: string;
  /** One anti-entropy run. */
  sync(): void;
  /** The agent goes away: its listener closes and the servers mark the node's serfHealth critical. */
  stop(): Promise<void>;
  /** Back on the same port, with its local state, and synced at once. */
  start(): Promise<void>;
}

const SERF = 'serfHealth';
const maintId = (id: string) => `_service_maintenance:${id}`;
const DEFAULT_REASON =
  'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.';

export async function startNodeAgent(
  state: ConsulState,
  node: string,
  address: string,
): Promise<FakeNodeAgent> {
  const services = new Map<string, ServiceInput>();
  const checks = new Map<string, CheckInput>();

  const serf = (status: string) =>
    toCheck({ CheckID: SERF, Name: 'Serf Health Status', Status: status }, node);
  const sync = (): void => {
    state.apply((idx) => {
      ensureNode(state, idx, {
        ID: '',
        Node: node,
        Address: address,
        Datacenter: 'dc1',
        TaggedAddresses: null,
        Meta: null,
      });
      for (const s of services.values()) ensureService(state, idx, node, s);
      ensureCheck(state, idx, serf('passing'));
      for (const c of checks.values()) ensureCheck(state, idx, c);
      for (const id of [...(state.services.get(node)?.keys() ?? [])])
        if (!services.has(id)) deleteService(state, idx, node, id);
      for (const id of [...(state.checks.get(node)?.keys() ?? [])])
        if (id !== SERF && !checks.has(id)) deleteCheck(state, idx, node, id);
    });
  };

  const handle = (req: Request): Reply => {
    const { path, method } = req;
    if (path === '/v1/agent/services' && method === 'GET')
      return json(Object.fromEntries([...services].map(([id, s]) => [id, { ...s }])));
    if (method !== 'PUT') return text(405, `method ${method} not allowed`);
    if (path === '/v1/agent/service/register') {
      const body = parseJsonBody(req, 'Request decode failed');
      const name = field(body, 'Name');
      if (typeof name !== 'string' || name === '') return text(400, 'Missing service name');
      const s = toService({ ...(body as object), Service: name });
      services.set(s.ID, s);
      sync();
      return json(null);
    }
    const deregister = /^\/v1\/agent\/service\/deregister\/(.+)$/.exec(path);
    if (deregister) {
      const id = deregister[1]!;
      if (!services.delete(id))
        return text(
          404,
          `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`,
        );
      checks.delete(maintId(id));
      sync();
      return json(null);
    }
    const maint = /^\/v1\/agent\/service\/maintenance\/(.+)$/.exec(path);
    if (maint) {
      const id = maint[1]!;
      const enable = req.query.get('enable');
      if (enable === null) return text(400, 'Missing value for enable');
      if (!/^(true|false)$/.test(enable)) return text(400, 'Invalid value for enable');
      if (!services.has(id))
        return text(
          404,
          `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`,
        );
      if (enable === 'true') {
        const notes = req.query.get('reason') || DEFAULT_REASON;
        checks.set(
          maintId(id),
          toCheck(
            {
              CheckID: maintId(id),
              Name: 'Service Maintenance Mode',
              Status: 'critical',
              Notes: notes,
              ServiceID: id,
            },
            node,
          ),
        );
      } else checks.delete(maintId(id));
      sync();
      return json(null);
    }
    return text(404, 'Invalid URL path: not a recognized HTTP API endpoint\n');
  };

  const server = http.createServer((raw, res) => {
    const chunks: Buffer[] = [];
    raw.on('data', (c: Buffer) => chunks.push(c));
    raw.on('end', () => {
      const url = new URL(raw.url ?? '/', 'http://agent');
      let reply: Reply;
      try {
        reply = handle({
          method: raw.method ?? 'GET',
          path: decodeURIComponent(url.pathname),
          query: url.searchParams,
          headers: raw.headers,
          body: Buffer.concat(chunks),
          signal: new AbortController().signal,
        });
      } catch (err) {
        reply = text(500, err instanceof Error ? err.message : String(err));
      }
      res.writeHead(reply.status, reply.headers);
      res.end(reply.body);
    });
  });
  let port = 0;
  const open = async () => {
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  };
  await open();
  sync();
  return {
    node,
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    sync,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      state.apply((idx) => ensureCheck(state, idx, serf('critical')));
    },
    async start() {
      await open();
      sync();
    },
  };
}
