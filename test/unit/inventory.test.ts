import { describe, expect, test } from 'vitest';
import { expandHostPattern } from '../../src/hosts/ansible-inventory.js';
import { parseInventoryText } from '../../src/hosts/inventory.js';

describe('inventory', () => {
  test('persona JSON with defaults; ssh_config resolved next to the file', async () => {
    const inv = await parseInventoryText(
      '/etc/persona/inventory.json',
      JSON.stringify({
        defaults: { user: 'root', port: 22, ssh_config: 'ssh/config', labels: { dc: 'x' } },
        hosts: [
          { name: 'lab-1', address: '10.0.0.1', labels: { zone: 'a' }, apps: ['demo-web'] },
          { name: 'lab-2', port: 2222 },
        ],
      }),
    );
    expect(inv.sshConfig).toBe('/etc/persona/ssh/config');
    expect(inv.hosts).toEqual([
      {
        name: 'lab-1',
        address: '10.0.0.1',
        port: 22,
        user: 'root',
        labels: { dc: 'x', zone: 'a' },
        apps: ['demo-web'],
      },
      { name: 'lab-2', address: 'lab-2', port: 2222, user: 'root', labels: { dc: 'x' }, apps: [] },
    ]);
  });

  test('persona YAML', async () => {
    const inv = await parseInventoryText(
      'inv.yaml',
      'hosts:\n  - name: web-1\n    address: 192.168.1.5\n    apps: [api]\n',
    );
    expect(inv.hosts[0]).toMatchObject({ name: 'web-1', address: '192.168.1.5', apps: ['api'] });
  });

  test.each([
    ['inv.json', '{"hosts": [{"name": "web-1", "apps": ["api"]}]}'],
    ['inv.yaml', 'hosts:\n  - name: web-1\n    apps: [api]\n'],
    ['hosts.ini', '[web]\nweb-1 persona_apps=api\n'],
  ])('%s with a UTF-8 byte order mark is read like one without', async (name, text) => {
    const inv = await parseInventoryText(name, `\ufeff${text}`);
    expect(inv.hosts[0]).toMatchObject({ name: 'web-1', apps: ['api'] });
  });

  test('a syntax error in a JSON inventory with a byte order mark names the right column', async () => {
    await expect(parseInventoryText('inv.json', '\ufeff{"hosts": }')).rejects.toThrow('inv.json:1:11:');
  });

  test('hostile names, addresses and users are refused with their paths', async () => {
    const text = JSON.stringify({
      hosts: [
        { name: 'a;reboot', address: '10.0.0.1' },
        { name: 'b', address: '$(id)' },
        { name: 'c', user: 'root -oProxyCommand=x' },
        { name: 'd', address: '-oProxyCommand=touch' },
      ],
    });
    await expect(parseInventoryText('inv.json', text)).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      problems: [
        { path: '/hosts/0/name', message: expect.stringContaining('must be a host name') },
        { path: '/hosts/1/address', message: expect.stringContaining('must be a DNS name') },
        { path: '/hosts/2/user', message: expect.stringContaining('user or group name') },
        { path: '/hosts/3/address', message: expect.stringContaining('must be a DNS name') },
      ],
    });
  });

  test('duplicate names and unknown fields are errors', async () => {
    await expect(
      parseInventoryText('i.json', JSON.stringify({ hosts: [{ name: 'a' }, { name: 'a' }] })),
    ).rejects.toThrow(/\/hosts\/1\/name: "a" is listed twice/);
    await expect(
      parseInventoryText('i.json', JSON.stringify({ hosts: [{ name: 'a', adress: 'x' }] })),
    ).rejects.toThrow(/\/hosts\/0\/adress: unknown field \(did you mean "address"\?\)/);
  });

  test('an Ansible INI inventory: groups, group vars, children, ranges, persona_apps', async () => {
    const ini = [
      'bastion ansible_host=10.0.0.2',
      '[web]',
      'web[01:02] ansible_user=deploy persona_apps=demo-web,api',
      '[web:vars]',
      'zone=a',
      '[dc1:children]',
      'web',
      '[dc1:vars]',
      'ansible_port=2222',
      'zone=z',
    ].join('\n');
    const inv = await parseInventoryText('hosts.ini', ini);
    expect(inv.hosts).toEqual([
      { name: 'bastion', address: '10.0.0.2', labels: {}, apps: [] },
      {
        name: 'web01',
        address: 'web01',
        port: 2222,
        user: 'deploy',
        labels: { zone: 'a', 'group.dc1': 'true', 'group.web': 'true' },
        apps: ['demo-web', 'api'],
      },
      {
        name: 'web02',
        address: 'web02',
        port: 2222,
        user: 'deploy',
        labels: { zone: 'a', 'group.dc1': 'true', 'group.web': 'true' },
        apps: ['demo-web', 'api'],
      },
    ]);
  });

  test('an Ansible YAML inventory', async () => {
    const yaml =
      'all:\n  children:\n    db:\n      hosts:\n        db-1:\n          ansible_host: 10.1.0.1\n          persona_apps: orders-db\n      vars:\n        tier: data\n';
    const inv = await parseInventoryText('hosts.yml', yaml);
    expect(inv.hosts).toEqual([
      {
        name: 'db-1',
        address: '10.1.0.1',
        labels: { tier: 'data', 'group.db': 'true' },
        apps: ['orders-db'],
      },
    ]);
  });

  test('host patterns expand with their zero padding', () => {
    expect(expandHostPattern('n[08:10].x')).toEqual(['n08.x', 'n09.x', 'n10.x']);
  });
});
