import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { shellJoin, shellQuote } from '../../src/hosts/shell-quote.js';
import { parseProfileText } from '../../src/profile/validate.js';
import { parseManifest } from '../../src/runbook/remote.js';
import { missedTargets, parseSample } from '../../src/steps/checks.js';
import { nftRuleset, nftTableName } from '../../src/steps/firewall.js';
import { missingPackages } from '../../src/steps/packages.js';
import { inMaintenance, parseServersState } from '../../src/traffic/haproxy.js';
import { substitute } from '../../src/traffic/router.js';
import { repoRoot } from '../helpers/cli.js';

const profile = (name: string) =>
  parseProfileText(name, readFileSync(`${repoRoot}profiles/${name}.json`, 'utf8')).profile;

describe('shell quoting', () => {
  test.each([
    ['plain', 'plain'],
    ['', "''"],
    ['a b', "'a b'"],
    ["it's", "'it'\\''s'"],
    ['$(id)', "'$(id)'"],
    ['X=1', "'X=1'"],
    ['~', "'~'"],
    ['*', "'*'"],
  ])('%j -> %s', (arg, quoted) => {
    expect(shellQuote(arg)).toBe(quoted);
  });
  test('join', () => {
    expect(shellJoin(['sh', '-c', 'echo "$1"', 'x y'])).toBe(`sh -c 'echo "$1"' 'x y'`);
  });
});

describe('firewall ruleset', () => {
  test('the demo profile: one table of its own, replaced as a whole', () => {
    expect(nftRuleset(profile('demo-web'))).toBe(
      [
        '# persona: firewall rules of demo-web; replaced as a whole on every configure',
        'table inet persona_demo_web {}',
        'delete table inet persona_demo_web',
        'table inet persona_demo_web {',
        '  chain input {',
        '    type filter hook input priority 0; policy accept;',
        '    ip saddr 10.251.72.0/22 tcp dport 8080 accept',
        '    meta nfproto ipv4 tcp dport 8080 drop',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  });
  test('comments are reduced to safe characters', () => {
    const p = profile('billing-api');
    p.network_configuration.firewall_rules[0]!.comment = 'evil" ; flush ruleset ; "';
    expect(nftRuleset(p)).toContain('comment "evil  flush ruleset  "');
  });
  test('table names keep to nft identifiers', () => {
    expect(nftTableName('a.b-c')).toBe('persona_a_b_c');
  });
});

describe('packages', () => {
  test('missing: absent, or another version than the pinned one', () => {
    expect(
      missingPackages(['socat=1.7.4.4-2', 'rsync', 'nftables'], {
        manager: 'dpkg',
        installed: { socat: '1.7.4.3-1', rsync: '3.2.7' },
      }),
    ).toEqual(['socat=1.7.4.4-2', 'nftables']);
  });
});

describe('samples and targets', () => {
  const text = [
    'cores 2',
    'cpu_ns 1000000000 wall_ns 2000000000',
    'disk_busy_ms 500',
    'mem 500000000 1073741824 100000000',
    'meminfo 25000000000 20000000000',
    'dd 16777216 0.5',
  ].join('\n');
  test('cgroup figures win over the machine', () => {
    expect(parseSample(text)).toEqual({
      cpu_pct: 25,
      memory_pct: 37.3,
      memory_used_bytes: 400000000,
      memory_limit_bytes: 1073741824,
      disk_util_pct: 25,
      disk_write_mbps: 33.6,
      window_s: 2,
    });
  });
  test('every missed target is named with its numbers', () => {
    const s = parseSample(text);
    expect(
      missedTargets(
        {
          cpu_utilization_pct: { max: 20 },
          memory_usage_pct: { max: 30 },
          disk_io: { min_write_mbps: 50, max_util_pct: 10 },
          window_seconds: 2,
          monitor_seconds: 0,
        },
        s,
      ),
    ).toEqual([
      'CPU 25% > 20% max over 2 s',
      'memory 37.3% > 30% max (381 of 1024 MiB)',
      'disk writes 33.6 MB/s < 50 MB/s required',
      'disk busy 25% > 10% max over 2 s',
    ]);
  });
});

describe('haproxy runtime API output', () => {
  const recorded = [
    '1',
    '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port',
    '3 demo_web 1 lab-1 10.251.72.11 2 0 1 1 39 6 3 4 6 0 0 0 - 8080 - 0 0 - - 0',
    '3 demo_web 2 lab-2 10.251.72.12 0 4 1 1 39 1 0 0 14 0 0 0 - 8080 - 0 0 - - 0',
    '3 demo_web 3 lab-3 10.251.72.13 0 1 1 1 2 1 0 0 14 0 0 0 - 8080 - 0 0 - - 0',
    '',
  ].join('\n');
  // Recorded from the lab's HAProxy 2.6: lab-2 was "disabled" in the config, then set ready (4 stays as a record).
  test('servers with their states', () => {
    const servers = parseServersState(recorded);
    expect(servers.map((s) => [s.server, s.opState, s.adminState, inMaintenance(s)])).toEqual([
      ['lab-1', 2, 0, false],
      ['lab-2', 0, 4, false],
      ['lab-3', 0, 1, true],
    ]);
  });
});

test('placeholders in commands are replaced by validated values only', () => {
  expect(
    substitute(['dns-switch', 'x.internal', '{address}', '{unknown}'], {
      host: 'h',
      address: '10.0.0.2',
      app: 'a',
      failed: 'f',
    }),
  ).toEqual(['dns-switch', 'x.internal', '10.0.0.2', '{unknown}']);
});

test('manifests parse', () => {
  expect(parseManifest('3 1024 abc def\n')).toEqual({ files: 3, bytes: 1024, digest: 'abc', meta: 'def' });
});
