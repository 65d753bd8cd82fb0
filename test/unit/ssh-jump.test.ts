/**
 * Jump hosts and the ssh destination, without connecting: how a -J value is read, the ProxyCommand persona builds
 * (quoted for sh, %-escaped for ssh, nested for several hops), and how a hop's failure is told from the target's.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { normaliseInventory } from '../../src/hosts/inventory.js';
import { classifySshFailure, rsyncQuote, targetArgs } from '../../src/hosts/ssh.js';
import { parseJump, proxyCommand } from '../../src/hosts/ssh-jump.js';

const result = (stderr: string) => ({ exitCode: 255, stdout: '', stderr, durationMs: 1 });
const db1 = { name: 'db1', address: '10.0.0.5' };

describe('the ssh destination', () => {
  test('is the address, so Host patterns match it as under Ansible; no HostName, no HostKeyAlias by default', () => {
    expect(targetArgs({ ...db1, port: 2222, user: 'deploy' })).toEqual([
      '-p',
      '2222',
      '-l',
      'deploy',
      '--',
      '10.0.0.5',
    ]);
    expect(targetArgs({ name: 'web1' })).toEqual(['--', 'web1']);
  });

  test('host_keys: name keys known_hosts by the inventory name (HostKeyAlias) where it differs', () => {
    const inv = normaliseInventory(
      'inv.json',
      {
        defaults: { host_keys: 'name' },
        hosts: [{ name: 'db1', address: '10.0.0.5' }, { name: 'web1.example.com' }],
      },
      '/',
    );
    expect(inv.hosts[0]!.hostKeyAlias).toBe('db1');
    expect(inv.hosts[1]!.hostKeyAlias).toBeUndefined();
    expect(targetArgs(inv.hosts[0]!)).toEqual(['-o', 'HostKeyAlias=db1', '--', '10.0.0.5']);
    const plain = normaliseInventory('inv.json', { hosts: [{ name: 'db1', address: '10.0.0.5' }] }, '/');
    expect(plain.hosts[0]!.hostKeyAlias).toBeUndefined();
  });
});

describe('jump hosts', () => {
  test.each([
    ['bastion', [{ host: 'bastion' }]],
    ['ops@b.example:2222', [{ user: 'ops', host: 'b.example', port: 2222 }]],
    ['alice@corp.example.com@b', [{ user: 'alice@corp.example.com', host: 'b' }]],
    ['[fd00::1]:22', [{ host: 'fd00::1', port: 22 }]],
    ['ssh://u@a:2200,b', [{ user: 'u', host: 'a', port: 2200 }, { host: 'b' }]],
  ])('%s', (spec, hops) => {
    expect(parseJump(spec)).toEqual(hops);
  });

  test.each(['a;reboot', '$(id)', 'a b', '-oProxyCommand=x', 'a:99999', "it's"])('refused: %s', (spec) => {
    expect(() => parseJump(spec)).toThrow(/is not \[user@\]host\[:port\]/);
  });

  test('the ProxyCommand: persona options, sh-quoted and %-escaped; two hops nest', () => {
    const options = ['-F', '/cfg/100% odd', '-o', 'StrictHostKeyChecking=yes'];
    const one = proxyCommand(parseJump('ops@b:2222'), options);
    expect(one).toBe(
      "ssh -F '/cfg/100%% odd' -o 'StrictHostKeyChecking=yes' -l ops -p 2222 -W '[%h]:%p' -- b",
    );
    const two = proxyCommand(parseJump('a,b'), ['-o', 'BatchMode=yes']);
    expect(two).toBe(
      `ssh -o 'BatchMode=yes' -o 'ProxyCommand=ssh -o '\\''BatchMode=yes'\\'' -W '\\''[%%h]:%%p'\\'' -- a' -W '[%h]:%p' -- b`,
    );
  });

  test('what sh makes of it, after ssh expanded %h and %p: the words persona meant', () => {
    // ssh's percent_expand: one pass, %% is a %, an unknown token is an error.
    const tokens: Record<string, string> = { '%': '%', h: '10.0.0.5', p: '22' };
    const command = proxyCommand(parseJump('a,ops@b'), ['-F', "/it's 100% odd"]).replace(
      /%(.)/g,
      (_m, c: string) => tokens[c] ?? `<unknown %${c}>`,
    );
    const words = execFileSync('sh', ['-c', `printf '%s\\n' ${command}`], { encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(words).toEqual([
      'ssh',
      '-F',
      "/it's 100% odd",
      '-o',
      "ProxyCommand=ssh -F '/it'\\''s 100%% odd' -W '[%h]:%p' -- a",
      '-l',
      'ops',
      '-W',
      '[10.0.0.5]:22',
      '--',
      'b',
    ]);
  });

  test("rsync's -e quoting: a doubled quote inside quotes", () => {
    expect(rsyncQuote('plain')).toBe('plain');
    expect(rsyncQuote("ProxyCommand=ssh 'x'")).toBe("'ProxyCommand=ssh ''x'''");
    expect(rsyncQuote('')).toBe("''");
  });
});

describe('bastion failures name the bastion', () => {
  const hops = parseJump('ops@bastion.example:22');

  test('a bastion that times out (ssh: connect to host ... timed out): kind bastion, not a target timeout', () => {
    const e = classifySshFailure(
      db1,
      result(
        'ssh: connect to host bastion.example port 22: Connection timed out\r\nkex_exchange_identification: Connection closed by remote host\r\nConnection closed by UNKNOWN port 65535\r\n',
      ),
      false,
      {},
      hops,
    )!;
    expect(e.kind).toBe('bastion');
    expect(e.bastionFailure).toBe('timeout');
    expect(e.bastion).toBe('ops@bastion.example:22');
    expect(e.message).toBe(
      'bastion ops@bastion.example:22: connection timed out — on the way to db1 (10.0.0.5), which was not reached',
    );
  });

  test('a bastion whose banner never comes (kex_exchange_identification of the hop, then the target)', () => {
    const e = classifySshFailure(
      db1,
      result(
        'Connection timed out during banner exchange\nConnection to bastion.example port 22 timed out\nkex_exchange_identification: Connection closed by remote host\n',
      ),
      false,
      {},
      hops,
    )!;
    expect([e.kind, e.bastionFailure]).toEqual(['bastion', 'timeout']);
  });

  test('a ProxyCommand that fails (auth at the bastion)', () => {
    const e = classifySshFailure(
      db1,
      result(
        'ops@bastion.example: Permission denied (publickey).\nkex_exchange_identification: Connection closed by remote host\n',
      ),
      false,
      {},
      hops,
    )!;
    expect([e.kind, e.bastionFailure]).toEqual(['bastion', 'auth']);
  });

  test('the bastion answered but the target refused: the target refused', () => {
    const e = classifySshFailure(
      db1,
      result(
        'channel 0: open failed: connect failed: Connection refused\nstdio forwarding failed\nkex_exchange_identification: Connection closed by remote host\n',
      ),
      false,
      {},
      hops,
    )!;
    expect(e.kind).toBe('refused');
    expect(e.message).toContain('db1 (10.0.0.5): connection refused');
  });

  test('a bastion that may not forward: kind bastion', () => {
    const e = classifySshFailure(
      db1,
      result(
        'channel 0: open failed: administratively prohibited: open failed\nstdio forwarding failed\nkex_exchange_identification: Connection closed by remote host\n',
      ),
      false,
      {},
      hops,
    )!;
    expect([e.kind, e.bastionFailure]).toEqual(['bastion', 'connection']);
  });

  test("without a jump host, the same text is the target's", () => {
    const e = classifySshFailure(
      db1,
      result('ssh: connect to host 10.0.0.5 port 22: Connection timed out\n'),
      false,
      {},
    )!;
    expect(e.kind).toBe('timeout');
  });
});
