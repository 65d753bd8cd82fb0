/**
 * The one typed door to the `consul` npm client (2.0.1). Its type definitions have gaps (the transaction shape,
 * `timeout`, TLS options, error responses), and a few of its answers need care: a lost `?cas`/`?release` resolves
 * to `undefined` rather than `false`, a 404 read resolves to `undefined`, and any other non-2xx rejects with a
 * papi ResponseError whose `response.body` holds Consul's own text or JSON. Everything here returns plain typed
 * values or throws ConsulCallError; nothing else in persona touches the client.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import Consul from 'consul';

export interface ConsulConnection {
  host: string;
  port: number;
  secure: boolean;
  timeoutMs: number;
  token?: string;
  /** PEM CA bundle that signs the agent's certificate. */
  ca?: string | Buffer;
}

export interface ConsulKvEntry {
  Key: string;
  /** Decoded to UTF-8; '' for an empty value. */
  Value: string;
  Flags: number;
  Session?: string;
  LockIndex: number;
  CreateIndex: number;
  ModifyIndex: number;
}

export type ConsulTxnOp =
  | { Verb: 'set'; Key: string; Value: string }
  | { Verb: 'lock'; Key: string; Value: string; Session: string }
  | { Verb: 'check-index'; Key: string; Index: number }
  | { Verb: 'check-not-exists'; Key: string }
  | { Verb: 'check-session'; Key: string; Session: string }
  | { Verb: 'delete'; Key: string };

export interface ConsulTxnError {
  OpIndex: number;
  What: string;
}

export type ConsulTxnOutcome = { ok: true } | { ok: false; errors: ConsulTxnError[] };

export interface SessionSpec {
  name: string;
  /** Go duration, e.g. "10s". */
  ttl: string;
  lockDelay: string;
  behavior: 'release' | 'delete';
}

/**
 * unreachable: no answer (refused, reset, timeout, TLS failure); server: Consul answered 5xx;
 * denied: 401/403 (ACL); rejected: any other 4xx.
 */
export type ConsulFailure = 'unreachable' | 'server' | 'denied' | 'rejected';

export class ConsulCallError extends Error {
  constructor(
    readonly kind: ConsulFailure,
    /** Consul's own words, or the network error's. */
    readonly detail: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(detail);
    this.name = 'ConsulCallError';
  }
}

/** What papi rejects with; only the fields read here. */
interface PapiError {
  message?: string;
  code?: string;
  isTimeout?: boolean;
  isResponse?: boolean;
  response?: { statusCode?: number; body?: unknown };
}

function classify(raw: unknown): ConsulCallError {
  const error = (raw ?? {}) as PapiError;
  if (error.isResponse && error.response) {
    const status = error.response.statusCode ?? 0;
    const body = error.response.body;
    const text = typeof body === 'string' ? body.trim() : body ? JSON.stringify(body) : '';
    const detail = text || `HTTP ${status} ${(error.message ?? '').trim()}`.trim();
    const kind = status === 401 || status === 403 ? 'denied' : status >= 500 ? 'server' : 'rejected';
    return new ConsulCallError(kind, detail, status);
  }
  // papi prefixes some messages with the client and request names ("consul: kv.get: connect ECONNREFUSED ...").
  const message = (error.message ?? String(raw)).replace(/^consul: [\w.]+: /, '');
  return new ConsulCallError('unreachable', message, undefined, error.isTimeout ? 'ETIMEDOUT' : error.code);
}

/** The client's d.ts lacks timeout and the raw transaction shape; this is what it really accepts. */
interface ClientOptions {
  host: string;
  port: number;
  secure: boolean;
  agent: http.Agent | https.Agent;
  timeout: number;
  defaults: { token?: string; timeout: number };
}

interface RawKv {
  get(o: { key: string; recurse?: boolean }): Promise<RawEntry | RawEntry[] | undefined>;
  set(o: { key: string; value: string; release?: string }): Promise<boolean | undefined>;
}
interface RawEntry extends Omit<ConsulKvEntry, 'Value'> {
  Value: string | null;
}
export interface CatalogNode {
  Node: string;
  Address: string;
  Meta?: Record<string, string> | null;
}

export interface CatalogServiceEntry {
  Node: string;
  Address: string;
  ServiceID: string;
  ServiceName: string;
  ServiceAddress?: string;
  ServicePort?: number;
  ServiceTags?: string[] | null;
}

export interface HealthCheck {
  Node: string;
  CheckID: string;
  Status: 'passing' | 'warning' | 'critical' | string;
  ServiceName?: string;
}

export interface ServiceRegistration {
  node: string;
  address: string;
  service: { id: string; service: string; port?: number; tags?: string[]; address?: string };
}

interface RawClient {
  kv: RawKv;
  catalog: {
    register(o: unknown): Promise<unknown>;
    deregister(o: unknown): Promise<unknown>;
    node: {
      list(): Promise<CatalogNode[]>;
      services(node: string): Promise<{ Services?: Record<string, { Service: string }> } | null>;
    };
    service: { nodes(service: string): Promise<CatalogServiceEntry[]> };
  };
  health: {
    node(node: string): Promise<HealthCheck[]>;
    service(o: { service: string; passing?: boolean }): Promise<Array<{ Node: { Node: string } }>>;
  };
  transaction: { create(ops: unknown[]): Promise<unknown> };
  session: {
    create(o: { name: string; ttl: string; lockdelay: string; behavior: string }): Promise<{ ID: string }>;
    renew(id: string): Promise<unknown>;
    destroy(id: string): Promise<unknown>;
  };
}

