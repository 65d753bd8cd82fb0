import type { Strategy } from '../../broker/broker.js';
import { PersonaError } from '../../errors.js';
import { maxFactAge } from '../../recover/decide.js';
import { recoverHost, resumeRun } from '../../recover/runner.js';
import { type DataFrom, dataFromChoices } from '../../runbook/journal-schema.js';
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
    // The journal fixes the applications, the target and the ranking: flags that choose them cannot apply.
    const given = (flag: string) => ctx.argv.some((a) => a === flag || a.startsWith(`${flag}=`));
    for (const flag of ['--app', '--target', '--exclude', '--strategy', '--max-fact-age']) {
      if (given(flag))
        throw new PersonaError(
          'E_USAGE',
          `${flag} cannot be used with --resume: the run's journal fixes it`,
          {
            hint: `Resume without ${flag}, or start a new run: persona recover HOST ${flag} ...`,
          },
        );
    }
    const summary = await resumeRun(ctx, resume, {
      dryRun: opts.dryRun === true,
      stepByStep: opts.step === true,
      serial: opts.serial === true,
      forceNoFence: opts.forceNoFence === true,
      ...dataFromOpt(opts),
    });
    return { data: { runs: [summary] }, human: (out) => renderSummary(out, summary) };
  }
  if (!host) throw new PersonaError('E_USAGE', 'recover needs the failed host (or --resume RUN)');
  const runs = await recoverHost(ctx, {
    failedHost: host,
    apps: (opts.app as string[] | undefined) ?? [],
    ...(opts.target ? { target: String(opts.target) } : {}),
    dryRun: opts.dryRun === true,
    stepByStep: opts.step === true,
    serial: opts.serial === true,
    forceNoFence: opts.forceNoFence === true,
    dataFrom: dataFromOpt(opts).dataFrom ?? 'auto',
    strategy: (opts.strategy as Strategy | undefined) ?? 'best-fit',
    exclude: (opts.exclude as string[] | undefined) ?? [],
    commandLine: ['persona', ...ctx.argv],
    maxFactAge: maxFactAge(ctx, opts.maxFactAge),
  });
  return {
    data: { runs },
    human: (out) => {
      for (const s of runs) renderSummary(out, s);
    },
  };
};
