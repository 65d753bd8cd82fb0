// /v1/session: https://developer.hashicorp.com/consul/api-docs/session.
// Defaults and validation from hashicorp/consul agent/session_endpoint.go
// (LockDelay 15s, numbers under 1000 read as seconds, serfHealth check) and
// agent/consul/session_endpoint.go (TTL 10s..24h, Behavior); expiry from
// agent/consul/session_ttl.go: invalidated after TTL x multiplier (2 in
// Consul), renew restarts the timer, a new leader re-arms every timer.
import { randomUUID } from 'node:crypto';
import {
  assertSessionId,
  blockingQuery,
  field,
  HttpError,
  hasField,
  json,
  parseGoDuration,
  queryMeta,
  type Reply,
  type Request,
  text,
} from './consul-http.js';
import type { ConsulState, SessionRecord } from './consul-state.js';

export interface SessionConfig {
  readonly nodeName: string;
  readonly ttlMultiplier: number;
  /** session_ttl_min: 10s in Consul. */
  readonly ttlMinMs: number;
}

const TTL_MAX_MS = 86_400_000;
const LOCK_DELAY_MIN_THRESHOLD_NS = 1000;

export class SessionTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly state: ConsulState,
    private readonly multiplier: number,
  ) {}

  reset(session: SessionRecord): void {
    this.clear(session.ID);
    const ttlNs = session.TTL === '' ? 0 : parseGoDuration(session.TTL);
    if (ttlNs <= 0) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(session.ID);
        this.state.apply((idx) => this.state.destroySession(idx, session.ID));
      },
      (ttlNs / 1e6) * this.multiplier,
    );
    timer.unref();
    this.timers.set(session.ID, timer);
  }

  clear(id: string): void {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
  }

  clearAll(): void {
    for (const id of [...this.timers.keys()]) this.clear(id);
  }

  /** initializeSessionTimers: a leader that comes (back) up gives every session a full TTL. */
  rearmAll(): void {
    for (const session of this.state.sessions.values()) this.reset(session);
  }
}

export function sessionJson(s: SessionRecord): Record<string, unknown> {
  const onlySerf = s.NodeChecks.length === 1 && s.NodeChecks[0] === 'serfHealth';
  return {
    ID: s.ID,
    Name: s.Name,
    Node: s.Node,
    ...(s.NodeChecks.length > 0 && !onlySerf ? { Checks: [...s.NodeChecks] } : {}),
    LockDelay: s.LockDelay,
    Behavior: s.Behavior,
    TTL: s.TTL,
    NodeChecks: s.NodeChecks.length > 0 ? [...s.NodeChecks] : null,
    ServiceChecks: s.ServiceChecks.length > 0 ? s.ServiceChecks.map((c) => ({ ...c })) : null,
    CreateIndex: s.CreateIndex,
    ModifyIndex: s.ModifyIndex,
  };
}

function goDurationString(ms: number): string {
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  if (h > 0) return `${h}h${m}m${s}s`;
  return m > 0 ? `${m}m${s}s` : `${s}s`;
}

/** FixupLockDelay: a string is a Go duration, a number is nanoseconds; either below 1000 means seconds. */
function parseLockDelay(raw: unknown): number {
  let ns: number;
  if (typeof raw === 'string') {
    try {
      ns = parseGoDuration(raw);
    } catch (err) {
      throw new HttpError(400, `Request decode failed: ${(err as Error).message}`);
    }
  } else if (typeof raw === 'number') ns = raw;
  else throw new HttpError(400, "Request decode failed: 'LockDelay' expected a duration");
  return ns < LOCK_DELAY_MIN_THRESHOLD_NS ? ns * 1e9 : ns;
}

function stringList(body: unknown, name: string): string[] {
  const list = field(body, name);
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list))
    throw new HttpError(400, `Request decode failed: '${name}': source data must be an array`);
  return list.map(String);
}

function parseCreate(
  req: Request,
  config: SessionConfig,
): Omit<SessionRecord, 'ID' | 'CreateIndex' | 'ModifyIndex'> {
  let body: unknown = {};
  if (req.body.length > 0) {
    try {
      body = JSON.parse(req.body.toString('utf8'));
    } catch (err) {
      throw new HttpError(400, `Request decode failed: ${(err as Error).message}`);
    }
  }
  const str = (name: string, fallback: string): string => {
    const v = field(body, name);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string')
      throw new HttpError(400, `Request decode failed: '${name}' expected type 'string'`);
    return v;
  };
  // Naming checks replaces the default serfHealth, even with an empty list.
  const explicit = hasField(body, 'Checks') || hasField(body, 'NodeChecks');
  const nodeChecks = explicit
    ? [...new Set([...stringList(body, 'Checks'), ...stringList(body, 'NodeChecks')])]
    : ['serfHealth'];
  const serviceChecks = field(body, 'ServiceChecks');
  return {
    Name: str('Name', ''),
    Node: str('Node', config.nodeName),
    LockDelay: hasField(body, 'LockDelay') ? parseLockDelay(field(body, 'LockDelay')) : 15e9,
    Behavior: (str('Behavior', '') || 'release') as SessionRecord['Behavior'],
    TTL: str('TTL', ''),
    NodeChecks: nodeChecks,
    ServiceChecks: Array.isArray(serviceChecks)
      ? serviceChecks.map((c) => ({
          ID: String(field(c, 'ID') ?? ''),
          Namespace: String(field(c, 'Namespace') ?? ''),
        }))
      : [],
  };
}

