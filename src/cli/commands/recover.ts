import type { Strategy } from '../../broker/broker.js';
import { PersonaError } from '../../errors.js';
import { type DataFrom, dataFromChoices } from '../../runbook/journal-schema.js';
import { recoverHost, resumeRun } from '../../runbook/recover.js';
import { renderSummary } from '../run-summary.js';
import type { CommandRun } from '../spec.js';

export function dataFromOpt(opts: Record<string, unknown>): { dataFrom?: DataFrom } {
  const v = opts.dataFrom;
  if (v === undefined) return {};
  if (!(dataFromChoices as readonly unknown[]).includes(v))
    throw new PersonaError('E_USAGE', `--data-from must be one of ${dataFromChoices.join(', ')}`);
  return { dataFrom: v as DataFrom };
}

export const run: CommandRun = async (ctx, { args, opts }) => {
  const host = args.host as string | undefined;
  const resume = opts.resume as string | undefined;
  if (resume) {
    if (host) throw new PersonaError('E_USAGE', 'give either a host or --resume RUN, not both');
    const summary = await resumeRun(ctx, resume, dataFromOpt(opts));
    return { data: { type: 'result', runs: [summary] }, human: (out) => renderSummary(out, summary) };
  }
  if (!host) throw new PersonaError('E_USAGE', 'recover needs the failed host (or --resume RUN)');
  const runs = await recoverHost(ctx, {
    failedHost: host,
    apps: (opts.app as string[] | undefined) ?? [],
    ...(opts.target ? { target: String(opts.target) } : {}),
    dryRun: opts.dryRun === true,
    stepByStep: opts.step === true,
    forceNoFence: opts.forceNoFence === true,
    dataFrom: dataFromOpt(opts).dataFrom ?? 'auto',
    strategy: (opts.strategy as Strategy | undefined) ?? 'best-fit',
    exclude: (opts.exclude as string[] | undefined) ?? [],
    commandLine: ['persona', ...ctx.argv],
  });
  return {
    data: { type: 'result', runs },
    human: (out) => {
      for (const s of runs) renderSummary(out, s);
    },
  };
};
