// /v1/kv: https://developer.hashicorp.com/consul/api-docs/kv, with the edge
// cases taken from hashicorp/consul agent/kvs_endpoint.go (HTTP layer),
// agent/consul/kvs_endpoint.go (lock-delay) and agent/consul/state/kvs.go.
import {
  blockingQuery,
  empty,
  HttpError,
  json,
  parseUint,
  queryMeta,
  type Reply,
  type Request,
} from './consul-http.js';
import { type ConsulState, entryJson, type KvEntry, type KvInput } from './consul-state.js';

/** kv_max_value_size default: "Values in the KV store cannot be larger than 512kb". */
export const KV_MAX_VALUE_SIZE = 512 * 1024;

/** Why a session id cannot lock, in the state store's words; undefined when it can. */
export function sessionProblem(state: ConsulState, id: string): string | undefined {
  if (id === '') return 'missing session';
  if (id.length !== 36) return 'failed session lookup: UUID must be 36 characters';
  if (!state.sessions.has(id)) return `invalid session ${JSON.stringify(id)}`;
  return undefined;
}

/** kvsSetCASTxn: index 0 means "create only if absent". */
export function kvCas(state: ConsulState, idx: number, input: KvInput, cas: number): KvEntry | undefined {
  const existing = state.kv.get(input.Key);
  if (cas === 0 ? existing !== undefined : existing?.ModifyIndex !== cas) return undefined;
  return state.kvSet(idx, input, false);
}

/** kvsDeleteCASTxn: a missing key counts as deleted; a 0 index never deletes an existing one. */
export function kvDeleteCas(state: ConsulState, idx: number, key: string, cas: number): boolean {
  const existing = state.kv.get(key);
  if (!existing) return true;
  if (existing.ModifyIndex !== cas) return false;
  state.kvDelete(idx, key);
  return true;
}

/** kvsLockTxn: takes a free lock (LockIndex + 1) or refreshes one the session holds. Throws on a bad session. */
export function kvLock(
  state: ConsulState,
  idx: number,
  input: KvInput & { Session: string },
): KvEntry | undefined {
  const problem = sessionProblem(state, input.Session);
  if (problem) throw new Error(problem);
  const existing = state.kv.get(input.Key);
  if (existing?.Session && existing.Session !== input.Session) return undefined;
  const held = existing?.Session === input.Session;
  const lockIndex = held ? existing.LockIndex : (existing?.LockIndex ?? 0) + 1;
  return state.kvSet(idx, { ...input, LockIndex: lockIndex }, true);
}

/** kvsUnlockTxn: only the holder can release; the value is replaced by the request's, as in Consul. */
export function kvUnlock(
  state: ConsulState,
  idx: number,
  input: KvInput & { Session: string },
): KvEntry | undefined {
  if (input.Session === '') throw new Error('missing session');
  const existing = state.kv.get(input.Key);
  if (!existing || existing.Session !== input.Session) return undefined;
  return state.kvSet(idx, { ...input, Session: '', LockIndex: existing.LockIndex }, true);
}

export async function handleKv(state: ConsulState, req: Request): Promise<Reply> {
  const key = req.path.slice('/v1/kv/'.length);
  if (req.method === 'GET')
    return req.query.has('keys') ? getKeys(state, req, key) : getEntries(state, req, key);
  if (req.method === 'PUT') return put(state, req, key);
  return del(state, req, key);
}

async function getEntries(state: ConsulState, req: Request, key: string): Promise<Reply> {
  const recurse = req.query.has('recurse');
  if (!recurse && key === '') throw new HttpError(400, 'Missing key name');
  const result = await blockingQuery(req, state, () => {
    if (recurse) {
      const { index, entries } = state.kvList(key);
      return { index, value: entries };
    }
    const { index, entry } = state.kvGet(key);
    return { index, value: entry ? [entry] : [] };
  });
  const meta = queryMeta(result.index, req);
  const [first] = result.value;
  if (!first) return empty(404, meta);
  if (req.query.has('raw') && !recurse) {
    const body = first.Value ?? Buffer.alloc(0);
    const headers = { 'Content-Type': 'text/plain', 'X-Content-Type-Options': 'nosniff' };
    return { status: 200, headers: { ...meta, ...headers, 'Content-Security-Policy': 'sandbox' }, body };
  }
  return json(
    result.value.map((e) => entryJson(e)),
    200,
    meta,
  );
}

