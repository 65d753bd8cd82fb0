/**
 * Keeping a remote lock (Consul session, etcd lease) alive, and noticing when it is gone.
 *
 * The holder must stop trusting its lock once the store could have let it lapse: after a renewal says it is gone,
 * or when no renewal has succeeded for a whole TTL (the store may have expired it meanwhile). Either way the
 * handle's `lost` signal aborts with E_LOCK_LOST, and the run stops at its next step boundary.
 */
import { PersonaError } from '../errors.js';
import type { KvFence, LockHandle, LockInfo } from './kv.js';
import type { LockValidity } from './lock-validity.js';

/** `undefined`: still held. A string: why it is gone. */
/**
 * How often each store renews a lock, as a fraction of its TTL. Consul renews its session at half the TTL (its TTL
 * already has slack); the others at a third, so two renewals can fail before the lock lapses. `persona doctor`
 * judges the TTL against the store's timeout with the same fractions.
 */
export const RENEWAL_FRACTION = { file: 1 / 3, etcd: 1 / 3, consul: 1 / 2 } as const;

export type RenewCheck = () => Promise<string | undefined>;

export interface Renewal {
  readonly lost: AbortSignal;
  /** undefined while the lock can be trusted; else why not (and `lost` is aborted with it). */
  problem(): string | undefined;
  /** Stops renewing; the lock is left to lapse (or to be released by the caller). */
  stop(): void;
}

function lostError(name: string, store: string, why: string): PersonaError {
  return new PersonaError('E_LOCK_LOST', `lost the lock on ${name} in ${store}: ${why}`, {
    hint: 'Another run may hold it now. Check with `persona locks list` before going on.',
    details: { lock: name },
  });
}

/**
 * Renews every `intervalMs`. The lock is lost when a renewal says so, or when `validity` runs out: a timer fires
 * at its deadline even while a renewal hangs (a store that answers only after its timeout would otherwise make
 * the loss known that much later), and `problem()` checks the clocks on demand (timers stop during a suspend).
 */
export function startRenewal(
  name: string,
  store: string,
  intervalMs: number,
  validity: LockValidity,
  check: RenewCheck,
): Renewal {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  let stopped = false;
  const lose = (why: string) => {
    if (controller.signal.aborted) return;
    halt();
    controller.abort(lostError(name, store, why));
  };
  const halt = () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(deadline);
  };
  const problem = () => {
    if (controller.signal.aborted) return (controller.signal.reason as Error).message;
    const why = validity.problem();
    if (why !== undefined) lose(why);
    return why;
  };
  const armDeadline = () => {
    clearTimeout(deadline);
    deadline = setTimeout(
      () => {
        if (!stopped && problem() === undefined) armDeadline();
      },
      Math.max(1, validity.remainingMs()),
    );
    deadline.unref();
  };
  const tick = async () => {
    if (stopped || problem() !== undefined) return;
    const sent = validity.stamp();
    let gone: string | undefined;
    try {
      gone = await check();
      if (gone === undefined) {
        validity.renewed(sent);
        armDeadline();
      }
    } catch (error) {
      // Unreachable is not yet lost: the lock holds until its validity runs out (the deadline timer).
      const why = validity.problem();
      if (why !== undefined) gone = `${why} (${error instanceof Error ? error.message : String(error)})`;
    }
    if (stopped) return;
    if (gone !== undefined) lose(gone);
    else schedule();
  };
  const schedule = () => {
    timer = setTimeout(() => void tick(), intervalMs);
    timer.unref();
  };
  armDeadline();
  schedule();
  return { lost: controller.signal, problem, stop: halt };
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
    lockValid: () => released === undefined && renewal.problem() === undefined,
    assertHeld() {
      if (released) {
        throw new PersonaError(
          'E_LOCK_LOST',
          `the lock on ${name} was released: nothing more is done under it`,
          {
            details: { lock: name },
          },
        );
      }
      if (renewal.problem() !== undefined) throw renewal.lost.reason;
    },
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
