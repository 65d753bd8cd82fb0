import { PersonaError } from '../../errors.js';
import { parseProfileText } from '../../profile/validate.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args, opts }) => {
  const id = args.id as string;
  const store = await ctx.store();
  const wanted = opts.version as number | undefined;
  let text: string;
  let version: number;
  if (wanted === undefined) {
    const stored = await store.require(id);
    text = stored.text;
    version = stored.version;
  } else {
    const entry = await store.version(id, wanted);
    if (!entry) {
      throw new PersonaError('E_NOT_FOUND', `profile "${id}" has no version ${wanted} in ${store.describe}`, {
        hint: `See the versions with \`persona profile history ${id}\`.`,
      });
    }
    text = entry.text;
    version = entry.version;
  }
  const { profile } = parseProfileText(`${store.describe} profile "${id}" (version ${version})`, text, id);
  return {
    data: { id, version, store: store.describe, profile },
    // Only the document goes to stdout, so `show ID > f.json` feeds `set --file f.json`; the version is a note.
    human: (out) => {
      ctx.reporter.info(`# ${id} version ${version} in ${store.describe}`);
      out.line(text.trimEnd());
    },
  };
};
