import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { bin, runInProcess, ScriptedPrompter } from '../helpers/cli.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

function setup() {
  const store = copyOfProfiles();
  const state = tempDir('persona-state-');
  const env = { PERSONA_STORE: `file:${store}`, PERSONA_STATE_DIR: state, PERSONA_AUTHOR: 'alice@test' };
  return { store, state, env };
}

describe('profile list / show', () => {
  test('list --json gives every profile with its version and validity', async () => {
    const { env } = setup();
    const r = await runInProcess(['profile', 'list', '--json'], { env });
    expect(r.code).toBe(0);
    const data = JSON.parse(r.stdout);
    expect(data.profiles.map((p: { id: string; valid: boolean }) => [p.id, p.valid])).toEqual([
      ['billing-api', true],
      ['demo-web', true],
      ['orders-db', true],
    ]);
  });

  test('list shows an invalid stored profile as invalid instead of failing', async () => {
    const { env, store } = setup();
    writeFileSync(join(store, 'broken.json'), '{"id": "broken"}');
    const r = await runInProcess(['profile', 'list'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/broken .*invalid \(\d+ problems\)/);
  });

  test('show --json gives the normalised profile with defaults', async () => {
    const { env } = setup();
    const r = await runInProcess(['profile', 'show', 'orders-db', '--json'], { env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).profile.deploy.files).toEqual([]);
  });

  test('show > file feeds set --file with --expect-version: the version note goes to stderr', async () => {
    const { env, store } = setup();
    const shown = await runInProcess(['profile', 'show', 'demo-web'], { env });
    expect(shown.code).toBe(0);
    expect(shown.stderr).toMatch(/^# demo-web version 1 in file:/m);
    expect(JSON.parse(shown.stdout).id).toBe('demo-web');
    const file = join(tempDir(), 'demo-web.json');
    writeFileSync(file, shown.stdout.replace('"required_cores": 1', '"required_cores": 2'));
    const set = await runInProcess(['profile', 'set', 'demo-web', '--file', file, '--expect-version', '1'], {
      env,
    });
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    expect(set.stdout).toContain('wrote demo-web version 2');
    expect(readFileSync(join(store, 'demo-web.json'), 'utf8')).toContain('"required_cores": 2');
  });

  test('an unknown id exits 4 and says how to find the right one', async () => {
    const { env } = setup();
    const r = await runInProcess(['profile', 'show', 'nope'], { env });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/profile "nope" not found in file:/);
    expect(r.stderr).toMatch(/hint: .*persona profile list/);
  });

  test('a store that does not exist is named, exit 4', async () => {
    const r = await runInProcess(['profile', 'list'], { env: { PERSONA_STORE: 'file:/nonexistent/x' } });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('store file:/nonexistent/x');
  });
});

describe('profile set / history / diff', () => {
  test('set validates, writes a new version, and history and diff show it', async () => {
    const { env, store } = setup();
    const file = join(tempDir(), 'demo.json');
    writeFileSync(
      file,
      readFileSync(join(store, 'demo-web.json'), 'utf8').replace(
        '"required_cores": 1',
        '"required_cores": 2',
      ),
    );
    const set = await runInProcess(
      ['profile', 'set', 'demo-web', '--file', file, '-m', 'two cores', '--json'],
      { env },
    );
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({ id: 'demo-web', version: 2 });

    const history = JSON.parse(
      (await runInProcess(['profile', 'history', 'demo-web', '--json'], { env })).stdout,
    );
    expect(history.versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    expect(history.versions[0].meta).toMatchObject({ author: 'alice@test', message: 'two cores' });

    const diff = await runInProcess(['profile', 'diff', 'demo-web'], { env });
    expect(diff.stdout).toContain('-  "required_cores": 1,');
    expect(diff.stdout).toContain('+  "required_cores": 2,');
  });

  test('set with an invalid file exits 2, lists every problem, writes nothing', async () => {
    const { env, store } = setup();
    const before = readFileSync(join(store, 'demo-web.json'), 'utf8');
    const file = join(tempDir(), 'bad.json');
    writeFileSync(
      file,
      before.replace('"required_cores": 1', '"required_cores": "one"').replace('"rsync"', '"rsync; reboot"'),
    );
    const r = await runInProcess(['profile', 'set', 'demo-web', '--file', file], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('/required_cores: must be an integer >= 1, got "one"');
    expect(r.stderr).toContain('/software_stack/1: must be a package name');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(readFileSync(join(store, 'demo-web.json'), 'utf8')).toBe(before);
  });

  test('set with a stale --expect-version is a conflict, exit 4, nothing written', async () => {
    const { env, store } = setup();
    const file = join(tempDir(), 'demo.json');
    writeFileSync(file, readFileSync(join(store, 'demo-web.json'), 'utf8'));
    expect(
      (await runInProcess(['profile', 'set', 'demo-web', '--file', file, '--expect-version', '1'], { env }))
        .code,
    ).toBe(0);
    const r = await runInProcess(['profile', 'set', 'demo-web', '--file', file, '--expect-version', '1'], {
      env,
    });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/changed in .* since it was read \(expected version 1, stored version is 2\)/);
  });

  test('--expect-version 0 creates and refuses to overwrite', async () => {
    const { env } = setup();
    const file = join(tempDir(), 'new.json');
    const skeleton = await runInProcess(['profile', 'new', 'new-app'], { env });
    writeFileSync(file, skeleton.stdout);
    expect(
      (await runInProcess(['profile', 'set', 'new-app', '--file', file, '--expect-version', '0'], { env }))
        .code,
    ).toBe(0);
    const again = await runInProcess(['profile', 'set', 'new-app', '--file', file, '--expect-version', '0'], {
      env,
    });
    expect(again.code).toBe(4);
    expect(again.stderr).toContain('already exists');
  });

  test('set reads stdin with --file -', async () => {
    const { env, store } = setup();
    const text = readFileSync(join(store, 'orders-db.json'), 'utf8').replace(
      '"required_cores": 4',
      '"required_cores": 8',
    );
    const r = await runInProcess(['profile', 'set', 'orders-db', '--file', '-'], { env, stdin: text });
    expect(r.code).toBe(0);
    expect(readFileSync(join(store, 'orders-db.json'), 'utf8')).toBe(text);
  });

  test('a UTF-8 byte order mark is accepted from a file, stdin and validate, and never stored', async () => {
    const { env, store } = setup();
    const text = readFileSync(join(store, 'orders-db.json'), 'utf8');
    const file = join(tempDir(), 'orders-db.json');
    const six = text.replace('"required_cores": 4', '"required_cores": 6');
    writeFileSync(file, `\ufeff${six}`);
    const fromFile = await runInProcess(['profile', 'set', 'orders-db', '--file', file], { env });
    expect(fromFile.stderr).toBe('');
    expect(readFileSync(join(store, 'orders-db.json'), 'utf8')).toBe(six);
    const fromStdin = await runInProcess(['profile', 'set', 'orders-db', '--file', '-'], {
      env,
      stdin: `\ufeff${text}`,
    });
    expect(fromStdin.code).toBe(0);
    expect(readFileSync(join(store, 'orders-db.json'), 'utf8')).toBe(text);
    const validate = await runInProcess(['profile', 'validate', file]);
    expect(validate.code).toBe(0);
  });

  test('a byte order mark does not shift the column of a syntax error', async () => {
    const file = join(tempDir(), 'bad.json');
    writeFileSync(file, '\ufeff{"id":}');
    const r = await runInProcess(['profile', 'validate', file]);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('1:7: invalid JSON');
  });

  test('bad flags are usage errors (exit 2)', async () => {
    const { env } = setup();
    expect((await runInProcess(['profile', 'show', 'demo-web', '--version', 'x'], { env })).code).toBe(2);
    expect((await runInProcess(['profile', 'frobnicate'], { env })).code).toBe(2);
    expect((await runInProcess(['profile', 'set', 'demo-web'], { env })).code).toBe(2);
  });
});

describe('confirmations', () => {
  test('without a terminal and without --yes: refuses, names the flag, changes nothing (exit 3)', async () => {
    const { env, store } = setup();
    const r = await runInProcess(['profile', 'delete', 'orders-db'], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/confirmation required: Delete profile "orders-db"/);
    expect(r.stderr).toContain('--yes');
    expect(readFileSync(join(store, 'orders-db.json'), 'utf8')).toContain('orders-db');
  });

  test('with --yes: says it was auto-confirmed, then deletes (history kept)', async () => {
    const { env } = setup();
    const r = await runInProcess(['profile', 'delete', 'orders-db', '--yes'], { env });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\? Delete profile "orders-db".* yes \(--yes\)/);
    const history = JSON.parse(
      (await runInProcess(['profile', 'history', 'orders-db', '--json'], { env })).stdout,
    );
    expect(history.versions).toHaveLength(1);
  });

  test('CI set on a terminal still refuses without --yes', async () => {
    const { env } = setup();
    const r = await runInProcess(['profile', 'delete', 'orders-db'], {
      env: { ...env, CI: 'true' },
      tty: true,
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('CI is set');
  });

  test('interactive: the human is asked, and "no" changes nothing (exit 3)', async () => {
    const { env, store } = setup();
    const prompter = new ScriptedPrompter([{ match: /^Delete profile "orders-db"/, answer: false }]);
    const r = await runInProcess(['profile', 'delete', 'orders-db'], { env, tty: true, prompter });
    expect(r.code).toBe(3);
    expect(prompter.asked).toHaveLength(1);
    expect(readFileSync(join(store, 'orders-db.json'), 'utf8')).toContain('orders-db');
  });
});

describe('profile edit', () => {
  const editor = (dir: string, script: string) => {
    const path = join(dir, 'editor.sh');
    writeFileSync(path, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
    return path;
  };

  test('a valid edit is written as a new version', async () => {
    const { env, store } = setup();
    const ed = editor(tempDir(), `sed -i 's/"required_cores": 1/"required_cores": 2/' "$1"`);
    const r = await runInProcess(['profile', 'edit', 'demo-web'], { env: { ...env, EDITOR: ed } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/wrote demo-web version 2 \(was 1\)/);
    expect(readFileSync(join(store, 'demo-web.json'), 'utf8')).toContain('"required_cores": 2');
  });

  test('an editor that adds a byte order mark: the edit is written without it', async () => {
    const { env, store } = setup();
    const ed = editor(
      tempDir(),
      `{ printf '\\357\\273\\277'; sed 's/"required_cores": 1/"required_cores": 2/' "$1"; } > "$1.new" && mv "$1.new" "$1"`,
    );
    const r = await runInProcess(['profile', 'edit', 'demo-web'], { env: { ...env, EDITOR: ed } });
    expect(r.code).toBe(0);
    const stored = readFileSync(join(store, 'demo-web.json'), 'utf8');
    expect(stored).toContain('"required_cores": 2');
    expect(stored.startsWith('{')).toBe(true);
  });

  test('VISUAL wins over EDITOR; an unchanged file writes nothing', async () => {
    const { env } = setup();
    const dir = tempDir();
    const r = await runInProcess(['profile', 'edit', 'demo-web'], {
      env: { ...env, VISUAL: editor(dir, 'true'), EDITOR: '/bin/false' },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('no changes to demo-web; nothing written');
  });

  test('an emptied file aborts cleanly (exit 3), nothing written', async () => {
    const { env, store } = setup();
    const before = readFileSync(join(store, 'demo-web.json'), 'utf8');
    const r = await runInProcess(['profile', 'edit', 'demo-web'], {
      env: { ...env, EDITOR: editor(tempDir(), ': > "$1"') },
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('empty');
    expect(readFileSync(join(store, 'demo-web.json'), 'utf8')).toBe(before);
  });

  test('an invalid edit without a terminal: problems shown, edit saved, exit 2', async () => {
    const { env, store, state } = setup();
    const before = readFileSync(join(store, 'demo-web.json'), 'utf8');
    const ed = editor(tempDir(), `sed -i 's/"required_ram_gb": 1/"required_ram_gb": "8GB"/' "$1"`);
    const r = await runInProcess(['profile', 'edit', 'demo-web'], { env: { ...env, EDITOR: ed } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      '/required_ram_gb: must be a number of GiB greater than 0, like 4 or 0.5 (512 MiB), got "8GB"',
    );
    const saved = /saved in (\S+)\./.exec(r.stderr)?.[1];
    expect(saved?.startsWith(join(state, 'edits'))).toBe(true);
    expect(readFileSync(saved!, 'utf8')).toContain('"8GB"');
    expect(readFileSync(join(store, 'demo-web.json'), 'utf8')).toBe(before);
  });

  test.each([
    ['a validation problem', `s/"required_ram_gb": 1/"required_ram_gb": "8GB"/`, 'must be a number of GiB'],
    ['a JSON syntax error', `s/"required_ram_gb": 1,/"required_ram_gb": ,/`, 'invalid JSON'],
  ])('an invalid edit without a terminal prints its message once: %s', async (_, sed, message) => {
    const { env } = setup();
    const ed = editor(tempDir(), `sed -i '${sed}' "$1"`);
    const r = await runInProcess(['profile', 'edit', 'demo-web'], { env: { ...env, EDITOR: ed } });
    expect(r.code).toBe(2);
    expect(r.stderr.split(message)).toHaveLength(2);
  });

  test('interactive: an invalid edit shows its problems once, and abort keeps the edit (exit 3)', async () => {
    const { env } = setup();
    const ed = editor(tempDir(), `sed -i 's/"required_ram_gb": 1/"required_ram_gb": "8GB"/' "$1"`);
    const prompter = new ScriptedPrompter([{ match: /not valid\. What now/, answer: 'abort' }]);
    const r = await runInProcess(['profile', 'edit', 'demo-web'], {
      env: { ...env, EDITOR: ed },
      tty: true,
      prompter,
    });
    expect(r.code).toBe(3);
    expect(r.stderr.split('/required_ram_gb: must be a number of GiB')).toHaveLength(2);
    expect(r.stderr).toMatch(/Your edit is saved in \S+/);
  });

  test('interactive: an invalid edit offers re-edit; the second try is written', async () => {
    const { env, store } = setup();
    const dir = tempDir();
    // First run breaks the profile, second run fixes it.
    const ed = editor(
      dir,
      `if [ -e "${dir}/once" ]; then sed -i 's/"required_ram_gb": "8GB"/"required_ram_gb": 2/' "$1"; else touch "${dir}/once"; sed -i 's/"required_ram_gb": 1/"required_ram_gb": "8GB"/' "$1"; fi`,
    );
    const prompter = new ScriptedPrompter([{ match: /not valid\. What now/, answer: 'edit' }]);
    const r = await runInProcess(['profile', 'edit', 'demo-web'], {
      env: { ...env, EDITOR: ed },
      tty: true,
      prompter,
    });
    expect(r.code).toBe(0);
    expect(prompter.asked).toHaveLength(1);
    expect(readFileSync(join(store, 'demo-web.json'), 'utf8')).toContain('"required_ram_gb": 2');
  });

  test('a concurrent change is shown, not overwritten; the edit is saved (exit 4)', async () => {
    const { env, store } = setup();
    const dir = tempDir();
    const theirs = readFileSync(join(store, 'demo-web.json'), 'utf8').replace(
      '"required_storage_gb": 1',
      '"required_storage_gb": 5',
    );
    writeFileSync(join(dir, 'theirs.json'), theirs);
    // While "we" edit, a colleague writes version 2 through persona.
    const ed = editor(
      dir,
      `PERSONA_AUTHOR=bob@test "${bin}" profile set demo-web --file "${dir}/theirs.json" >/dev/null; sed -i 's/"required_cores": 1/"required_cores": 3/' "$1"`,
    );
    const r = await runInProcess(['profile', 'edit', 'demo-web'], { env: { ...env, EDITOR: ed } });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/changed since you opened it: version 1 → 2 by bob@test/);
    expect(r.stderr).toContain('+  "required_storage_gb": 5,');
    expect(r.stderr).toMatch(/Your edit is saved in \S+/);
    expect(readFileSync(join(store, 'demo-web.json'), 'utf8')).toBe(theirs);
  });
});

describe('profile validate / new', () => {
  test('validate reports every file and exits 2 when one is invalid', async () => {
    const r = await runInProcess([
      'profile',
      'validate',
      'profiles/demo-web.json',
      'test/fixtures/invalid-profiles/typo-top-level.json',
      '--json',
    ]);
    expect(r.code).toBe(2);
    const data = JSON.parse(r.stdout);
    expect(data.valid).toBe(false);
    expect(data.files[1].problems).toEqual([
      { path: '/requried_ram_gb', message: 'unknown field (did you mean "required_ram_gb"?)' },
    ]);
  });

  test('validate DIR checks the *.json files in it, in name order, not schema/ below it', async () => {
    const r = await runInProcess(['profile', 'validate', 'profiles', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).files.map((f: { file: string }) => f.file)).toEqual([
      'profiles/billing-api.json',
      'profiles/demo-web.json',
      'profiles/orders-db.json',
    ]);
  });

  test('validate DIR exits 2 when one profile in it is invalid', async () => {
    const { store } = setup();
    writeFileSync(join(store, 'a-broken.json'), '{"id": "a-broken"}');
    writeFileSync(join(store, 'notes.txt'), 'not a profile');
    const r = await runInProcess(['profile', 'validate', store]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^✖ \S+a-broken\.json: \d+ problems/);
    expect(r.stdout).toContain('3 valid, 1 invalid');
    expect(r.stdout).not.toContain('notes.txt');
  });

  test('validate DIR with no profiles in it is a usage error (exit 2) that says so', async () => {
    const dir = tempDir();
    const r = await runInProcess(['profile', 'validate', dir, 'profiles/demo-web.json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${dir}: no profiles (*.json files) in this directory`);
  });

  test('validate names a missing file', async () => {
    const r = await runInProcess(['profile', 'validate', 'nope.json']);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('nope.json: 1 problem');
    expect(r.stdout).toContain('cannot read: no such file');
  });

  test('new refuses a hostile id', async () => {
    const r = await runInProcess(['profile', 'new', '../../etc/x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('/id: must be an id');
  });

  test('new -o refuses to overwrite', async () => {
    const dir = tempDir();
    const file = join(dir, 'a.json');
    expect((await runInProcess(['profile', 'new', 'a', '-o', file])).code).toBe(0);
    const again = await runInProcess(['profile', 'new', 'a', '-o', file]);
    expect(again.code).toBe(4);
    expect(again.stderr).toContain('already exists');
  });
});
