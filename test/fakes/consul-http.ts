// HTTP plumbing shared by the fake Consul endpoints: replies, errors, query
// parsing, Go durations and blocking queries, shaped after hashicorp/consul's
// agent/http.go (setMeta, parseWait, parseConsistency, handleErr).
import type { ConsulState } from './consul-state.js';

export interface Request {
  readonly method: string;
  /** Decoded path, as Go's req.URL.Path. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
  /** Aborted when the client goes away or the agent stops. */
  readonly signal: AbortSignal;
}

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body?: string | Buffer;
}

/** An error that becomes a text/plain reply, as Consul's HTTPError does. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function json(value: unknown, status = 200, headers: Record<string, string> = {}): Reply {
  return {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(value),
  };
}

export function text(status: number, message: string, headers: Record<string, string> = {}): Reply {
  return { status, headers: { 'Content-Type': 'text/plain; charset=utf-8', ...headers }, body: message };
}

export function empty(status: number, headers: Record<string, string> = {}): Reply {
  return { status, headers };
}

/** Headers of setMeta(): every read that supports blocking carries them, even a 404. */
export function queryMeta(index: number, req: Request): Record<string, string> {
  const consistency = req.query.has('stale')
    ? 'stale'
    : req.query.has('consistent')
      ? 'consistent'
      : 'leader';
  return {
    'X-Consul-Index': String(index > 0 ? index : 1),
    'X-Consul-KnownLeader': 'true',
    'X-Consul-LastContact': '0',
    'X-Consul-Effective-Consistency': consistency,
  };
}

export function parseJsonBody(req: Request, prefix: string): unknown {
  try {
    return JSON.parse(req.body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `${prefix}: ${(err as Error).message}`);
  }
}

/** Case-insensitive field lookup: Go's encoding/json matches field names that way. */
export function field(obj: unknown, name: string): unknown {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return undefined;
  const record = obj as Record<string, unknown>;
  if (name in record) return record[name];
  const lower = name.toLowerCase();
  const key = Object.keys(record).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : record[key];
}

export function hasField(obj: unknown, name: string): boolean {
  if (obj === null || typeof obj !== 'object') return false;
  return Object.keys(obj).some((k) => k.toLowerCase() === name.toLowerCase());
}

/** strconv.ParseUint failures are plain errors in Consul, so they surface as 500. */
export function parseUint(value: string): number {
  if (!/^\d+$/.test(value)) {
    throw new HttpError(500, `strconv.ParseUint: parsing ${JSON.stringify(value)}: invalid syntax`);
  }
  return Number(value);
}

const UNIT_NS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  μs: 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** Go's time.ParseDuration, in nanoseconds; throws Go's error text. */
export function parseGoDuration(input: string): number {
  const quoted = JSON.stringify(input);
  let rest = input;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    sign = rest.startsWith('-') ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw new Error(`time: invalid duration ${quoted}`);
  let total = 0;
  while (rest !== '') {
    const number = /^(\d+\.?\d*|\.\d+)/.exec(rest);
    if (!number) throw new Error(`time: invalid duration ${quoted}`);
    rest = rest.slice(number[0].length);
    const unit = /^[^\d.]*/.exec(rest)?.[0] ?? '';
    if (unit === '') throw new Error(`time: missing unit in duration ${quoted}`);
    const scale = UNIT_NS[unit];
    if (scale === undefined)
      throw new Error(`time: unknown unit ${JSON.stringify(unit)} in duration ${quoted}`);
    total += Number(number[1]) * scale;
    rest = rest.slice(unit.length);
  }
  return sign * total;
}

const DEFAULT_QUERY_MS = 5 * 60_000;
const MAX_QUERY_MS = 10 * 60_000;

interface BlockingOptions {
  readonly minIndex: number;
  readonly waitMs: number;
}

/** parseWait + parseConsistency + rpcQueryTimeout (default 5m, max 10m, plus up to wait/16 jitter). */
export function parseBlocking(req: Request): BlockingOptions {
  if (req.query.has('stale') && req.query.has('consistent')) {
    throw new HttpError(400, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
  }
  let waitMs = 0;
  const wait = req.query.get('wait');
  if (wait) {
    try {
      waitMs = parseGoDuration(wait) / 1e6;
    } catch {
      throw new HttpError(400, 'Invalid wait time');
    }
  }
  let minIndex = 0;
  const index = req.query.get('index');
  if (index) {
    if (!/^\d+$/.test(index)) throw new HttpError(400, 'Invalid index');
    minIndex = Number(index);
  }
  if (waitMs > MAX_QUERY_MS) waitMs = MAX_QUERY_MS;
  else if (waitMs <= 0) waitMs = DEFAULT_QUERY_MS;
  waitMs += Math.random() * (waitMs / 16);
  return { minIndex, waitMs };
}

export interface Indexed<T> {
  readonly index: number;
  readonly value: T;
}

/**
 * Runs a read; with ?index=N it re-runs after every commit until the result's
 * index moves past N or the wait elapses (agent/blockingquery/blockingquery.go).
 */
export async function blockingQuery<T>(
  req: Request,
  state: ConsulState,
  run: () => Indexed<T>,
): Promise<Indexed<T>> {
  const { minIndex, waitMs } = parseBlocking(req);
  let result = run();
  if (minIndex === 0) return result;
  const deadline = Date.now() + waitMs;
  while (result.index <= minIndex && !req.signal.aborted) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    await state.waitForCommit(remaining, req.signal);
    result = run();
  }
  return result;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** memdb's UUIDFieldIndex error, as returned for a malformed session id. */
export function assertSessionId(id: string): void {
  if (id.length !== 36) throw new HttpError(500, 'failed session lookup: UUID must be 36 characters');
  if (!isUuid(id))
    throw new HttpError(500, 'failed session lookup: UUID must be formatted as 8-4-4-4-12 hex');
}
