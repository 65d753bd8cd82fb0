/**
 * A command's --help shows the global flags that matter to it, with their defaults.
 */
import { describe, expect, test } from 'vitest';
import { commands } from '../../src/cli/registry.js';
import { runInProcess } from '../helpers/cli.js';

async function help(path: string[]): Promise<string> {
  const r = await runInProcess([...path, '--help']);
  expect(r.code).toBe(0);
  return r.stdout.replace(/\s+/g, ' ');
}

describe('--help of a command', () => {
  test('recover: --inventory, --store, --yes, --json, --dry-run, with the defaults', async () => {
    const text = await help(['recover']);
    for (const flag of [
      '--inventory <file>',
      '--store <url>',
      '-y, --yes',
      '--json',
      '--dry-run',
      '--state-dir',
    ])
      expect(text).toContain(flag);
    expect(text).toContain('Global Options:');
    expect(text).toContain('default ./inventory.json');
    expect(text).toContain('default file:./profiles');
    expect(text).toContain(
      '--connect-timeout <seconds> SSH connect timeout (env PERSONA_CONNECT_TIMEOUT; default 5)',
    );
  });

  test('only the global flags that matter: profile validate reads files, not the store or hosts', async () => {
    const text = await help(['profile', 'validate']);
    expect(text).toContain('--json');
    expect(text).not.toContain('--inventory');
    expect(text).not.toContain('--store');
  });

  test.each(commands.map((c) => [c.path.join(' '), c] as const))('%s shows --json', async (_, spec) => {
    expect(await help(spec.path)).toContain('--json machine output on stdout');
  });
});
