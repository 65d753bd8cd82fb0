import { PersonaError } from '../../errors.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args, opts }) => {
  const id = args.id as string;
  const store = await ctx.store();
  const current = await store.require(id);
  const expected = opts.expectVersion as number | undefined;
  const confirmed = await ctx.prompter.confirm(
    `Delete profile "${id}" (version ${current.version}) from ${store.describe}? Its history is kept.`,
    { default: false },
  );
  if (!confirmed) {
    throw new PersonaError('E_DECLINED', `not deleted: "${id}" is unchanged`);
  }
  await store.delete(id, expected === undefined ? { token: current.token } : { version: expected }, {
    author: ctx.author,
    at: ctx.now().toISOString(),
  });
  return {
    data: { id, deleted: true, version: current.version, store: store.describe },
    human: (out) =>
      out.line(`${out.c.green('✔')} deleted ${id} (version ${current.version} kept in the history)`),
  };
};
