/**
 * Issue 11, "Profile values": what real profiles need is accepted and works in the steps that use it; what is
 * dangerous is refused, naming the JSON path and what to do.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import { type Requirements, rankHosts, requirementsOf, softwareFit } from '../../src/broker/broker.js';
import { isPersonaError, ValidationError } from '../../src/errors.js';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { parseInventoryText } from '../../src/hosts/inventory.js';
import type { HostFacts, PackageFact } from '../../src/hosts/parse-probe.js';
import type { ExecResult, SshTarget } from '../../src/hosts/ssh.js';
import { parseJsonText } from '../../src/profile/json-text.js';
import {
  compareDebVersions,
  compareRpmVersions,
  installArgument,
  parsePackageSpec,
  probeSpec,
  satisfies,
} from '../../src/profile/package-spec.js';
import { hostName } from '../../src/profile/rules.js';
import type { Profile } from '../../src/profile/schema.js';
import { parseProfileText, ruleCuttingSsh, validateProfileValue } from '../../src/profile/validate.js';
import { writeRemoteFile } from '../../src/runbook/remote.js';
import { parseAllowedSources, refusedSource } from '../../src/runbook/secret-allow.js';
import { resolveSecret } from '../../src/runbook/secrets.js';
import type { StepContext } from '../../src/runbook/types.js';
import { httpGet } from '../../src/steps/checks.js';
import { configureStep } from '../../src/steps/configure.js';
import { nftRuleset } from '../../src/steps/firewall.js';
import { Ask, fileDiff, parseReport, queryArgs, STATE_SCRIPT } from '../../src/steps/host-state.js';
import { installArguments, missingPackages } from '../../src/steps/packages.js';
import { repoRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const demo = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));

function problemsOf(value: unknown): Array<{ path: string; message: string }> {
  try {
    validateProfileValue('t', value);
    return [];
  } catch (error) {
    if (error instanceof ValidationError) return [...error.problems];
    throw error;
  }
}

/** demo-web with some fields replaced (a path of keys, then the value). */
function demoWith(...edits: Array<[string[], unknown]>): Record<string, unknown> {
  const copy = structuredClone(demo);
  for (const [path, value] of edits) {
    let node = copy;
    for (const seg of path.slice(0, -1)) node = node[seg];
    node[path[path.length - 1]!] = value;
  }
  return copy;
}

const valid = (...edits: Array<[string[], unknown]>): Profile =>
  validateProfileValue('t', demoWith(...edits));

const KEY = 'AAAAC3NzaC1lZDI1NTE5AAAAIMqs9n8x6cAFI4h7c4mJ9GmzZkXGmD2WcZs0Q3Vq8d1F';

