import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { PersonaError } from '../../errors.js';
import { skeletonProfile } from '../../profile/skeleton.js';
import { validateProfileValue } from '../../profile/validate.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args, opts }) => {
  const id = args.id as string;
  const skeleton = skeletonProfile(id);
  // The id is checked by the same rules as any profile: a hostile id never becomes a path or a command.
  validateProfileValue(`new profile "${id}"`, skeleton);
  const text = `${JSON.stringify(skeleton, null, 2)}\n`;
  const output = opts.output as string | undefined;
  if (output) {
    try {
      await writeFile(resolve(ctx.cwd, output), text, { flag: 'wx', mode: 0o644 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new PersonaError(
        code === 'EEXIST' ? 'E_EXISTS' : 'E_USAGE',
        `${output}: ${code === 'EEXIST' ? 'already exists; not overwritten' : `cannot write (${code})`}`,
      );
    }
  }
  return {
    // Nested as in `profile show --json`: the result line's own keys never mix into a profile.
    data: { id, profile: skeleton, ...(output ? { file: output } : {}) },
    human: (out) => {
      if (output)
        out.line(
          `${out.c.green('✔')} wrote a skeleton for ${id} to ${output}; fill it in, then \`persona profile set ${id} --file ${output} --expect-version 0\``,
        );
      else out.line(text.trimEnd());
    },
  };
};
