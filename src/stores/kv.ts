/**
 * The small interface every store backend implements (file, Consul KV, etcd): versioned reads, atomic
 * transactions with compare-and-set checks, prefix listing. ProfileStore, locks, assignments and journals are
 * built on it, so the three backends behave alike and one conformance suite covers them.
 */
import type { LockClock } from './lock-validity.js';

export interface KvEntry {
  key: string;
  value: string;
  /** Store-native version: a counter (file), ModifyIndex (Consul), mod_revision (etcd). */
  version: number;
  /** Opaque compare-and-set token for this exact value. */
  token: string;
}

/** `token: null` means "the key must not exist". */
export interface KvCheck {
  key: string;
  token: string | null;
}

/**
 * A lock's identity, carried by the writes of whoever holds it: the write applies only if that same lock is still
 * held by that same holder, checked by the store in the same atomic step (file: the lock record's fence nonce;
 * Consul: `check-session`; etcd: the lock key's create_revision). A zombie holder's write fails with E_LOCK_LOST.
 */
export interface KvFence {
  /** The lock's name, as given to acquireLock. */
  lock: string;
  /** Opaque; changes whenever the lock changes hands. */
  token: string;
}

export interface KvTxn {
  checks?: KvCheck[];
  /** When set, the txn applies only while this lock is held by its holder; else it throws E_LOCK_LOST. */
  fence?: KvFence;
  puts?: Array<{ key: string; value: string }>;
  deletes?: string[];
}

export type KvTxnResult = { ok: true } | { ok: false; failed: string[] };

export interface KvBackend {
  /** How the store is named to people: its URL without credentials. */
  readonly describe: string;
  /** Whether the store is shared between machines (journals are mirrored there). */
  readonly shared: boolean;
  get(key: string): Promise<KvEntry | undefined>;
  list(prefix: string): Promise<KvEntry[]>;
  /** All checks pass and every write applies, or nothing changes. A failed `fence` throws E_LOCK_LOST. */
  txn(txn: KvTxn): Promise<KvTxnResult>;
  /**
   * Takes a named lock or throws PersonaError E_LOCK_HELD naming the holder; renews it while the process lives.
   * File store: timestamps and the holder's pid; Consul: a session with TTL and lock-delay; etcd: a lease.
   */
  acquireLock(name: string, info: LockInfo, options: LockOptions): Promise<LockHandle>;
  listLocks(): Promise<HeldLock[]>;
  close(): Promise<void>;
}

/**
 * The most puts or deletes to send in one transaction when writing many keys: below Consul's 64 operations per
 * transaction, with room for the checks and a lock fence the transaction may carry.
 */
export const TXN_BATCH = 48;

/** Keys are slash-separated segments of safe characters; this keeps them valid file paths and URL paths. */
const keyRe = /^[A-Za-z0-9_.@=+-]+(?:\/[A-Za-z0-9_.@=+-]+)*$/;

export function assertKey(key: string): void {
  if (!keyRe.test(key) || key.split('/').some((s) => s === '.' || s === '..')) {
    throw new Error(`invalid store key ${JSON.stringify(key)}`);
  }
}

/** Who holds a lock: enough to find the holder, and to tell whether it is still alive. */
export interface LockInfo {
  holder: string;
  host: string;
  pid: number;
  run_id?: string;
  purpose?: string;
  started_at: string;
}

export interface HeldLock {
  name: string;
  info: LockInfo;
  /** When the lock lapses unless renewed (ISO time), where the backend knows it. */
  expires_at?: string;
}

export interface LockHandle {
  readonly name: string;
  readonly info: LockInfo;
  /** Aborted when the lock is lost (renewal failed, taken over, session invalidated). */
  readonly lost: AbortSignal;
  /** Pass as `KvTxn.fence` so a write applies only while this lock is still this holder's. */
  readonly fence: KvFence;
  /**
   * Whether the lock can still be trusted now: false once lost, and once the last renewal the store confirmed
   * was *sent* longer ago than the TTL minus a margin (monotonic clock; the wall clock counts when it ran ahead,
   * as after a suspend). Cheap: no store round trip.
   */
  lockValid(): boolean;
  /** Throws E_LOCK_LOST (and aborts `lost`) unless lockValid(). Call it before every external action. */
  assertHeld(): void;
  /** Releases the lock; safe to call twice; never releases a lock someone else now holds. */
  release(): Promise<void>;
}

export interface LockOptions {
  /** How long the lock survives its holder without renewal. */
  ttlMs: number;
  /** Called when a lock whose holder is gone is taken over: the message names the old holder. */
  onTakeover?: (previous: HeldLock, reason: string) => void;
  /** The clocks lockValid() reads; the system's by default. */
  clock?: LockClock;
}
