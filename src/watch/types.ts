/**
 * What persona watch sees and says, as data: one round's results per vantage point, the events it emits, and the
 * observation record it hands to whoever keeps them.
 */

import type { Observation } from '../feedback/observations.js';

/** How one vantage point saw an application in one round. `unknown`: the vantage itself could not look. */
export type VantageStatus = 'ok' | 'failed' | 'unknown';

export interface CheckOutcome {
  name: string;
  ok: boolean;
  detail: string;
}

export interface VantageResult {
  /** 'persona' (this machine) or the peer host's inventory name. */
  vantage: string;
  status: VantageStatus;
  checks: CheckOutcome[];
  /** Why the status is not ok, in a line. */
  reason?: string;
  /** Short codes of what was missed (the Observation's codes), health and metrics alike. */
  missed?: string[];
  /** Performance targets missed, with their numbers (only this machine's vantage samples the host). */
  degraded?: string[];
  metrics?: NonNullable<Observation['metrics']>;
}

/** One round of checks of one application. */
export interface Round {
  at: Date;
  results: VantageResult[];
}

export type WatchEventKind =
  | 'failure'
  | 'recovered'
  | 'degraded'
  | 'flapping'
  | 'acked'
  | 'auto-recover'
  | 'watch-error';

/** One NDJSON line of the event log (and of --json on stdout, with `type: "watch"`). */
export interface WatchEvent {
  at: string;
  app: string;
  host: string;
  kind: WatchEventKind;
  /** The vantage points that saw the failure (or looked, for other kinds). */
  vantages: string[];
  checks: CheckOutcome[];
  reason: string;
  /** Only one vantage point could look (no peer host): the failure rests on this machine's view alone. */
  single_vantage?: boolean;
  /** auto-recover: what became of the attempt. */
  outcome?: 'started' | 'succeeded' | 'failed' | 'already-recovering' | 'already-moved';
  run_ids?: string[];
  /** acked: who silenced it, when and until when. */
  ack?: Ack;
}

/** A maintenance silence: `persona ack APP --reason …`, stored at acks/<app>. */
export interface Ack {
  app: string;
  by: string;
  at: string;
  reason: string;
  /** ISO time it lapses; absent: until cleared. */
  until?: string;
}

export type { Observation, ObservationSource } from '../feedback/observations.js';
