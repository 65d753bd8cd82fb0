/**
 * hosts probe, hosts rank and recover in-process, with a fake `ssh` on PATH (test/helpers/fake-ssh.ts): exit codes
 * when no host answers, and the --json shape of a streaming command.
 */
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { type CliResult, jsonLines, runInProcess } from '../helpers/cli.js';
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

function lastLine(r: CliResult): Record<string, unknown> {
  return jsonLines(r.stdout).at(-1)!;
}

describe('hosts probe: exit codes', () => {
  test('no host answered: exit 4, every failure with its reason in the result', async () => {
    const inventory = fake.inventory(['refused-1', 'refused-2']);
    const r = await runInProcess(['hosts', 'probe', '--json', '--inventory', inventory], { env: env() });
    expect(r.code, r.stderr).toBe(4);
    const lines = jsonLines(r.stdout);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ type: 'result', ok: false, exit_code: 4 });
    expect(lines[0]!.hosts).toMatchObject([
      { ok: false, failure: { kind: 'refused' } },
      { ok: false, failure: { kind: 'refused' } },
    ]);
  });

  test('no host answered, for people: the table, then the reason for exit 4', async () => {
    const inventory = fake.inventory(['refused-1']);
    const r = await runInProcess(['hosts', 'probe', '--inventory', inventory], { env: env() });
    expect(r.code).toBe(4);
    expect(r.stdout).toContain('refused');
    expect(r.stdout).toContain('no host answered');
  });

  test('some hosts answered: exit 0; the failures stay in the output', async () => {
    const inventory = fake.inventory(['ok-1', 'refused-1']);
    const r = await runInProcess(['hosts', 'probe', '--json', '--inventory', inventory], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(lastLine(r)).toMatchObject({
      type: 'result',
      ok: true,
      exit_code: 0,
      hosts: [{ ok: true }, { ok: false, failure: { kind: 'refused' } }],
    });
  });
});

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
