/**
 * recover with a warm fact cache, in-process against fake hosts (FakeHosts behind the transport): the real CLI,
 * engine, steps, journal and file store. What is asserted is what the hosts received (every probe, per host) and
 * where the application runs afterwards, not what persona says about it.
 *
 * h1 fails; h2, h3 and h4 have fresh cached facts (all alike: h2 ranks first by name). A warm cache means the
 * only probe is the chosen target's; a target whose probe now fails the hard filters is not used.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { factInputs, writeFacts } from '../../src/hosts/fact-cache.js';
import { loadInventory } from '../../src/hosts/inventory.js';
import { parseProbeOutput } from '../../src/hosts/parse-probe.js';
import type { Journal } from '../../src/runbook/types.js';
import { openBackend } from '../../src/stores/open.js';
import { type FakeCommand, FakeHosts } from '../fakes/fake-hosts.js';
import { jsonLines, repoRoot, runInProcess } from '../helpers/cli.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

const APP = 'web';
const service = {
  start: ['systemctl', 'start', 'web'],
  stop: ['systemctl', 'stop', 'web'],
  status: ['systemctl', 'is-active', '--quiet', 'web'],
};
const HEALTH = ['curl', '-fsS', 'http://127.0.0.1:8080/health'];
const health: FakeCommand = {
  argv: HEALTH,
  mutates: false,
  answer: (h) => (h.running ? { stdout: 'ok\n' } : { exitCode: 7, stderr: 'curl: (7) Connection refused' }),
};
const PROBE = readFileSync(`${repoRoot}test/fixtures/probe/debian12-root-cgroup1.txt`, 'utf8');
/** The same host with 100 KiB free on / : below the profile's 1 GiB. */
const FULL_DISK = PROBE.replace(/^storage_df\t.*$/m, 'storage_df\t/dev/vda 264212084 264212000 100 100% /');

const fakes: FakeHosts[] = [];
afterEach(() => {
  for (const fake of fakes.splice(0))
    expect(fake.unknown.map((c) => `${c.host}: ${c.argv.join(' ')}`)).toEqual([]);
});

/** A store with the web profile, an inventory of four hosts, fresh cached facts for h2, h3 and h4. */
async function world(cachedProbe = PROBE) {
  const store = copyOfProfiles();
  const dir = tempDir('persona-world-');
  const marks = { fence: join(dir, 'fence-ran'), switch: join(dir, 'switch-ran') };
  const profile = {
    id: APP,
    description: 'A web service on fake hosts.',
    required_cores: 1,
    required_ram_gb: 1,
    required_storage_gb: 1,
    software_stack: [],
    network_configuration: { ip_ranges: [], vlans: [], firewall_rules: [] },
    security_profile: { users: [], encryption_keys: [] },
    application_dependencies: [],
    performance_metrics: {
      cpu_utilization_pct: { max: 90 },
      memory_usage_pct: { max: 90 },
      window_seconds: 1,
      monitor_seconds: 1,
    },
    data: { paths: [], migration: 'none' },
    deploy: { port: 8080, files: [], install: [], ...service },
    health_checks: [{ name: 'health', type: 'command', command: HEALTH }],
    traffic: { method: 'command', fence: ['touch', marks.fence], switch: ['touch', marks.switch] },
  };
  writeFileSync(join(store, `${APP}.json`), `${JSON.stringify(profile, null, 2)}\n`);
  const inventoryFile = join(dir, 'inventory.json');
  writeFileSync(
    inventoryFile,
    JSON.stringify({
      hosts: [
        { name: 'h1', address: '10.0.0.1', apps: [APP] },
        { name: 'h2', address: '10.0.0.2' },
        { name: 'h3', address: '10.0.0.3' },
        { name: 'h4', address: '10.0.0.4' },
      ],
    }),
  );
  const env = {
    PERSONA_STORE: `file:${store}`,
    PERSONA_STATE_DIR: tempDir('persona-state-'),
    PERSONA_INVENTORY: inventoryFile,
    PERSONA_AUTHOR: 'alice@test',
    PERSONA_LOCK_TTL: '2',
    CI: 'true',
  };
  // What watch (or `hosts probe --cache`) would have written a minute ago, with the profile's probe inputs.
  const backend = await openBackend(`file:${store}`, env, repoRoot);
  const inventory = await loadInventory(inventoryFile);
  const facts = parseProbeOutput(cachedProbe, []);
  await writeFacts(
    backend,
    inventory.hosts
      .filter((h) => h.name !== 'h1')
      .map((host) => ({ host, ok: true as const, facts, durationMs: 30 })),
    factInputs('/', []),
    new Date(Date.now() - 60_000),
  );
  await backend.close();
  const fake = new FakeHosts({
    hosts: { h1: { running: true }, h2: {}, h3: {}, h4: {} },
    service,
    commands: [health],
  });
  fakes.push(fake);
  const probes = () => {
    const n: Record<string, number> = {};
    for (const c of fake.calls) if (c.what === 'probe') n[c.host] = (n[c.host] ?? 0) + 1;
    return n;
  };
  const journal = (): Journal => {
    const runs = join(env.PERSONA_STATE_DIR, 'runs');
    const file = readdirSync(runs).find((f) => f.endsWith('.json'))!;
    return JSON.parse(readFileSync(join(runs, file), 'utf8')) as Journal;
  };
  return {
    fake,
    probes,
    journal,
    recover: (...args: string[]) => runInProcess(['recover', ...args], { env, transport: fake }),
    cli: (...args: string[]) => runInProcess(args, { env, transport: fake }),
    facts: async () => {
      const kv = await openBackend(`file:${store}`, env, repoRoot);
      const keys = (await kv.list('facts/')).map((e) => e.key.split('/')[1]);
      await kv.close();
      return keys;
    },
    clearFacts: async () => {
      const kv = await openBackend(`file:${store}`, env, repoRoot);
      await kv.txn({ deletes: (await kv.list('facts/')).map((e) => e.key) });
      await kv.close();
    },
  };
}

