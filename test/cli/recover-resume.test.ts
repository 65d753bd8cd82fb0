/**
 * `recover --resume` in-process (issue 10): a dry run changes nothing, a resume is confirmed like a fresh run, and
 * flags that cannot apply are refused, never silently ignored.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { runInProcess } from '../helpers/cli.js';
import { ran, recoverFixture, savedRun } from '../helpers/recover-fixture.js';

describe('recover --resume', () => {
  test('--dry-run --json (CI, no --yes) runs nothing, not even the fence, and leaves the journal as it was', async () => {
    const fx = recoverFixture();
    const j = await savedRun(fx, { fence: 'running' });
    const before = readFileSync(fx.journalFile(j.run_id), 'utf8');
    const r = await runInProcess(['recover', '--resume', j.run_id, '--dry-run', '--json'], { env: fx.env });
    expect(r.code, r.stderr).toBe(0);
    expect(ran(fx.marks.fence)).toBe(false);
    expect(ran(fx.marks.switch)).toBe(false);
    expect(readFileSync(fx.journalFile(j.run_id), 'utf8')).toBe(before);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(result.runs[0]).toMatchObject({ status: 'dry-run', run_id: j.run_id });
    // The fence's own log line ("h1 is out of rotation") comes only from applying its action.
    expect(r.stdout).not.toMatch(/h1 is out of rotation/);
    expect(r.stdout).toMatch(/would run locally: touch \S+fence-ran/);
    // No action was even written down as started.
    expect(r.stdout).not.toMatch(/"type":"action"/);
  });

  test('without --yes and without a terminal it exits 3 naming --yes, and changes nothing', async () => {
    const fx = recoverFixture();
    const j = await savedRun(fx, { fence: 'running' });
    const before = readFileSync(fx.journalFile(j.run_id), 'utf8');
    const r = await runInProcess(['recover', '--resume', j.run_id, '--json'], { env: fx.env });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/confirmation required: Resume run/);
    expect(r.stderr).toContain('--yes');
    expect(ran(fx.marks.fence)).toBe(false);
    expect(readFileSync(fx.journalFile(j.run_id), 'utf8')).toBe(before);
  });

  test.each([
    ['--target', 'h2'],
    ['--app', 'demo-web'],
    ['--exclude', 'h2'],
    ['--strategy', 'spread'],
  ])('%s cannot apply to a resumed run: usage error naming it, nothing changed', async (flag, value) => {
    const fx = recoverFixture();
    const j = await savedRun(fx, { fence: 'running' });
    const r = await runInProcess(['recover', '--resume', j.run_id, flag, value, '--yes'], { env: fx.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${flag} cannot be used with --resume`);
    expect(ran(fx.marks.fence)).toBe(false);
  });
});

describe('a state directory that cannot be used', () => {
  test('a state dir that is a file: E_STATE naming the path and ENOTDIR (exit 2), not an internal error', async () => {
    const fx = recoverFixture();
    const file = join(fx.dir, 'state-file');
    writeFileSync(file, 'not a directory');
    const r = await runInProcess(['recover', '--resume', '20261127T000000Z-demo-web-abcdef', '--yes'], {
      env: { ...fx.env, PERSONA_STATE_DIR: file },
    });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toContain('ENOTDIR');
    expect(r.stderr).not.toMatch(/internal error|this is a bug/i);
  });
});

describe('an interrupted fence on resume', () => {
  test('(a) the traffic method cannot take h1 out and h1 does not answer: the fence refuses, switch never runs', async () => {
    const fx = recoverFixture((profile, dir) => {
      // No fence command: the traffic method cannot take a host out.
      profile.traffic = { method: 'command', switch: ['touch', join(dir, 'switch-ran')] };
    });
    // As PERSONA_FAILPOINT=fence:after-traffic and SIGINT leave it (later steps done, to reach switch at once).
    const j = await savedRun(fx, {
      fence: 'interrupted',
      configure: 'succeeded',
      migrate: 'succeeded',
      validate: 'succeeded',
    });
    const r = await runInProcess(['recover', '--resume', j.run_id, '--yes', '--json'], { env: fx.env });
    expect(ran(fx.marks.switch), 'the switch command ran').toBe(false);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/cannot fence h1: .*cannot take it out of rotation/);
    const saved = JSON.parse(readFileSync(fx.journalFile(j.run_id), 'utf8'));
    expect(saved.steps.find((s: { kind: string }) => s.kind === 'fence').status).toBe('failed');
    expect(saved.steps.find((s: { kind: string }) => s.kind === 'switch').status).toBe('pending');
  });
});
