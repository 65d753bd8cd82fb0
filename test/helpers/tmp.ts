import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { repoRoot } from './cli.js';

const made: string[] = [];

afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A temporary directory removed after the test. */
export function tempDir(prefix = 'persona-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** A copy of the example profiles in a temporary directory, to be used as a file store. */
export function copyOfProfiles(): string {
  const dir = tempDir('persona-store-');
  cpSync(join(repoRoot, 'profiles'), dir, { recursive: true });
  return dir;
}
