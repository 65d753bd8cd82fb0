// PUT /v1/txn: https://developer.hashicorp.com/consul/api-docs/txn. Limits and
// error texts from hashicorp/consul agent/txn_endpoint.go; pre-checks from
// agent/consul/txn_endpoint.go; per-verb rules and messages from
// agent/consul/state/txn.go. All operations run at one index, or none do.
import { type CatalogTxnOp, catalogTxn, isCatalogWrite, parseCatalogOp } from './consul-catalog.js';
import { field, HttpError, json, type Reply, type Request } from './consul-http.js';
import { KV_MAX_VALUE_SIZE, kvCas, kvDeleteCas, kvLock, kvUnlock } from './consul-kv.js';
import { type ConsulState, entryJson, type KvEntry } from './consul-state.js';

interface KvOp {
  readonly kind: 'KV';
  readonly verb: string;
  readonly key: string;
  readonly value: Buffer | null;
  readonly flags: number;
  readonly index: number;
  readonly session: string;
}

type TxnOp = KvOp | CatalogTxnOp | { readonly kind: 'none' };
type TxnResult = Record<string, unknown>;
interface TxnError {
  OpIndex: number;
  What: string;
}

const KV_WRITES = new Set(['set', 'delete', 'delete-cas', 'delete-tree', 'cas', 'lock', 'unlock']);

class RolledBack extends Error {
  constructor(readonly errors: TxnError[]) {
    super('transaction rolled back');
  }
}

export function handleTxn(state: ConsulState, req: Request, maxOps: number): Reply {
  const ops = parseOps(req, maxOps);
  const writes = ops.filter((op) =>
    op.kind === 'KV' ? KV_WRITES.has(op.verb) : op.kind !== 'none' && isCatalogWrite(op),
  );
  const preErrors = preCheck(state, ops);
  // Read-only transactions skip Raft and report staleness headers instead.
  const readHeaders: Record<string, string> =
    writes.length === 0 ? { 'X-Consul-KnownLeader': 'true', 'X-Consul-LastContact': '0' } : {};
  if (preErrors.length > 0) return json({ Results: null, Errors: preErrors }, 409, readHeaders);
  try {
    const results =
      writes.length === 0 ? dispatch(state, 0, ops) : state.applyAtomic((idx) => dispatch(state, idx, ops));
    return json({ Results: results, Errors: null }, 200, readHeaders);
  } catch (err) {
    if (err instanceof RolledBack) return json({ Results: null, Errors: err.errors }, 409, readHeaders);
    throw err;
  }
}

