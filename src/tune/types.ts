/**
 * The observation record that `profile tune` reads. It mirrors, field for field, the shared contract of
 * `src/feedback/observations.ts` (owned by the `feedback` branch, which writes them under
 * `observations/<app>/<host>/<13-digit epoch ms>-<6 random [a-z0-9]>`). Keep both in step; once that module is
 * merged, import its type instead of this copy.
 */

export type ObservationSource = 'validate' | 'monitor' | 'watch';

/** Short codes of what was missed: 'health', 'cpu', 'memory', 'disk_io', 'latency', 'error_rate', 'unreachable', 'start'. */
export interface Observation {
  /** ISO time of the observation. */
  at: string;
  app: string;
  /** Inventory host name. */
  host: string;
  source: ObservationSource;
  run_id?: string;
  /** Health passed and every target met. */
  ok: boolean;
  missed?: string[];
  metrics?: {
    cpu_pct?: number;
    memory_pct?: number;
    memory_used_bytes?: number;
    disk_write_mbps?: number;
    disk_util_pct?: number;
    latency_ms?: number;
    error_rate?: number;
  };
  profile_version?: number;
  /** Who saw it ('persona' or a peer host name), for watch. */
  vantage?: string;
}

/** What the reader is asked for; the same shape as the contract's `listObservations` filter. */
export interface ObservationFilter {
  app?: string;
  host?: string;
  since?: Date;
}
