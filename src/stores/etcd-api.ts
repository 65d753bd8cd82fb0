/**
 * etcd's v3 JSON gateway (etcd 3.4: POST /v3/kv/range, /v3/kv/txn, /v3/lease/grant|keepalive|revoke|timetolive)
 * over fetch: no gRPC dependency. Keys and values travel base64; int64 fields travel as strings and are left as
 * strings here (revisions and lease ids can exceed 2^53 in principle). A failed txn answers 200 without
 * `succeeded`: callers must check it, as with `etcdctl txn`, which exits 0 either way.
 */

export interface EtcdKv {
  key: string;
  value: string;
  create_revision: string;
  mod_revision: string;
  version: string;
  /** Lease id, "0" or absent when none. */
  lease?: string;
}

export type EtcdCompare =
  | { key: string; target: 'MOD'; mod_revision: string }
  | { key: string; target: 'CREATE'; create_revision: string };

export type EtcdOp =
  | { request_range: { key: string; range_end?: string } }
  | { request_put: { key: string; value: string; lease?: string } }
  | { request_delete_range: { key: string } };

export interface EtcdTxnResult {
  succeeded: boolean;
  revision: string;
  /** For each op of the branch taken: the kvs a range found (other ops give []). */
  ranges: EtcdKv[][];
}

/** unreachable: no answer; server: etcd answered with an error (no leader, timeout); rejected: a bad request. */
export class EtcdCallError extends Error {
  constructor(
    readonly kind: 'unreachable' | 'server' | 'rejected',
    readonly detail: string,
    /** Whether the request may have been applied (a timeout after sending). */
    readonly ambiguous = false,
  ) {
    super(detail);
    this.name = 'EtcdCallError';
  }
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/** The first key after every key that starts with `prefix`. */
export function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = bytes.subarray(0, i + 1);
      end[i]! += 1;
      return end.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64');
}

/** Connection failures where the request surely never reached etcd: safe to try the next endpoint. */
const NOT_SENT = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);
/** gRPC codes that mean "etcd is not able to answer now". */
const UNAVAILABLE_CODES = new Set([4, 13, 14]);

interface RawKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

const decodeKv = (raw: RawKv): EtcdKv => ({
  key: unb64(raw.key),
  value: unb64(raw.value),
  create_revision: raw.create_revision ?? '0',
  mod_revision: raw.mod_revision ?? '0',
  version: raw.version ?? '0',
  ...(raw.lease ? { lease: raw.lease } : {}),
});

export class EtcdApi {
  private active = 0;

  constructor(
    readonly endpoints: string[],
    private readonly timeoutMs: number,
  ) {}

  /** POSTs to the active endpoint; moves on to the next one when a connection could not even be made. */
  private async post(path: string, body: unknown, idempotent: boolean): Promise<Record<string, unknown>> {
    const errors: string[] = [];
    for (let tried = 0; tried < this.endpoints.length; tried++) {
      const index = (this.active + tried) % this.endpoints.length;
      const endpoint = this.endpoints[index]!;
      let response: Response;
      try {
        response = await fetch(`${endpoint}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (error) {
        const { code, text, timedOut } = networkError(error, this.timeoutMs);
        errors.push(`${endpoint}: ${text}`);
        if ((code && NOT_SENT.has(code)) || (idempotent && !timedOut)) continue;
        throw new EtcdCallError('unreachable', errors.join('; '), !idempotent);
      }
      this.active = index;
      return await this.read(response, path);
    }
    throw new EtcdCallError('unreachable', errors.join('; '));
  }

  private async read(response: Response, path: string): Promise<Record<string, unknown>> {
    const text = await response.text();
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new EtcdCallError('server', `${path}: HTTP ${response.status}: ${text.slice(0, 200)}`);
    }
    if (!response.ok || json.error !== undefined) {
      const code = Number(json.code);
      const message = String(json.message ?? json.error ?? `HTTP ${response.status}`);
      throw new EtcdCallError(
        UNAVAILABLE_CODES.has(code) || response.status >= 500 ? 'server' : 'rejected',
        message,
      );
    }
    return json;
  }

  async range(key: string, prefix = false): Promise<EtcdKv[]> {
    const body = { key: b64(key), ...(prefix ? { range_end: prefixEnd(key) } : {}) };
    const json = await this.post('/v3/kv/range', body, true);
    return ((json.kvs as RawKv[] | undefined) ?? []).map(decodeKv);
  }

  async txn(compare: EtcdCompare[], success: EtcdOp[], failure: EtcdOp[]): Promise<EtcdTxnResult> {
    const encodeOp = (op: EtcdOp) => {
      if ('request_range' in op) {
        const { key, range_end } = op.request_range;
        return { request_range: { key: b64(key), ...(range_end ? { range_end } : {}) } };
      }
      if ('request_put' in op) {
        const { key, value, lease } = op.request_put;
        return { request_put: { key: b64(key), value: b64(value), ...(lease ? { lease } : {}) } };
      }
      return { request_delete_range: { key: b64(op.request_delete_range.key) } };
    };
    const body = {
      compare: compare.map((c) => ({ ...c, key: b64(c.key), result: 'EQUAL' })),
      success: success.map(encodeOp),
      failure: failure.map(encodeOp),
    };
    const json = await this.post('/v3/kv/txn', body, false);
    const responses = (json.responses as Array<Record<string, { kvs?: RawKv[] }>> | undefined) ?? [];
    return {
      succeeded: json.succeeded === true,
      revision: String((json.header as { revision?: string } | undefined)?.revision ?? '0'),
      ranges: responses.map((r) => (r.response_range?.kvs ?? []).map(decodeKv)),
    };
  }

  /** Returns the lease id and the TTL etcd granted (it raises TTLs below its minimum). */
  async grant(ttlS: number): Promise<{ id: string; ttlS: number }> {
    const json = await this.post('/v3/lease/grant', { TTL: String(ttlS) }, false);
    return { id: String(json.ID), ttlS: Number(json.TTL ?? ttlS) };
  }

  /** The lease's fresh TTL in seconds, or 0 when the lease is gone. */
  async keepAlive(id: string): Promise<number> {
    const json = await this.post('/v3/lease/keepalive', { ID: id }, true);
    return Number((json.result as { TTL?: string } | undefined)?.TTL ?? 0);
  }

  /** Seconds left, or -1 when the lease is gone. */
  async timeToLive(id: string): Promise<number> {
    const json = await this.post('/v3/lease/timetolive', { ID: id }, true);
    return Number(json.TTL ?? -1);
  }

  async revoke(id: string): Promise<void> {
    try {
      await this.post('/v3/lease/revoke', { ID: id }, true);
    } catch (error) {
      if (error instanceof EtcdCallError && /lease not found/.test(error.detail)) return;
      throw error;
    }
  }
}

function networkError(error: unknown, timeoutMs: number): { code?: string; text: string; timedOut: boolean } {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') {
    return { text: `no answer within ${timeoutMs} ms`, timedOut: true };
  }
  const text = e.cause?.message ?? e.message ?? String(error);
  // fetch refuses some ports before connecting ("bad port"): nothing was sent either.
  const code = e.cause?.code ?? (/bad port/i.test(text) ? 'EADDRNOTAVAIL' : undefined);
  return { ...(code ? { code } : {}), text, timedOut: false };
}
