import { describe, expect, test } from 'vitest';
import { openBackend, redactUrl } from '../../src/stores/open.js';
import { consulTarget, etcdTarget } from '../../src/stores/store-url.js';
import { repoRoot } from '../helpers/cli.js';

describe('consul store URLs', () => {
  test.each([
    [
      'consul://10.0.0.5:8500/persona',
      {},
      { host: '10.0.0.5', port: 8500, secure: false, prefix: 'persona' },
    ],
    ['consul://consul.lab/team/a/', {}, { host: 'consul.lab', port: 8500, prefix: 'team/a' }],
    ['consul://h:8501/p?tls=1', {}, { port: 8501, secure: true, describe: 'consul://h:8501/p?tls=1' }],
    ['consul:///p', { CONSUL_HTTP_ADDR: '10.1.1.1:9500' }, { host: '10.1.1.1', port: 9500, secure: false }],
    ['consul:///p', { CONSUL_HTTP_ADDR: 'https://c.lab:8501' }, { host: 'c.lab', secure: true }],
    ['consul:///p', { CONSUL_HTTP_ADDR: 'c.lab', CONSUL_HTTP_SSL: 'true' }, { port: 8500, secure: true }],
    ['consul://h:1/p', { CONSUL_HTTP_ADDR: 'ignored:2' }, { host: 'h', port: 1 }],
    [
      'consul://',
      {},
      { host: '127.0.0.1', port: 8500, prefix: 'persona', describe: 'consul://127.0.0.1:8500/persona' },
    ],
    ['consul://h/p?timeout=2s', {}, { timeoutMs: 2000, describe: 'consul://h:8500/p?timeout=2000ms' }],
  ])('%s with %j', (url, env, expected) => {
    expect(consulTarget(url, env as NodeJS.ProcessEnv)).toMatchObject(expected);
  });

  test('the token and CA come from the environment and never reach describe', () => {
    const t = consulTarget('consul://h:8500/p', { CONSUL_HTTP_TOKEN: 'tok-1234', CONSUL_CACERT: '/ca.pem' });
    expect(t).toMatchObject({ token: 'tok-1234', caFile: '/ca.pem' });
    expect(t.describe).not.toContain('tok-1234');
  });

  test.each([
    ['consul://user:pw@h:8500/p', /credentials/],
    ['consul://h:8500/p?token=abcd', /credential/],
    ['consul://h:8500/p?tsl=1', /unknown option "tsl"/],
    ['consul://h:8500/../p', /invalid key prefix/],
    ['consul://h:99999/p', /invalid port/],
    ['consul://h/p?timeout=soon', /invalid timeout/],
  ])('%s is refused', async (url, message) => {
    const error = await openBackend(url, {}, repoRoot).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'E_USAGE', message: expect.stringMatching(message) });
    expect((error as Error).message).not.toMatch(/pw@|abcd/);
  });
});

describe('etcd store URLs', () => {
  test.each([
    ['etcd://127.0.0.1:2379/persona', {}, ['http://127.0.0.1:2379'], 'etcd://127.0.0.1:2379/persona'],
    ['etcd://e1/p', {}, ['http://e1:2379'], 'etcd://e1:2379/p'],
    ['etcd:///p', { ETCDCTL_ENDPOINTS: 'http://a:1,b:2' }, ['http://a:1', 'http://b:2'], 'etcd://a:1,b:2/p'],
    ['etcd:///p', { ETCDCTL_ENDPOINTS: 'https://a:1' }, ['https://a:1'], 'etcd://a:1/p?tls=1'],
    ['etcd:///p', {}, ['http://127.0.0.1:2379'], 'etcd://127.0.0.1:2379/p'],
  ])('%s with %j', (url, env, endpoints, describe) => {
    expect(etcdTarget(url, env as NodeJS.ProcessEnv)).toMatchObject({ endpoints, describe });
  });
});

test('an unknown scheme is a usage error that shows the URL without credentials', async () => {
  await expect(openBackend('redis://u:secretpw@h/x', {}, repoRoot)).rejects.toMatchObject({
    code: 'E_USAGE',
    message: expect.not.stringContaining('secretpw'),
  });
  expect(redactUrl('consul://h/p?token=abc&tls=1')).toBe('consul://h/p?token=[redacted]&tls=1');
});
