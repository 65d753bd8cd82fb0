// The fake agent's endpoint table and its ACL gate. Paths and methods follow
// hashicorp/consul agent/http_register.go; tokens are read as parseTokenInternal
// does (?token=, then X-Consul-Token, then Authorization: Bearer) and refused
// with the texts of acl/errors.go.
import { type AgentIdentity, handleDeregister, handleRegister } from './consul-catalog.js';
import {
  catalogNode,
  catalogNodes,
  catalogService,
  catalogServices,
  healthChecks,
  healthNode,
  healthService,
} from './consul-health.js';
import { json, type Reply, type Request, text } from './consul-http.js';
import { handleKv } from './consul-kv.js';
import {
  createSession,
  destroySession,
  nodeSessions,
  renewSession,
  type SessionTimers,
  sessionInfo,
  sessionList,
} from './consul-sessions.js';
import type { ConsulState } from './consul-state.js';
import { handleTxn } from './consul-txn.js';

export interface RouteOptions {
  readonly sessionTtlMultiplier?: number | undefined;
  readonly sessionTtlMinMs?: number | undefined;
  readonly maxTxnOps?: number | undefined;
}

export interface Route {
  readonly path: string;
  readonly prefix: boolean;
  readonly methods: readonly string[];
  /** The ACL permission the endpoint needs, or null when it needs none. */
  readonly acl: ((req: Request) => { permission: string; resource?: string }) | null;
  readonly handle: (req: Request) => Reply | Promise<Reply>;
}

const ANONYMOUS_ACCESSOR = '00000000-0000-0000-0000-000000000002';

export function routes(
  state: ConsulState,
  timers: SessionTimers,
  agent: AgentIdentity,
  opts: RouteOptions,
): Route[] {
  const sessions = {
    nodeName: agent.nodeName,
    ttlMultiplier: opts.sessionTtlMultiplier ?? 2,
    ttlMinMs: opts.sessionTtlMinMs ?? 10_000,
  };
  const read = (permission: string) => () => ({ permission: `${permission}:read` });
  const write = (permission: string) => () => ({ permission: `${permission}:write` });
  const GET = ['GET'];
  const PUT = ['PUT'];
  return [
    {
      path: '/v1/kv/',
      prefix: true,
      methods: ['GET', 'PUT', 'DELETE'],
      acl: (req) => ({
        permission: req.method === 'GET' ? 'key:read' : 'key:write',
        resource: req.path.slice('/v1/kv/'.length),
      }),
      handle: (req) => handleKv(state, req),
    },
    {
      path: '/v1/txn',
      prefix: false,
      methods: PUT,
      acl: write('key'),
      handle: (req) => handleTxn(state, req, opts.maxTxnOps ?? 128),
    },
    {
      path: '/v1/session/create',
      prefix: false,
      methods: PUT,
      acl: write('session'),
      handle: (req) => createSession(state, timers, req, sessions),
    },
    {
      path: '/v1/session/destroy/',
      prefix: true,
      methods: PUT,
      acl: write('session'),
      handle: (req) => destroySession(state, timers, req),
    },
    {
      path: '/v1/session/renew/',
      prefix: true,
      methods: PUT,
      acl: write('session'),
      handle: (req) => renewSession(state, timers, req),
    },
    {
      path: '/v1/session/info/',
      prefix: true,
      methods: GET,
      acl: read('session'),
      handle: (req) => sessionInfo(state, req),
    },
    {
      path: '/v1/session/node/',
      prefix: true,
      methods: GET,
      acl: read('session'),
      handle: (req) => nodeSessions(state, req),
    },
    {
      path: '/v1/session/list',
      prefix: false,
      methods: GET,
      acl: read('session'),
      handle: (req) => sessionList(state, req),
    },
    {
      path: '/v1/catalog/register',
      prefix: false,
      methods: PUT,
      acl: write('node'),
      handle: (req) => handleRegister(state, req, agent),
    },
    {
      path: '/v1/catalog/deregister',
      prefix: false,
      methods: PUT,
      acl: write('node'),
      handle: (req) => handleDeregister(state, req),
    },
    {
      path: '/v1/catalog/nodes',
      prefix: false,
      methods: GET,
      acl: read('node'),
      handle: (req) => catalogNodes(state, req),
    },
    {
      path: '/v1/catalog/services',
      prefix: false,
      methods: GET,
      acl: read('service'),
      handle: (req) => catalogServices(state, req),
    },
    {
      path: '/v1/catalog/service/',
      prefix: true,
      methods: GET,
      acl: read('service'),
      handle: (req) => catalogService(state, req),
    },
    {
      path: '/v1/catalog/node/',
      prefix: true,
      methods: GET,
      acl: read('node'),
      handle: (req) => catalogNode(state, req),
    },
    {
      path: '/v1/health/node/',
      prefix: true,
      methods: GET,
      acl: read('node'),
      handle: (req) => healthNode(state, req),
    },
    {
      path: '/v1/health/checks/',
      prefix: true,
      methods: GET,
      acl: read('service'),
      handle: (req) => healthChecks(state, req),
    },
    {
      path: '/v1/health/service/',
      prefix: true,
      methods: GET,
      acl: read('service'),
      handle: (req) => healthService(state, req),
    },
    {
      path: '/v1/status/leader',
      prefix: false,
      methods: GET,
      acl: null,
      handle: () => json('127.0.0.1:8300'),
    },
    {
      path: '/v1/status/peers',
      prefix: false,
      methods: GET,
      acl: null,
      handle: () => json(['127.0.0.1:8300']),
    },
    {
      path: '/v1/agent/self',
      prefix: false,
      methods: GET,
      acl: read('agent'),
      handle: () => agentSelf(agent),
    },
  ];
}

function agentSelf(agent: AgentIdentity): Reply {
  return json({
    Config: {
      Datacenter: agent.datacenter,
      PrimaryDatacenter: agent.datacenter,
      NodeName: agent.nodeName,
      NodeID: agent.nodeId,
      Revision: 'fake',
      Server: true,
      Version: '1.21.0-persona-fake',
    },
    Member: {
      Name: agent.nodeName,
      Addr: '127.0.0.1',
      Port: 8301,
      Status: 1,
      Tags: { dc: agent.datacenter, role: 'consul' },
    },
    Meta: { 'consul-network-segment': '' },
  });
}

/** parseTokenInternal: ?token= first, then X-Consul-Token, then Authorization: Bearer. */
function tokenOf(req: Request): string {
  const fromQuery = req.query.get('token');
  if (fromQuery) return fromQuery;
  const header = req.headers['x-consul-token'];
  if (typeof header === 'string' && header !== '') return header;
  const auth = req.headers.authorization;
  const bearer = typeof auth === 'string' ? /^Bearer\s+(.+)$/i.exec(auth.trim()) : null;
  return bearer?.[1]?.trim() ?? '';
}

export function checkAcl(route: Route, req: Request, aclToken: string | undefined): Reply | undefined {
  if (aclToken === undefined || route.acl === null) return undefined;
  const token = tokenOf(req);
  if (token === aclToken) return undefined;
  if (token !== '') return text(403, 'ACL not found');
  const { permission, resource } = route.acl(req);
  const on = resource ? ` on ${JSON.stringify(resource)}` : '';
  return text(
    403,
    `Permission denied: token with AccessorID '${ANONYMOUS_ACCESSOR}' lacks permission '${permission}'${on}`,
  );
}

export function findRoute(table: Route[], path: string): Route | undefined {
  return table.find((r) => (r.prefix ? path.startsWith(r.path) : path === r.path));
}
