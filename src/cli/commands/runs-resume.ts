import { resumeRun } from '../../runbook/recover.js';
import { renderSummary } from '../run-summary.js';
import type { CommandRun } from '../spec.js';
import { dataFromOpt } from './recover.js';

export const run: CommandRun = async (ctx, { args, opts }) => {
  const summary = await resumeRun(ctx, String(args.run), dataFromOpt(opts));
  return { data: { type: 'result', runs: [summary] }, human: (out) => renderSummary(out, summary) };
};