/** Session.Apply and sessionCreateTxn checks: all plain errors, so Consul answers 500. */
function validate(state: ConsulState, s: ReturnType<typeof parseCreate>, config: SessionConfig): void {
  if (s.Node === '') throw new Error('Must provide Node');
  if (s.Behavior !== 'release' && s.Behavior !== 'delete')
    throw new Error(`Invalid Behavior setting '${s.Behavior}'`);
  if (s.TTL !== '') {
    let ttlNs: number;
    try {
      ttlNs = parseGoDuration(s.TTL);
    } catch (err) {
      throw new Error(`Session TTL '${s.TTL}' invalid: ${(err as Error).message}`);
    }
    if (ttlNs !== 0 && (ttlNs / 1e6 < config.ttlMinMs || ttlNs / 1e6 > TTL_MAX_MS)) {
      const range = `[${goDurationString(config.ttlMinMs)}=${goDurationString(TTL_MAX_MS)}]`;
      throw new Error(`Invalid Session TTL '${ttlNs}', must be between ${range}`);
    }
  }
  if (!state.nodes.has(s.Node)) throw new Error('Missing node registration');
  const checks = state.checks.get(s.Node);
  for (const id of [...s.NodeChecks, ...s.ServiceChecks.map((c) => c.ID)]) {
    const check = checks?.get(id);
    if (!check) throw new Error(`Missing check '${id}' registration`);
    if (check.Status === 'critical') throw new Error(`Check '${id}' is in critical state`);
  }
}

export function createSession(
  state: ConsulState,
  timers: SessionTimers,
  req: Request,
  config: SessionConfig,
): Reply {
  const input = parseCreate(req, config);
  validate(state, input, config);
  const session = state.apply((idx) => {
    const record: SessionRecord = { ...input, ID: randomUUID(), CreateIndex: idx, ModifyIndex: idx };
    state.sessions.set(record.ID, record);
    state.sessionsTableIndex = idx;
    return record;
  });
  timers.reset(session);
  return json({ ID: session.ID });
}

function sessionIdFrom(req: Request, prefix: string): string {
  const id = req.path.slice(prefix.length);
  if (id === '') throw new HttpError(400, 'Missing session');
  assertSessionId(id);
  return id;
}

export function destroySession(state: ConsulState, timers: SessionTimers, req: Request): Reply {
  const id = sessionIdFrom(req, '/v1/session/destroy/');
  state.apply((idx) => state.destroySession(idx, id));
  timers.clear(id);
  return json(true);
}

export function renewSession(state: ConsulState, timers: SessionTimers, req: Request): Reply {
  const id = sessionIdFrom(req, '/v1/session/renew/');
  const session = state.sessions.get(id);
  if (!session) return text(404, `Session id '${id}' not found`);
  timers.reset(session);
  return json([sessionJson(session)], 200, queryMeta(state.sessionsTableIndex, req));
}

async function readSessions(state: ConsulState, req: Request, pick: () => SessionRecord[]): Promise<Reply> {
  const result = await blockingQuery(req, state, () => ({ index: state.sessionsTableIndex, value: pick() }));
  const sorted = [...result.value].sort((a, b) => (a.ID < b.ID ? -1 : 1));
  return json(sorted.map(sessionJson), 200, queryMeta(result.index, req));
}

export function sessionInfo(state: ConsulState, req: Request): Promise<Reply> {
  const id = sessionIdFrom(req, '/v1/session/info/');
  return readSessions(state, req, () => {
    const session = state.sessions.get(id);
    return session ? [session] : [];
  });
}

export function sessionList(state: ConsulState, req: Request): Promise<Reply> {
  return readSessions(state, req, () => [...state.sessions.values()]);
}

export function nodeSessions(state: ConsulState, req: Request): Promise<Reply> {
  const node = req.path.slice('/v1/session/node/'.length);
  if (node === '') throw new HttpError(400, 'Missing node name');
  return readSessions(state, req, () => [...state.sessions.values()].filter((s) => s.Node === node));
}