function parseOps(req: Request, maxOps: number): TxnOp[] {
  const declared = Number(req.headers['content-length'] ?? req.body.length);
  if (Math.max(declared, req.body.length) > KV_MAX_VALUE_SIZE) {
    const doc = 'https://www.consul.io/docs/agent/config/config-files#txn_max_req_len';
    throw new HttpError(
      413,
      `Request body(${declared} bytes) too large, max size: ${KV_MAX_VALUE_SIZE} bytes. See ${doc}.`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(req.body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `Failed to parse body: ${(err as Error).message}`);
  }
  if (raw === null) raw = [];
  if (!Array.isArray(raw)) {
    throw new HttpError(
      400,
      `Failed to parse body: json: cannot unmarshal ${typeof raw} into Go value of type api.TxnOps`,
    );
  }
  if (raw.length > maxOps) {
    throw new HttpError(413, `Transaction contains too many operations (${raw.length} > ${maxOps})`);
  }
  return raw.map((op: unknown): TxnOp => {
    const kv = field(op, 'KV');
    if (kv !== undefined && kv !== null) return parseKvOp(kv);
    return parseCatalogOp(op) ?? { kind: 'none' };
  });
}

function parseKvOp(kv: unknown): KvOp {
  const str = (name: string): string => {
    const v = field(kv, name) ?? '';
    if (typeof v !== 'string') throw badType(name, v, 'string');
    return v;
  };
  const uint = (name: string): number => {
    const v = field(kv, name) ?? 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw badType(name, v, 'uint64');
    return v;
  };
  const key = str('Key');
  const encoded = field(kv, 'Value');
  let value: Buffer | null = null;
  if (encoded !== undefined && encoded !== null) {
    if (typeof encoded !== 'string')
      throw new HttpError(400, `Failed to parse body: unexpected value type: ${typeof encoded}`);
    value = decodeStdBase64(encoded);
  }
  if (value && value.length > KV_MAX_VALUE_SIZE) {
    throw new HttpError(
      413,
      `Value for key ${JSON.stringify(key)} is too large (${value.length} > ${KV_MAX_VALUE_SIZE} bytes)`,
    );
  }
  return {
    kind: 'KV',
    verb: str('Verb'),
    key,
    value,
    flags: uint('Flags'),
    index: uint('Index'),
    session: str('Session'),
  };
}

function badType(name: string, value: unknown, goType: string): HttpError {
  return new HttpError(
    400,
    `Failed to parse body: json: cannot unmarshal ${typeof value} into Go struct field KVTxnOp.KV.${name} of type ${goType}`,
  );
}

/** Go's base64.StdEncoding is strict: padding required, no whitespace. */
function decodeStdBase64(s: string): Buffer {
  const bad = s.search(/[^A-Za-z0-9+/=]/);
  const misplacedPad = /=[^=]|={3,}/.test(s);
  if (bad !== -1 || misplacedPad || s.length % 4 !== 0) {
    const at = bad !== -1 ? bad : s.length - (s.length % 4 || 4);
    throw new HttpError(
      400,
      `Failed to parse body: failed to decode value: illegal base64 data at input byte ${at}`,
    );
  }
  return Buffer.from(s, 'base64');
}

/** Txn.preCheck: an empty key, or a lock inside a lock-delay, fails before Raft. */
function preCheck(state: ConsulState, ops: TxnOp[]): TxnError[] {
  const errors: TxnError[] = [];
  ops.forEach((op, i) => {
    if (op.kind !== 'KV') return;
    if (op.key === '' && op.verb !== 'delete-tree') errors.push({ OpIndex: i, What: 'Must provide key' });
    else if (op.verb === 'lock' && state.lockDelayed(op.key)) {
      errors.push({ OpIndex: i, What: `failed to lock key ${JSON.stringify(op.key)} due to lock delay` });
    }
  });
  return errors;
}

/** txnDispatch: every operation runs (seeing earlier ones); any error rolls all of them back. */
function dispatch(state: ConsulState, idx: number, ops: TxnOp[]): TxnResult[] {
  const results: TxnResult[] = [];
  const errors: TxnError[] = [];
  ops.forEach((op, i) => {
    try {
      if (op.kind === 'KV') results.push(...kvOp(state, idx, op));
      else if (op.kind === 'none') throw new Error('no operation specified');
      else results.push(...catalogTxn(state, idx, op));
    } catch (err) {
      if (err instanceof HttpError) throw err;
      errors.push({ OpIndex: i, What: (err as Error).message });
    }
  });
  if (errors.length > 0) throw new RolledBack(errors);
  return results;
}

function kvOp(state: ConsulState, idx: number, op: KvOp): TxnResult[] {
  const q = JSON.stringify(op.key);
  const input = { Key: op.key, Value: op.value, Flags: op.flags, Session: op.session };
  const stripped = (entry: KvEntry | undefined, failure: string): TxnResult[] => {
    if (!entry) throw new Error(failure);
    return [{ KV: entryJson(entry, false) }];
  };
  switch (op.verb) {
    case 'set':
      return stripped(state.kvSet(idx, input, false), '');
    case 'cas':
      return stripped(kvCas(state, idx, input, op.index), `failed to set key ${q}, index is stale`);
    case 'lock':
      return stripped(kvLock(state, idx, input), `failed to lock key ${q}, lock is already held`);
    case 'unlock':
      return stripped(
        kvUnlock(state, idx, input),
        `failed to unlock key ${q}, lock isn't held, or is held by another session`,
      );
    case 'get':
    case 'get-or-empty': {
      const entry = state.kv.get(op.key);
      if (entry) return [{ KV: entryJson(entry) }];
      if (op.verb === 'get') throw new Error(`key ${q} doesn't exist`);
      const blank = { ...input, Value: null, LockIndex: 0, CreateIndex: 0, ModifyIndex: op.index };
      return [{ KV: entryJson(blank) }];
    }
    case 'get-tree':
      return state.kvList(op.key).entries.map((entry) => ({ KV: entryJson(entry) }));
    case 'check-index': {
      const entry = state.kv.get(op.key);
      if (!entry) throw new Error(`failed to check index, key ${q} doesn't exist`);
      if (entry.ModifyIndex !== op.index) {
        throw new Error(
          `failed index check for key ${q}, current modify index ${entry.ModifyIndex} != ${op.index}`,
        );
      }
      return [{ KV: entryJson(entry, false) }];
    }
    case 'check-session': {
      const entry = state.kv.get(op.key);
      if (!entry) throw new Error(`failed to check session, key ${q} doesn't exist`);
      if (entry.Session !== op.session) {
        const detail = `current session ${JSON.stringify(entry.Session)} != ${JSON.stringify(op.session)}`;
        throw new Error(`failed session check for key ${q}, ${detail}`);
      }
      return [{ KV: entryJson(entry, false) }];
    }
    case 'check-not-exists':
      if (state.kv.has(op.key)) throw new Error(`key ${q} exists`);
      return [];
    case 'delete':
      state.kvDelete(idx, op.key);
      return [];
    case 'delete-tree':
      state.kvDeleteTree(idx, op.key);
      return [];
    case 'delete-cas':
      if (!kvDeleteCas(state, idx, op.key, op.index))
        throw new Error(`failed to delete key ${q}, index is stale`);
      return [];
    default:
      throw new Error(`unknown KV verb ${JSON.stringify(op.verb)}`);
  }
}
