import { resumeRun } from '../../runbook/recover.js';
import { renderSummary } from '../run-summary.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args }) => {
  const summary = await resumeRun(ctx, String(args.run));
  return { data: { runs: [summary] }, human: (out) => renderSummary(out, summary) };
};