const result = (stdout: string) => jsonLines(stdout).at(-1) as { runs: Array<Record<string, unknown>> };

describe('recover with a warm fact cache', () => {
  test('only the chosen target is probed; the journal says which facts were cached and how old', async () => {
    const w = await world();
    const r = await w.recover('h1', '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(result(r.stdout).runs[0]).toMatchObject({ status: 'succeeded', target_host: 'h2' });
    expect(w.fake.host('h2').running).toBe(true);
    expect(w.probes()).toEqual({ h2: 1 });
    const j = w.journal();
    // h2's facts are of now (probed again before acting); h3's and h4's came from the cache, a minute old.
    const entry = (h: string) => j.ranking.find((x) => x.host === h) as Record<string, unknown> | undefined;
    expect(entry('h2')).not.toHaveProperty('facts_age_s');
    expect(entry('h3')?.facts_age_s).toBeGreaterThanOrEqual(60);
    expect(j.ranking_summary?.facts_from_cache).toBe(2);
  });

  test('--max-fact-age 0: every candidate is probed, once', async () => {
    const w = await world();
    const r = await w.recover('h1', '--yes', '--json', '--max-fact-age', '0');
    expect(r.code, r.stderr).toBe(0);
    expect(w.probes()).toEqual({ h2: 1, h3: 1, h4: 1 });
    expect(w.journal().ranking_summary?.facts_from_cache).toBeUndefined();
  });

  test('a target whose probe now fails the filters is not used: the next one is, after its own probe', async () => {
    const w = await world();
    w.fake.host('h2').probe = FULL_DISK;
    const r = await w.recover('h1', '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(result(r.stdout).runs[0]).toMatchObject({ status: 'succeeded', target_host: 'h3' });
    expect(w.fake.host('h3').running).toBe(true);
    // Nothing was done to h2: it was only probed.
    expect(w.fake.mutations('h2')).toEqual([]);
    expect(w.probes()).toEqual({ h2: 1, h3: 1 });
    expect(r.stderr).toMatch(
      /h2 was chosen from cached facts \d+ s old, but probed again it no longer fits: .*storage/,
    );
  });

  test('a dry run with a warm cache changes nothing, and still probes its target before planning', async () => {
    const w = await world();
    w.fake.host('h2').probe = FULL_DISK;
    w.fake.host('h3').probe = FULL_DISK;
    const r = await w.recover('h1', '--dry-run', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(w.fake.mutations()).toEqual([]);
    // Two chosen hosts no longer fit: every host ranked from the cache is probed (h4, the last one).
    expect(w.probes()).toEqual({ h2: 1, h3: 1, h4: 1 });
  });

  test('hosts probe writes the cache only with --cache; hosts rank then probes only its top', async () => {
    const w = await world();
    await w.clearFacts();
    expect((await w.cli('hosts', 'probe', '--profile', APP, '--json')).code).toBe(0);
    expect(await w.facts()).toEqual([]);
    w.fake.host('h4').down = 'refused';
    const filled = await w.cli('hosts', 'probe', '--profile', APP, '--cache', '--json');
    expect(filled.code, filled.stderr).toBe(0);
    expect(jsonLines(filled.stdout).at(-1)).toMatchObject({ cached: 3 });
    expect((await w.facts()).sort()).toEqual(['h1', 'h2', 'h3']);
    w.fake.calls.length = 0;
    const r = await w.cli('hosts', 'rank', '--profile', APP, '--failed', 'h1', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = jsonLines(r.stdout).at(-1) as {
      hosts: Array<{ host: string; verdict: string; cachedFacts?: { ageS: number } }>;
      facts_from_cache: number;
    };
    // h4 has no entry (it did not answer): probed now, as the top h2 is again; h3 is ranked from the cache.
    expect(w.probes()).toEqual({ h2: 1, h4: 1 });
    expect(out.facts_from_cache).toBe(1);
    expect(out.hosts.find((h) => h.host === 'h3')?.cachedFacts?.ageS).toBeGreaterThanOrEqual(0);
    expect(out.hosts[0]).toMatchObject({ host: 'h2', verdict: 'eligible' });
    expect(out.hosts[0]).not.toHaveProperty('cachedFacts');
  });

  test('no host fits by its cached facts: they are all probed before recover gives up, and one fits now', async () => {
    const w = await world(FULL_DISK);
    const r = await w.recover('h1', '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(result(r.stdout).runs[0]).toMatchObject({ status: 'succeeded', target_host: 'h2' });
    expect(w.probes()).toEqual({ h2: 1, h3: 1, h4: 1 });
  });

  test('--target names a host with cached facts: it is probed now, and refused on its facts of now', async () => {
    const w = await world();
    w.fake.host('h3').probe = FULL_DISK;
    const r = await w.recover('h1', '--yes', '--json', '--target', 'h3');
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/h3/);
    expect(w.fake.mutations()).toEqual([]);
    expect(w.probes()).toEqual({ h3: 1 });
  });
});
