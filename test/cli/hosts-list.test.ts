/**
 * `persona hosts list`: what persona read from the inventory, without connecting; secrets never printed.
 */
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, test, vi } from 'vitest';
import { startConsulServer } from '../fakes/consul-server.js';
import { repoRoot, runBin, runInProcess } from '../helpers/cli.js';
import { fakeSsh } from '../helpers/fake-ssh.js';
import { tempDir } from '../helpers/tmp.js';

const ini = `${repoRoot}test/fixtures/inventory/hosts.ini`;

interface Listed {
  hosts: Array<Record<string, unknown> & { name: string; labels: Record<string, string> }>;
  warnings: Array<{ variable: string; value?: string; message: string; hosts: string[]; where: string }>;
}

describe('persona hosts list', () => {
  test('--json: each host with how it is reached, and a warning per ignored variable with file:line', async () => {
    const r = await runInProcess(['hosts', 'list', '--json', '--inventory', ini]);
    expect(r.code).toBe(0);
    const data = JSON.parse(r.stdout) as Listed;
    expect(data.hosts.map((h) => h.name)).toEqual(['bastion', 'web01', 'web02', 'web03']);
    expect(data.hosts[3]).toEqual({
      name: 'web03',
      address: '127.0.0.3',
      port: 2203,
      user: 'deploy',
      key_file: '~/.ssh/persona_ed25519',
      jump: 'ops@bastion:2222',
      connection: 'ssh',
      labels: { zone: 'eu-1', 'group.web': 'true' },
      apps: ['billing-api'],
    });
    expect(data.warnings).toContainEqual({
      variable: 'ansible_python_interpreter',
      value: '/usr/bin/python3',
      message: 'an Ansible setting persona does not use',
      hosts: ['web01', 'web02', 'web03'],
      where: `${ini}:12`,
    });
    expect(data.warnings).toContainEqual(
      expect.objectContaining({ variable: 'description', where: `${ini}:15` }),
    );
    expect(data.warnings).toContainEqual(
      expect.objectContaining({ variable: 'db_password', value: '<redacted>', where: `${ini}:13` }),
    );
  });

  test('a secret-looking variable is never printed, nor kept as a label', async () => {
    for (const argv of [
      ['hosts', 'list'],
      ['hosts', 'list', '--json'],
    ]) {
      const r = await runInProcess([...argv, '--inventory', ini]);
      expect(r.code).toBe(0);
      expect(r.stdout + r.stderr).not.toContain('hunter2');
      expect(r.stdout).toContain('db_password');
      expect(r.stdout).toContain('<redacted>');
    }
    const data = JSON.parse((await runInProcess(['hosts', 'list', '--json', '--inventory', ini])).stdout);
    for (const h of (data as Listed).hosts) expect(h.labels).not.toHaveProperty('db_password');
  });

  test('human output: the table, then the warnings, then what was (not) contacted', async () => {
    const r = await runInProcess(['hosts', 'list', '--inventory', ini], { cwd: repoRoot });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/│ host +│ address +│ port │ user +│ key file +│ jump +│ labels +│ apps +│/);
    expect(r.stdout).toMatch(
      /│ web03 +│ 127\.0\.0\.3 │ 2203 │ deploy │ ~\/\.ssh\/persona_ed25519 │ ops@bastion:2222 │/,
    );
    expect(r.stdout).toContain(
      'warning: test/fixtures/inventory/hosts.ini:13: db_password=<redacted> ignored (web01, web02, web03): looks like a secret',
    );
    expect(r.stdout).toContain(
      '4 hosts in test/fixtures/inventory/hosts.ini; nothing was contacted; 3 warnings',
    );
  });

  test("persona's own format: a secret-looking label is dropped with a warning instead of failing", async () => {
    const dir = tempDir();
    const file = join(dir, 'inventory.json');
    writeFileSync(
      file,
      JSON.stringify({
        defaults: { jump: 'bastion', key_file: 'keys/id' },
        hosts: [
          { name: 'a', address: '127.0.0.9', labels: { api_token: 'tok-Very$ecret value', zone: 'x' } },
        ],
      }),
    );
    const r = await runInProcess(['hosts', 'list', '--json', a(file)]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('Very$ecret');
    const data = JSON.parse(r.stdout) as Listed;
    expect(data.hosts[0]).toMatchObject({
      jump: 'bastion',
      key_file: join(dir, 'keys/id'),
      labels: { zone: 'x' },
    });
    expect(data.warnings).toEqual([
      expect.objectContaining({ variable: 'api_token', value: '<redacted>', hosts: ['a'] }),
    ]);
  });

  test('it starts no ssh: a fake ssh first on PATH is never run (and is run by hosts probe)', async () => {
    const dir = tempDir();
    const marker = join(dir, 'ssh-was-run');
    writeFileSync(join(dir, 'ssh'), `#!/bin/sh\necho "$@" >> '${marker}'\nexit 255\n`);
    chmodSync(join(dir, 'ssh'), 0o755);
    const env = { PATH: `${dir}:${dirname(process.execPath)}:/usr/bin:/bin` };
    const list = await runBin(['hosts', 'list', '--inventory', ini], { env });
    expect(list.code).toBe(0);
    expect(existsSync(marker)).toBe(false);
    // The marker works: a command that does connect leaves it.
    await runBin(['hosts', 'probe', 'bastion', '--inventory', ini], { env });
    expect(existsSync(marker)).toBe(true);
  });
});

