import type { Strategy } from '../../broker/broker.js';
import { PersonaError } from '../../errors.js';
import { maxFactAge } from '../../recover/decide.js';
import { moveApp } from '../../recover/move.js';
import { renderSummary } from '../run-summary.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args, opts }) => {
  const verify = (opts.verify as string | undefined) ?? 'metadata';
  if (verify !== 'metadata' && verify !== 'contents')
    throw new PersonaError('E_USAGE', '--verify must be metadata or contents');
  const summary = await moveApp(ctx, {
    app: String(args.app),
    ...(opts.to ? { to: String(opts.to) } : {}),
    ...(opts.from ? { from: String(opts.from) } : {}),
    dryRun: opts.dryRun === true,
    stepByStep: opts.step === true,
    serial: opts.serial === true,
    precopy: opts.stopCopyStart !== true,
    verify,
    strategy: (opts.strategy as Strategy | undefined) ?? 'best-fit',
    exclude: (opts.exclude as string[] | undefined) ?? [],
    commandLine: ['persona', ...ctx.argv],
    maxFactAge: maxFactAge(ctx, opts.maxFactAge),
  });
  return { data: { runs: [summary] }, human: (out) => renderSummary(out, summary) };
};
