/**
 * What watch keeps of its observations in the store (feedback/observations.ts), for ranking (history) and tuning:
 * not every round (two vantage points every second would be 170 000 records a day per application), but
 *   - a change: the first observation of an application on a host from a vantage point, and each one whose
 *     verdict (ok or not) differs from the last one kept;
 *   - otherwise one per KEEP_EVERY_MS per application, host, vantage point and verdict, preferring one that
 *     carries metrics (the sampled rounds) so that tune has figures to read.
 * A failure that lasts ten minutes is then ten records, not twelve hundred. What a round kept is written at its end
 * (recordObservations batches it for the store); a store that refuses costs a warning, never a round.
 */
import { type Observation, recordObservations } from '../feedback/observations.js';
import type { KvBackend } from '../stores/kv.js';

/** At most one record per minute for the same application, host, vantage point and verdict. */
export const KEEP_EVERY_MS = 60_000;

interface Kept {
  ok: boolean;
  /** When a record with this verdict was last kept (ms), and whether it carried metrics. */
  at: number;
  metrics: boolean;
}

export class ObservationKeeper {
  private readonly kept = new Map<string, Kept>();
  private pending: Observation[] = [];

  /** Whether `o` is kept (queued for the next flush). */
  offer(o: Observation): boolean {
    const key = `${o.app}\u0000${o.host}\u0000${o.vantage ?? ''}`;
    const at = Date.parse(o.at);
    const last = this.kept.get(key);
    const metrics = o.metrics !== undefined && Object.keys(o.metrics).length > 0;
    const due =
      last === undefined ||
      last.ok !== o.ok ||
      at - last.at >= KEEP_EVERY_MS ||
      // A sampled round after a record without figures, within the minute: its figures are worth one more.
      (metrics && !last.metrics && at - last.at >= KEEP_EVERY_MS / 4);
    if (!due) return false;
    this.kept.set(key, { ok: o.ok, at, metrics });
    this.pending.push(o);
    return true;
  }

  /** Writes what was kept since the last flush; returns the error message when the store refused, else undefined. */
  async flush(backend: KvBackend): Promise<string | undefined> {
    const list = this.pending;
    this.pending = [];
    try {
      await recordObservations(backend, list);
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  }
}
