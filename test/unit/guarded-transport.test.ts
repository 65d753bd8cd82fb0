/** A driver whose lock lapsed sends nothing more to any host or router, even inside an action of several commands. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { PersonaError } from '../../src/errors.js';
import type { SshTransport } from '../../src/hosts/ssh.js';
import { parseProfileText } from '../../src/profile/validate.js';
import { guardedTransport } from '../../src/runbook/step-context.js';
import { HaproxyRuntime } from '../../src/traffic/haproxy.js';
import { routerFor } from '../../src/traffic/router.js';
import { repoRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

test('every remote command checks the lock first; a stale holder reaches no host', async () => {
  const sent: string[] = [];
  const fake = {
    exec: async (_t: unknown, argv: string[]) => {
      sent.push(argv.join(' '));
      return { exitCode: 0, stdout: '', stderr: '' };
    },
    run: async (_t: unknown, argv: string[]) => {
      sent.push(argv.join(' '));
      return { exitCode: 0, stdout: '', stderr: '' };
    },
    close: async () => void sent.push('close'),
  } as unknown as SshTransport;
  let held = true;
  const ssh = guardedTransport(fake, () => {
    if (!held) throw new PersonaError('E_LOCK_LOST', 'the lock on app-demo-web is no longer held');
  });
  const host = { name: 'h2', address: '127.0.0.1' };
  await ssh.exec(host, ['true']);
  held = false;
  await expect(ssh.run(host, ['systemctl', 'start', 'x'])).rejects.toMatchObject({ code: 'E_LOCK_LOST' });
  await expect(ssh.exec(host, ['rm', '-rf', '/srv/data'])).rejects.toMatchObject({ code: 'E_LOCK_LOST' });
  // Closing connections is not an action on a host.
  await ssh.close();
  expect(sent).toEqual(['true', 'close']);
});

const stale = () => {
  throw new PersonaError('E_LOCK_LOST', 'the lock on app-demo-web is no longer held');
};

test('a stale holder moves no traffic: the router checks the lock before every change', async () => {
  const dir = tempDir();
  const text = JSON.parse(readFileSync(`${repoRoot}profiles/demo-web.json`, 'utf8'));
  text.traffic = {
    method: 'command',
    fence: ['touch', join(dir, 'fenced')],
    switch: ['touch', join(dir, 'switched')],
  };
  const profile = parseProfileText('demo-web', JSON.stringify(text)).profile;
  const router = routerFor(profile, { guard: stale });
  const h = { name: 'h1', address: '127.0.0.1', labels: {}, apps: [] };
  const signal = new AbortController().signal;
  await expect(router.fence(h, signal)).rejects.toMatchObject({ code: 'E_LOCK_LOST' });
  await expect(router.switchTo(h, h, signal)).rejects.toMatchObject({ code: 'E_LOCK_LOST' });
  expect(existsSync(join(dir, 'fenced'))).toBe(false);
  expect(existsSync(join(dir, 'switched'))).toBe(false);
  // What only reads still works (the describe lines, the method).
  expect(router.method).toBe('command');
});

test('HAProxy: set state and save state check the lock before they are sent', async () => {
  // Nothing listens at this path: a request that got through would fail with ENOENT instead.
  const api = new HaproxyRuntime(join(tempDir(), 'no-such.sock'), stale);
  await expect(api.setState('web', 'lab-1', 'maint')).rejects.toMatchObject({ code: 'E_LOCK_LOST' });
});
