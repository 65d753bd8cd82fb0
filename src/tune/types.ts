/** The observation record that `profile tune` reads: feedback/observations.ts's. */

export type { Observation, ObservationSource } from '../feedback/observations.js';

/** What the reader is asked for; the same shape as the contract's `listObservations` filter. */
export interface ObservationFilter {
  app?: string;
  host?: string;
  since?: Date;
}
