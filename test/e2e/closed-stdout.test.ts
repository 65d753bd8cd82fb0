/**
 * A reader that goes away (`| head -1`) ends persona quietly with exit 141 (128 + SIGPIPE, as git), never with a
 * stack trace.
 */
import { readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import { bin, repoRoot, runInProcess } from '../helpers/cli.js';

const profiles = readdirSync(`${repoRoot}profiles`)
  .filter((f) => f.endsWith('.json'))
  .map((f) => `profiles/${f}`);
const stackTrace = /^\s+at .+:\d+:\d+\)?$/m;

/** A stdout whose reader has gone: every write fails with EPIPE, as a pipe closed by `head` does. */
class ClosedPipe extends Writable {
  override _write(_chunk: unknown, _encoding: string, callback: (error?: Error) => void): void {
    callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' }));
  }
}

describe('stdout closed early', () => {
  test('in-process: EPIPE on stdout stops the command quietly with 141', async () => {
    const r = await runInProcess(['profile', 'validate', ...profiles], { stdout: new ClosedPipe() });
    expect(r.code).toBe(141);
    expect(r.stderr).toBe('');
  });

  test('in-process: the same for --json and for help', async () => {
    const json = await runInProcess(['profile', 'list', '--json'], { stdout: new ClosedPipe() });
    expect(json).toMatchObject({ code: 141, stderr: '' });
    const help = await runInProcess(['recover', '--help'], { stdout: new ClosedPipe() });
    expect(help).toMatchObject({ code: 141, stderr: '' });
  });

  test('built CLI: a pipe closed before persona writes gives 141 and nothing on stderr', async () => {
    for (let i = 0; i < 3; i++) {
      const child = execa(bin, ['profile', 'validate', ...profiles], {
        reject: false,
        cwd: repoRoot,
        env: { NO_COLOR: '1', CI: 'true' },
        stdin: 'ignore',
        stdout: 'pipe',
      });
      child.stdout!.destroy();
      const r = await child;
      expect(r.exitCode, String(r.stderr)).toBe(141);
      expect(String(r.stderr)).toBe('');
    }
  });

  test('built CLI: `persona profile validate profiles/*.json | head -1`, many times: no stack trace', async () => {
    // Repeating the files makes the output long enough that head is often gone before persona has written it.
    const files = Array.from({ length: 10 }, () => profiles).flat();
    const script = `"$0" profile validate "$@" | head -1 >/dev/null; echo "exit=\${PIPESTATUS[0]}"`;
    for (let i = 0; i < 8; i++) {
      const r = await execa('bash', ['-c', script, bin, ...files], {
        reject: false,
        cwd: repoRoot,
        env: { NO_COLOR: '1', CI: 'true', PATH: process.env.PATH },
        stdin: 'ignore',
      });
      expect(String(r.stderr)).not.toMatch(stackTrace);
      expect(String(r.stderr)).not.toContain('EPIPE');
      expect(String(r.stdout)).toMatch(/^exit=(0|141)$/m);
    }
  });
});
