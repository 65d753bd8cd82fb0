// A local HTTP server speaking the subset of Consul's documented HTTP API that
// persona uses (KV, transactions, sessions, catalog, health, status), so the
// Consul store can be tested without an agent. 404/405 texts and error
// statuses follow hashicorp/consul agent/http.go; each endpoint module names
// the documentation page it follows.
import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { type AgentIdentity, registerAgentNode } from './consul-catalog.js';
import { HttpError, type Reply, type Request, text } from './consul-http.js';
import { type FakeNodeAgent, startNodeAgent } from './consul-node-agent.js';
import { checkAcl, findRoute, type Route, routes } from './consul-routes.js';
import { SessionTimers } from './consul-sessions.js';
import { ConsulState } from './consul-state.js';

export interface ConsulServerOptions {
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** When set, every request must carry it (X-Consul-Token, Authorization: Bearer, or ?token=). */
  aclToken?: string;
  /** Serve https with this PEM certificate and key. */
  tls?: { cert: string; key: string };
  /** Consul invalidates a session after up to 2x its TTL (the default here); tests may use 1. */
  sessionTtlMultiplier?: number;
  /** Consul's session_ttl_min (10s); lower it to test expiry quickly. */
  sessionTtlMinMs?: number;
  /** Operations allowed in one /v1/txn: 128 in current Consul, 64 before. */
  maxTxnOps?: number;
}

export interface ConsulServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Stops for good. */
  close(): Promise<void>;
  /** Simulates the agent going down: the listener closes, the state is kept. */
  stop(): Promise<void>;
  /** Comes back on the same port; session TTLs restart and lock-delays are forgotten, as after a leader election. */
  start(): Promise<void>;
  /** Starts the Consul agent of another node, with its own address and anti-entropy (consul-node-agent.ts). */
  nodeAgent(node: string, address?: string): Promise<FakeNodeAgent>;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function dispatch(
  table: Route[],
  raw: http.IncomingMessage,
  signal: AbortSignal,
  opts: ConsulServerOptions,
): Promise<Reply> {
  const url = new URL(raw.url ?? '/', 'http://consul');
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    return text(400, `invalid URL escape in ${JSON.stringify(url.pathname)}`);
  }
  const route = findRoute(table, path);
  if (!route) {
    const hint = path.includes('/v1/')
      ? 'not a recognized HTTP API endpoint'
      : "if attempting to use the HTTP API, ensure the path starts with '/v1/'";
    return text(404, `Invalid URL path: ${hint}\n`);
  }
  const method = raw.method ?? 'GET';
  const allow = ['OPTIONS', ...route.methods].join(',');
  if (method === 'OPTIONS') return { status: 200, headers: { Allow: allow } };
  if (!route.methods.includes(method)) return text(405, `method ${method} not allowed`, { Allow: allow });
  const req: Request = {
    method,
    path,
    query: url.searchParams,
    headers: raw.headers,
    body: await readBody(raw),
    signal,
  };
  const denied = checkAcl(route, req, opts.aclToken);
  if (denied) return denied;
  try {
    return await route.handle(req);
  } catch (err) {
    // Consul answers a plain RPC error with 500 and the error text.
    if (err instanceof HttpError) return text(err.status, err.message);
    return text(500, err instanceof Error ? err.message : String(err));
  }
}

/** Each request is aborted when its client leaves or the agent stops, which ends blocking queries. */
function requestHandler(table: Route[], opts: ConsulServerOptions, lifetime: () => AbortSignal) {
  return (raw: http.IncomingMessage, res: http.ServerResponse): void => {
    const request = new AbortController();
    const abort = (): void => request.abort();
    const agentSignal = lifetime();
    res.on('close', abort);
    agentSignal.addEventListener('abort', abort, { once: true });
    dispatch(table, raw, request.signal, opts)
      .catch((err: unknown) => text(500, String(err)))
      .then((reply) => {
        agentSignal.removeEventListener('abort', abort);
        if (res.headersSent || res.destroyed) return;
        res.writeHead(reply.status, reply.headers);
        res.end(reply.body);
      });
  };
}

/** The listening socket, which can go down and come back on the same port. */
class Listener {
  lifetime = new AbortController();
  listening = false;

  constructor(
    private readonly server: http.Server | https.Server,
    readonly host: string,
    public port: number,
  ) {}

  async open(): Promise<void> {
    if (this.listening) return;
    this.lifetime = new AbortController();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, this.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.listening = true;
  }

  async shut(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    this.lifetime.abort();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}

export async function startConsulServer(opts: ConsulServerOptions = {}): Promise<ConsulServer> {
  const state = new ConsulState();
  const agent: AgentIdentity = { nodeName: 'persona-fake-consul', nodeId: randomUUID(), datacenter: 'dc1' };
  registerAgentNode(state, agent);
  const timers = new SessionTimers(state, opts.sessionTtlMultiplier ?? 2);
  const onRequest = requestHandler(routes(state, timers, agent, opts), opts, () => listener.lifetime.signal);
  const server = opts.tls ? https.createServer(opts.tls, onRequest) : http.createServer(onRequest);
  const listener = new Listener(server, opts.host ?? '127.0.0.1', opts.port ?? 0);
  await listener.open();
  timers.rearmAll();
  const nodeAgents: FakeNodeAgent[] = [];
  const shut = async (): Promise<void> => {
    timers.clearAll();
    await listener.shut();
  };
  const scheme = opts.tls ? 'https' : 'http';
  const urlHost = listener.host.includes(':') ? `[${listener.host}]` : listener.host;
  return {
    get url() {
      return `${scheme}://${urlHost}:${listener.port}`;
    },
    host: listener.host,
    get port() {
      return listener.port;
    },
    async close() {
      await Promise.all(nodeAgents.splice(0).map((a) => a.stop()));
      await shut();
    },
    stop: shut,
    async nodeAgent(node, address = '127.0.0.1') {
      const agent = await startNodeAgent(state, node, address);
      nodeAgents.push(agent);
      return agent;
    },
    async start() {
      if (listener.listening) return;
      // A restarted leader forgets lock-delays and gives every session a fresh TTL.
      state.lockDelays.clear();
      await listener.open();
      timers.rearmAll();
    },
  };
}
