import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args }) => {
  const id = args.id as string;
  const store = await ctx.store();
  const entries = await store.history(id);
  if (entries.length === 0) await store.require(id);
  const data = entries.map(({ text: _text, ...rest }) => rest);
  return {
    data: { id, store: store.describe, versions: data },
    human: (out) => {
      out.table(
        ['version', 'when', 'who', 'message'],
        entries.map((e) => [
          `${e.version}${e.current ? out.c.green(' (current)') : ''}`,
          e.meta?.at ?? out.c.dim('unknown'),
          e.meta?.author ?? out.c.dim('outside persona'),
          e.meta?.message ?? '',
        ]),
      );
    },
  };
};
