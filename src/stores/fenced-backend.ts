/**
 * The store as a run sees it while it holds its application's lock: every transaction carries the lock's fence,
 * so a driver that lost the lock (lease lapsed, suspended, taken over) can change nothing, whatever it read last.
 */
import type { KvBackend, KvTxn, KvTxnResult, LockHandle } from './kv.js';

/** What a fenced backend needs of a lock: its fence, and the local check made before each write. */
export type FenceSource = Pick<LockHandle, 'fence' | 'assertHeld'>;

/**
 * The same backend (still `instanceof` its class, so Consul's catalog stays reachable) whose `txn` adds the
 * fence. Locks taken through it are the backend's own, unfenced.
 */
export function fencedBackend<T extends KvBackend>(backend: T, lock: FenceSource): T {
  const fenced = Object.create(backend) as T;
  const txn = async (t: KvTxn): Promise<KvTxnResult> => {
    // Refused here when the lock can no longer be trusted (renewals late, a suspend); by the store when taken over.
    lock.assertHeld();
    return backend.txn(t.fence ? t : { ...t, fence: lock.fence });
  };
  Object.defineProperties(fenced, {
    txn: { value: txn },
    acquireLock: { value: backend.acquireLock.bind(backend) },
    listLocks: { value: backend.listLocks.bind(backend) },
    close: { value: backend.close.bind(backend) },
  });
  return fenced;
}
