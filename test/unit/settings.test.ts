import { describe, expect, test } from 'vitest';
import { parseConfigText, suggestKey } from '../../src/cli/config-file.js';
import { configCandidates, describeSource, resolveSettings } from '../../src/cli/settings.js';
import { isPersonaError } from '../../src/errors.js';

const file = (text: string) => parseConfigText('/etc/team/persona.yaml', text, { HOME: '/home/ann' });

function problem(text: string): { message: string; hint?: string; exit: number } {
  try {
    file(text);
  } catch (error) {
    if (!isPersonaError(error)) throw error;
    return { message: error.message, ...(error.hint ? { hint: error.hint } : {}), exit: error.exitCode };
  }
  throw new Error('expected a problem');
}

describe('settings precedence: flag, then environment, then file, then default', () => {
  const config = file('store: etcd://127.0.0.1:2379/team\nconnect_timeout: 9\nlock_ttl: 60\n');

  test('each value says where it came from', () => {
    const s = resolveSettings(
      { connectTimeout: 3 },
      { PERSONA_STORE: 'file:/srv/profiles', HOME: '/home/ann' },
      '/work',
      config,
    );
    expect(s.connect_timeout).toEqual({ value: 3, source: { from: 'flag', name: '--connect-timeout' } });
    expect(s.store).toEqual({ value: 'file:/srv/profiles', source: { from: 'env', name: 'PERSONA_STORE' } });
    expect(s.lock_ttl).toEqual({
      value: 60,
      source: { from: 'file', path: '/etc/team/persona.yaml', line: 3 },
    });
    expect(s.inventory).toEqual({ value: './inventory.json', source: { from: 'default' } });
    expect(describeSource(s.lock_ttl.source)).toBe('file /etc/team/persona.yaml:3');
  });

  test('without flag and env the file wins over the default', () => {
    const s = resolveSettings({}, {}, '/work', config);
    expect(s.store.value).toBe('etcd://127.0.0.1:2379/team');
    expect(s.connect_timeout.value).toBe(9);
  });

  test('an empty environment variable counts as unset', () => {
    expect(resolveSettings({}, { PERSONA_STORE: '' }, '/work', config).store.source.from).toBe('file');
  });

  test.each([
    ['PERSONA_LOCK_TTL', 'soon'],
    ['PERSONA_CONNECT_TIMEOUT', '0'],
    ['PERSONA_CONCURRENCY', '-1'],
  ])('%s=%s is a usage error naming the variable', (name, value) => {
    expect(() => resolveSettings({}, { [name]: value }, '/work', undefined)).toThrow(name);
  });

  test('max_fact_age: 300 s by default, 0 (off) from the environment or the file, a day at most', () => {
    expect(resolveSettings({}, {}, '/work', undefined).max_fact_age).toEqual({
      value: 300,
      source: { from: 'default' },
    });
    expect(resolveSettings({}, { PERSONA_MAX_FACT_AGE: '0' }, '/work', undefined).max_fact_age.value).toBe(0);
    expect(resolveSettings({}, {}, '/work', file('max_fact_age: 60\n')).max_fact_age.value).toBe(60);
    expect(() => resolveSettings({}, { PERSONA_MAX_FACT_AGE: '86401' }, '/work', undefined)).toThrow(
      'PERSONA_MAX_FACT_AGE',
    );
  });

  test('a flag out of range is a usage error naming the flag', () => {
    expect(() => resolveSettings({ connectTimeout: 0 }, {}, '/work', undefined)).toThrow('--connect-timeout');
  });

  test('the config file: ./persona.yaml, else $XDG_CONFIG_HOME, else ~/.config', () => {
    expect(configCandidates({ XDG_CONFIG_HOME: '/x', HOME: '/h' }, '/w')).toEqual([
      '/w/persona.yaml',
      '/x/persona/config.yaml',
    ]);
    expect(configCandidates({ HOME: '/h' }, '/w')).toEqual([
      '/w/persona.yaml',
      '/h/.config/persona/config.yaml',
    ]);
  });
});

