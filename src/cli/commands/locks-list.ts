import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx) => {
  const store = await ctx.store();
  const locks = await store.backend.listLocks();
  locks.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    data: { store: store.describe, locks },
    human: (out) => {
      if (locks.length === 0) {
        out.line(`no locks held in ${store.describe}`);
        return;
      }
      out.table(
        ['lock', 'holder', 'host', 'pid', 'run', 'since', 'expires'],
        locks.map((l) => [
          l.name,
          l.info.holder,
          l.info.host,
          l.info.pid,
          l.info.run_id ?? '',
          l.info.started_at,
          l.expires_at ?? out.c.dim('while renewed'),
        ]),
      );
      out.line(out.c.dim(`${locks.length} lock${locks.length === 1 ? '' : 's'} held in ${store.describe}`));
    },
  };
};
