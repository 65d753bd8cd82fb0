import { PersonaError } from '../../errors.js';
import { printDiff, unifiedDiff } from '../../ui/diff.js';
import { readInput } from '../read-input.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args, opts }) => {
  const id = args.id as string;
  const store = await ctx.store();
  const current = await store.require(id);
  let fromName: string;
  let fromText: string;
  let toName = `${id} version ${current.version} (current)`;
  let toText = current.text;
  if (opts.file) {
    fromName = toName;
    fromText = current.text;
    toName = String(opts.file);
    toText = await readInput(String(opts.file), ctx.cwd, ctx.streams);
  } else {
    const history = await store.history(id);
    const wanted = (opts.version as number | undefined) ?? history.find((h) => !h.current)?.version;
    if (wanted === undefined) {
      throw new PersonaError('E_NOT_FOUND', `profile "${id}" has no earlier version to compare with`);
    }
    const entry = history.find((h) => h.version === wanted);
    if (!entry) {
      throw new PersonaError('E_NOT_FOUND', `profile "${id}" has no version ${wanted} in ${store.describe}`, {
        hint: `See the versions with \`persona profile history ${id}\`.`,
      });
    }
    fromName = `${id} version ${entry.version}`;
    fromText = entry.text;
  }
  const diff = unifiedDiff(fromName, toName, fromText, toText);
  return {
    data: { id, from: fromName, to: toName, changed: diff !== '', diff },
    human: (out) =>
      diff ? printDiff(out, diff) : out.line(`no difference between ${fromName} and ${toName}`),
  };
};
