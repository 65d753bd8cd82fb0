/**
 * The history the broker ranks with: the application's recent observations, read in one list call and turned into
 * a component per host (broker/history.ts). A store that cannot say degrades to ranking without history, with a
 * note that says so: history never fails a ranking, a recovery or a move.
 */
import { HORIZON_DAYS, type HostHistory, historyByHost } from '../broker/history.js';
import type { KvBackend } from '../stores/kv.js';
import { listObservations } from './observations.js';
import { withinWait } from './run-observation.js';

const DAY_MS = 86_400_000;

export interface RankHistory {
  history: ReadonlyMap<string, HostHistory>;
  /** Set when the history could not be read: the ranking goes on without it. */
  note?: string;
}

export async function readRankHistory(kv: KvBackend, app: string, now: Date): Promise<RankHistory> {
  try {
    const since = new Date(now.getTime() - HORIZON_DAYS * DAY_MS);
    const seen = await withinWait(listObservations(kv, { app, since }), 'reading observations');
    return { history: historyByHost(seen, now) };
  } catch (error) {
    return {
      history: new Map(),
      note: `ranked without history: the observations of ${app} could not be read from ${kv.describe} (${(error as Error).message})`,
    };
  }
}
