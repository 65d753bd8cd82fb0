/**
 * The built persona with a fake `ssh` first on PATH (test/helpers/fake-ssh.ts): help examples run exactly as
 * written, and Ctrl-C delivered to the real process.
 */
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import { commands } from '../../src/cli/registry.js';
import { bin, jsonLines, repoRoot } from '../helpers/cli.js';
import { fakeSsh } from '../helpers/fake-ssh.js';
import { copyOfProfiles } from '../helpers/tmp.js';

/** Every example that pipes persona's output into jq. */
const jqExamples = commands.flatMap((c) =>
  c.examples.filter(([cmd]) => cmd.includes('| jq ')).map(([cmd, what]) => [cmd, what] as const),
);

describe('help examples (built CLI)', () => {
  test('there are jq examples to check', () => {
    expect(jqExamples.length).toBeGreaterThan(0);
  });

  test.each(jqExamples)('runs exactly as written: %s', async (example) => {
    const fake = fakeSsh();
    // `persona` on PATH, as a reader of the help has it.
    symlinkSync(bin, join(fake.env.PATH!.split(':')[0]!, 'persona'));
    const r = await execa('bash', ['-o', 'pipefail', '-c', example], {
      reject: false,
      cwd: repoRoot,
      env: {
        ...fake.env,
        NO_COLOR: '1',
        CI: 'true',
        PERSONA_STORE: `file:${copyOfProfiles()}`,
        // ok-2 carries a secret-looking label, so `hosts list` has a warning to show (its value redacted).
        PERSONA_INVENTORY: fake.inventory([
          'ok-1',
          'refused-1',
          { name: 'ok-2', apps: [], labels: { db_password: 'hunter2' } },
        ]),
      },
      stdin: 'ignore',
    });
    expect(r.stderr).not.toMatch(/jq: error/);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(String(r.stdout).trim()).not.toBe('');
    expect(String(r.stdout)).not.toContain('hunter2');
    if (example.startsWith('persona hosts probe'))
      expect(JSON.parse(String(r.stdout))).toMatchObject({ host: { name: 'refused-1' }, ok: false });
  });
});

describe('Ctrl-C (built CLI)', () => {
  test('SIGINT during hosts probe exits 130 and ends --json with an E_INTERRUPTED result', async () => {
    const fake = fakeSsh();
    const child = execa(bin, ['hosts', 'probe', '--json'], {
      reject: false,
      cwd: repoRoot,
      env: { ...fake.env, NO_COLOR: '1', CI: 'true', PERSONA_INVENTORY: fake.inventory(['ok-1', 'slow-1']) },
      stdin: 'ignore',
    });
    for (let i = 0; i < 1000 && !fake.started().includes('slow-1'); i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(fake.started()).toContain('slow-1');
    child.kill('SIGINT');
    const r = await child;
    expect(r.exitCode, String(r.stderr)).toBe(130);
    expect(jsonLines(String(r.stdout))).toEqual([
      {
        type: 'result',
        ok: false,
        exit_code: 130,
        error: { code: 'E_INTERRUPTED', message: 'interrupted by SIGINT' },
      },
    ]);
    expect(String(r.stderr)).toContain('interrupted by SIGINT');
  });
});
