import { commandText } from '../../recover/provision.js';
import { runRoute } from '../../recover/summary.js';
import { JournalStore } from '../../runbook/journal.js';
import { stripTerminalControls } from '../../util/sanitize.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args }) => {
  const store = await ctx.store();
  const journal = await new JournalStore(ctx.stateDir, store.backend.shared ? store.backend : undefined).load(
    String(args.run),
  );
  return {
    data: journal,
    human: (out) => {
      out.line(
        out.c.bold(
          `run ${journal.run_id}: ${journal.app} ${runRoute(journal)}${journal.kind === 'migrate' ? ' (planned move)' : ''}, ${journal.status}`,
        ),
      );
      const downtime = (
        journal.steps.find((s) => s.kind === 'monitor')?.outputs as
          | { downtime?: { longest_ms?: number } }
          | undefined
      )?.downtime?.longest_ms;
      if (downtime !== undefined)
        out.line(`downtime ${(downtime / 1000).toFixed(2)} s, as a client through the balancer saw it`);
      out.line(
        `started ${journal.created_at} by ${journal.who}; profile version ${journal.profile.version}; store ${journal.store}`,
      );
      const made = journal.provisioned;
      if (made)
        out.line(
          `target ${made.entry.name} (${made.entry.address}) made for this run by the provision command \`${stripTerminalControls(commandText(made.command))}\` at ${made.at} (${(made.duration_ms / 1000).toFixed(1)} s)`,
        );
      out.table(
        ['step', 'status', 'attempts', 'took', 'notes'],
        journal.steps.map((s) => [
          s.kind,
          s.status,
          s.attempts,
          s.duration_ms !== undefined ? `${(s.duration_ms / 1000).toFixed(1)} s` : '',
          // A journal may come from a shared store or an older persona: its remote text is cleaned again here.
          [
            ...s.log.slice(-4).map(stripTerminalControls),
            ...(s.error ? [out.c.red(stripTerminalControls(s.error.message))] : []),
            ...(s.skipped_reason ? [s.skipped_reason] : []),
          ].join('\n'),
        ]),
      );
    },
  };
};
