import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import * as z from 'zod';
import { ValidationError } from '../../src/errors.js';
import { profileJsonSchemaText } from '../../src/profile/json-schema.js';
import * as rules from '../../src/profile/rules.js';

import { skeletonProfile } from '../../src/profile/skeleton.js';
import { issuesToProblems, parseProfileText, validateProfileValue } from '../../src/profile/validate.js';
import { repoRoot } from '../helpers/cli.js';
import { formattingSlips } from '../helpers/message-slips.js';

const examples = readdirSync(`${repoRoot}profiles`).filter((f) => f.endsWith('.json'));
const demo = JSON.parse(readFileSync(`${repoRoot}profiles/demo-web.json`, 'utf8'));

function problemsOf(value: unknown): Array<{ path: string; message: string }> {
  try {
    validateProfileValue('t', value);
    return [];
  } catch (error) {
    if (error instanceof ValidationError) return [...error.problems];
    throw error;
  }
}

function withField(path: string[], value: unknown): unknown {
  const copy = structuredClone(demo);
  let node = copy;
  for (const seg of path.slice(0, -1)) node = node[seg];
  node[path[path.length - 1]!] = value;
  return copy;
}

describe('example profiles', () => {
  test.each(examples)('%s is valid', (file) => {
    const text = readFileSync(`${repoRoot}profiles/${file}`, 'utf8');
    expect(() => parseProfileText(file, text)).not.toThrow();
  });

  test('the shipped JSON Schema is generated from the schema (run `npm run schema` after changing it)', () => {
    const committed = readFileSync(`${repoRoot}profiles/schema/persona-profile.schema.json`, 'utf8');
    expect(committed).toBe(profileJsonSchemaText());
  });

  test('a skeleton from `profile new` is valid', () => {
    expect(() => validateProfileValue('skeleton', skeletonProfile('billing-api'))).not.toThrow();
  });
});

describe('rules: values that reach a shell or a path', () => {
  const accepted: Array<[string[], unknown]> = [
    [
      ['software_stack'],
      ['nginx', 'socat=1.7.4.4-2', 'libc6=2.36-9+deb12u4', 'g++', 'python3.11', 'epoch=1:2.0~rc1'],
    ],
    [
      ['data', 'paths'],
      ['/srv/app', '/var/lib/postgresql/15/main', '/srv/a.b-c_d@e'],
    ],
    [
      ['deploy', 'start'],
      ['sh', '-c', 'echo "$HOME"; ls | wc -l'],
    ],
  ];
  test.each(accepted)('accepts %j = %j', (path, value) => {
    expect(problemsOf(withField(path, value))).toEqual([]);
  });

  const refused: Array<[string[], unknown, string]> = [
    [['software_stack'], ['nginx && reboot'], '/software_stack/0'],
    [['software_stack'], ['nginx=1.0 ; x'], '/software_stack/0'],
    [['software_stack'], ['-oAPT::Get=evil'], '/software_stack/0'],
    [['software_stack'], ['$(id)'], '/software_stack/0'],
    [['data', 'paths'], ['/srv/a /b'], '/data/paths/0'],
    [['data', 'paths'], ['/srv/$(id)'], '/data/paths/0'],
    [['data', 'paths'], ['/srv/./x'], '/data/paths/0'],
    [['data', 'paths'], ["/srv/'x'"], '/data/paths/0'],
    [['deploy', 'port'], 0, '/deploy/port'],
    [['security_profile', 'users'], [{ name: 'root;id' }], '/security_profile/users/0/name'],
    [['security_profile', 'users'], [{ name: '-o' }], '/security_profile/users/0/name'],
    [['network_configuration', 'ip_ranges'], ['10.0.0.0/33'], '/network_configuration/ip_ranges/0'],
    [['network_configuration', 'ip_ranges'], ['fd00::/129'], '/network_configuration/ip_ranges/0'],
    [['deploy', 'start'], ['a\u0000b'], '/deploy/start/0'],
    [['traffic'], { method: 'haproxy', admin_socket: '/run/../x', backend: 'b' }, '/traffic/admin_socket'],
    [
      ['traffic'],
      { method: 'haproxy', admin_socket: '/run/h.sock', backend: 'b', verify_url: 'http://x/ y' },
      '/traffic/verify_url',
    ],
  ];
  test.each(refused)('refuses %j = %j at %s', (path, value, where) => {
    const problems = problemsOf(withField(path, value));
    expect(problems.map((p) => p.path)).toContain(where);
  });

  test.each([
    ['10.0.0.0/8', true],
    ['0.0.0.0/0', true],
    ['192.168.1.1/32', true],
    ['fd00::/64', true],
    ['2001:db8::1/128', true],
    ['10.0.0/8', false],
    ['10.0.0.01/8', false],
    ['256.0.0.0/8', false],
    ['10.0.0.0/-1', false],
    ['::1::/64', false],
  ])('cidr %s -> %s', (text, ok) => {
    expect(rules.cidrOk(text)).toBe(ok);
  });

  test('secret references are accepted in their three forms', () => {
    const keys = ['env:DB_PASSWORD', 'file:/etc/persona/db.pw', 'store:secrets/app/tls'].map((secret, i) => ({
      name: `k${i}`,
      secret,
      path: `/etc/k${i}`,
    }));
    expect(problemsOf(withField(['security_profile', 'encryption_keys'], keys))).toEqual([]);
  });
});

describe('messages', () => {
  test('name the path and the rule, and show what was found', () => {
    expect(problemsOf(withField(['required_ram_gb'], '8GB'))).toEqual([
      {
        path: '/required_ram_gb',
        message: 'must be a number of GiB greater than 0, like 4 or 0.5 (512 MiB), got "8GB"',
      },
    ]);
  });

  test('every problem at once', () => {
    const bad = withField(['required_cores'], 0) as Record<string, unknown>;
    bad.required_ram_gb = 'x';
    bad.colour = 'red';
    expect(
      problemsOf(bad)
        .map((p) => p.path)
        .sort(),
    ).toEqual(['/colour', '/required_cores', '/required_ram_gb']);
  });

  test('unknown fields suggest the field meant, even inside unions', () => {
    const bad = withField(['health_checks'], [{ type: 'http', port: 80, expect_staus: 200 }]);
    expect(problemsOf(bad)).toEqual([
      { path: '/health_checks/0/expect_staus', message: 'unknown field (did you mean "expect_status"?)' },
    ]);
  });

  test('long offending values are cut short', () => {
    const [problem] = problemsOf(withField(['software_stack'], ['x'.repeat(500)]));
    expect(problem!.message.length).toBeLessThan(250);
  });

  const ruleSchemas = Object.entries(rules as Record<string, unknown>).filter(
    (entry): entry is [string, z.ZodType] => entry[1] instanceof z.ZodType,
  );
  test.each(ruleSchemas)('%s: no message has a formatting slip, too long values included', (_, schema) => {
    const offending = ['x'.repeat(20_000), 'X'.repeat(300), 'a b', '', '../x', 42, -1, 1.5, null, [1]];
    for (const value of offending) {
      const result = schema.safeParse(value, { reportInput: true });
      if (result.success) continue;
      for (const p of issuesToProblems(result.error.issues, value, schema))
        expect(formattingSlips(p.message), p.message).toEqual([]);
    }
  });

  test('an id that differs from the one being written is named', () => {
    expect(() => parseProfileText('t', JSON.stringify(demo), 'other-app')).toThrow(
      /\/id: must match the profile being written/,
    );
  });
});
