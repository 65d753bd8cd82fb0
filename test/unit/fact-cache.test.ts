/**
 * The fact cache in the file store: what is written (one entry per host and probe inputs), what is read back as
 * fresh, and what is ignored (too old, from the future, probed for other inputs or another address, unparsable).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import {
  FACTS_PREFIX,
  factInputs,
  factKey,
  parseEntry,
  readFreshFacts,
  writeFacts,
} from '../../src/hosts/fact-cache.js';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { parseProbeOutput } from '../../src/hosts/parse-probe.js';
import type { ProbeResult } from '../../src/hosts/probe.js';
import { FileBackend } from '../../src/stores/file-backend.js';
import type { KvBackend, KvTxn } from '../../src/stores/kv.js';
import { repoRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const open = async () => new FileBackend(tempDir()).open();
const facts = parseProbeOutput(
  readFileSync(`${repoRoot}test/fixtures/probe/debian12-root-cgroup1.txt`, 'utf8'),
  ['nginx'],
);
const host = (name: string, address = `10.0.0.${name.slice(1)}`): InventoryHost => ({
  name,
  address,
  labels: {},
  apps: [],
});
const ok = (h: InventoryHost): Extract<ProbeResult, { ok: true }> => ({
  host: h,
  ok: true,
  facts,
  durationMs: 40,
});
const down = (h: InventoryHost): ProbeResult => ({
  host: h,
  ok: false,
  failure: { kind: 'refused', message: `${h.name}: refused` },
  durationMs: 3,
});
const inputs = factInputs('/srv/web', ['nginx']);
const t0 = new Date('2026-11-28T06:00:00.000Z');
const later = (s: number) => new Date(t0.getTime() + s * 1000);

describe('the fact cache', () => {
  test('written after a probe and read back fresh: the facts, their probe time and age, for the asked hosts', async () => {
    const kv = await open();
    const [h1, h2, h3] = [host('h1'), host('h2'), host('h3')];
    expect(await writeFacts(kv, [ok(h1), ok(h2), down(h3)], inputs, t0)).toBe(2);
    const keys = (await kv.list(FACTS_PREFIX)).map((e) => e.key);
    expect(keys).toEqual([factKey('h1', inputs), factKey('h2', inputs)]);
    const { fresh, note } = await readFreshFacts(kv, [h1, h2, h3], inputs, {
      maxAgeMs: 300_000,
      now: later(42),
    });
    expect(note).toBeUndefined();
    expect([...fresh.keys()].sort()).toEqual(['h1', 'h2']);
    const c = fresh.get('h1')!;
    expect(c.ageMs).toBe(42_000);
    expect(c.probedAt).toBe(t0.toISOString());
    expect(c.result).toMatchObject({ ok: true, host: h1, facts, cached: { ageMs: 42_000 } });
  });

  test('older than the bound, or too far in the future: ignored and counted', async () => {
    const kv = await open();
    const h1 = host('h1');
    await writeFacts(kv, [ok(h1)], inputs, t0);
    const at = (s: number, maxAgeMs = 300_000) =>
      readFreshFacts(kv, [h1], inputs, { maxAgeMs, now: later(s) });
    expect((await at(300)).fresh.size).toBe(1);
    const old = await at(301);
    expect(old.fresh.size).toBe(0);
    expect(old.note).toMatch(/1 cached fact ignored \(1 older than 300 s/);
    expect((await at(-30)).fresh.size).toBe(1);
    expect((await at(-120)).fresh.size).toBe(0);
    // A bound of 0 turns the cache off: nothing is even read.
    expect(await at(1, 0)).toEqual({ fresh: new Map() });
  });

  test('keyed by the probe inputs: facts probed for another data path or package list are not used', async () => {
    const kv = await open();
    const h1 = host('h1');
    await writeFacts(kv, [ok(h1)], inputs, t0);
    const read = (i: ReturnType<typeof factInputs>) =>
      readFreshFacts(kv, [h1], i, { maxAgeMs: 300_000, now: later(1) });
    expect((await read(factInputs('/srv/web', ['nginx']))).fresh.size).toBe(1);
    // The order and duplicates of the stack do not matter; its contents and the data path do.
    expect((await read(factInputs('/srv/web', ['nginx', 'nginx']))).fresh.size).toBe(1);
    expect((await read(factInputs('/srv/web', ['nginx', 'postgresql-15']))).fresh.size).toBe(0);
    expect((await read(factInputs('/srv/web', []))).fresh.size).toBe(0);
    expect((await read(factInputs('/var/lib/db', ['nginx']))).fresh.size).toBe(0);
    // Two profiles' entries live side by side.
    await writeFacts(kv, [ok(h1)], factInputs('/var/lib/db', []), t0);
    expect(await kv.list(`${FACTS_PREFIX}h1/`)).toHaveLength(2);
  });

  test('an entry whose digest matches but whose inputs differ, or for another address, is not trusted', async () => {
    const kv = await open();
    const h1 = host('h1');
    await writeFacts(kv, [ok(h1)], inputs, t0);
    const key = factKey('h1', inputs)!;
    const entry = JSON.parse((await kv.get(key))!.value);
    await kv.txn({
      puts: [{ key, value: JSON.stringify({ ...entry, inputs: { ...inputs, data_path: '/' } }) }],
    });
    const wrong = await readFreshFacts(kv, [h1], inputs, { maxAgeMs: 300_000, now: later(1) });
    expect(wrong.fresh.size).toBe(0);
    expect(wrong.note).toMatch(/1 unparsable/);
    await writeFacts(kv, [ok(h1)], inputs, t0);
    const moved = await readFreshFacts(kv, [host('h1', '10.9.9.9')], inputs, {
      maxAgeMs: 300_000,
      now: later(1),
    });
    expect(moved.fresh.size).toBe(0);
    expect(moved.note).toMatch(/1 for another address/);
  });

  test('corrupt entries are ignored (counted), never trusted; the good ones are still used', async () => {
    const kv = await open();
    const [h1, h2, h3, h4] = [host('h1'), host('h2'), host('h3'), host('h4')];
    await writeFacts(kv, [ok(h1), ok(h2), ok(h3), ok(h4)], inputs, t0);
    const entry = JSON.parse((await kv.get(factKey('h1', inputs)!))!.value);
    const broken = {
      h2: '{not json',
      h3: JSON.stringify({ ...entry, host: 'h3', version: 2 }),
      h4: JSON.stringify({ ...entry, host: 'h4', facts: { ...entry.facts, memory: {} } }),
    };
    await kv.txn({
      puts: Object.entries(broken).map(([h, value]) => ({ key: factKey(h, inputs)!, value })),
    });
    const { fresh, note } = await readFreshFacts(kv, [h1, h2, h3, h4], inputs, {
      maxAgeMs: 300_000,
      now: later(5),
    });
    expect([...fresh.keys()]).toEqual(['h1']);
    expect(note).toBe('3 cached facts ignored (3 unparsable); those hosts are probed');
    expect(parseEntry('null')).toBeUndefined();
    // Text from the store reaches the terminal only without control characters.
    const hostile = {
      ...entry,
      facts: { ...entry.facts, os: { ...entry.facts.os, pretty: 'Debian\u001b[2J\u0007' } },
    };
    expect(parseEntry(JSON.stringify(hostile))?.facts.os.pretty).toBe('Debian');
    expect(parseEntry(JSON.stringify({ ...entry, probed_at: 'soon' }))).toBeUndefined();
  });

  test('a host that stopped answering loses its entry; skipped hosts and cached results are not written', async () => {
    const kv = await open();
    const [h1, h2] = [host('h1'), host('h2')];
    await writeFacts(kv, [ok(h1), ok(h2)], inputs, t0);
    const skipped: ProbeResult = {
      host: h2,
      ok: false,
      failure: { kind: 'skipped', message: 'not probed' },
      durationMs: 0,
    };
    const fromCache: ProbeResult = { ...ok(h2), cached: { probedAt: t0.toISOString(), ageMs: 1 } };
    expect(await writeFacts(kv, [down(h1), skipped, fromCache], inputs, later(60))).toBe(0);
    const left = await kv.list(FACTS_PREFIX);
    expect(left.map((e) => e.key)).toEqual([factKey('h2', inputs)]);
    // h2's entry keeps its first probe time: a cached result is not a new probe.
    expect(JSON.parse(left[0]!.value).probed_at).toBe(t0.toISOString());
  });

  test('many hosts: batches of at most 48 keys per transaction (Consul allows 64 operations)', async () => {
    const kv = await open();
    const txns: KvTxn[] = [];
    const spy: KvBackend = Object.assign(Object.create(kv) as KvBackend, {
      txn: (t: KvTxn) => {
        txns.push(t);
        return kv.txn(t);
      },
    });
    const hosts = Array.from({ length: 200 }, (_, i) => host(`h${i + 1}`));
    expect(await writeFacts(spy, hosts.map(ok), inputs, t0)).toBe(200);
    expect(txns.map((t) => (t.puts?.length ?? 0) + (t.deletes?.length ?? 0))).toEqual([48, 48, 48, 48, 8]);
    const { fresh } = await readFreshFacts(kv, hosts, inputs, { maxAgeMs: 1000, now: t0 });
    expect(fresh.size).toBe(200);
  });

  test('a host name that cannot be a store key is never cached', () => {
    expect(factKey('web 1', inputs)).toBeUndefined();
    expect(factKey('..', inputs)).toBeUndefined();
    expect(factKey('web-1.example.com', inputs)).toMatch(/^facts\/web-1\.example\.com\/[0-9a-f]{16}$/);
  });
});
