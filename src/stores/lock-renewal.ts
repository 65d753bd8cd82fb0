/**
 * Keeping a remote lock (Consul session, etcd lease) alive, and noticing when it is gone.
 *
 * The holder must stop trusting its lock once the store could have let it lapse: after a renewal says it is gone,
 * or when no renewal has succeeded for a whole TTL (the store may have expired it meanwhile). Either way the
 * handle's `lost` signal aborts with E_LOCK_LOST, and the run stops at its next step boundary.
 */
import { PersonaError } from '../errors.js';
import type { KvFence, LockHandle, LockInfo } from './kv.js';

/** `undefined`: still held. A string: why it is gone. */
export type RenewCheck = () => Promise<string | undefined>;

export interface Renewal {
  readonly lost: AbortSignal;
  /** Stops renewing; the lock is left to lapse (or to be released by the caller). */
  stop(): void;
}

export function startRenewal(
  name: string,
  store: string,
  intervalMs: number,
  ttlMs: number,
  check: RenewCheck,
): Renewal {
  const controller = new AbortController();
  let lastOk = Date.now();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const lose = (why: string) => {
    stopped = true;
    controller.abort(
      new PersonaError('E_LOCK_LOST', `lost the lock on ${name} in ${store}: ${why}`, {
        hint: 'Another run may hold it now. Check with `persona locks list` before going on.',
        details: { lock: name },
      }),
    );
  };
  const tick = async () => {
    if (stopped) return;
    let gone: string | undefined;
    try {
      gone = await check();
      if (gone === undefined) lastOk = Date.now();
    } catch (error) {
      const silentMs = Date.now() - lastOk;
      if (silentMs >= ttlMs) {
        const reason = error instanceof Error ? error.message : String(error);
        gone = `could not renew it for ${Math.round(silentMs / 1000)} s, so it may have lapsed (${reason})`;
      }
    }
    if (stopped) return;
    if (gone !== undefined) lose(gone);
    else schedule();
  };
  const schedule = () => {
    timer = setTimeout(() => void tick(), intervalMs);
    timer.unref();
  };
  schedule();
  return {
    lost: controller.signal,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** A handle whose release stops renewing first and runs at most once. */
export function lockHandle(
  name: string,
  info: LockInfo,
  fenceToken: string,
  renewal: Renewal,
  release: () => Promise<void>,
): LockHandle {
  let released: Promise<void> | undefined;
  return {
    name,
    info,
    lost: renewal.lost,
    fence: { lock: name, token: fenceToken },
    release() {
      renewal.stop();
      released ??= release();
      return released;
    },
  };
}

/** What a fenced write says when its lock is no longer its holder's: nothing was written. */
export function fenceLostError(fence: KvFence, store: string, why: string): PersonaError {
  return new PersonaError(
    'E_LOCK_LOST',
    `lost the lock on ${fence.lock} in ${store}: ${why}; nothing was written`,
    {
      hint: 'Another run may hold it now. Check with `persona locks list` before going on.',
      details: { lock: fence.lock },
    },
  );
}

/** Reads a LockInfo written by persona; undefined for anything else (a release marker, foreign data). */
export function parseLockInfo(text: string | undefined): LockInfo | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<LockInfo> & { released_at?: string };
    if (value.released_at !== undefined) return undefined;
    if (typeof value.holder !== 'string' || typeof value.host !== 'string' || typeof value.pid !== 'number') {
      return undefined;
    }
    return value as LockInfo;
  } catch {
    return undefined;
  }
}

export function sameHolder(a: LockInfo, b: LockInfo): boolean {
  return a.holder === b.holder && a.host === b.host && a.pid === b.pid && a.run_id === b.run_id;
}
