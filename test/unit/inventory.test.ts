import { describe, expect, test } from 'vitest';
import { expandHostPattern, proxyJump, sshArgsJump } from '../../src/hosts/ansible-inventory.js';
import { pyLiteral, shlexSplit } from '../../src/hosts/ansible-text.js';
import { parseInventoryText } from '../../src/hosts/inventory.js';
import { looksSecret } from '../../src/hosts/inventory-warnings.js';
import { SshTransport } from '../../src/hosts/ssh.js';

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
        { path: '/hosts/2/user', message: expect.stringContaining('must be a user name') },
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
    expect(expandHostPattern('n[08:10].x')).toEqual({ names: ['n08.x', 'n09.x', 'n10.x'] });
  });

  test('Ansible: variables persona cannot use are warnings with host and file:line, not a failed inventory', async () => {
    const ini = [
      '[web]',
      'web01 ansible_host=10.0.0.5 vault_api_token=abc123XYZ note="two words"',
      '[web:vars]',
      'ansible_become=true',
      "ansible_ssh_common_args='-J jump@bastion:2200 -o ServerAliveInterval=9'",
      'ansible_ssh_private_key_file=/keys/web',
    ].join('\n');
    const inv = await parseInventoryText('/inv/hosts.ini', ini);
    expect(inv.hosts).toEqual([
      {
        name: 'web01',
        address: '10.0.0.5',
        keyFile: '/keys/web',
        jump: 'jump@bastion:2200',
        labels: { 'group.web': 'true' },
        apps: [],
      },
    ]);
    expect(inv.warnings).toEqual([
      {
        variable: 'ansible_ssh_common_args',
        value: '-J jump@bastion:2200 -o ServerAliveInterval=9',
        message: expect.stringContaining('persona uses only the bastion'),
        hosts: ['web01'],
        where: '/inv/hosts.ini:5',
      },
      {
        variable: 'vault_api_token',
        value: '<redacted>',
        message: expect.stringContaining('looks like a secret'),
        hosts: ['web01'],
        where: '/inv/hosts.ini:2',
      },
      {
        variable: 'note',
        value: 'two words',
        message: expect.stringContaining('not usable as a label'),
        hosts: ['web01'],
        where: '/inv/hosts.ini:2',
      },
    ]);
    expect(JSON.stringify(inv)).not.toContain('abc123XYZ');
  });

  test('Ansible YAML: lists and maps are reported, secrets are dropped', async () => {
    const yaml =
      'all:\n  hosts:\n    db-1:\n      ansible_host: 10.1.0.1\n      mounts: [/srv]\n      ansible_password: s3cr3t-pw\n';
    const inv = await parseInventoryText('hosts.yml', yaml);
    expect(inv.hosts[0]!.labels).toEqual({});
    expect(inv.warnings.map((w) => [w.variable, w.value, w.where])).toEqual([
      ['mounts', undefined, 'hosts.yml:5'],
      ['ansible_password', '<redacted>', 'hosts.yml:6'],
    ]);
    expect(JSON.stringify(inv)).not.toContain('s3cr3t-pw');
  });

  test('persona format: key_file next to the inventory, jump host, hostile jump refused', async () => {
    const inv = await parseInventoryText(
      '/etc/persona/inventory.json',
      JSON.stringify({ defaults: { key_file: 'keys/id' }, hosts: [{ name: 'a', jump: 'ops@b:22,c' }] }),
    );
    expect(inv.hosts[0]).toMatchObject({ keyFile: '/etc/persona/keys/id', jump: 'ops@b:22,c' });
    await expect(
      parseInventoryText('i.json', JSON.stringify({ hosts: [{ name: 'a', jump: '-oProxyCommand=x' }] })),
    ).rejects.toThrow(/\/hosts\/0\/jump: must be a jump host/);
    await expect(
      parseInventoryText('i.json', JSON.stringify({ hosts: [{ name: 'a', key_file: '-oX' }] })),
    ).rejects.toThrow(/\/hosts\/0\/key_file/);
  });

  test.each([
    ['-J bastion', 'bastion', ''],
    ['-o ProxyJump=ops@b:2222', 'ops@b:2222', ''],
    ['-oProxyJump=a,b -o Compression=yes', 'a,b', '-o Compression=yes'],
    ['-o StrictHostKeyChecking=no', undefined, '-o StrictHostKeyChecking=no'],
  ])('ProxyJump out of ssh arguments: %s', (args, jump, rest) => {
    expect(proxyJump(args)).toEqual({ ...(jump ? { jump } : {}), rest });
  });

  test.each([
    ['db_password', true],
    ['API_TOKEN', true],
    ['client_secret', true],
    ['ansible_ssh_pass', true],
    ['ssh_key', true],
    ['ansible_ssh_private_key_file', false],
    ['zone', false],
  ])('looksSecret(%s) is %s', (name, secret) => {
    expect(looksSecret(name)).toBe(secret);
  });

  test("the key file reaches ssh as -i, the jump host as a ProxyCommand with persona's options", async () => {
    const ssh = new SshTransport({ multiplex: false });
    const argv = await ssh.argv({ name: 'a', address: '10.0.0.5', keyFile: '/k/id', jump: 'ops@b' }, 'true');
    expect(argv.slice(-5)).toEqual(['-i', '/k/id', '--', '10.0.0.5', 'true']);
    expect(argv).not.toContain('-J');
    const proxy = argv.find((a) => a.startsWith('ProxyCommand='));
    expect(proxy).toMatch(
      /^ProxyCommand=ssh .*-o 'BatchMode=yes' .*-o 'StrictHostKeyChecking=yes' .*-l ops -W '\[%h\]:%p' -- b$/,
    );
  });

  test('a range beyond the cap is an error naming the line, not a silent cut', async () => {
    await expect(parseInventoryText('/inv/hosts.ini', '[big]\nn[0:99999].x\n')).rejects.toThrow(
      /\/inv\/hosts.ini:2: the range "n\[0:99999\].x" makes 100000 hosts; persona reads at most 10000/,
    );
    expect(expandHostPattern('n[0:9999]').names).toHaveLength(10_000);
  });

  test('ranges: strides, letters, an empty start, nested, with a port', () => {
    expect(expandHostPattern('n[01:07:3].x').names).toEqual(['n01.x', 'n04.x', 'n07.x']);
    expect(expandHostPattern('r[a:c]').names).toEqual(['ra', 'rb', 'rc']);
    expect(expandHostPattern('m[:2]').names).toEqual(['m0', 'm1', 'm2']);
    expect(expandHostPattern('w[1:2]-[a:b]:2222')).toEqual({
      names: ['w1-a', 'w1-b', 'w2-a', 'w2-b'],
      port: 2222,
    });
    expect(expandHostPattern('[2001:db8::1]:22')).toEqual({ names: ['2001:db8::1'], port: 22 });
    expect(expandHostPattern('2001:db8::1')).toEqual({ names: ['2001:db8::1'] });
  });

  test("INI values: shlex on host lines, Python literals as Ansible's literal_eval reads them", () => {
    expect(shlexSplit(`h a="two words" b='x y' c=d#comment`)).toEqual(['h', 'a=two words', 'b=x y', 'c=d']);
    expect(pyLiteral('22')).toBe(22);
    expect(pyLiteral('True')).toBe(true);
    expect(pyLiteral('1.10')).toBe(1.1);
    expect(pyLiteral("'quoted'")).toBe('quoted');
    expect(pyLiteral("{ 'root': 'HDD' }")).toEqual({ root: 'HDD' });
    expect(pyLiteral("['/dev/sda']")).toEqual(['/dev/sda']);
    expect(pyLiteral('{{ x }}')).toBe('{{ x }}');
    expect(pyLiteral('042')).toBe('042');
    expect(pyLiteral('a value')).toBe('a value');
  });

  test('errors name the host and file:line, not a JSON path', async () => {
    const ini = '[web]\nweb01 ansible_user="root -oProxyCommand=x"\nweb02 ansible_port=99999\n';
    const error = await parseInventoryText('/inv/hosts.ini', ini).catch((e: Error) => e);
    expect(String(error)).toContain('/inv/hosts.ini:2: host "web01": ansible_user "root -oProxyCommand=x"');
    expect(String(error)).toContain('/inv/hosts.ini:3: host "web02": ansible_port "99999" is not a port');
    expect(String(error)).not.toContain('/hosts/');
  });

  test('users such as john.doe and alice@corp.example.com are accepted', async () => {
    const inv = await parseInventoryText(
      '/inv/hosts.ini',
      'a ansible_user=john.doe\nb ansible_user=alice@corp.example.com\n',
    );
    expect(inv.hosts.map((h) => h.user)).toEqual(['john.doe', 'alice@corp.example.com']);
  });

  test('a bastion from ProxyCommand ssh -W, legacy ansible_ssh_*, become, connection=local', async () => {
    const ini = [
      '[app]',
      'a1 ansible_ssh_host=192.0.2.1 ansible_ssh_port=2200 ansible_ssh_user=ops ansible_host=192.0.2.9',
      '[app:vars]',
      `ansible_ssh_common_args='-o ProxyCommand="ssh -W %h:%p -q -p 2222 ops@bastion"'`,
      'ansible_become=true',
      'ansible_become_user=root',
      '[control]',
      'localhost ansible_connection=local',
    ].join('\n');
    const inv = await parseInventoryText('/inv/hosts.ini', ini);
    expect(inv.hosts[0]).toMatchObject({
      address: '192.0.2.1',
      port: 2200,
      user: 'ops',
      jump: 'ops@bastion:2222',
    });
    expect(inv.hosts[1]).toMatchObject({ name: 'localhost', connection: 'local' });
    // connection=local is honoured (local-transport.ts), not a warning.
    expect(inv.warnings.map((w) => w.variable)).toEqual(['ansible_host']);
    expect(sshArgsJump('-o ProxyCommand="nc -x p:1080 %h %p"').problem).toContain(
      'a ProxyCommand persona cannot use',
    );
  });

  test('Jinja, maps, lists, spaces, + and ! are warnings; the inventory is still read', async () => {
    const ini = [
      '[osds]',
      `osd0 osd_crush_location="{ 'root': 'HDD' }" devices="['/dev/sda']" j="{{ x }}" s="a b" p=a+b e=wow! zone=a`,
    ].join('\n');
    const inv = await parseInventoryText('/inv/hosts.ini', ini);
    expect(inv.hosts[0]!.labels).toEqual({ zone: 'a', 'group.osds': 'true' });
    expect(inv.warnings.map((w) => [w.variable, w.where])).toEqual([
      ['osd_crush_location', '/inv/hosts.ini:2'],
      ['devices', '/inv/hosts.ini:2'],
      ['j', '/inv/hosts.ini:2'],
      ['s', '/inv/hosts.ini:2'],
      ['p', '/inv/hosts.ini:2'],
      ['e', '/inv/hosts.ini:2'],
    ]);
  });

  test('an executable inventory script and an inventory plugin are refused: persona runs nothing', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { loadInventory } = await import('../../src/hosts/inventory.js');
    const dir = mkdtempSync(join(tmpdir(), 'persona-inv-'));
    writeFileSync(join(dir, 'inv.py'), '#!/bin/sh\ntouch /tmp/never\n', { mode: 0o755 });
    await expect(loadInventory(join(dir, 'inv.py'))).rejects.toThrow(/never runs inventory scripts/);
    writeFileSync(join(dir, 'aws_ec2.yml'), 'plugin: amazon.aws.aws_ec2\n');
    await expect(loadInventory(join(dir, 'aws_ec2.yml'))).rejects.toThrow(/runs no inventory plugins/);
  });
});
