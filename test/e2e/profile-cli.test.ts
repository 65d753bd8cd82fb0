/**
 * The built persona executable, end to end, on a file store in a temporary directory.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { repoRoot, runBin } from '../helpers/cli.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

const corpus = `${repoRoot}test/fixtures/invalid-profiles/`;
const expected = JSON.parse(readFileSync(`${corpus}expected-paths.json.txt`, 'utf8')) as Record<
  string,
  string[]
>;
const stackTrace = /^\s+at .+\(.+:\d+:\d+\)$/m;

describe('persona profile (built CLI)', () => {
  test('validate accepts every example profile', async () => {
    const files = readdirSync(`${repoRoot}profiles`)
      .filter((f) => f.endsWith('.json'))
      .map((f) => `profiles/${f}`);
    const r = await runBin(['profile', 'validate', ...files]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${files.length} valid, 0 invalid`);
  });

  test('validate rejects every corpus profile with its path, exit 2, no stack trace', async () => {
    const files = Object.keys(expected);
    const r = await runBin(['profile', 'validate', '--json', ...files.map((f) => `${corpus}${f}`)]);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(stackTrace);
    const data = JSON.parse(r.stdout) as {
      files: Array<{ file: string; valid: boolean; problems: Array<{ path: string }> }>;
    };
    for (const report of data.files) {
      const name = report.file.slice(corpus.length);
      expect(report.valid, name).toBe(false);
      expect(
        report.problems.map((p) => p.path),
        name,
      ).toEqual(expected[name]);
    }
  });

  test('--json errors are the result line on stdout with a stable code; the message goes to stderr', async () => {
    const r = await runBin(['profile', 'show', 'missing', '--json'], {
      env: { PERSONA_STORE: `file:${copyOfProfiles()}` },
    });
    expect(r.code).toBe(4);
    expect(JSON.parse(r.stdout)).toMatchObject({
      type: 'result',
      ok: false,
      exit_code: 4,
      error: { code: 'E_NOT_FOUND' },
    });
    expect(r.stderr).toContain('profile "missing" not found');
  });

  test('two concurrent writes from the same read version: exactly one lands, the other is a conflict', async () => {
    const store = copyOfProfiles();
    const env = { PERSONA_STORE: `file:${store}` };
    const base = readFileSync(join(store, 'demo-web.json'), 'utf8');
    const dir = tempDir();
    const files = [2, 3].map((n) => {
      const f = join(dir, `v${n}.json`);
      writeFileSync(f, base.replace('"required_cores": 1', `"required_cores": ${n}`));
      return f;
    });
    const results = await Promise.all(
      files.map((f) => runBin(['profile', 'set', 'demo-web', '--file', f, '--expect-version', '1'], { env })),
    );
    expect(results.map((r) => r.code).sort()).toEqual([0, 4]);
    const loser = results.find((r) => r.code === 4)!;
    expect(loser.stderr).toMatch(/profile "demo-web" changed in file:.* since it was read/);
    const history = JSON.parse((await runBin(['profile', 'history', 'demo-web', '--json'], { env })).stdout);
    expect(history.versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    const v1 = await runBin(['profile', 'show', 'demo-web', '--version', '1', '--json'], { env });
    expect(JSON.parse(v1.stdout).profile.required_cores).toBe(1);
  });

  test('50 concurrent writers from the same read version: one wins, 49 conflicts, nothing lost', async () => {
    const store = copyOfProfiles();
    const env = { PERSONA_STORE: `file:${store}` };
    const base = readFileSync(join(store, 'demo-web.json'), 'utf8');
    const dir = tempDir();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => {
        const f = join(dir, `w${i}.json`);
        writeFileSync(f, base.replace('"required_storage_gb": 1', `"required_storage_gb": ${i + 10}`));
        return runBin(['profile', 'set', 'demo-web', '--file', f, '--expect-version', '1'], { env });
      }),
    );
    const codes = results.map((r) => r.code);
    expect(codes.filter((c) => c === 0)).toHaveLength(1);
    expect(codes.filter((c) => c === 4)).toHaveLength(49);
    const winner = codes.indexOf(0);
    expect(readFileSync(join(store, 'demo-web.json'), 'utf8')).toContain(
      `"required_storage_gb": ${winner + 10}`,
    );
  }, 120_000);

  test('profile edit with a scripted EDITOR, and the concurrent-change case', async () => {
    const store = copyOfProfiles();
    const dir = tempDir();
    const env = { PERSONA_STORE: `file:${store}`, PERSONA_STATE_DIR: join(dir, 'state') };
    const editor = join(dir, 'editor.sh');
    writeFileSync(editor, `#!/bin/sh\nsed -i 's/"required_cores": 1/"required_cores": 2/' "$1"\n`, {
      mode: 0o755,
    });
    const ok = await runBin(['profile', 'edit', 'demo-web', '-m', 'two cores'], {
      env: { ...env, EDITOR: editor },
    });
    expect(ok.code).toBe(0);
    expect(readFileSync(join(store, 'demo-web.json'), 'utf8')).toContain('"required_cores": 2');

    const theirs = join(dir, 'theirs.json');
    writeFileSync(
      theirs,
      readFileSync(join(store, 'demo-web.json'), 'utf8').replace(
        '"required_ram_gb": 1',
        '"required_ram_gb": 2',
      ),
    );
    const racing = join(dir, 'racing.sh');
    writeFileSync(
      racing,
      `#!/bin/sh\nPERSONA_AUTHOR=bob "${repoRoot}bin/persona" profile set demo-web --file "${theirs}" >/dev/null\nsed -i 's/"required_cores": 2/"required_cores": 4/' "$1"\n`,
      { mode: 0o755 },
    );
    const conflict = await runBin(['profile', 'edit', 'demo-web'], { env: { ...env, EDITOR: racing } });
    expect(conflict.code).toBe(4);
    expect(conflict.stderr).toMatch(/changed since you opened it: version 2 → 3 by bob/);
    expect(conflict.stderr).toContain('+  "required_ram_gb": 2,');
    expect(conflict.stderr).not.toMatch(stackTrace);
    const saved = /saved in (\S+)\./.exec(conflict.stderr)![1]!;
    expect(readFileSync(saved, 'utf8')).toContain('"required_cores": 4');
    const now = readFileSync(join(store, 'demo-web.json'), 'utf8');
    expect(now).toContain('"required_ram_gb": 2');
    expect(now).toContain('"required_cores": 2');
  });

  test('--help of every command has examples and the exit codes', async () => {
    for (const cmd of ['list', 'show', 'validate', 'edit', 'set', 'diff', 'history', 'new', 'delete']) {
      const r = await runBin(['profile', cmd, '--help']);
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(/Examples:\n {2}\$ persona profile/);
      expect(r.stdout, cmd).toContain('Exit codes:');
    }
  });
});