describe('persona hosts probe --json with an Ansible inventory', () => {
  test('a secret-looking variable is neither a label nor printed; the addresses are the fake ssh, never the inventory', async () => {
    const fake = fakeSsh();
    for (const [name, value] of Object.entries(fake.env)) vi.stubEnv(name, value);
    try {
      const dir = tempDir();
      const inv = join(dir, 'hosts.ini');
      writeFileSync(
        inv,
        '[db]\nok-db1 ansible_port=9 ansible_user=john.doe db_password=hunter2 vault_token=s3cr3t zone=a\n',
      );
      const r = await runInProcess(['hosts', 'probe', '--json', '--inventory', inv], {
        env: { PERSONA_STATE_DIR: tempDir() },
      });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('ok-db1');
      expect(r.stdout + r.stderr).not.toMatch(/hunter2|s3cr3t/);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

const a = (file: string) => `--inventory=${file}`;

describe('persona hosts list --inventory consul://', () => {
  test('node meta that looks secret or is not a label value is a warning; ssh_user/ssh_port reach the host', async () => {
    const consul = await startConsulServer();
    try {
      const put = await fetch(`${consul.url}/v1/catalog/register`, {
        method: 'PUT',
        body: JSON.stringify({
          Node: 'db-1',
          Address: '127.0.0.7',
          NodeMeta: {
            ssh_user: 'ops',
            ssh_port: '2207',
            rack: 'r1',
            db_password: 'Pa55-word',
            note: 'two words',
          },
        }),
      });
      expect(put.status).toBe(200);
      const r = await runInProcess([
        'hosts',
        'list',
        '--json',
        '--inventory',
        `consul://127.0.0.1:${consul.port}/persona`,
      ]);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain('Pa55-word');
      const data = JSON.parse(r.stdout) as Listed;
      const db = data.hosts.find((h) => h.name === 'db-1');
      expect(db).toMatchObject({ address: '127.0.0.7', port: 2207, user: 'ops' });
      expect(db?.labels).toMatchObject({ rack: 'r1' });
      expect(db?.labels).not.toHaveProperty('db_password');
      expect(data.warnings.map((w) => [w.variable, w.value, w.hosts])).toEqual([
        ['db_password', '<redacted>', ['db-1']],
        ['note', 'two words', ['db-1']],
      ]);
    } finally {
      await consul.close();
    }
  });

  test('one odd node does not make the catalog invalid: its odd parts are warnings, an unreachable node is left out', async () => {
    const consul = await startConsulServer();
    try {
      const register = async (body: unknown) => {
        const put = await fetch(`${consul.url}/v1/catalog/register`, {
          method: 'PUT',
          body: JSON.stringify(body),
        });
        expect(put.status).toBe(200);
      };
      await register({ Node: 'good-1', Address: '127.0.0.8', Service: { Service: 'orders-db' } });
      await register({
        Node: 'odd-1',
        Address: '127.0.0.9',
        NodeMeta: { note: 'two words', rack: 'r2' },
        Service: { Service: 'Redis' },
      });
      await register({
        Node: 'odd-2',
        Address: '127.0.0.10',
        NodeMeta: { ssh_user: 'root -oProxyCommand=x' },
      });
      const r = await runInProcess([
        'hosts',
        'list',
        '--json',
        '--inventory',
        `consul://127.0.0.1:${consul.port}/persona`,
      ]);
      expect(r.code).toBe(0);
      const data = JSON.parse(r.stdout) as Listed;
      expect(data.hosts.find((h) => h.name === 'good-1')).toMatchObject({ apps: ['orders-db'] });
      expect(data.hosts.find((h) => h.name === 'odd-1')).toMatchObject({ apps: [], labels: { rack: 'r2' } });
      expect(data.hosts.map((h) => h.name)).not.toContain('odd-2');
      expect(data.warnings.map((w) => [w.variable, w.hosts])).toEqual(
        expect.arrayContaining([
          ['note', ['odd-1']],
          ['service Redis', ['odd-1']],
          ['ssh_user', ['odd-2']],
        ]),
      );
    } finally {
      await consul.close();
    }
  });
});
