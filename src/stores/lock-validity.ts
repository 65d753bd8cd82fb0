/**
 * How long a holder may trust its lock without hearing from the store. The store restarts a lease's (session's,
 * record's) timer when it receives a renewal, which is no earlier than when the holder sent it; so the lock is
 * surely held until the last confirmed renewal's *send* time plus the TTL. Persona stops trusting it a margin
 * before that.
 *
 * Elapsed time is read on the monotonic clock (immune to clock steps), and on the wall clock too: a monotonic
 * clock stops while a laptop is suspended, the store's clock does not. Whichever advanced more counts, so a
 * suspend longer than what is left of the lock makes it invalid the moment the process wakes, before any timer
 * has had a chance to run.
 */

/** The clocks a lock reads; injected so a test can suspend or stall time. */
export interface LockClock {
  /** Milliseconds on a clock that never goes back (and stops during a suspend): performance.now(). */
  monotonicMs(): number;
  /** Milliseconds since the epoch: Date.now(). */
  wallMs(): number;
}

export const systemClock: LockClock = {
  monotonicMs: () => performance.now(),
  wallMs: () => Date.now(),
};

/** When something happened, on both clocks. */
export interface Stamp {
  mono: number;
  wall: number;
}

/** A tenth of the TTL, between 100 ms and 5 s: room for the store's own timer granularity and clock rates. */
export function validityMarginMs(ttlMs: number): number {
  return Math.min(5000, Math.max(100, ttlMs / 10));
}

export class LockValidity {
  private last: Stamp;
  readonly marginMs: number;

  /** `sent`: stamped just before the request that took the lock was sent. */
  constructor(
    readonly ttlMs: number,
    private readonly clock: LockClock = systemClock,
    sent?: Stamp,
  ) {
    this.marginMs = validityMarginMs(ttlMs);
    this.last = sent ?? this.stamp();
  }

  /** Take one just before sending a renewal; hand it to `renewed` once the store confirmed it. */
  stamp(): Stamp {
    return { mono: this.clock.monotonicMs(), wall: this.clock.wallMs() };
  }

  renewed(sent: Stamp): void {
    if (sent.mono > this.last.mono) this.last = sent;
  }

  /** Time since the last confirmed renewal was sent: the monotonic clock's, or the wall clock's if it ran ahead. */
  private elapsedMs(): { elapsed: number; suspended: number } {
    const now = this.stamp();
    const mono = now.mono - this.last.mono;
    const wall = now.wall - this.last.wall;
    return { elapsed: Math.max(mono, wall), suspended: Math.max(0, wall - mono) };
  }

  /** Milliseconds the lock can still be trusted; 0 or less once it cannot. */
  remainingMs(): number {
    return this.ttlMs - this.marginMs - this.elapsedMs().elapsed;
  }

  /** undefined while the lock can be trusted; else why not. */
  problem(): string | undefined {
    const { elapsed, suspended } = this.elapsedMs();
    if (elapsed < this.ttlMs - this.marginMs) return undefined;
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const gap =
      suspended > this.marginMs
        ? ` (the wall clock ran ${s(suspended)} ahead of the monotonic clock: the machine was suspended or its clock stepped)`
        : '';
    return `no renewal confirmed for ${s(elapsed)}${gap}; its TTL is ${s(this.ttlMs)}, so the store may have let it lapse`;
  }
}
