import { resumeRun } from '../../recover/runner.js';
import { renderSummary } from '../run-summary.js';
import type { CommandRun } from '../spec.js';
import { dataFromOpt } from './recover.js';

export const run: CommandRun = async (ctx, { args, opts }) => {
  const summary = await resumeRun(ctx, String(args.run), {
    dryRun: false,
    stepByStep: false,
    forceNoFence: false,
    ...dataFromOpt(opts),
  });
  return { data: { runs: [summary] }, human: (out) => renderSummary(out, summary) };
};
