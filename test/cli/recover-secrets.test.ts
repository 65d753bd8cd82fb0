/**
 * Secrets never reach the journal, stdout or stderr, whatever a command prints: a value with quotes and a
 * backslash, a multi-line PEM key, a 3-character secret (issue 10). Local processes get a minimal environment.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { runInProcess } from '../helpers/cli.js';
import { recoverFixture, savedRun } from '../helpers/recover-fixture.js';

const QUOTED = `pa"ss\\w'0rd`;
const SHORT = 'x7q';
const PEM = [
  '-----BEGIN PRIVATE KEY-----',
  'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj',
  'MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu',
  '-----END PRIVATE KEY-----',
  '',
].join('\n');

function secretsFixture(exitCode: number) {
  return recoverFixture((profile, dir) => {
    const pem = join(dir, 'key.pem');
    writeFileSync(pem, PEM);
    // A fence command that prints every secret, raw and as JSON, on stdout and stderr.
    const leak = join(dir, 'leak.sh');
    writeFileSync(
      leak,
      [
        `cat '${pem}'`,
        `printf '%s\\n' 'pw=${QUOTED.replace(/'/g, `'\\''`)}' 'short=${SHORT};' '${JSON.stringify({ pw: QUOTED, key: PEM }).replace(/'/g, `'\\''`)}'`,
        `cat '${pem}' >&2`,
        `printf 'pw=%s short=%s\\n' '${QUOTED.replace(/'/g, `'\\''`)}' '${SHORT}' >&2`,
        `env > '${join(dir, 'fence-env')}'`,
        `exit ${exitCode}`,
      ].join('\n'),
    );
    profile.traffic = { method: 'command', fence: ['sh', leak], switch: ['true'] };
    const security = profile.security_profile as { encryption_keys: unknown[] };
    security.encryption_keys = [
      { name: 'quoted', secret: 'env:APP_PW', path: '/etc/app/pw' },
      { name: 'short', secret: 'env:APP_SHORT', path: '/etc/app/short' },
      { name: 'tls', secret: `file:${pem}`, path: '/etc/app/key.pem' },
    ];
    profile.hooks = { pre_fence: [{ run: ['sh', '-c', `env > '${join(dir, 'hook-env')}'`], on: 'local' }] };
  });
}

const env = (fx: ReturnType<typeof recoverFixture>) => ({
  ...fx.env,
  APP_PW: QUOTED,
  APP_SHORT: SHORT,
  CONSUL_HTTP_TOKEN: 'consul-token-1234',
  ETCDCTL_PASSWORD: 'etcd-password-1234',
  PERSONA_STORE_TOKEN: 'store-token-1234',
});

/** Every form a secret could leak in: raw, JSON-escaped, and each line of the PEM key. */
function leaks(text: string): string[] {
  const forms = [
    QUOTED,
    JSON.stringify(QUOTED).slice(1, -1),
    ...PEM.split('\n').filter(Boolean).slice(1, -1),
  ];
  const found = forms.filter((f) => text.includes(f));
  if (/(?<![A-Za-z0-9])x7q(?![A-Za-z0-9])/.test(text)) found.push(SHORT);
  return found;
}

function journalText(state: string): string {
  const dir = join(state, 'runs');
  return readdirSync(dir)
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
}

describe('secrets in recover output', () => {
  test.each([
    ['the fence succeeds (its stdout is in the step outputs)', 0],
    ['the fence fails (its stderr is in the error)', 1],
  ])('%s: zero hits in the journal, stdout and stderr', async (_name, exitCode) => {
    const fx = secretsFixture(exitCode);
    const j = await savedRun(fx, {});
    const r = await runInProcess(['recover', '--resume', j.run_id, '--yes', '--json'], { env: env(fx) });
    expect(r.code).not.toBe(0);
    expect(r.stdout).toContain('[redacted]');
    const journal = journalText(fx.state);
    // The command's output did reach the journal, with each secret replaced.
    expect(journal).toContain(exitCode === 0 ? 'short=[redacted];' : 'pw=[redacted] short=[redacted]');
    expect(leaks(journal)).toEqual([]);
    expect(leaks(r.stdout)).toEqual([]);
    expect(leaks(r.stderr)).toEqual([]);
    for (const line of r.stdout.trim().split('\n')) JSON.parse(line);
  });

  test('local hooks and traffic commands get a minimal environment, without persona credentials', async () => {
    const fx = secretsFixture(1);
    const j = await savedRun(fx, {});
    // bin/persona hands main() process.env: the credentials are in the process too, as in real use.
    const credentials = ['CONSUL_HTTP_TOKEN', 'ETCDCTL_PASSWORD', 'PERSONA_STORE_TOKEN'] as const;
    for (const name of credentials) process.env[name] = env(fx)[name];
    try {
      await runInProcess(['recover', '--resume', j.run_id, '--yes', '--json'], { env: env(fx) });
    } finally {
      for (const name of credentials) delete process.env[name];
    }
    for (const file of ['hook-env', 'fence-env']) {
      const seen = readFileSync(join(fx.dir, file), 'utf8');
      expect(seen).toMatch(/^PATH=/m);
      for (const name of [
        'CONSUL_HTTP_TOKEN',
        'ETCDCTL_PASSWORD',
        'PERSONA_STORE_TOKEN',
        'APP_PW',
        'PERSONA_STORE',
      ])
        expect(seen, `${file} has ${name}`).not.toMatch(new RegExp(`^${name}=`, 'm'));
    }
  });
});
