/**
 * hosts probe, hosts rank and recover in-process, with a fake `ssh` on PATH (test/helpers/fake-ssh.ts): exit codes
 * when no host answers, Ctrl-C in the middle of a probe, and the --json shape of a streaming command.
 */
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { availableParallelism, release } from 'node:os';
import { join } from 'node:path';
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

async function untilStarted(host: string): Promise<void> {
  for (let i = 0; i < 500 && !fake.started().includes(host); i++) await new Promise((r) => setTimeout(r, 10));
  expect(fake.started()).toContain(host);
}

/** Runs the command, presses Ctrl-C once the probe of slow-1 is under way. */
async function interrupted(argv: string[], extraEnv: Record<string, string>): Promise<CliResult> {
  const signals = new EventEmitter();
  const running = runInProcess(argv, { env: extraEnv, signals });
  await untilStarted('slow-1');
  signals.emit('SIGINT', 'SIGINT');
  return await running;
}

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

describe('a local host (ansible_connection=local)', () => {
  test('is probed on this machine without ssh; the other hosts still go through ssh', async () => {
    const dir = tempDir('persona-local-inv-');
    const inventory = join(dir, 'hosts.ini');
    // "here" resolves nowhere and the fake ssh answers nothing for it: only a probe run locally can succeed.
    writeFileSync(
      inventory,
      'here ansible_host=here.invalid ansible_connection=local\nok-1 ansible_port=9\n',
    );
    const r = await runInProcess(['hosts', 'probe', '--json', '--inventory', inventory], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    const result = lastLine(r) as { hosts: Array<{ host: { name: string } }> };
    const byName = Object.fromEntries(result.hosts.map((h) => [h.host.name, h]));
    // This machine's own kernel (the fake ssh answers ok-1 with a recorded probe of another).
    expect(byName.here, JSON.stringify(result)).toMatchObject({
      ok: true,
      host: { connection: 'local' },
      facts: { kernel: release(), cores: { online: availableParallelism() } },
    });
    expect(byName['ok-1']).toMatchObject({ ok: true, facts: { kernel: '6.18.44-fc-v595' } });
  });
});

describe('Ctrl-C always exits 130', () => {
  test('hosts probe: E_INTERRUPTED, not a result with cancelled hosts', async () => {
    const inventory = fake.inventory(['ok-1', 'slow-1']);
    const r = await interrupted(['hosts', 'probe', '--json', '--inventory', inventory], env());
    expect(r.code, r.stderr).toBe(130);
    expect(jsonLines(r.stdout)).toEqual([
      {
        type: 'result',
        ok: false,
        exit_code: 130,
        error: { code: 'E_INTERRUPTED', message: 'interrupted by SIGINT' },
      },
    ]);
    expect(r.stdout).not.toContain('cancelled');
  });

  test('hosts rank: E_INTERRUPTED, not "no host can take"', async () => {
    const inventory = fake.inventory(['slow-1', 'refused-1']);
    const r = await interrupted(
      ['hosts', 'rank', '--profile', 'demo-web', '--json', '--inventory', inventory],
      env(),
    );
    expect(r.code, r.stderr).toBe(130);
    expect(lastLine(r)).toMatchObject({ type: 'result', exit_code: 130, error: { code: 'E_INTERRUPTED' } });
    expect(r.stderr).not.toContain('no host can take');
  });

  test('recover: E_INTERRUPTED, not E_NO_CANDIDATE', async () => {
    const inventory = fake.inventory([{ name: 'down-1', apps: ['demo-web'] }, 'slow-1']);
    const r = await interrupted(['recover', 'down-1', '--yes', '--json', '--inventory', inventory], env());
    expect(r.code, r.stderr).toBe(130);
    expect(lastLine(r)).toMatchObject({ type: 'result', exit_code: 130, error: { code: 'E_INTERRUPTED' } });
    expect(r.stderr).not.toContain('no host can take');
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