/** KVS.ListKeys: with a separator, keys are cut after the first separator past the prefix and de-duplicated. */
async function getKeys(state: ConsulState, req: Request, prefix: string): Promise<Reply> {
  let separator = req.query.get('seperator') ?? '';
  if (req.query.has('separator')) separator = req.query.get('separator') ?? '';
  const result = await blockingQuery(req, state, () => {
    const { index, entries } = state.kvList(prefix);
    const keys: string[] = [];
    for (const { Key } of entries) {
      const at = separator === '' ? -1 : Key.indexOf(separator, prefix.length);
      const listed = at === -1 ? Key : Key.slice(0, at + separator.length);
      if (keys.at(-1) !== listed) keys.push(listed);
    }
    return { index, value: keys };
  });
  const meta = queryMeta(result.index, req);
  if (result.value.length === 0 && prefix !== '') return empty(404, meta);
  return json(result.value, 200, meta);
}

function conflictingFlags(req: Request, ...flags: string[]): Reply | undefined {
  if (flags.filter((flag) => req.query.has(flag)).length < 2) return undefined;
  const sorted = new URLSearchParams([...req.query].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { status: 400, headers: {}, body: `Conflicting flags: ${sorted.toString()}\n` };
}

function put(state: ConsulState, req: Request, key: string): Reply {
  if (key === '') throw new HttpError(400, 'Missing key name');
  const conflict = conflictingFlags(req, 'cas', 'acquire', 'release');
  if (conflict) return conflict;
  const q = req.query;
  const flags = q.has('flags') ? parseUint(q.get('flags') ?? '') : 0;
  const cas = q.has('cas') ? parseUint(q.get('cas') ?? '') : undefined;
  const declared = Number(req.headers['content-length'] ?? req.body.length);
  const size = Math.max(declared, req.body.length);
  if (size > KV_MAX_VALUE_SIZE) {
    const doc = 'https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size';
    throw new HttpError(
      413,
      `Request body(${size} bytes) too large, max size: ${KV_MAX_VALUE_SIZE} bytes. See ${doc}.`,
    );
  }
  const input: KvInput = { Key: key, Value: req.body, Flags: flags };
  if (q.has('acquire')) {
    const session = q.get('acquire') ?? '';
    // The leader refuses a lock inside a lock-delay before anything reaches Raft.
    if (state.lockDelayed(key)) return json(false);
    return json(state.apply((idx) => kvLock(state, idx, { ...input, Session: session }) !== undefined));
  }
  if (q.has('release')) {
    const session = q.get('release') ?? '';
    return json(state.apply((idx) => kvUnlock(state, idx, { ...input, Session: session }) !== undefined));
  }
  if (cas !== undefined) return json(state.apply((idx) => kvCas(state, idx, input, cas) !== undefined));
  state.apply((idx) => state.kvSet(idx, input, false));
  return json(true);
}

function del(state: ConsulState, req: Request, key: string): Reply {
  const conflict = conflictingFlags(req, 'recurse', 'cas');
  if (conflict) return conflict;
  if (req.query.has('recurse')) {
    state.apply((idx) => state.kvDeleteTree(idx, key));
    return json(true);
  }
  if (key === '') throw new HttpError(400, 'Missing key name');
  if (req.query.has('cas')) {
    const cas = parseUint(req.query.get('cas') ?? '');
    return json(state.apply((idx) => kvDeleteCas(state, idx, key, cas)));
  }
  state.apply((idx) => state.kvDelete(idx, key));
  return json(true);
}
