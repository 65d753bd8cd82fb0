/** A driver whose lock lapsed sends nothing more to any host, even inside an action of several commands. */
import { expect, test } from 'vitest';
import { PersonaError } from '../../src/errors.js';
import type { SshTransport } from '../../src/hosts/ssh.js';
import { guardedTransport } from '../../src/runbook/step-context.js';

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
