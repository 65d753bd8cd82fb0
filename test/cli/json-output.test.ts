/**
 * One --json shape for every command: NDJSON lines that each carry a `type`, ending with exactly one
 * {"type":"result","ok":…,"exit_code":…} line; a command that does not stream prints only that line.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { commands } from '../../src/cli/registry.js';
import { jsonLines, runInProcess } from '../helpers/cli.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

const env = () => ({ PERSONA_STORE: `file:${copyOfProfiles()}`, PERSONA_STATE_DIR: tempDir() });

describe('--json result line', () => {
  test.each([
    [['profile', 'list'], 'profiles'],
    [['profile', 'show', 'demo-web'], 'profile'],
    [['profile', 'history', 'demo-web'], 'versions'],
    [['profile', 'diff', 'demo-web', '--file', 'profiles/demo-web.json'], 'diff'],
    [['profile', 'new', 'billing-api-2'], 'profile'],
    [['profile', 'validate', 'profiles/demo-web.json'], 'files'],
    [['locks', 'list'], 'locks'],
    [['runs', 'list'], 'runs'],
  ])('%j prints one line: the result, with its data beside type, ok and exit_code', async (argv, key) => {
    const r = await runInProcess([...argv, '--json'], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    const lines = jsonLines(r.stdout);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ type: 'result', ok: true, exit_code: 0 });
    expect(lines[0]).toHaveProperty(key);
  });

  test('a result with a non-zero exit code says so: ok false, its exit_code, the data', async () => {
    const bad = join(tempDir(), 'bad.json');
    writeFileSync(bad, '{"id": "bad"}');
    const r = await runInProcess(['profile', 'validate', bad, '--json'], { env: env() });
    expect(r.code).toBe(2);
    expect(jsonLines(r.stdout)).toEqual([
      expect.objectContaining({ type: 'result', ok: false, exit_code: 2, valid: false }),
    ]);
  });

  test('an error is the result line too, with the code, message and hint; the message also on stderr', async () => {
    const r = await runInProcess(['profile', 'show', 'missing', '--json'], { env: env() });
    expect(r.code).toBe(4);
    const lines = jsonLines(r.stdout);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toEqual({
      type: 'result',
      ok: false,
      exit_code: 4,
      error: expect.objectContaining({ code: 'E_NOT_FOUND', message: expect.stringContaining('missing') }),
    });
    expect(r.stderr).toContain('not found');
  });

  test('a usage error found while parsing the flags is a result line with E_USAGE', async () => {
    const r = await runInProcess(['profile', 'show', '--json', '--no-such-flag'], { env: env() });
    expect(r.code).toBe(2);
    expect(jsonLines(r.stdout)).toEqual([
      {
        type: 'result',
        ok: false,
        exit_code: 2,
        error: { code: 'E_USAGE', message: expect.stringContaining('--no-such-flag') },
      },
    ]);
  });

  test('profile new --json keeps the skeleton whole under "profile", apart from the envelope', async () => {
    const r = await runInProcess(['profile', 'new', 'billing-api-2', '--json'], { env: env() });
    const [line] = jsonLines(r.stdout);
    expect(line).toMatchObject({ id: 'billing-api-2', profile: { id: 'billing-api-2' } });
    expect(line!.profile).not.toHaveProperty('type');
  });

  test('only long runs stream events: profile rollout, recover, migrate, watch and runs resume', () => {
    expect(commands.filter((c) => c.streams).map((c) => c.path.join(' '))).toEqual([
      'profile rollout',
      'recover',
      'migrate',
      'watch',
      'runs resume',
    ]);
  });
});
