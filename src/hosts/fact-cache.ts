/**
 * The fact cache: what the probe found on each host, kept in the store so that a recovery can rank from facts a
 * few minutes old instead of probing every host while the application is down (README, "The fact cache").
 *
 * One key per host and probe inputs: facts/<host>/<inputs digest>. The inputs are what changes the facts: the
 * data path whose filesystem is measured, the packages asked about (facts probed for another profile's software
 * stack say nothing about this one's) and the probe script itself (an upgraded persona may measure more). The
 * digest only locates an entry; the entry repeats its inputs and is used only when they are equal to the ones
 * asked for, for the host at the same address. Profiles with the same data path and stack share entries.
 *
 * Never trusted blindly: an entry that does not parse, has another version, or is older than the bound is
 * ignored (and counted in a note); the caller re-probes the host it chooses before acting (recover/decide.ts).
 */

import { type KvBackend, TXN_BATCH } from '../stores/kv.js';
import { sha256 } from '../util/hash.js';
import { stripTerminalControls } from '../util/sanitize.js';
import type { InventoryHost } from './inventory.js';
import type { HostFacts } from './parse-probe.js';
import type { ProbeResult } from './probe.js';
import { probeScript } from './probe-script.js';

export const FACTS_PREFIX = 'facts/';
export const FACT_CACHE_VERSION = 1;
/** How far in the future a probe time may be (another machine's clock) before the entry is not believed. */
const CLOCK_SKEW_MS = 60_000;
const PROBE_DIGEST = sha256(probeScript).slice(0, 12);
const hostKeyRe = /^[A-Za-z0-9_.@=+-]+$/;

/** What the facts depend on besides the host. */
export interface FactInputs {
  data_path: string;
  /** Sorted, without duplicates: the software stack as the profile writes it. */
  packages: string[];
  /** A digest of the probe script that measured them. */
  probe: string;
}

export interface FactEntry {
  version: typeof FACT_CACHE_VERSION;
  host: string;
  address: string;
  probed_at: string;
  duration_ms: number;
  inputs: FactInputs;
  facts: HostFacts;
}

/** Facts read from the cache: the probe's result as it was, and how old it is now. */
export interface CachedFacts {
  result: Extract<ProbeResult, { ok: true }>;
  probedAt: string;
  ageMs: number;
}

export function factInputs(dataPath: string, packages: readonly string[]): FactInputs {
  return { data_path: dataPath, packages: [...new Set(packages)].sort(), probe: PROBE_DIGEST };
}

const inputsDigest = (i: FactInputs) =>
  sha256(JSON.stringify([i.data_path, i.packages, i.probe])).slice(0, 16);

/** facts/<host>/<digest>, or undefined for a host name that cannot be a store key segment (never cached). */
export function factKey(host: string, inputs: FactInputs): string | undefined {
  if (!hostKeyRe.test(host) || host === '.' || host === '..') return undefined;
  return `${FACTS_PREFIX}${host}/${inputsDigest(inputs)}`;
}

/**
 * Writes the facts of the hosts that answered, and drops the entries of those that did not (a host that stopped
 * answering must not keep ranking from its old facts). Skipped and interrupted hosts leave their entry as it is.
 * Batches of TXN_BATCH keys (a host's facts are 1-2 KiB: far below Consul's 512 KiB a transaction), one transaction each. Returns how many entries were written.
 */
export async function writeFacts(
  kv: KvBackend,
  results: readonly ProbeResult[],
  inputs: FactInputs,
  now: Date,
): Promise<number> {
  const puts: Array<{ key: string; value: string }> = [];
  const deletes: string[] = [];
  for (const r of results) {
    const key = factKey(r.host.name, inputs);
    if (!key) continue;
    if (r.ok) {
      if (r.cached) continue;
      const entry: FactEntry = {
        version: FACT_CACHE_VERSION,
        host: r.host.name,
        address: r.host.address,
        // When the probe ended; its facts were read during the last durationMs.
        probed_at: now.toISOString(),
        duration_ms: r.durationMs,
        inputs,
        facts: r.facts,
      };
      puts.push({ key, value: JSON.stringify(entry) });
    } else if (r.failure.kind !== 'skipped' && r.failure.kind !== 'cancelled') deletes.push(key);
  }
  const ops = [...puts.map((p) => ({ put: p })), ...deletes.map((d) => ({ del: d }))];
  for (let i = 0; i < ops.length; i += TXN_BATCH) {
    const batch = ops.slice(i, i + TXN_BATCH);
    const result = await kv.txn({
      puts: batch.flatMap((o) => ('put' in o ? [o.put] : [])),
      deletes: batch.flatMap((o) => ('del' in o ? [o.del] : [])),
    });
    if (!result.ok) throw new Error(`the store refused the fact cache: ${result.failed.join(', ')}`);
  }
  return puts.length;
}