describe('the config file is read strictly', () => {
  test('relative paths are relative to the file, not the working directory', () => {
    const c = file('store: ./profiles\ninventory: hosts.yaml\nstate_dir: ~/state\nssh_config: /abs/ssh\n');
    expect(c.values.store?.value).toBe('file:/etc/team/profiles');
    expect(c.values.inventory?.value).toBe('/etc/team/hosts.yaml');
    expect(c.values.state_dir?.value).toBe('/home/ann/state');
    expect(c.values.ssh_config?.value).toBe('/abs/ssh');
  });

  test('an empty file sets nothing', () => {
    expect(file('# nothing yet\n').values).toEqual({});
  });

  test('an unknown key is an error with file, line and a "did you mean"', () => {
    const p = problem('store: x\ninvetory: a\n');
    expect(p.message).toBe('/etc/team/persona.yaml:2: unknown key "invetory" (did you mean "inventory"?)');
    expect(p.exit).toBe(2);
    expect(suggestKey('ssh-config')).toBe('ssh_config');
    expect(suggestKey('colour')).toBeUndefined();
  });

  test('a wrong type names the key, the file and the line', () => {
    expect(problem('store: x\nconnect_timeout: "5"\n').message).toBe(
      '/etc/team/persona.yaml:2: connect_timeout must be a whole number from 1 to 600, got "5"',
    );
    expect(problem('inventory:\n').message).toMatch(/persona\.yaml:1: inventory must be a non-empty string/);
    expect(problem('concurrency: 2.5\n').message).toMatch(/:1: concurrency must be a whole number/);
  });

  test.each([['consul_token: abc'], ['password: x'], ['etcd_api_key: x']])(
    'a secret-looking key (%s) is refused with a hint to use the environment',
    (line) => {
      const p = problem(`${line}\n`);
      expect(p.message).toMatch(/:1: ".*" looks like a secret/);
      expect(p.hint).toMatch(/environment/);
    },
  );

  test('a store URL carrying credentials is refused', () => {
    expect(problem('store: consul://me:pw@127.0.0.1:8500/p\n').message).toMatch(
      /:1: store carries a credential/,
    );
  });

  test('invalid YAML, duplicate keys and a non-mapping are errors with a line', () => {
    expect(problem('store: a\nstore: b\n').message).toMatch(
      /persona\.yaml:2: invalid YAML: Map keys must be unique/,
    );
    expect(problem('- store\n').message).toMatch(/persona\.yaml:1: must be a mapping/);
  });
});

describe('allowed_sources: the env: and file: secrets a run may read', () => {
  test('default env:*,file:*; a YAML list or a comma-separated string in the file; the environment wins', () => {
    expect(resolveSettings({}, {}, '/work', undefined).allowed_sources).toEqual({
      value: 'env:*,file:*',
      source: { from: 'default' },
    });
    const list = file('allowed_sources:\n  - env:BILLING_*\n  - file:/etc/persona/secrets/*\n');
    expect(resolveSettings({}, {}, '/work', list).allowed_sources.value).toBe(
      'env:BILLING_*,file:/etc/persona/secrets/*',
    );
    const text = file('allowed_sources: "env:APP_*, file:/run/secrets/*"\n');
    expect(resolveSettings({}, {}, '/work', text).allowed_sources.value).toBe(
      'env:APP_*,file:/run/secrets/*',
    );
    expect(resolveSettings({}, { PERSONA_ALLOWED_SOURCES: 'env:X' }, '/work', text).allowed_sources).toEqual({
      value: 'env:X',
      source: { from: 'env', name: 'PERSONA_ALLOWED_SOURCES' },
    });
  });

  test('a pattern that is not one is an error naming where', () => {
    expect(problem('allowed_sources: [env:OK, "ftp://x"]\n').message).toBe(
      '/etc/team/persona.yaml:1: allowed_sources: "ftp://x" is not a pattern like env:NAME_* or file:/dir/* (comma-separated)',
    );
    expect(() => resolveSettings({}, { PERSONA_ALLOWED_SOURCES: 'store:x' }, '/work', undefined)).toThrow(
      'PERSONA_ALLOWED_SOURCES: "store:x" is not a pattern',
    );
  });
});
