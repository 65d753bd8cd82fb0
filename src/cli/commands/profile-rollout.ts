import { ExitCode, PersonaError } from '../../errors.js';
import { rolloutApp } from '../../rollout/run.js';
import { readInput } from '../read-input.js';
import { renderRollout } from '../rollout-summary.js';
import type { CommandRun } from '../spec.js';

const count = (v: unknown, fallback: number) => (v === undefined ? fallback : Number(v));

export const run: CommandRun = async (ctx, { args, opts }) => {
  const file = opts.candidate as string | undefined;
  if (!file)
    throw new PersonaError('E_USAGE', 'profile rollout needs --candidate FILE (the candidate profile)');
  const batch = count(opts.batch, 1);
  if (batch < 1) throw new PersonaError('E_USAGE', '--batch must be 1 or more');
  const summary = await rolloutApp(ctx, {
    app: String(args.app),
    candidate: { file, text: await readInput(file, ctx.cwd, ctx.streams) },
    canary: count(opts.canary, 1),
    windowS: count(opts.window, 60),
    batch,
    healthWaitS: count(opts.healthWait, 60),
    ...(opts.maxCpuIncrease !== undefined ? { maxCpuIncreasePct: Number(opts.maxCpuIncrease) } : {}),
    ...(opts.maxMemoryIncrease !== undefined ? { maxMemoryIncreasePct: Number(opts.maxMemoryIncrease) } : {}),
    dryRun: opts.dryRun === true,
    commandLine: ['persona', ...ctx.argv],
  });
  return {
    data: { runs: [summary] },
    human: (out) => renderRollout(out, summary),
    ...(summary.rollout?.decision === 'revert' ? { exitCode: ExitCode.precondition } : {}),
  };
};
