/**
 * hosts probe, hosts rank and recover in-process, with a fake `ssh` on PATH (test/helpers/fake-ssh.ts).
 */
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { jsonLines, runInProcess } from '../helpers/cli.js';
import { type FakeSsh, fakeSsh } from '../helpers/fake-ssh.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

let fake: FakeSsh;

beforeEach(() => {
  fake = fakeSsh();
  // The SSH transport spawns `ssh` from this process's PATH.
  for (const [name, value] of Object.entries(fake.env)) vi.stubEnv(name, value);
});
afterEach(() => {
  vi.unstubAllEnvs();
});

const env = () => ({ PERSONA_STORE: `file:${copyOfProfiles()}`, PERSONA_STATE_DIR: tempDir() });

describe('--json of a streaming command', () => {
  test('recover: events that each carry a type, then exactly one result line', async () => {
    const inventory = fake.inventory([{ name: 'down-1', apps: ['demo-web'] }, 'refused-1']);
    const r = await runInProcess(['recover', 'down-1', '--yes', '--json', '--inventory', inventory], {
      env: env(),
    });
    expect(r.code, r.stderr).toBe(4);
    const lines = jsonLines(r.stdout);
    for (const line of lines) expect(typeof line.type, JSON.stringify(line)).toBe('string');
    expect(lines.filter((l) => l.type === 'result')).toHaveLength(1);
    expect(lines.map((l) => l.type)).toContain('ranking');
    expect(lines.at(-1)).toMatchObject({
      type: 'result',
      ok: false,
      exit_code: 4,
      error: { code: 'E_NO_CANDIDATE' },
    });
  });
});
