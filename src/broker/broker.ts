/**
 * The broker: which hosts can take an application, in which order, and why not the others. Pure functions over
 * the profile's requirements and the probe results. Every rejection carries its numbers and what would make the
 * host pass; every score carries its breakdown.
 */
import type { InventoryHost } from '../hosts/inventory.js';
import type { HostFacts, PackageFact } from '../hosts/parse-probe.js';
import type { ProbeResult } from '../hosts/probe.js';
import { parsePackageSpec, satisfies } from '../profile/package-spec.js';
import type { Profile } from '../profile/schema.js';
import type { HostHistory } from './history.js';

export type Strategy = 'best-fit' | 'spread' | 'most-free';
export const strategies: Strategy[] = ['best-fit', 'spread', 'most-free'];

const GiB = 1024 ** 3;

export interface Requirements {
  app: string;
  cores: number;
  ramBytes: number;
  storageBytes: number;
  dataPath: string;
  /** data.migration: `snapshot` needs the data path on btrfs on the target. */
  dataMigration: Profile['data']['migration'];
  packages: string[];
  hostLabels: Record<string, string>;
}

export function requirementsOf(profile: Profile): Requirements {
  return {
    app: profile.id,
    cores: profile.required_cores,
    ramBytes: Math.round(profile.required_ram_gb * GiB),
    storageBytes: profile.required_storage_gb * GiB,
    dataPath: profile.data.paths[0] ?? '/',
    dataMigration: profile.data.paths.length > 0 ? profile.data.migration : 'none',
    packages: profile.software_stack,
    hostLabels: profile.host_labels ?? {},
  };
}

export type ReasonCode =
  | 'failed-host'
  | 'excluded'
  | 'unreachable'
  | 'labels'
  | 'cores'
  | 'memory'
  | 'storage'
  | 'filesystem'
  | 'software';

export interface Reason {
  code: ReasonCode;
  message: string;
  /** What would make the host pass. */
  fix?: string;
}

export interface SoftwareFit {
  present: string[];
  /** Not installed (or another version), and the host's sources offer what is wanted. */
  toInstall: string[];
  /** Not installed and the host cannot say whether its sources offer it (no package lists yet). */
  unknown: string[];
  unavailable: string[];
  /**
   * Exact pins the host's sources no longer offer, with the version they do offer (a stale pin: the repository
   * moved on to a newer point release).
   */
  stale?: Array<{ spec: string; offered: string }>;
}

export interface ScoreBreakdown {
  components: Record<string, number>;
  weights: Record<string, number>;
  total: number;
}

export interface RankedHost {
  host: string;
  address: string;
  verdict: 'eligible' | 'rejected';
  rank?: number;
  reasons: Reason[];
  /** What the ranking could not check on an eligible host, and why it is not rejected for it. */
  notes?: string[];
  /** What the host's history costs it, in points of the score, and why: "lab-3 −20: 2 failed validations in …". */
  history?: string;
  score?: ScoreBreakdown;
  facts?: {
    cores: number;
    ramGiB: number;
    freeStorageGiB: number;
    storageMount: string;
    load1: number;
    os: string;
  };
  software?: SoftwareFit;
  /** The facts came from the fact cache (hosts/fact-cache.ts), probed this long ago; absent: probed now. */
  cachedFacts?: { probedAt: string; ageS: number };
}

export interface RankOptions {
  strategy?: Strategy;
  failedHost?: string;
  exclude?: readonly string[];
  /** Inventory host name -> applications assigned there (for `spread`). */
  assignments?: ReadonlyMap<string, readonly string[]>;
  /** Inventory host name -> what was seen of the application there lately (broker/history.ts); absent: no penalty. */
  history?: ReadonlyMap<string, HostHistory>;
}

export const gib = (bytes: number) => Number((bytes / GiB).toFixed(2));
const fmt = (bytes: number) => `${gib(bytes)} GiB`;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * How the host meets the software stack. `stack` is software_stack as the profile writes it: the probe asks about
 * exact pins (name=version) and plain names; a glob or a minimum is matched here against what the host has and
 * what its sources offer, as its package manager orders versions.
 */
export function softwareFit(
  packages: readonly PackageFact[],
  facts: HostFacts,
  stack: readonly string[] = [],
): SoftwareFit {
  const fit: SoftwareFit = { present: [], toInstall: [], unknown: [], unavailable: [] };
  const manager = facts.packages.manager;
  for (const p of packages) {
    const written = stack.find((s) => parsePackageSpec(s)?.query === p.name);
    const spec = written ?? (p.wanted ? `${p.name}=${p.wanted}` : p.name);
    const parsed = parsePackageSpec(spec) ?? { name: p.name, query: p.name };
    const ok = (version: string | undefined) => satisfies(parsed, version, manager);
    if (ok(p.installed)) fit.present.push(spec);
    else if (manager === 'none') fit.unavailable.push(spec);
    else if (
      parsed.op === '='
        ? p.wantedAvailable === true || (p.candidate !== undefined && p.candidate === parsed.version)
        : ok(p.candidate)
    )
      fit.toInstall.push(spec);
    else if (manager !== 'dpkg' || facts.packages.aptLists === 0) fit.unknown.push(spec);
    else {
      fit.unavailable.push(spec);
      if (parsed.op === '=' && p.candidate) {
        fit.stale ??= [];
        fit.stale.push({ spec, offered: p.candidate });
      }
    }
  }
  return fit;
}

