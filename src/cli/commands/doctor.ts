/**
 * `persona doctor`: is this machine ready to run persona? The store and the inventory
 * come from the context, everything else from local-ports. Never connects to an inventory host.
 */
import { runDoctor } from '../../doctor/doctor.js';
import { localPorts } from '../../doctor/local-ports.js';
import { ExitCode } from '../../errors.js';
import type { CommandRun } from '../spec.js';

const mark = { ok: 'ok', warn: 'warn', fail: 'FAIL', skip: 'skip' } as const;

export const run: CommandRun = async (ctx) => {
  const report = await runDoctor(
    {
      settings: ctx.settings.values,
      configFile: ctx.settings.file,
      configCandidates: ctx.settings.candidates,
      env: ctx.env,
      cwd: ctx.cwd,
      acceptNewHostKeys: ctx.globals.acceptNewHostKeys === true,
    },
    {
      ...localPorts(ctx.env, ctx.signal),
      openStore: async () => (await ctx.store()).backend,
      loadInventory: () => ctx.inventory(),
    },
  );
  const width = Math.max(...report.checks.map((c) => c.id.length));
  return {
    // `ok` is the --json envelope's own key (true exactly when no check failed).
    data: { checks: report.checks, summary: report.summary },
    exitCode: report.ok ? ExitCode.ok : ExitCode.precondition,
    human: (out) => {
      const paint = { ok: out.c.green, warn: out.c.yellow, fail: out.c.red, skip: out.c.dim };
      for (const c of report.checks) {
        const fix = c.fix && c.status !== 'ok' ? out.c.dim(` — fix: ${c.fix}`) : '';
        out.line(`${paint[c.status](mark[c.status].padEnd(4))}  ${c.id.padEnd(width)}  ${c.summary}${fix}`);
      }
      const s = report.summary;
      out.line(out.c.dim(`${s.ok} ok, ${s.warn} warn, ${s.fail} fail${s.skip ? `, ${s.skip} skipped` : ''}`));
    },
  };
};
