/**
 * persona profile edit ID: the editor on a private copy; validated on save; written with compare-and-set so a
 * concurrent change is shown, never overwritten. The edit is never lost: when it cannot be written it is saved
 * in the state directory and the message says where.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context } from '../../context.js';
import { formatProblems, isPersonaError, PersonaError, ValidationError } from '../../errors.js';
import { parseProfileText } from '../../profile/validate.js';
import type { StoredProfile } from '../../stores/profile-store.js';
import { unifiedDiff } from '../../ui/diff.js';
import { stripBom } from '../../util/text.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args, opts }) => {
  const id = args.id as string;
  const store = await ctx.store();
  let base = await store.require(id);
  const work = await mkdtemp(join(tmpdir(), 'persona-edit-'));
  const file = join(work, `${id}.json`);
  try {
    await writeFile(file, base.text, { mode: 0o600 });
    for (;;) {
      await ctx.editFile(file);
      const text = stripBom(await readFile(file, 'utf8'));
      if (text.trim() === '') {
        throw new PersonaError(
          'E_ABORTED',
          `the edited file is empty: edit of "${id}" aborted, nothing written`,
        );
      }
      if (text === base.text) {
        return {
          data: { id, changed: false, version: base.version },
          human: (out) => out.line(`no changes to ${id}; nothing written (version ${base.version})`),
        };
      }
      if (!(await isValidOrReedit(ctx, id, text))) continue;
      try {
        const written = await store.put(
          id,
          text,
          { token: base.token },
          {
            author: ctx.author,
            at: ctx.now().toISOString(),
            ...(opts.message ? { message: String(opts.message) } : {}),
          },
        );
        return {
          data: {
            id,
            changed: true,
            version: written.version,
            previous_version: base.version,
            store: store.describe,
          },
          human: (out) =>
            out.line(
              `${out.c.green('✔')} wrote ${id} version ${written.version} (was ${base.version}) to ${store.describe}`,
            ),
        };
      } catch (error) {
        if (!isPersonaError(error) || error.code !== 'E_CONFLICT') throw await keepEdit(ctx, id, text, error);
        const now = await store.require(id);
        showConcurrentChange(ctx, base, now);
        if (!ctx.mode.interactive) throw await keepEdit(ctx, id, text, conflictError(id, base, now));
        const next = await ctx.prompter.select(
          `"${id}" was changed by someone else (version ${base.version} → ${now.version}). What now?`,
          [
            {
              name: 'edit again on top of the new version (merge their change into yours)',
              value: 'edit' as const,
            },
            { name: 'abort (your edit is saved to a file)', value: 'abort' as const },
          ],
          { default: 'edit' },
        );
        if (next === 'abort') throw await keepEdit(ctx, id, text, conflictError(id, base, now));
        base = now;
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
};

/**
 * True when valid. Otherwise gives up with the error (which lists every problem) when nobody can be asked, or
 * shows the problems and asks to re-edit (false). Shown once either way: the error is printed by main.
 */
async function isValidOrReedit(ctx: Context, id: string, text: string): Promise<boolean> {
  try {
    parseProfileText(`${id} (your edit)`, text, id);
    return true;
  } catch (error) {
    if (!isPersonaError(error)) throw error;
    if (!ctx.mode.interactive) throw await keepEdit(ctx, id, text, error);
    const problems = error instanceof ValidationError ? formatProblems(error.problems) : error.message;
    ctx.reporter.warn(`your edit of "${id}" has problems:\n${problems}`);
    const next = await ctx.prompter.select(
      'The profile is not valid. What now?',
      [
        { name: 're-edit', value: 'edit' as const },
        { name: 'abort (your edit is saved to a file)', value: 'abort' as const },
      ],
      { default: 'edit' },
    );
    if (next === 'abort')
      throw await keepEdit(
        ctx,
        id,
        text,
        new PersonaError('E_ABORTED', `edit of "${id}" aborted; nothing written`),
      );
    return false;
  }
}

function showConcurrentChange(ctx: Context, base: StoredProfile, now: StoredProfile): void {
  const who = now.meta ? ` by ${now.meta.author} at ${now.meta.at}` : ' outside persona';
  ctx.reporter.warn(
    `"${base.id}" changed since you opened it: version ${base.version} → ${now.version}${who}. Their change:`,
  );
  ctx.reporter.info(
    unifiedDiff(
      `${base.id} version ${base.version} (you started here)`,
      `${base.id} version ${now.version} (stored now)`,
      base.text,
      now.text,
    ),
  );
}

function conflictError(id: string, base: StoredProfile, now: StoredProfile): PersonaError {
  return new PersonaError(
    'E_CONFLICT',
    `"${id}" changed in the store since you started editing (version ${base.version} → ${now.version}); your edit was not written`,
    { details: { id, base_version: base.version, stored_version: now.version } },
  );
}

/** Saves the edit in the state directory and returns the error extended with where the edit is. */
async function keepEdit(ctx: Context, id: string, text: string, error: unknown): Promise<unknown> {
  if (!isPersonaError(error)) return error;
  const dir = join(ctx.stateDir, 'edits');
  const path = join(dir, `${id}-${ctx.now().toISOString().replace(/[:.]/g, '-')}.json`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(path, text, { mode: 0o600, flag: 'wx' });
  } catch (saveError) {
    ctx.reporter.warn(`could not save your edit to ${path}: ${(saveError as Error).message}`);
    return error;
  }
  return new PersonaError(error.code, error.message, {
    hint: `Your edit is saved in ${path}. Apply it with \`persona profile set ${id} --file ${path}\` once it is right.`,
    details: { ...error.details, saved_edit: path },
    exitCode: error.exitCode,
  });
}
