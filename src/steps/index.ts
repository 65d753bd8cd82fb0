import type { Step } from '../runbook/types.js';
import { configureStep } from './configure.js';
import { fenceStep } from './fence.js';
import { migrateStep } from './migrate.js';
import { monitorStep } from './monitor.js';
import { recordStep } from './record.js';
import { switchStep } from './switch.js';
import { validateStep } from './validate.js';

/** The runbook, in order. */
export const runbook: readonly Step[] = [
  fenceStep,
  configureStep,
  migrateStep,
  validateStep,
  switchStep,
  monitorStep,
  recordStep,
];