function hardFilters(
  req: Requirements,
  host: InventoryHost,
  facts: HostFacts,
  software: SoftwareFit,
): Reason[] {
  const reasons: Reason[] = [];
  for (const [key, value] of Object.entries(req.hostLabels)) {
    const has = host.labels[key];
    if (has !== value) {
      reasons.push({
        code: 'labels',
        message: `label ${key}=${has ?? '(none)'}, needs ${key}=${value}`,
        fix: `label the host ${key}=${value}, or drop host_labels.${key} from the profile`,
      });
    }
  }
  if (facts.cores.usable < req.cores) {
    reasons.push({
      code: 'cores',
      message: `cores ${facts.cores.usable} < ${req.cores} required${facts.cores.quota !== undefined ? ` (CPU quota ${facts.cores.quota.toFixed(2)})` : ''}`,
      fix: `needs ${plural(req.cores - facts.cores.usable, 'more core')}`,
    });
  }
  if (facts.memory.usableBytes < req.ramBytes) {
    const limit = facts.memory.limitBytes !== undefined ? ' (cgroup limit)' : '';
    reasons.push({
      code: 'memory',
      message: `RAM ${fmt(facts.memory.usableBytes)}${limit} < ${fmt(req.ramBytes)} required`,
      fix: `needs ${fmt(req.ramBytes - facts.memory.usableBytes)} more usable memory`,
    });
  }
  if (facts.storage.freeBytes < req.storageBytes) {
    reasons.push({
      code: 'storage',
      message: `free storage on ${facts.storage.mount || facts.storage.checked} ${fmt(facts.storage.freeBytes)} < ${fmt(req.storageBytes)} required`,
      fix: `free ${fmt(req.storageBytes - facts.storage.freeBytes)} more on ${facts.storage.mount || facts.storage.checked}`,
    });
  }
  const fs = filesystemReason(req, host.name, facts);
  if (fs) reasons.push(fs);
  if (software.unavailable.length > 0) {
    const stale = software.stale ?? [];
    const pinFix = stale.map(({ spec, offered }) => `${parsePackageSpec(spec)?.query}=${offered}`);
    reasons.push({
      code: 'software',
      message: `not available from the host's package sources: ${software.unavailable
        .map((spec) => {
          const s = stale.find((x) => x.spec === spec);
          return s ? `${spec} (a stale pin: the sources offer ${s.offered})` : spec;
        })
        .join(', ')}`,
      fix:
        stale.length > 0 && stale.length === software.unavailable.length
          ? `pin the version the sources offer: ${pinFix.join(', ')} in software_stack (or a glob like ${globOf(stale[0]!)})`
          : `${stale.length > 0 ? `pin ${pinFix.join(', ')} in software_stack; for the others, ` : ''}add a package source that offers them, or relax the versions in software_stack`,
    });
  }
  return reasons;
}

/**
 * data.migration snapshot receives the snapshot next to the data path: its nearest existing parent must be on
 * btrfs. A probe that did not say (an older persona, stat failing) is not a reason: the migrate step checks again.
 */
function filesystemReason(req: Requirements, host: string, facts: HostFacts): Reason | undefined {
  if (req.dataMigration !== 'snapshot' || facts.storage.fsType === undefined) return undefined;
  if (facts.storage.fsType === 'btrfs') return undefined;
  const { path, checked, fsType } = facts.storage;
  const where = path || req.dataPath;
  return {
    code: 'filesystem',
    message: `${host}:${where} is on ${fsType}${checked && checked !== where ? ` (its parent ${checked} is)` : ''}, not btrfs: data.migration snapshot receives btrfs snapshots there`,
    fix: `put ${where} on a btrfs subvolume on ${host}, or use data.migration rsync`,
  };
}

/** Why the ranking could not check a requirement on a host it does not reject. */
function notesFor(req: Requirements, facts: HostFacts): string[] {
  if (req.dataMigration === 'snapshot' && facts.storage.fsType === undefined)
    return [
      `the probe did not say which filesystem ${facts.storage.path || req.dataPath} is on: btrfs is checked at migrate`,
    ];
  return [];
}

/** `redis-server=5:7.0.15-1~deb12u*` for a stale `redis-server=5:7.0.15-1~deb12u1`: the same release, any update. */
function globOf(stale: { spec: string }): string {
  const p = parsePackageSpec(stale.spec);
  const version = (p?.version ?? '').replace(/\d+$/, '*');
  return `${p?.query}=${version.endsWith('*') ? version : `${version}*`}`;
}

/**
 * Each strategy's weights, summing to 1 (a total of 0..100). `history` (recent failures of the application on the
 * host) weighs 0.2 in every strategy; the others keep their proportions in the remaining 0.8.
 */
