/**
 * Probing and ranking real lab hosts with the built CLI: hosts that differ rank as expected with their reasons;
 * an unreachable host, a wrong host key and a hung sshd are rejected with the right reason while the others are
 * ranked; hostile values never reach a shell.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { jsonLines } from '../helpers/cli.js';
import { fail, heal, type LabState, releaseLab, sshExec } from '../lab/lab.js';
import { freshLab, persona, scratchDir, type Workspace, workspace } from './lab-helpers.js';

let lab: LabState;
let ws: Workspace;

interface Ranked {
  host: string;
  verdict: string;
  rank?: number;
  reasons: Array<{ code: string; message: string; fix?: string }>;
  score?: { total: number; components: Record<string, number> };
}

async function rank(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; hosts: Ranked[]; stderr: string }> {
  const r = await persona(['hosts', 'rank', '--json', ...args], ws, env);
  // --json of a command that does not stream: one line, the result (its exit code inside).
  const lines = jsonLines(r.stdout);
  expect(lines, r.stdout).toHaveLength(1);
  expect(lines[0]).toMatchObject({ type: 'result', exit_code: r.code });
  return { code: r.code, hosts: (lines[0] as { hosts?: Ranked[] }).hosts ?? [], stderr: r.stderr };
}

beforeAll(async () => {
  lab = await freshLab();
  ws = workspace(lab);
  // A small profile every healthy host can take (no storage, nothing to install): the faults decide.
  const small = JSON.parse(readFileSync(join(ws.store, 'demo-web.json'), 'utf8'));
  Object.assign(small, {
    id: 'small-app',
    required_storage_gb: 0,
    software_stack: [],
    data: { paths: ['/srv/small'], migration: 'none' },
  });
  writeFileSync(join(ws.store, 'small-app.json'), JSON.stringify(small, null, 2));
  const big = JSON.parse(readFileSync(join(ws.store, 'demo-web.json'), 'utf8'));
  Object.assign(big, { id: 'big-app', required_cores: 2, required_ram_gb: 2, required_storage_gb: 4 });
  writeFileSync(join(ws.store, 'big-app.json'), JSON.stringify(big, null, 2));
});

afterAll(async () => {
  for (const h of ['lab-1', 'lab-2', 'lab-3', 'lab-4']) await heal(h);
  releaseLab();
});

describe('hosts rank (built CLI, lab)', () => {
  test('demo-web after lab-1 failed: lab-2 (closest fit, software present) before lab-3; lab-4 too small, with numbers', async () => {
    const { code, hosts } = await rank(['--profile', 'demo-web', '--failed', 'lab-1']);
    expect(code).toBe(0);
    expect(hosts.map((h) => [h.host, h.verdict, h.rank])).toEqual([
      ['lab-2', 'eligible', 1],
      ['lab-3', 'eligible', 2],
      ['lab-1', 'rejected', undefined],
      ['lab-4', 'rejected', undefined],
    ]);
    expect(hosts[0]!.score!.components.software).toBeGreaterThan(hosts[1]!.score!.components.software!);
    expect(hosts[0]!.score!.components.fit).toBeGreaterThan(hosts[1]!.score!.components.fit!);
    expect(hosts[2]!.reasons.map((r) => r.message)).toEqual(['this is the failed host']);
    expect(hosts[3]!.reasons.map((r) => r.message)).toEqual([
      'RAM 0.5 GiB (cgroup limit) < 1 GiB required',
      expect.stringMatching(/^free storage on \/srv 0\.4\d GiB < 1 GiB required$/),
    ]);
    expect(hosts[3]!.reasons[0]!.fix).toBe('needs 0.5 GiB more usable memory');
  });

  test('a bigger profile: only lab-3 has 2 cores, 2 GiB and 4 GiB free; the others say why not', async () => {
    const { code, hosts } = await rank(['--profile', 'big-app']);
    expect(code).toBe(0);
    const byHost = Object.fromEntries(hosts.map((h) => [h.host, h]));
    expect(byHost['lab-3']).toMatchObject({ verdict: 'eligible', rank: 1 });
    expect(byHost['lab-1']!.reasons.map((r) => r.message)).toEqual([
      'cores 1 < 2 required',
      'RAM 1.5 GiB (cgroup limit) < 2 GiB required',
      expect.stringMatching(/^free storage on \/srv 0\.9\d GiB < 4 GiB required$/),
    ]);
    expect(byHost['lab-2']!.reasons.map((r) => r.message)).toEqual([
      'RAM 1 GiB (cgroup limit) < 2 GiB required',
      expect.stringMatching(/^free storage on \/srv 1\.\d+ GiB < 4 GiB required$/),
    ]);
    expect(byHost['lab-4']!.reasons.map((r) => r.code)).toEqual(['cores', 'memory', 'storage']);
  });

  test('no eligible host exits 4 with every reason', async () => {
    const r = await persona(['hosts', 'rank', '--profile', 'big-app', '--exclude', 'lab-3'], ws);
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/no host can take big-app/);
    expect(r.stdout).toMatch(/excluded by --exclude/);
  });

  test('unreachable, wrong host key and hung sshd: each rejected with its reason, the healthy host ranked', async () => {
    // lab-4's host key is wrong in a copy of the lab's known_hosts (host-key checking stays on).
    const dir = scratchDir('persona-keys-');
    const knownHosts = join(dir, 'known_hosts');
    const other = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMqs9n8x6cAFI4h7c4mJ9GmzZkXGmD2WcZs0Q3Vq8d1F';
    const lines = readFileSync(lab.ssh.known_hosts, 'utf8').split('\n');
    writeFileSync(
      knownHosts,
      lines
        .map((l) => (/(^|,|\[)(lab-4|10\.251\.72\.14)\b/.test(l) ? l.replace(/ssh-\S+ \S+/, other) : l))
        .join('\n'),
    );
    const config = join(dir, 'config');
    copyFileSync(lab.ssh.config, config);
    writeFileSync(config, readFileSync(config, 'utf8').replaceAll(lab.ssh.known_hosts, knownHosts));
    await fail('lab-2', 'partition');
    await fail('lab-3', 'hang');
    try {
      const started = Date.now();
      const { code, hosts } = await rank([
        '--profile',
        'small-app',
        '--ssh-config',
        config,
        '--connect-timeout',
        '3',
      ]);
      expect(Date.now() - started).toBeLessThan(60_000);
      expect(code).toBe(0);
      const byHost = Object.fromEntries(hosts.map((h) => [h.host, h]));
      expect(byHost['lab-1']).toMatchObject({ verdict: 'eligible', rank: 1 });
      expect(byHost['lab-2']!.reasons[0]).toMatchObject({
        code: 'unreachable',
        message: expect.stringMatching(/timed out|unreachable|no answer/),
      });
      expect(byHost['lab-3']!.reasons[0]).toMatchObject({
        code: 'unreachable',
        message: expect.stringMatching(/timed out|no answer/),
      });
      expect(byHost['lab-4']!.reasons[0]).toMatchObject({
        code: 'unreachable',
        message: expect.stringContaining('host key has CHANGED'),
      });
      expect(byHost['lab-4']!.reasons[0]!.fix).toContain('ssh-keygen -R');
    } finally {
      await heal('lab-2');
      await heal('lab-3');
    }
  });

  test('hosts probe: a refused sshd is a result with its reason, not a crash', async () => {
    await fail('lab-4', 'sshd');
    try {
      const r = await persona(['hosts', 'probe', '--json'], ws);
      expect(r.code).toBe(0);
      const [data] = jsonLines(r.stdout) as Array<{ type: string; hosts: Array<{ host: { name: string } }> }>;
      expect(data).toMatchObject({ type: 'result', ok: true, exit_code: 0 });
      const results = Object.fromEntries(data!.hosts.map((h) => [h.host.name, h]));
      expect(results['lab-4']).toMatchObject({ ok: false, failure: { kind: 'refused' } });
      expect(results['lab-1']).toMatchObject({
        ok: true,
        facts: { cores: { usable: 1 }, memory: { usableBytes: 1536 * 1024 ** 2 } },
      });
    } finally {
      await heal('lab-4');
    }
  });

  test('a warm fact cache: ranked from it, the top probed again; a top that stopped answering is not chosen', async () => {
    const cold = await rank(['--profile', 'small-app', '--max-fact-age', '0']);
    const top = cold.hosts[0]!.host;
    const fill = await persona(['hosts', 'probe', '--profile', 'small-app', '--cache', '--json'], ws);
    expect(fill.code, fill.stderr).toBe(0);
    expect(jsonLines(fill.stdout)[0]).toMatchObject({ cached: 4 });
    await fail(top, 'partition');
    try {
      const warm = await rank(['--profile', 'small-app', '--connect-timeout', '3']);
      expect(warm.code).toBe(0);
      const byHost = Object.fromEntries(
        warm.hosts.map((h) => [h.host, h as Ranked & { cachedFacts?: unknown }]),
      );
      expect(byHost[top]).toMatchObject({ verdict: 'rejected', reasons: [{ code: 'unreachable' }] });
      expect(byHost[top]).not.toHaveProperty('cachedFacts');
      // The next choice was probed too (no cachedFacts) and still fits; the two others were ranked from the cache.
      const probedNow = warm.hosts.filter((h) => !('cachedFacts' in h) && h.host !== top);
      expect(probedNow).toHaveLength(1);
      expect(probedNow[0]).toMatchObject({ verdict: 'eligible' });
      expect(warm.hosts.filter((h) => 'cachedFacts' in h)).toHaveLength(2);
      expect(warm.stderr).toContain(`${top} was chosen from cached facts`);
    } finally {
      await heal(top);
    }
  });

  test('hostile values in an inventory or on the command line are refused before any shell sees them', async () => {
    const marker = '/tmp/persona-hostile-marker';
    const dir = scratchDir('persona-hostile-');
    const inv = join(dir, 'inventory.json');
    writeFileSync(
      inv,
      JSON.stringify({
        hosts: [{ name: 'lab-1', address: `10.251.72.11;touch ${marker}` }, { name: `x$(touch ${marker})` }],
      }),
    );
    const a = await persona(['hosts', 'probe', '--inventory', inv], ws);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('/hosts/0/address: must be a DNS name');
    expect(a.stderr).toContain('/hosts/1/name: must be a host name');
    const b = await persona(['hosts', 'probe', 'lab-1', '--path', `/srv/$(touch ${marker})`], ws);
    expect(b.code).toBe(2);
    const c = await persona(['hosts', 'probe', 'lab-1', '--package', `socat;touch ${marker}`], ws);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('--package');
    expect(existsSync(marker)).toBe(false);
    expect((await sshExec('lab-1', ['test', '-e', marker])).exitCode).not.toBe(0);
  });
});