export interface FreshFacts {
  /** Inventory host name -> its fresh facts. */
  fresh: Map<string, CachedFacts>;
  /** Why entries for these hosts and inputs were not used ("3 cached facts ignored: 1 unparsable, 2 older than 300 s"). */
  note?: string;
}

/**
 * The fresh facts of these hosts for these inputs, from one list of facts/. Fresh: probed at most maxAgeMs ago
 * (and not more than a minute in the future), for the host's current address, in this version's format.
 */
export async function readFreshFacts(
  kv: KvBackend,
  hosts: readonly InventoryHost[],
  inputs: FactInputs,
  options: { maxAgeMs: number; now: Date },
): Promise<FreshFacts> {
  const fresh = new Map<string, CachedFacts>();
  if (options.maxAgeMs <= 0 || hosts.length === 0) return { fresh };
  const wanted = new Map<string, InventoryHost>();
  for (const h of hosts) {
    const key = factKey(h.name, inputs);
    if (key) wanted.set(key, h);
  }
  const ignored = { unparsable: 0, old: 0, moved: 0 };
  const now = options.now.getTime();
  for (const e of await kv.list(FACTS_PREFIX)) {
    const host = wanted.get(e.key);
    if (!host) continue;
    const entry = parseEntry(e.value);
    if (!entry || entry.host !== host.name || !sameInputs(entry.inputs, inputs)) {
      ignored.unparsable++;
      continue;
    }
    if (entry.address !== host.address) {
      ignored.moved++;
      continue;
    }
    const ageMs = now - Date.parse(entry.probed_at);
    if (ageMs > options.maxAgeMs || ageMs < -CLOCK_SKEW_MS) {
      ignored.old++;
      continue;
    }
    fresh.set(host.name, {
      result: {
        host,
        ok: true,
        facts: entry.facts,
        durationMs: entry.duration_ms,
        cached: { probedAt: entry.probed_at, ageMs: Math.max(0, ageMs) },
      },
      probedAt: entry.probed_at,
      ageMs: Math.max(0, ageMs),
    });
  }
  const parts = [
    ignored.unparsable ? `${ignored.unparsable} unparsable` : '',
    ignored.old
      ? `${ignored.old} older than ${Math.round(options.maxAgeMs / 1000)} s (or from the future)`
      : '',
    ignored.moved ? `${ignored.moved} for another address` : '',
  ].filter(Boolean);
  const total = ignored.unparsable + ignored.old + ignored.moved;
  return parts.length
    ? {
        fresh,
        note: `${total} cached fact${total === 1 ? '' : 's'} ignored (${parts.join(', ')}); those hosts are probed`,
      }
    : { fresh };
}

const sameInputs = (a: FactInputs, b: FactInputs) =>
  a.data_path === b.data_path &&
  a.probe === b.probe &&
  a.packages.length === b.packages.length &&
  a.packages.every((p, i) => p === b.packages[i]);

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** The entry, or undefined unless it has this version's shape (enough of HostFacts for the broker to read). */
export function parseEntry(text: string): FactEntry | undefined {
  let e: Partial<FactEntry> | null;
  try {
    // Remote text once, and the store's since: a fact must not reach a terminal with control characters in it.
    e = JSON.parse(text, (_k, v) =>
      typeof v === 'string' ? stripTerminalControls(v) : v,
    ) as Partial<FactEntry> | null;
  } catch {
    return undefined;
  }
  if (!e || typeof e !== 'object' || e.version !== FACT_CACHE_VERSION) return undefined;
  if (typeof e.host !== 'string' || typeof e.address !== 'string' || !isNum(e.duration_ms)) return undefined;
  if (typeof e.probed_at !== 'string' || !Number.isFinite(Date.parse(e.probed_at))) return undefined;
  const i = e.inputs;
  if (!i || typeof i.data_path !== 'string' || typeof i.probe !== 'string' || !Array.isArray(i.packages))
    return undefined;
  const f = e.facts;
  if (
    !f ||
    typeof f !== 'object' ||
    typeof f.hostname !== 'string' ||
    !isNum(f.cores?.usable) ||
    !isNum(f.memory?.usableBytes) ||
    !isNum(f.storage?.freeBytes) ||
    !isNum(f.load1) ||
    !Array.isArray(f.packages?.requested) ||
    typeof f.os?.pretty !== 'string'
  )
    return undefined;
  return e as FactEntry;
}