export const weightsFor: Record<Strategy, Record<string, number>> = {
  'best-fit': { fit: 0.4, software: 0.24, load: 0.16, history: 0.2 },
  'most-free': { free: 0.4, software: 0.24, load: 0.16, history: 0.2 },
  spread: { spread: 0.32, free: 0.16, software: 0.16, load: 0.16, history: 0.2 },
};

/** Components are all 0..1, higher is better. */
export function scoreHost(
  req: Requirements,
  facts: HostFacts,
  software: SoftwareFit,
  assigned: number,
  strategy: Strategy,
  history = 1,
): ScoreBreakdown {
  const slack = (have: number, need: number) =>
    have <= 0 ? 0 : Math.max(0, Math.min(1, (have - need) / have));
  const slacks = [slack(facts.cores.usable, req.cores), slack(facts.memory.usableBytes, req.ramBytes)];
  if (req.storageBytes > 0) slacks.push(slack(facts.storage.freeBytes, req.storageBytes));
  const meanSlack = slacks.reduce((a, b) => a + b, 0) / slacks.length;
  const wanted = req.packages.length;
  const all: Record<string, number> = {
    fit: 1 - meanSlack,
    free: meanSlack,
    software: wanted === 0 ? 1 : software.present.length / wanted,
    load: 1 - Math.min(1, facts.load1 / Math.max(1, facts.cores.online)),
    spread: 1 / (1 + assigned),
    history: Math.max(0, Math.min(1, history)),
  };
  const weights = weightsFor[strategy];
  const components: Record<string, number> = {};
  let total = 0;
  for (const [name, weight] of Object.entries(weights)) {
    components[name] = round(all[name]!, 3);
    total += weight * all[name]!;
  }
  return { components, weights, total: round(total * 100, 1) };
}

const round = (n: number, digits: number) => Number(n.toFixed(digits));

/** "lab-3 −20: 2 failed validations in the last 7 days": the points the history takes off the total, and why. */
function historyLine(host: string, past: HostHistory | undefined, score: ScoreBreakdown): string | undefined {
  if (!past?.reason) return undefined;
  const points = round((score.weights.history ?? 0) * (1 - (score.components.history ?? 1)) * 100, 1);
  return points > 0 ? `${host} −${points}: ${past.reason}` : undefined;
}

export function rankHosts(
  req: Requirements,
  results: readonly ProbeResult[],
  options: RankOptions = {},
): RankedHost[] {
  const strategy = options.strategy ?? 'best-fit';
  const excluded = new Set(options.exclude ?? []);
  const ranked: RankedHost[] = results.map((r) => {
    const base = {
      host: r.host.name,
      address: r.host.address,
      ...(r.ok && r.cached
        ? { cachedFacts: { probedAt: r.cached.probedAt, ageS: Math.round(r.cached.ageMs / 1000) } }
        : {}),
    };
    const reasons: Reason[] = [];
    if (r.host.name === options.failedHost || r.host.address === options.failedHost) {
      reasons.push({ code: 'failed-host', message: 'this is the failed host' });
    }
    if (excluded.has(r.host.name))
      reasons.push({
        code: 'excluded',
        message: 'excluded by --exclude',
        fix: `drop --exclude ${r.host.name}`,
      });
    if (!r.ok) {
      if (r.failure.kind !== 'skipped') {
        reasons.push({
          code: 'unreachable',
          message: r.failure.message,
          ...(r.failure.hint ? { fix: r.failure.hint } : {}),
        });
      }
      return { ...base, verdict: 'rejected', reasons };
    }
    const { facts } = r;
    const software = softwareFit(facts.packages.requested, facts, req.packages);
    reasons.push(...hardFilters(req, r.host, facts, software));
    const summary = {
      cores: facts.cores.usable,
      ramGiB: gib(facts.memory.usableBytes),
      freeStorageGiB: gib(facts.storage.freeBytes),
      storageMount: facts.storage.mount,
      load1: facts.load1,
      os: facts.os.pretty,
    };
    if (reasons.length > 0) return { ...base, verdict: 'rejected', reasons, facts: summary, software };
    const notes = notesFor(req, facts);
    const assigned = options.assignments?.get(r.host.name)?.length ?? r.host.apps.length;
    const past = options.history?.get(r.host.name);
    const score = scoreHost(req, facts, software, assigned, strategy, past?.score);
    const history = historyLine(r.host.name, past, score);
    return {
      ...base,
      verdict: 'eligible',
      reasons,
      ...(notes.length > 0 ? { notes } : {}),
      ...(history ? { history } : {}),
      facts: summary,
      software,
      score,
    };
  });
  const eligible = ranked
    .filter((h) => h.verdict === 'eligible')
    .sort((a, b) => b.score!.total - a.score!.total || a.host.localeCompare(b.host));
  eligible.forEach((h, i) => {
    h.rank = i + 1;
  });
  const rejected = ranked
    .filter((h) => h.verdict === 'rejected')
    .sort((a, b) => a.host.localeCompare(b.host));
  return [...eligible, ...rejected];
}
