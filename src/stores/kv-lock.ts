/**
 * Locks built on a backend's compare-and-set: the record names its holder and an expiry; the holder renews it;
 * a lock whose expiry passed, or whose holder process is gone (same host), can be taken over, and the taker is
 * told whom it replaced. Used by the file store; Consul and etcd use their own sessions and leases.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { PersonaError } from '../errors.js';
import { processAlive } from '../util/process.js';
import type { HeldLock, KvBackend, KvEntry, KvFence, LockHandle, LockInfo, LockOptions } from './kv.js';
import { fenceLostError, lockHandle, RENEWAL_FRACTION, startRenewal } from './lock-renewal.js';
import { LockValidity, systemClock } from './lock-validity.js';

export const LOCK_PREFIX = 'locks/';

interface LockRecord {
  info: LockInfo;
  expires_at: string;
  /** A nonce fixed when the lock is taken and kept by renewals: the fence token of this holding. */
  fence?: string;
}

export function describeHolder(held: HeldLock): string {
  const { info } = held;
  const run = info.run_id ? `, run ${info.run_id}` : '';
  return `${info.holder} (pid ${info.pid} on ${info.host}${run}, since ${info.started_at})`;
}

export function lockHeldError(name: string, held: HeldLock, store: string): PersonaError {
  const expiry = held.expires_at ? `; it lapses at ${held.expires_at} unless its holder renews it` : '';
  return new PersonaError(
    'E_LOCK_HELD',
    `${name} is locked by ${describeHolder(held)} in ${store}${expiry}`,
    {
      hint: 'Wait for that run to finish, or check on it with `persona locks list` / `persona runs list`.',
      details: { lock: name, holder: held.info, ...(held.expires_at ? { expires_at: held.expires_at } : {}) },
    },
  );
}

function parse(entry: KvEntry): LockRecord | undefined {
  try {
    return JSON.parse(entry.value) as LockRecord;
  } catch {
    return undefined;
  }
}

/** Why a held lock may be taken over, or undefined when its holder is still there. */
function staleReason(record: LockRecord, now: number): string | undefined {
  if (Date.parse(record.expires_at) < now) return `it lapsed at ${record.expires_at}`;
  if (record.info.host === hostname() && !processAlive(record.info.pid))
    return `process ${record.info.pid} on ${record.info.host} is gone`;
  return undefined;
}

/** A lock handle, and a way to stop renewing it without releasing it (what a crash does). */
export interface KvLock {
  handle: LockHandle;
  abandon(): void;
}

export async function acquireKvLock(
  backend: KvBackend,
  name: string,
  info: LockInfo,
  options: LockOptions,
): Promise<KvLock> {
  const key = `${LOCK_PREFIX}${name}`;
  const fence = randomBytes(12).toString('hex');
  const record = (): LockRecord => ({
    info,
    expires_at: new Date(Date.now() + options.ttlMs).toISOString(),
    fence,
  });
  const current = await backend.get(key);
  let check: string | null = null;
  if (current) {
    const held = parse(current);
    const reason = held ? staleReason(held, Date.now()) : 'its record is unreadable';
    if (!reason)
      throw lockHeldError(name, { name, info: held!.info, expires_at: held!.expires_at }, backend.describe);
    if (held) options.onTakeover?.({ name, info: held.info, expires_at: held.expires_at }, reason);
    check = current.token;
  }
  const clock = options.clock ?? systemClock;
  const validity = new LockValidity(options.ttlMs, clock);
  const taken = await backend.txn({
    checks: [{ key, token: check }],
    puts: [{ key, value: JSON.stringify(record()) }],
  });
  if (!taken.ok) {
    const now = await backend.get(key);
    const held = now && parse(now);
    if (held)
      throw lockHeldError(name, { name, info: held.info, expires_at: held.expires_at }, backend.describe);
    throw new PersonaError(
      'E_LOCK_HELD',
      `${name} was locked by someone else at the same moment in ${backend.describe}`,
    );
  }
  let token = (await backend.get(key))?.token ?? '';
  const interval = Math.max(200, Math.floor(options.ttlMs * RENEWAL_FRACTION.file));
  // A renewal that cannot reach the store throws: not yet a loss, the lock holds until its validity runs out.
  const renewal = startRenewal(name, backend.describe, interval, validity, async () => {
    const result = await backend.txn({
      checks: [{ key, token }],
      puts: [{ key, value: JSON.stringify(record()) }],
    });
    if (!result.ok) return 'someone else holds it now';
    token = (await backend.get(key).catch(() => undefined))?.token ?? token;
    return undefined;
  });
  const handle = lockHandle(name, info, fence, renewal, async () => {
    await backend.txn({ checks: [{ key, token }], deletes: [key] }).catch(() => undefined);
  });
  return { handle, abandon: () => renewal.stop() };
}

export async function listKvLocks(backend: KvBackend): Promise<HeldLock[]> {
  const entries = await backend.list(LOCK_PREFIX);
  return entries.flatMap((e) => {
    const record = parse(e);
    return record
      ? [{ name: e.key.slice(LOCK_PREFIX.length), info: record.info, expires_at: record.expires_at }]
      : [];
  });
}

/**
 * For a backend whose txn runs under its own exclusive lock (the file store): throws E_LOCK_LOST unless the
 * fence's lock record still carries the fence's nonce. Call it in the same atomic step as the writes it guards.
 */
export async function checkKvFence(backend: KvBackend, fence: KvFence): Promise<void> {
  const entry = await backend.get(`${LOCK_PREFIX}${fence.lock}`);
  const record = entry && parse(entry);
  if (record?.fence !== fence.token) {
    const why = record
      ? `${describeHolder({ name: fence.lock, info: record.info })} holds it now`
      : 'it is gone';
    throw fenceLostError(fence, backend.describe, why);
  }
}
