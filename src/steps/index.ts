import type { Journal, Step } from '../runbook/types.js';
import { configureStep } from './configure.js';
import { fenceStep } from './fence.js';
import { migrateStep } from './migrate.js';
import { monitorStep } from './monitor.js';
import { finalCopyStep, plannedFenceStep, plannedValidateStep, precopyStep } from './planned.js';
import { recordStep } from './record.js';
import { rolloutRunbook } from './rollout.js';
import { switchStep } from './switch.js';
import { validateStep } from './validate.js';

/** The runbook of a recovery, in order. */
export const runbook: readonly Step[] = [
  fenceStep,
  configureStep,
  migrateStep,
  validateStep,
  switchStep,
  monitorStep,
  recordStep,
];

/**
 * The runbook of a planned move (persona migrate), in order: configure, copy while it serves, stop the source and
 * take it out of rotation, copy the final changes, start, switch, monitor, record (planned.ts).
 */
export const plannedRunbook: readonly Step[] = [
  configureStep,
  precopyStep,
  plannedFenceStep,
  finalCopyStep,
  plannedValidateStep,
  switchStep,
  monitorStep,
  recordStep,
];

/** The runbook a run's journal was made with. */
export const runbookOf = (journal: Pick<Journal, 'kind'>): readonly Step[] =>
  journal.kind === 'migrate' ? plannedRunbook : journal.kind === 'rollout' ? rolloutRunbook : runbook;
