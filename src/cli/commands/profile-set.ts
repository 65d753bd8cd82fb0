import { PersonaError } from '../../errors.js';
import type { Expectation } from '../../stores/profile-store.js';
import { readInput } from '../read-input.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args, opts }) => {
  const id = args.id as string;
  const file = opts.file as string | undefined;
  if (!file) throw new PersonaError('E_USAGE', 'profile set needs --file FILE (or --file - for stdin)');
  const text = await readInput(file, ctx.cwd, ctx.streams);
  const store = await ctx.store();
  const expectVersion = opts.expectVersion as number | undefined;
  let expect: Expectation;
  if (expectVersion === 0) expect = { create: true };
  else if (expectVersion !== undefined) expect = { version: expectVersion };
  else {
    // No version given: write over whatever is stored now, still atomically (compare-and-set on what we read).
    const current = await store.get(id);
    expect = current ? { token: current.token } : { create: true };
  }
  const written = await store.put(id, text, expect, {
    author: ctx.author,
    at: ctx.now().toISOString(),
    ...(opts.message ? { message: String(opts.message) } : {}),
  });
  return {
    data: { id, version: written.version, store: store.describe },
    human: (out) =>
      out.line(`${out.c.green('✔')} wrote ${id} version ${written.version} to ${store.describe}`),
  };
};
