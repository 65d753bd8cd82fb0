import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { repoRoot, runInProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

/** A working directory and an empty XDG config home, so a developer's own config never leaks into the test. */
function setup(config?: string) {
  const cwd = tempDir('persona-cwd-');
  if (config !== undefined) writeFileSync(join(cwd, 'persona.yaml'), config);
  return { cwd, env: { XDG_CONFIG_HOME: tempDir('persona-xdg-') } };
}

describe('persona config', () => {
  test('--json: one object with each value and its source, flag over env over file over default', async () => {
    const { cwd, env } = setup('inventory: hosts.yaml\nconnect_timeout: 9\nlock_ttl: 60\n');
    const r = await runInProcess(['--connect-timeout', '3', 'config', '--json'], {
      cwd,
      env: { ...env, PERSONA_LOCK_TTL: '12' },
    });
    expect(r.code).toBe(0);
    const data = JSON.parse(r.stdout);
    expect(data.config_file).toBe(join(cwd, 'persona.yaml'));
    expect(data.settings.connect_timeout).toEqual({ value: 3, source: 'flag --connect-timeout' });
    expect(data.settings.lock_ttl).toEqual({ value: 12, source: 'env PERSONA_LOCK_TTL' });
    expect(data.settings.inventory).toEqual({
      value: join(cwd, 'hosts.yaml'),
      source: `file ${join(cwd, 'persona.yaml')}:1`,
    });
    expect(data.settings.store).toEqual({ value: 'file:./profiles', source: 'default' });
  });

  test('without --connect-timeout the file value is used (commander no longer hides it behind a default)', async () => {
    const { cwd, env } = setup('connect_timeout: 9\n');
    const data = JSON.parse((await runInProcess(['config', '--json'], { cwd, env })).stdout);
    expect(data.settings.connect_timeout.value).toBe(9);
  });

  test('$XDG_CONFIG_HOME/persona/config.yaml is read when ./persona.yaml is absent', async () => {
    const { cwd, env } = setup();
    mkdirSync(join(env.XDG_CONFIG_HOME, 'persona'));
    writeFileSync(join(env.XDG_CONFIG_HOME, 'persona', 'config.yaml'), 'concurrency: 4\n');
    const r = await runInProcess(['config'], { cwd, env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/concurrency\s+│ 4\s+│ file .*config\.yaml:1/);
    expect(r.stdout).toMatch(/config file: .*persona\/config\.yaml/);
  });

  test('a bad config file is exit 2 with one line naming the file and the key, for every command', async () => {
    const { cwd, env } = setup('store: ./profiles\nconcurency: 4\n');
    for (const argv of [['config'], ['profile', 'list']]) {
      const r = await runInProcess(argv, { cwd, env });
      expect(r.code).toBe(2);
      expect(r.stderr.split('\n')[0]).toBe(
        `error: ${join(cwd, 'persona.yaml')}:2: unknown key "concurency" (did you mean "concurrency"?)`,
      );
    }
  });

  test('other commands honour the file: the store named there, relative to the file', async () => {
    const { cwd, env } = setup();
    const dir = join(env.XDG_CONFIG_HOME, 'persona');
    cpSync(join(repoRoot, 'profiles'), join(env.XDG_CONFIG_HOME, 'team-profiles'), { recursive: true });
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.yaml'), 'store: ../team-profiles\n');
    const r = await runInProcess(['profile', 'list', '--json'], { cwd, env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).profiles.map((p: { id: string }) => p.id)).toContain('demo-web');
  });
});
