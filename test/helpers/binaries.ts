/**
 * Tests that need a program check for it first and fail at once, naming the program and the Debian package that
 * provides it (from scripts/debian-packages.txt), instead of hanging or dying of an uncaught spawn ENOENT.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { basename, delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const LIST = fileURLToPath(new URL('../../scripts/debian-packages.txt', import.meta.url));

/** The Debian package that provides a command, from the project's package list. */
export function packageFor(command: string): string | undefined {
  const name = basename(command);
  for (const line of readFileSync(LIST, 'utf8').split('\n')) {
    const [pkg, ...commands] = line.replace(/#.*/, '').trim().split(/\s+/);
    if (pkg && commands.includes(name)) return pkg;
  }
  return undefined;
}

const executable = (path: string) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/** The absolute path of a command (a name is looked up on PATH; a path is checked as it is), or undefined. */
export function findBinary(command: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (command.includes('/')) return executable(command) ? command : undefined;
  for (const dir of (env.PATH ?? '').split(delimiter))
    if (dir && executable(join(dir, command))) return join(dir, command);
  return undefined;
}

/** Throws, naming each missing command and its package, unless every one is there. Returns their paths. */
export function requireBinaries(...commands: string[]): string[] {
  const missing = commands.filter((c) => !findBinary(c));
  if (missing.length) {
    const named = missing.map((c) => {
      const pkg = packageFor(c);
      return pkg ? `${c} (Debian package ${pkg})` : `${c} (not in scripts/debian-packages.txt)`;
    });
    throw new Error(`missing ${named.join(', ')}: run \`npm run setup\` (as root it installs them)`);
  }
  return commands.map((c) => findBinary(c)!);
}
