import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ExitCode, isPersonaError, PersonaError, type Problem, ValidationError } from '../../errors.js';
import { parseProfileText } from '../../profile/validate.js';
import type { CommandRun } from '../spec.js';

interface FileReport {
  file: string;
  valid: boolean;
  id?: string;
  problems: Problem[];
}

export const run: CommandRun = async (ctx, { args }) => {
  const files: string[] = [];
  for (const arg of args.files as string[]) files.push(...(await profileFiles(arg, ctx.cwd)));
  const reports: FileReport[] = [];
  for (const file of files) {
    reports.push(await check(file, resolve(ctx.cwd, file)));
  }
  const invalid = reports.filter((r) => !r.valid).length;
  return {
    data: { valid: invalid === 0, files: reports },
    exitCode: invalid === 0 ? ExitCode.ok : ExitCode.usage,
    human: (out) => {
      for (const r of reports) {
        if (r.valid) out.line(`${out.c.green('✔')} ${r.file}${r.id ? out.c.dim(` (${r.id})`) : ''}`);
        else {
          out.line(
            `${out.c.red('✖')} ${r.file}: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`,
          );
          for (const p of r.problems) out.line(`    ${p.path ? `${p.path}: ` : ''}${p.message}`);
        }
      }
      if (files.length > 1) out.line(out.c.dim(`${files.length - invalid} valid, ${invalid} invalid`));
    },
  };
};

/**
 * A directory stands for the *.json files directly in it, in name order. Not recursive: profiles/schema/ holds
 * the JSON Schema, which is not a profile. Anything else is taken as a file (a missing one is reported as such).
 */
async function profileFiles(arg: string, cwd: string): Promise<string[]> {
  const path = resolve(cwd, arg);
  const info = await stat(path).catch(() => undefined);
  if (!info?.isDirectory()) return [arg];
  const names = (await readdir(path, { withFileTypes: true }))
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && e.name.endsWith('.json'))
    .map((e) => e.name)
    .sort();
  if (names.length === 0) {
    throw new PersonaError('E_USAGE', `${arg}: no profiles (*.json files) in this directory`, {
      hint: 'validate DIR reads the *.json files directly in DIR, not its subdirectories; name files or another directory.',
    });
  }
  return names.map((name) => join(arg, name));
}

async function check(file: string, path: string): Promise<FileReport> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String((error as Error).message);
    return { file, valid: false, problems: [{ path: '', message: `cannot read: ${reason}` }] };
  }
  try {
    const { profile } = parseProfileText(file, text);
    return { file, valid: true, id: profile.id, problems: [] };
  } catch (error) {
    if (error instanceof ValidationError) return { file, valid: false, problems: [...error.problems] };
    if (isPersonaError(error)) {
      // JSON syntax, size and depth errors name a line and column rather than a path.
      const message = error.message.startsWith(`${file}:`)
        ? error.message.slice(file.length + 1).trim()
        : error.message;
      return { file, valid: false, problems: [{ path: '', message }] };
    }
    throw error;
  }
}
