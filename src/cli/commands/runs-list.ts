import { runRoute } from '../../recover/summary.js';
import { JournalStore } from '../../runbook/journal.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx) => {
  const store = await ctx.store();
  const journals = await new JournalStore(
    ctx.stateDir,
    store.backend.shared ? store.backend : undefined,
  ).list();
  const rows = journals.map((j) => ({
    run_id: j.run_id,
    app: j.app,
    status: j.status,
    failed_host: j.failed_host.name,
    target_host: j.target_host.name,
    route: runRoute(j),
    created_at: j.created_at,
    updated_at: j.updated_at,
    who: j.who,
    driver: j.driver,
    next_step: j.steps.find((s) => s.status !== 'succeeded' && s.status !== 'skipped')?.kind ?? null,
  }));
  return {
    data: { state_dir: ctx.stateDir, runs: rows },
    human: (out) => {
      if (rows.length === 0)
        return out.line(`no runs in ${ctx.stateDir}${store.backend.shared ? ` or ${store.describe}` : ''}`);
      out.table(
        ['run', 'app', 'status', 'from → to', 'next step', 'started', 'by'],
        rows.map((r) => [r.run_id, r.app, r.status, r.route, r.next_step ?? '', r.created_at, r.who]),
      );
    },
  };
};
