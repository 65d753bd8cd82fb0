/**
 * A missing ssh config is said once, before anything connects, with exit 2; not once per host as an ssh failure.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { runInProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

function inventory(defaults: Record<string, unknown> = {}): string {
  const file = join(tempDir(), 'inventory.json');
  writeFileSync(
    file,
    JSON.stringify({
      defaults,
      hosts: [
        { name: 'a', address: '127.0.0.1' },
        { name: 'b', address: '127.0.0.1' },
      ],
    }),
  );
  return file;
}

describe('a missing ssh config', () => {
  test.each([
    ['--ssh-config', () => ({ argv: ['--ssh-config', '/nonexistent/persona-ssh-config'], env: {} })],
    [
      'PERSONA_SSH_CONFIG',
      () => ({ argv: [], env: { PERSONA_SSH_CONFIG: '/nonexistent/persona-ssh-config' } }),
    ],
  ])('named by %s: one error, exit 2, no probe', async (from, given) => {
    const { argv, env } = given();
    const r = await runInProcess(['hosts', 'probe', '--inventory', inventory(), ...argv], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `error: ssh config /nonexistent/persona-ssh-config (from ${from}): no such file`,
    );
    expect(r.stderr.match(/ssh config/g)).toHaveLength(1);
    expect(r.stderr).not.toContain('probing');
  });

  test("named by the inventory's ssh_config (resolved next to it): one error, exit 2", async () => {
    const file = inventory({ ssh_config: 'ssh/config' });
    const r = await runInProcess(['hosts', 'probe', '--inventory', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `error: ssh config ${join(file, '..', 'ssh/config')} (from the inventory ${file}): no such file`,
    );
    expect(r.stderr).not.toContain('probing');
  });

  test('hosts list never needs it', async () => {
    const r = await runInProcess(['hosts', 'list', '--inventory', inventory({ ssh_config: 'ssh/config' })]);
    expect(r.code).toBe(0);
  });
});