const entry = (raw: RawEntry): ConsulKvEntry => ({ ...raw, Value: raw.Value ?? '' });

export class ConsulApi {
  private readonly client: RawClient;
  private readonly agent: http.Agent | https.Agent;

  constructor(connection: ConsulConnection) {
    this.agent = connection.secure
      ? new https.Agent({ keepAlive: true, ...(connection.ca ? { ca: connection.ca } : {}) })
      : new http.Agent({ keepAlive: true });
    const options: ClientOptions = {
      host: connection.host,
      port: connection.port,
      secure: connection.secure,
      agent: this.agent,
      timeout: connection.timeoutMs,
      defaults: {
        timeout: connection.timeoutMs,
        ...(connection.token ? { token: connection.token } : {}),
      },
    };
    this.client = new Consul(options as ConstructorParameters<typeof Consul>[0]) as unknown as RawClient;
  }

  private async call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw classify(error);
    }
  }

  async get(key: string): Promise<ConsulKvEntry | undefined> {
    const raw = await this.call(() => this.client.kv.get({ key }));
    return raw && !Array.isArray(raw) ? entry(raw) : undefined;
  }

  async list(prefix: string): Promise<ConsulKvEntry[]> {
    const raw = await this.call(() => this.client.kv.get({ key: prefix, recurse: true }));
    if (!raw) return [];
    return (Array.isArray(raw) ? raw : [raw]).map(entry);
  }

  /** PUT /v1/txn. Values are sent base64 as Consul requires; a rolled-back transaction is {ok: false}. */
  async txn(ops: ConsulTxnOp[]): Promise<ConsulTxnOutcome> {
    const body = ConsulApi.txnBody(ops);
    try {
      await this.client.transaction.create(body);
      return { ok: true };
    } catch (error) {
      const failed = error as PapiError;
      const response = failed.isResponse ? failed.response : undefined;
      const errors = (response?.body as { Errors?: ConsulTxnError[] } | undefined)?.Errors;
      if (response?.statusCode === 409 && Array.isArray(errors)) return { ok: false, errors };
      throw classify(error);
    }
  }

  /** The JSON body of a transaction, as sent (used to check its size before sending). */
  static txnBody(ops: ConsulTxnOp[]): Array<{ KV: Record<string, unknown> }> {
    return ops.map((op) => ({
      KV: 'Value' in op ? { ...op, Value: Buffer.from(op.Value, 'utf8').toString('base64') } : { ...op },
    }));
  }

  async createSession(spec: SessionSpec): Promise<string> {
    const created = await this.call(() =>
      this.client.session.create({
        name: spec.name,
        ttl: spec.ttl,
        lockdelay: spec.lockDelay,
        behavior: spec.behavior,
      }),
    );
    return created.ID;
  }

  /** false when the session no longer exists (expired or destroyed). */
  async renewSession(id: string): Promise<boolean> {
    try {
      await this.client.session.renew(id);
      return true;
    } catch (error) {
      const failure = classify(error);
      if (failure.status === 404) return false;
      throw failure;
    }
  }

  async destroySession(id: string): Promise<void> {
    await this.call(() => this.client.session.destroy(id));
  }

  /** `?release=SESSION`: Consul replaces the value with `value`; false (the client says undefined) if not held. */
  async release(key: string, session: string, value: string): Promise<boolean> {
    const released = await this.call(() => this.client.kv.set({ key, value, release: session }));
    return released === true;
  }

  // The catalog: nodes and their services, for the inventory and the `consul` traffic method.

  async nodes(): Promise<CatalogNode[]> {
    return await this.call(() => this.client.catalog.node.list());
  }

  /** Names of the services registered on a node. */
  async nodeServices(node: string): Promise<string[]> {
    const raw = await this.call(() => this.client.catalog.node.services(node));
    return [...new Set(Object.values(raw?.Services ?? {}).map((s) => s.Service))].sort();
  }

  async nodeHealth(node: string): Promise<HealthCheck[]> {
    return await this.call(() => this.client.health.node(node));
  }

  async serviceNodes(service: string): Promise<CatalogServiceEntry[]> {
    return await this.call(() => this.client.catalog.service.nodes(service));
  }

  async register(r: ServiceRegistration): Promise<void> {
    await this.call(() =>
      this.client.catalog.register({ node: r.node, address: r.address, service: r.service }),
    );
  }

  /** Nodes where the service and its node pass every check (what Consul DNS and consul-template serve). */
  async passingNodes(service: string): Promise<string[]> {
    return (await this.call(() => this.client.health.service({ service, passing: true }))).map(
      (e) => e.Node.Node,
    );
  }

  async deregister(node: string, serviceId: string): Promise<void> {
    await this.call(() => this.client.catalog.deregister({ node, serviceid: serviceId }));
  }

  close(): void {
    this.agent.destroy();
  }
}