// ---------------------------------------------------------------------------------------------------------------
describe('packages: RPM names, architectures, globs and minimums', () => {
  const stack = [
    'NetworkManager',
    'perl-DBI',
    'python3-PyYAML',
    'postgresql16-server=16.4-1PGDG.rhel9',
    'libc6:amd64',
    'nginx=1.22.*',
    'redis-server>=5:7.0.15',
    'redis-server=5:7.0.15-1~deb12u1'.replace('redis-server', 'redis-tools'),
  ];

  test('validate', () => {
    expect(problemsOf(demoWith([['software_stack'], stack]))).toEqual([]);
  });

  test('a name with two architectures is two packages; the same name and architecture twice is refused', () => {
    expect(problemsOf(demoWith([['software_stack'], ['libc6:amd64', 'libc6:i386']]))).toEqual([]);
    expect(problemsOf(demoWith([['software_stack'], ['nginx=1.22.*', 'nginx>=1.20']]))).toEqual([
      {
        path: '/software_stack/1',
        message: 'package "nginx" is listed twice (also at /software_stack/0)',
      },
    ]);
  });

  test('refused: a glob in a minimum, an option, shell text', () => {
    for (const bad of ['nginx>=1.*', '-oAPT::Get=x', 'nginx;id', 'NGINX =1', 'a:AMD64'])
      expect(problemsOf(demoWith([['software_stack'], [bad]])).map((p) => p.path)).toEqual([
        '/software_stack/0',
      ]);
  });

  test('parsed: name, architecture, operator, version', () => {
    expect(parsePackageSpec('libc6:amd64=2.36-9')).toEqual({
      name: 'libc6',
      arch: 'amd64',
      query: 'libc6:amd64',
      op: '=',
      version: '2.36-9',
    });
    expect(parsePackageSpec('nginx=1.22.*')).toMatchObject({ op: '=*', version: '1.22.*' });
    expect(parsePackageSpec('nginx>=1.22')).toMatchObject({ op: '>=', version: '1.22' });
  });

  test('versions compare as dpkg and rpm compare them', () => {
    expect(compareDebVersions('5:7.0.15-1~deb12u7', '5:7.0.15-1~deb12u1')).toBeGreaterThan(0);
    expect(compareDebVersions('1.0~rc1', '1.0')).toBeLessThan(0);
    expect(compareDebVersions('1:0.9', '2.0')).toBeGreaterThan(0);
    expect(compareDebVersions('1.22.1-9+deb12u1', '1.22.1-9')).toBeGreaterThan(0);
    expect(compareDebVersions('1.10', '1.9')).toBeGreaterThan(0);
    expect(compareDebVersions('2.36-9', '2.36-9')).toBe(0);
    expect(compareRpmVersions('16.4-1PGDG.rhel9', '16.2-1PGDG.rhel9')).toBeGreaterThan(0);
    expect(compareRpmVersions('1.0~rc1-1', '1.0-1')).toBeLessThan(0);
    expect(compareRpmVersions('1.10-1', '1.9-1')).toBeGreaterThan(0);
    expect(compareRpmVersions('1.0a', '1.0')).toBeGreaterThan(0);
    expect(compareRpmVersions('16.4', '16.4-1PGDG.rhel9')).toBe(0);
  });

  test('missingPackages: what counts as installed', () => {
    const dpkg = {
      manager: 'dpkg' as const,
      installed: {
        'libc6:amd64': '2.36-9+deb12u4',
        nginx: '1.22.1-9',
        'redis-server': '5:7.0.15-1~deb12u7',
        'redis-tools': '5:7.0.15-1~deb12u7',
      },
    };
    expect(
      missingPackages(
        [
          'libc6:amd64',
          'libc6:i386',
          'nginx=1.22.*',
          'redis-server>=5:7.0.15',
          'redis-tools=5:7.0.15-1~deb12u1',
        ],
        dpkg,
      ),
    ).toEqual(['libc6:i386', 'redis-tools=5:7.0.15-1~deb12u1']);
    expect(missingPackages(['nginx=1.24.*', 'nginx>=1.23'], dpkg)).toEqual(['nginx=1.24.*', 'nginx>=1.23']);
    const rpm = {
      manager: 'rpm' as const,
      installed: { 'postgresql16-server': '16.4-1PGDG.rhel9', NetworkManager: '1.46.0-19.el9' },
    };
    expect(
      missingPackages(
        [
          'postgresql16-server=16.4-1PGDG.rhel9',
          'NetworkManager>=1:1.40',
          'perl-DBI',
          'postgresql16-server>=16.5',
        ],
        rpm,
      ),
    ).toEqual(['NetworkManager>=1:1.40', 'perl-DBI', 'postgresql16-server>=16.5']);
  });

  test('installPackages: how apt-get and dnf are asked', () => {
    const specs = ['libc6:amd64', 'nginx=1.22.*', 'redis-server>=5:7.0.15', 'socat=1.7.4.4-2'];
    expect(installArguments(specs, 'dpkg')).toEqual([
      'libc6:amd64',
      'nginx=1.22.*',
      'redis-server',
      'socat=1.7.4.4-2',
    ]);
    expect(
      installArguments(
        ['NetworkManager', 'postgresql16-server=16.4-1PGDG.rhel9', 'nginx=1.22.*', 'perl-DBI>=1.643'],
        'rpm',
      ),
    ).toEqual([
      'NetworkManager',
      'postgresql16-server-16.4-1PGDG.rhel9',
      'nginx-1.22.*',
      'perl-DBI >= 1.643',
    ]);
    expect(installArgument(parsePackageSpec('python3-PyYAML')!, 'rpm')).toBe('python3-PyYAML');
  });

  test.runIf(process.getuid?.() === 0)(
    'apt-get takes the glob and the architecture (simulated)',
    async () => {
      const r = await execa(
        'apt-get',
        ['install', '-s', '-q', '--', ...installArguments(['bash=5.*'], 'dpkg')],
        {
          reject: false,
        },
      );
      expect(r.exitCode).toBe(0);
      const arch = (await execa('dpkg', ['--print-architecture'])).stdout.trim();
      // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format
      const q = await execa('dpkg-query', ['-W', '-f=${Version}', `bash:${arch}`], { reject: false });
      expect(q.exitCode).toBe(0);
      expect(satisfies(parsePackageSpec(`bash:${arch}>=4`)!, q.stdout, 'dpkg')).toBe(true);
    },
  );

  test('the probe is asked about exact pins and names; globs and minimums are matched by the broker', () => {
    expect(['nginx=1.22.*', 'redis>=7', 'libc6:amd64', 'socat=1.7.4.4-2'].map(probeSpec)).toEqual([
      'nginx',
      'redis',
      'libc6:amd64',
      'socat=1.7.4.4-2',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
const GiB = 1024 ** 3;

function hostFacts(requested: PackageFact[], ramGiB = 4): HostFacts {
  return {
    hostname: 'h',
    kernel: '6.1',
    arch: 'x86_64',
    os: { id: 'debian', version: '12', pretty: 'Debian 12' },
    cores: { online: 2, usable: 2 },
    memory: { totalBytes: ramGiB * GiB, availableBytes: ramGiB * GiB, usableBytes: ramGiB * GiB },
    cgroup: '2',
    storage: { path: '/srv', checked: '/srv', mount: '/', totalBytes: 10 * GiB, freeBytes: 5 * GiB },
    load1: 0,
    packages: { manager: 'dpkg', installedCount: 100, aptLists: 3, requested },
  };
}
const inv = (name: string): InventoryHost => ({ name, address: name, labels: {}, apps: [] });
const reqOf = (packages: string[], ramBytes = GiB): Requirements => ({
  app: 'a',
  cores: 1,
  ramBytes,
  storageBytes: 0,
  dataPath: '/srv',
  dataMigration: 'rsync',
  packages,
  hostLabels: {},
});

describe("the broker's software check", () => {
  test('globs and minimums are met by the installed version or the candidate; architectures by name', () => {
    const stack = ['nginx=1.22.*', 'redis-server>=5:7.0.15', 'libc6:amd64', 'curl>=8'];
    const fit = softwareFit(
      [
        { name: 'nginx', installed: '1.22.1-9' },
        { name: 'redis-server', candidate: '5:7.0.15-1~deb12u7' },
        { name: 'libc6:amd64', installed: '2.36-9' },
        { name: 'curl', installed: '7.88.1-10', candidate: '7.88.1-10+deb12u8' },
      ],
      hostFacts([]),
      stack,
    );
    expect(fit).toMatchObject({
      present: ['nginx=1.22.*', 'libc6:amd64'],
      toInstall: ['redis-server>=5:7.0.15'],
      unavailable: ['curl>=8'],
    });
  });

  test('a stale exact pin is explained, with the version the sources offer as the fix', () => {
    const spec = 'redis-server=5:7.0.15-1~deb12u1';
    const facts = hostFacts([
      {
        name: 'redis-server',
        wanted: '5:7.0.15-1~deb12u1',
        candidate: '5:7.0.15-1~deb12u7',
        wantedAvailable: false,
      },
    ]);
    const [ranked] = rankHosts(reqOf([spec]), [{ host: inv('b'), ok: true, facts, durationMs: 1 }]);
    expect(ranked!.verdict).toBe('rejected');
    expect(ranked!.reasons).toEqual([
      {
        code: 'software',
        message:
          "not available from the host's package sources: redis-server=5:7.0.15-1~deb12u1 (a stale pin: the sources offer 5:7.0.15-1~deb12u7)",
        fix: 'pin the version the sources offer: redis-server=5:7.0.15-1~deb12u7 in software_stack (or a glob like redis-server=5:7.0.15-1~deb12u*)',
      },
    ]);
    // The suggested glob is itself a valid spec that the offered version meets.
    expect(
      satisfies(parsePackageSpec('redis-server=5:7.0.15-1~deb12u*')!, '5:7.0.15-1~deb12u7', 'dpkg'),
    ).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('RAM below 1 GiB', () => {
  test('0.5 GiB validates, and the broker asks for 512 MiB', () => {
    const profile = valid([['required_ram_gb'], 0.5]);
    const req = requirementsOf(profile);
    expect(req.ramBytes).toBe(512 * 1024 ** 2);
    const small = { host: inv('small'), ok: true as const, facts: hostFacts([], 0.25), durationMs: 1 };
    const big = { host: inv('big'), ok: true as const, facts: hostFacts([], 1), durationMs: 1 };
    const ranked = rankHosts({ ...req, packages: [] }, [small, big]);
    expect(ranked.map((r) => [r.host, r.verdict])).toEqual([
      ['big', 'eligible'],
      ['small', 'rejected'],
    ]);
    expect(ranked[1]!.reasons[0]!.message).toBe('RAM 0.25 GiB < 0.5 GiB required');
  });

  test('0 and negative amounts are refused', () => {
    expect(problemsOf(demoWith([['required_ram_gb'], 0])).map((p) => p.path)).toEqual(['/required_ram_gb']);
  });
});

// ---------------------------------------------------------------------------------------------------------------
/** "ssh" that runs the command on this machine, as the host would. */
const localSsh = {
  run: async (
    _t: SshTarget,
    argv: readonly string[],
    options: { input?: string } = {},
  ): Promise<ExecResult> => {
    const r = await execa(argv[0]!, argv.slice(1), { input: options.input ?? '' });
    return { exitCode: 0, stdout: String(r.stdout), stderr: String(r.stderr), durationMs: 1 };
  },
};

describe('paths with spaces, a 2755 mode, a group on deploy files', () => {
  test('validate', () => {
    const p = valid(
      [['data', 'paths'], ['/srv/My App/data']],
      [
        ['deploy', 'files'],
        [{ path: '/opt/My App/bin/run tool', mode: '2755', owner: 'root', group: 'www-data', content: 'x' }],
      ],
    );
    expect(p.deploy.files[0]).toMatchObject({ mode: '2755', group: 'www-data' });
  });

  test('names starting or ending with a space are refused', () => {
    expect(problemsOf(demoWith([['data', 'paths'], ['/srv/app /x']]))[0]).toEqual({
      path: '/data/paths/0',
      message: 'must not have a name that starts or ends with a space, got "/srv/app /x"',
    });
  });

  test.runIf(process.getuid?.() === 0)(
    'written and read back by the real scripts: mode 2755, owner:group, a path with spaces',
    async () => {
      const path = join(tempDir('persona-write-'), 'My App', 'run tool');
      const host = inv('here');
      await writeRemoteFile(localSsh as never, host, {
        path,
        content: 'hi\n',
        mode: '2755',
        owner: 'root:daemon',
      });
      const ask = new Ask();
      const file = ask.file(path);
      const r = await execa('sh', ['-c', STATE_SCRIPT, 'persona-state', ...queryArgs(ask.queries)]);
      const have = file(parseReport(ask.queries, r.stdout));
      expect(have).toMatchObject({ mode: '2755', owner: 'root', group: 'daemon' });
      const { createHash } = await import('node:crypto');
      const sha256 = createHash('sha256').update('hi\n').digest('hex');
      expect(fileDiff({ sha256, mode: '2755', owner: 'root', group: 'daemon' }, have)).toBeUndefined();
      expect(fileDiff({ sha256, mode: '2755', owner: 'root', group: 'root' }, have)).toBe(
        'group daemon not root',
      );
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------
const rule = (r: Record<string, unknown>) => ({ source: '10.0.0.0/8', action: 'accept', ...r });

describe('firewall: port ranges, icmp and icmpv6, IPv6, explicit families', async () => {
  const rules = [
    rule({ port: 22, protocol: 'tcp', source: '10.0.0.0/8' }),
    rule({ port: '30000-32767', protocol: 'tcp', source: 'fd00::/64', comment: 'node ports' }),
    rule({ port: 443, protocol: 'tcp', source: '0.0.0.0/0' }),
    rule({ port: 443, protocol: 'tcp', source: '::/0' }),
    rule({ port: 53, protocol: 'udp', source: 'any' }),
    rule({ protocol: 'icmp', source: '0.0.0.0/0' }),
    rule({ protocol: 'icmpv6', source: '2001:db8::/32' }),
    rule({ port: '8000-8099', protocol: 'tcp', source: 'any', action: 'drop' }),
  ];
  const profile = () => valid([['network_configuration', 'firewall_rules'], rules]);

  test('the ruleset names each family explicitly', () => {
    const text = nftRuleset(profile());
    expect(text.split('\n').filter((l) => l.startsWith('    ') && !l.includes('hook'))).toEqual([
      '    ip saddr 10.0.0.0/8 tcp dport 22 accept',
      '    ip6 saddr fd00::/64 tcp dport 30000-32767 accept comment "node ports"',
      '    meta nfproto ipv4 tcp dport 443 accept',
      '    meta nfproto ipv6 tcp dport 443 accept',
      '    udp dport 53 accept',
      '    meta nfproto ipv4 meta l4proto icmp accept',
      '    ip6 saddr 2001:db8::/32 meta l4proto ipv6-icmp accept',
      '    tcp dport 8000-8099 drop',
    ]);
  });

  const canNft = async () =>
    process.getuid?.() === 0 &&
    (
      await execa('unshare', ['-n', 'nft', 'list', 'tables'], { reject: false }).catch(() => ({
        exitCode: 1,
      }))
    ).exitCode === 0;

  test.runIf(await canNft())('nft accepts the ruleset (nft -c -f, in a network namespace)', async () => {
    const file = join(tempDir('persona-nft-'), 'rules.nft');
    writeFileSync(file, nftRuleset(profile()));
    const check = await execa('unshare', ['-n', 'nft', '-c', '-f', file], { reject: false });
    expect(check.stderr).toBe('');
    expect(check.exitCode).toBe(0);
    // Loaded for real, the table holds every rule.
    const load = await execa('unshare', ['-n', 'sh', '-c', 'nft -f "$1" && nft list ruleset', 'x', file]);
    expect(load.stdout).toMatch(/tcp dport 30000-32767 accept/);
    expect(load.stdout).toMatch(/meta l4proto ipv6-icmp accept/);
  });

  test('refused: a port on icmp, no port on tcp, icmp from an IPv6 range, icmpv6 from an IPv4 one', () => {
    const bad = [
      rule({ protocol: 'icmp', port: 8 }),
      rule({ protocol: 'tcp' }),
      rule({ protocol: 'icmp', source: 'fd00::/8' }),
      rule({ protocol: 'icmpv6', source: '10.0.0.0/8' }),
    ];
    expect(
      problemsOf(demoWith([['network_configuration', 'firewall_rules'], bad])).map((p) => p.path),
    ).toEqual([
      '/network_configuration/firewall_rules/0/port',
      '/network_configuration/firewall_rules/1/port',
      '/network_configuration/firewall_rules/2/source',
      '/network_configuration/firewall_rules/3/source',
    ]);
    expect(
      problemsOf(
        demoWith([['network_configuration', 'firewall_rules'], [rule({ protocol: 'tcp', port: '90-80' })]]),
      ),
    ).toEqual([
      {
        path: '/network_configuration/firewall_rules/0/port',
        message: 'must be a range of ports from 1 to 65535, the lower port first, got "90-80"',
      },
    ]);
  });

  test('refused: a CIDR with host bits set, with the network to write instead', () => {
    expect(
      problemsOf(
        demoWith([
          ['network_configuration', 'ip_ranges'],
          ['10.1.2.3/8', 'fd00::1/64'],
        ]),
      ),
    ).toEqual([
      {
        path: '/network_configuration/ip_ranges/0',
        message:
          'has host bits set after the prefix: write the network, "10.0.0.0/8" (or /32 for one address), got "10.1.2.3/8"',
      },
      {
        path: '/network_configuration/ip_ranges/1',
        message:
          'has host bits set after the prefix: write the network, "fd00::/64" (or /128 for one address), got "fd00::1/64"',
      },
    ]);
  });
});

describe("firewall rules that would cut persona's own SSH", () => {
  const dropAll = rule({ port: '1-65535', protocol: 'tcp', source: 'any', action: 'drop' });
  const sshFromOps = rule({ port: 22, protocol: 'tcp', source: '10.0.0.0/8' });

  test('refused unless an earlier rule accepts the SSH port from somewhere', () => {
    expect(problemsOf(demoWith([['network_configuration', 'firewall_rules'], [dropAll]]))).toEqual([
      {
        path: '/network_configuration/firewall_rules/0',
        message:
          'drops SSH (tcp port 22), which persona needs to reach the host: first accept that port from your network in an earlier rule',
      },
    ]);
    expect(
      problemsOf(
        demoWith([
          ['network_configuration', 'firewall_rules'],
          [dropAll, sshFromOps],
        ]),
      ),
    ).toHaveLength(1);
    expect(
      problemsOf(
        demoWith([
          ['network_configuration', 'firewall_rules'],
          [sshFromOps, dropAll],
        ]),
      ),
    ).toEqual([]);
  });

  test("configure checks the target's own SSH port, which validation cannot know", async () => {
    const sshOn22Only = valid([
      ['network_configuration', 'firewall_rules'],
      [sshFromOps, rule({ port: '2000-3000', protocol: 'tcp', source: 'any', action: 'reject' })],
    ]);
    expect(ruleCuttingSsh(sshOn22Only.network_configuration.firewall_rules, 2222)).toBe(1);
    const target: InventoryHost = { ...inv('lab-2'), port: 2222 };
    const ctx = {
      journal: { run_id: 'r', options: {}, steps: [] } as never,
      profile: {
        ...sshOn22Only,
        security_profile: { users: [], groups: [], encryption_keys: [] },
        hooks: {},
      },
      target,
      failed: inv('lab-1'),
      ssh: {
        run: async () => ({ exitCode: 0, stdout: 'manager dpkg\nnft 1', stderr: '', durationMs: 1 }),
      } as never,
      env: {},
      signal: new AbortController().signal,
    } as Partial<StepContext> as StepContext;
    const plan = await configureStep.plan(ctx);
    expect(plan.blocked).toEqual({
      message:
        "firewall rule 2 (/network_configuration/firewall_rules/1) rejects tcp port 2222, lab-2's SSH port, which persona needs: loading it would cut persona off",
      hint: 'Put a rule that accepts tcp port 2222 from your network before it, then resume.',
    });
    expect(plan.actions.map((a) => a.id)).not.toContain('firewall');
  });
});

// ---------------------------------------------------------------------------------------------------------------
function pki(dir: string) {
  const sh = (cmd: string) => execa('sh', ['-c', cmd], { cwd: dir });
  return (async () => {
    await sh(
      'openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=persona test CA" 2>/dev/null',
    );
    await sh(
      'openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=app.example.test" 2>/dev/null',
    );
    writeFileSync(join(dir, 'ext'), 'subjectAltName=DNS:app.example.test\n');
    await sh(
      'openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext 2>/dev/null',
    );
    return { ca: join(dir, 'ca.pem'), key: join(dir, 'srv.key'), cert: join(dir, 'srv.pem') };
  })();
}

describe('https health checks with a Host header and a CA file', () => {
  test('validate; ca_file without https is refused', () => {
    const check = {
      type: 'http',
      port: 8443,
      scheme: 'https',
      host_header: 'app.example.test',
      ca_file: '/etc/ca.pem',
    };
    expect(problemsOf(demoWith([['health_checks'], [check]]))).toEqual([]);
    expect(problemsOf(demoWith([['health_checks'], [{ ...check, scheme: 'http' }]]))).toEqual([
      {
        path: '/health_checks/0/ca_file',
        message: 'is for https checks only: add "scheme": "https" or drop ca_file',
      },
    ]);
  });

  test('the check connects to the address, sends the Host header, verifies against the CA for that name', async () => {
    const files = await pki(tempDir('persona-tls-'));
    const hosts: string[] = [];
    const server = createServer(
      { key: readFileSync(files.key), cert: readFileSync(files.cert) },
      (req, res) => {
        hosts.push(String(req.headers.host));
        res.writeHead(req.headers.host === 'app.example.test' ? 204 : 421).end();
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const profile = valid([
        ['health_checks'],
        [
          {
            type: 'http',
            port,
            scheme: 'https',
            host_header: 'app.example.test',
            ca_file: files.ca,
            expect_status: 204,
          },
        ],
      ]);
      const check = profile.health_checks[0] as Parameters<typeof httpGet>[1];
      const signal = new AbortController().signal;
      expect(await httpGet('127.0.0.1', check, signal)).toEqual({
        status: 204,
        url: `https://127.0.0.1:${port}/`,
      });
      expect(hosts).toEqual(['app.example.test']);
      // Without the CA file the certificate is not trusted; for another name it does not match.
      const { ca_file: _, ...noCa } = check;
      await expect(httpGet('127.0.0.1', noCa as typeof check, signal)).rejects.toThrow(/certificate/);
      await expect(
        httpGet('127.0.0.1', { ...check, host_header: 'other.example.test' }, signal),
      ).rejects.toThrow(/altnames|does not match/i);
    } finally {
      server.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('authorized_keys lines with options, cert-authority; user names with dots', () => {
  const lines = [
    `from="10.0.0.0/8,192.168.1.0/24",no-pty,no-port-forwarding ssh-ed25519 ${KEY} ci@deploy`,
    `cert-authority,principals="ops,deploy" ssh-ed25519 ${KEY} corp CA`,
    `restrict,command="/usr/bin/rrsync -ro /srv" ssh-ed25519 ${KEY}`,
  ];

  test('validate, for a user named john.doe', () => {
    const p = valid([
      ['security_profile', 'users'],
      [{ name: 'john.doe', groups: ['ops.team'], authorized_keys: lines }],
    ]);
    expect(p.security_profile.users[0]!.name).toBe('john.doe');
  });

  test('refused: an option sshd does not know, a user name starting with a dot', () => {
    const problems = problemsOf(
      demoWith([
        ['security_profile', 'users'],
        [{ name: '.hidden', authorized_keys: [`no-such-opt ssh-ed25519 ${KEY}`] }],
      ]),
    );
    expect(problems.map((p) => p.path)).toEqual([
      '/security_profile/users/0/name',
      '/security_profile/users/0/authorized_keys/0',
    ]);
  });

  test.runIf(process.getuid?.() === 0)(
    'useradd (Debian 12) takes john.doe, in a scratch passwd database',
    async () => {
      const root = tempDir('persona-passwd-');
      const { mkdirSync } = await import('node:fs');
      mkdirSync(join(root, 'etc'));
      writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
      writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
      writeFileSync(join(root, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o600 });
      writeFileSync(join(root, 'etc/gshadow'), 'root:*::\n', { mode: 0o600 });
      const name = valid([['security_profile', 'users'], [{ name: 'john.doe' }]]).security_profile.users[0]!
        .name;
      await execa('useradd', ['--prefix', root, '-M', '-U', '--', name]);
      expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).toMatch(/^john\.doe:x:\d+:\d+:/m);
    },
  );

  test('the lines persona writes are lines ssh-keygen reads as keys with their options', async () => {
    const dir = tempDir('persona-akeys-');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'x', '-f', join(dir, 'k')]);
    const pub = readFileSync(join(dir, 'k.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
    const real = lines.map((l) => l.replace(`ssh-ed25519 ${KEY}`, pub));
    const p = valid([['security_profile', 'users'], [{ name: 'john.doe', authorized_keys: real }]]);
    const content = `${p.security_profile.users[0]!.authorized_keys.join('\n')}\n`;
    writeFileSync(join(dir, 'authorized_keys'), content);
    const r = await execa('ssh-keygen', ['-l', '-f', join(dir, 'authorized_keys')]);
    expect(r.stdout.trim().split('\n')).toHaveLength(3);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('backup host names exactly as the inventory allows them', () => {
  const names = [
    'backup-1',
    'Backup01',
    'nas.example.com',
    'bk_2',
    'B.Example.Org',
    '-x',
    'a b',
    'x;y',
    '.x',
  ];
  test.each(names)('%s: the profile and the inventory agree', async (name) => {
    let inventoryOk = true;
    try {
      await parseInventoryText('inv.json', JSON.stringify({ hosts: [{ name, address: '10.0.0.1' }] }));
    } catch {
      inventoryOk = false;
    }
    const profileOk =
      problemsOf(demoWith([['data', 'backup'], { host: name, path: '/backups/x' }])).length === 0;
    expect(profileOk).toBe(inventoryOk);
    expect(hostName.safeParse(name).success).toBe(inventoryOk);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('refused: dangerous keys', () => {
  const key = (over: Record<string, unknown>) => ({
    name: 'k',
    secret: 'env:APP_KEY',
    path: '/etc/app/k',
    ...over,
  });

  test.each(['0777', '0644', '0604', '0601'])('a key with mode %s (others may read or use it)', (mode) => {
    const [problem] = problemsOf(demoWith([['security_profile', 'encryption_keys'], [key({ mode })]]));
    expect(problem).toMatchObject({ path: '/security_profile/encryption_keys/0/mode' });
    expect(problem!.message).toMatch(/use "0600", or "0640" with a group$/);
  });

  test('0600, 0400 and 0640 with a group are fine', () => {
    for (const mode of ['0600', '0400', '0640'])
      expect(
        problemsOf(demoWith([['security_profile', 'encryption_keys'], [key({ mode, group: 'ssl-cert' })]])),
      ).toEqual([]);
  });

  test.each(['/root/.ssh/authorized_keys', '/home/ops/.ssh/authorized_keys2'])(
    'a key written to %s',
    (path) => {
      expect(problemsOf(demoWith([['security_profile', 'encryption_keys'], [key({ path })]]))).toEqual([
        {
          path: '/security_profile/encryption_keys/0/path',
          message:
            "is an authorized_keys file: writing a key there would replace the SSH access to the host (persona's own included); give users their keys in security_profile.users[].authorized_keys",
        },
      ]);
    },
  );

  test.each([
    ['file:/root/.ssh/id_ed25519', "a file in an .ssh directory (someone's SSH keys)"],
    ['file:/home/ops/.ssh/config', "a file in an .ssh directory (someone's SSH keys)"],
    ['env:CONSUL_HTTP_TOKEN', "persona's Consul token (CONSUL_HTTP_TOKEN)"],
    ['env:ETCDCTL_PASSWORD', "persona's etcd credentials (ETCDCTL_*)"],
  ])('the secret %s (the operator’s own credentials)', (secret, what) => {
    expect(problemsOf(demoWith([['security_profile', 'encryption_keys'], [key({ secret })]]))).toEqual([
      {
        path: '/security_profile/encryption_keys/0/secret',
        message: `names ${what}, which persona never sends to a host: give the application a secret of its own, got "${secret}"`,
      },
    ]);
  });
});

describe('secret sources outside the allow-list', () => {
  const sources = (allowed?: string[]) => ({
    env: { APP_KEY: 'v1', OTHER: 'v2', CONSUL_HTTP_TOKEN: 't' },
    backend: {} as never,
    redactor: { add: () => {} } as never,
    ...(allowed ? { allowed } : {}),
  });

  test('the default allows env: and file:, never the operator’s credentials', async () => {
    expect(await resolveSecret('env:OTHER', 'w', sources())).toBe('v2');
    await expect(resolveSecret('env:CONSUL_HTTP_TOKEN', 'w', sources())).rejects.toThrow(
      "secret env:CONSUL_HTTP_TOKEN (w): not read: it names persona's Consul token (CONSUL_HTTP_TOKEN), which persona never sends to a host",
    );
    await expect(resolveSecret('file:/root/.ssh/id_ed25519', 'w', sources(['file:*']))).rejects.toThrow(
      /an \.ssh directory/,
    );
  });

  test('an allow-list narrows what a run reads, and says how to widen it', async () => {
    const allowed = parseAllowedSources('env:APP_*, file:/etc/persona/secrets/*');
    expect(allowed).toEqual({ patterns: ['env:APP_*', 'file:/etc/persona/secrets/*'] });
    const list = (allowed as { patterns: string[] }).patterns;
    expect(await resolveSecret('env:APP_KEY', 'w', sources(list))).toBe('v1');
    const refused = await resolveSecret('env:OTHER', 'security_profile key k', sources(list)).catch((e) => e);
    expect(isPersonaError(refused) && refused.code).toBe('E_SECRET');
    expect(refused.message).toBe(
      "secret env:OTHER (security_profile key k): not read: it is not in the allowed secret sources (env:APP_*,file:/etc/persona/secrets/*): add a pattern for it to allowed_sources in persona's config file (or PERSONA_ALLOWED_SOURCES)",
    );
    expect(refusedSource('store:app/k', list)).toBeUndefined();
    expect(refusedSource('file:/etc/persona/secrets/db', list)).toBeUndefined();
    expect(refusedSource('file:/etc/shadow', list)).toMatch(/not in the allowed secret sources/);
  });

  test('a malformed pattern is an error', () => {
    expect(parseAllowedSources('env:APP_*,ftp:x')).toEqual({
      error: '"ftp:x" is not a pattern like env:NAME_* or file:/dir/* (comma-separated)',
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('refused: data paths that would wipe or fight', () => {
  const paths = (p: string[]) => problemsOf(demoWith([['data', 'paths'], p]));

  test.each(['/', '/etc', '/var/lib', '/usr'])('the system directory %s', (p) => {
    expect(paths([p]).map((x) => x.path)).toEqual(['/data/paths/0']);
    expect(paths([p])[0]!.message).toMatch(
      /^is the system directory .*: migrate copies data paths with rsync --delete/,
    );
  });

  test('the same path twice, and a path inside another', () => {
    expect(paths(['/srv/app', '/srv/app/'])).toEqual([
      { path: '/data/paths/1', message: 'is listed twice (also at /data/paths/0): drop one' },
    ]);
    expect(paths(['/srv/app/uploads', '/srv/app'])).toEqual([
      {
        path: '/data/paths/0',
        message: 'is inside /srv/app (/data/paths/1), which is copied with it: drop the inner path',
      },
    ]);
  });

  test('paths that share their last name are fine: the backup holds each under its full path', () => {
    expect(paths(['/var/lib/postgresql/15/main', '/etc/postgresql/15/main'])).toEqual([]);
  });

  test('deploy files and keys inside a data path', () => {
    const problems = problemsOf(
      demoWith(
        [['data', 'paths'], ['/srv/app']],
        [['deploy', 'files'], [{ path: '/srv/app/config.yml', content: 'x' }]],
        [
          ['security_profile', 'encryption_keys'],
          [{ name: 'k', secret: 'env:K', path: '/srv/app/tls/k.pem' }],
        ],
      ),
    );
    expect(problems).toEqual([
      {
        path: '/deploy/files/0/path',
        message:
          "is inside the data path /srv/app (/data/paths/0): migrate would replace it with the source's copy (rsync --delete); put it outside the data",
      },
      {
        path: '/security_profile/encryption_keys/0/path',
        message:
          "is inside the data path /srv/app (/data/paths/0): migrate would replace it with the source's copy (rsync --delete); put it outside the data",
      },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('refused: duplicate keys in a JSON profile', () => {
  test('named with the line, the column, the JSON path and the first one', () => {
    const text = JSON.stringify(demo, null, 2).replace(
      '"required_cores": 1,',
      '"required_cores": 1,\n  "required_cores": 16,',
    );
    expect(text).toContain('"required_cores": 16');
    expect(() => parseProfileText('p.json', text)).toThrow(
      /^p\.json:\d+:3: duplicate key "required_cores" in the object at \/ \(first at line \d+, column 3\): only one value can apply$/,
    );
  });

  test('nested, with its path', () => {
    const text = '{"a": [{"b": {"x": 1, "y": 2, "x": 3}}]}';
    let caught: unknown;
    try {
      parseJsonText('t.json', text);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({
      code: 'E_JSON_SYNTAX',
      message:
        't.json:1:31: duplicate key "x" in the object at /a/0/b (first at line 1, column 15): only one value can apply',
      details: { path: '/a/0/b/x' },
    });
  });

  test('equal keys in different objects are fine', () => {
    expect(parseJsonText('t', '{"a": {"x": 1}, "b": {"x": 2}, "x": [{"x": 1}, {"x": 2}]}')).toBeTruthy();
  });
});

describe('the allow-list reaches the steps', () => {
  test("stepContext carries the run's allowed_sources", async () => {
    const { stepContext } = await import('../../src/runbook/step-context.js');
    const ctx = stepContext(
      {
        journal: { run_id: 'r', steps: [] },
        env: {},
        stateDir: '/tmp',
        reporter: { event: () => {} },
        redactor: { redact: (s: string) => s },
        ssh: {},
        allowedSources: ['env:APP_*'],
      } as never,
      new AbortController().signal,
      { kind: 'configure', log: [] } as never,
    );
    expect(ctx.allowedSources).toEqual(['env:APP_*']);
  });
});

describe('the probe and the broker on this machine (dpkg, apt lists)', async () => {
  const hasApt = async () =>
    (
      await execa('sh', ['-c', 'ls /var/lib/apt/lists/*_Packages* && command -v dpkg-query'], {
        reject: false,
      })
    ).exitCode === 0;

  test.runIf(await hasApt())(
    'an architecture, a glob, a minimum and a stale pin, as the real probe script reports them',
    async () => {
      const { probeHost } = await import('../../src/hosts/probe.js');
      const arch = (await execa('dpkg', ['--print-architecture'])).stdout.trim();
      // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format
      const installed = (await execa('dpkg-query', ['-W', '-f=${Version}', 'bash'])).stdout.trim();
      const local = {
        script: async (_t: SshTarget, script: string, args: readonly string[]) => {
          const r = await execa('sh', ['-s', '--', ...args], { input: script, reject: false });
          return {
            exitCode: r.exitCode ?? 1,
            stdout: String(r.stdout),
            stderr: String(r.stderr),
            durationMs: 1,
          };
        },
      };
      const stack = [`libc6:${arch}`, `bash=${installed.split('.')[0]}.*`, 'dpkg>=1.0', 'coreutils=0.1-1'];
      const probed = await probeHost(local as never, inv('here'), { packages: stack });
      expect(probed.ok).toBe(true);
      const [ranked] = rankHosts(reqOf(stack, 1), [probed]);
      expect(ranked!.software).toMatchObject({
        present: [`libc6:${arch}`, `bash=${installed.split('.')[0]}.*`, 'dpkg>=1.0'],
        unavailable: ['coreutils=0.1-1'],
      });
      const reason = ranked!.reasons.find((r) => r.code === 'software')!;
      expect(reason.message).toMatch(/coreutils=0\.1-1 \(a stale pin: the sources offer \S+\)$/);
      expect(reason.fix).toMatch(/^pin the version the sources offer: coreutils=\S+ in software_stack/);
    },
  );
});
