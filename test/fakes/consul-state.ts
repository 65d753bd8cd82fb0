// The fake agent's state store: one Raft-like index shared by every write,
// KV entries with tombstones, sessions, lock-delays and the catalog tables.
// KV and session rules follow hashicorp/consul agent/consul/state/kvs.go and
// session.go; every record is immutable and replaced on change, so a
// transaction can roll back by restoring shallow copies of the maps.

export interface KvEntry {
  readonly Key: string;
  readonly Value: Buffer | null;
  readonly Flags: number;
  readonly Session: string;
  readonly LockIndex: number;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

export type KvInput = Pick<KvEntry, 'Key' | 'Value' | 'Flags'> &
  Partial<Pick<KvEntry, 'Session' | 'LockIndex'>>;

export interface SessionRecord {
  readonly ID: string;
  readonly Name: string;
  readonly Node: string;
  /** Nanoseconds, as Consul serialises time.Duration. */
  readonly LockDelay: number;
  readonly Behavior: 'release' | 'delete';
  readonly TTL: string;
  readonly NodeChecks: readonly string[];
  readonly ServiceChecks: readonly { ID: string; Namespace?: string }[];
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

export interface NodeRecord {
  readonly ID: string;
  readonly Node: string;
  readonly Address: string;
  readonly Datacenter: string;
  readonly TaggedAddresses: Record<string, string> | null;
  readonly Meta: Record<string, string> | null;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

export interface ServiceRecord {
  readonly ID: string;
  readonly Service: string;
  readonly Tags: readonly string[];
  readonly Address: string;
  readonly Meta: Record<string, string>;
  readonly Port: number;
  readonly Weights: { Passing: number; Warning: number };
  readonly EnableTagOverride: boolean;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

export interface CheckRecord {
  readonly Node: string;
  readonly CheckID: string;
  readonly Name: string;
  readonly Status: string;
  readonly Notes: string;
  readonly Output: string;
  readonly ServiceID: string;
  readonly ServiceName: string;
  readonly ServiceTags: readonly string[];
  readonly Type: string;
  readonly Definition: Record<string, unknown>;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** structs.MaxLockDelay: a session's lock-delay is capped when it is applied. */
const MAX_LOCK_DELAY_MS = 60_000;

type Tables = Pick<
  ConsulState,
  | 'index'
  | 'kv'
  | 'tombstones'
  | 'kvTableIndex'
  | 'sessions'
  | 'sessionsTableIndex'
  | 'lockDelays'
  | 'nodes'
  | 'services'
  | 'checks'
  | 'catalogTableIndex'
>;

export class ConsulState {
  /** The Raft index: bumped by every write, never reused. */
  index = 10;
  kv = new Map<string, KvEntry>();
  /** Deleted keys (or deleted prefixes) and the index of their deletion. */
  tombstones = new Map<string, number>();
  kvTableIndex = 0;
  sessions = new Map<string, SessionRecord>();
  sessionsTableIndex = 0;
  /** Key -> epoch ms until which ?acquire and the txn "lock" verb are refused. */
  lockDelays = new Map<string, number>();
  nodes = new Map<string, NodeRecord>();
  services = new Map<string, Map<string, ServiceRecord>>();
  checks = new Map<string, Map<string, CheckRecord>>();
  catalogTableIndex = 0;
  private readonly waiters = new Set<() => void>();

  /** Applies one write at a fresh index, then wakes blocking queries. */
  apply<T>(write: (idx: number) => T): T {
    this.index += 1;
    try {
      return write(this.index);
    } finally {
      this.notify();
    }
  }

  /** Like apply(), but nothing is kept if the write throws (a rolled-back transaction). */
  applyAtomic<T>(write: (idx: number) => T): T {
    const saved = this.snapshot();
    return this.apply((idx) => {
      try {
        return write(idx);
      } catch (err) {
        Object.assign(this, saved);
        throw err;
      }
    });
  }

  waitForCommit(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Wakes every blocking query, e.g. when the agent stops. */
  notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  kvGet(key: string): { index: number; entry: KvEntry | undefined } {
    const entry = this.kv.get(key);
    return { index: entry ? entry.ModifyIndex : this.kvTableIndex, entry };
  }

  /** kvsListTxn: the index is the highest ModifyIndex or tombstone under the prefix. */
  kvList(prefix: string): { index: number; entries: KvEntry[] } {
    const entries = [...this.kv.values()].filter((e) => e.Key.startsWith(prefix));
    entries.sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : 0));
    let index = Math.max(0, ...entries.map((e) => e.ModifyIndex));
    if (prefix === '') index = this.kvTableIndex;
    for (const [key, deleted] of this.tombstones) {
      if (prefix !== '' && key.startsWith(prefix)) index = Math.max(index, deleted);
    }
    return { index: index || this.kvTableIndex, entries };
  }

  /** kvsSetTxn: keeps CreateIndex (and Session unless told otherwise); an identical write changes nothing. */
  kvSet(idx: number, input: KvInput, updateSession: boolean): KvEntry {
    const existing = this.kv.get(input.Key);
    const entry: KvEntry = {
      Key: input.Key,
      Value: input.Value && input.Value.length > 0 ? input.Value : null,
      Flags: input.Flags,
      Session: updateSession ? (input.Session ?? '') : (existing?.Session ?? ''),
      LockIndex: input.LockIndex ?? 0,
      CreateIndex: existing?.CreateIndex ?? idx,
      ModifyIndex: idx,
    };
    if (existing && sameEntry(existing, entry)) return existing;
    this.kv.set(entry.Key, entry);
    this.kvTableIndex = idx;
    return entry;
  }

  kvDelete(idx: number, key: string): void {
    if (!this.kv.delete(key)) return;
    this.tombstones.set(key, idx);
    this.kvTableIndex = idx;
  }

  /** A prefix delete leaves one tombstone for the prefix (none for the whole tree). */
  kvDeleteTree(idx: number, prefix: string): void {
    let deleted = false;
    for (const key of [...this.kv.keys()]) {
      if (key.startsWith(prefix)) deleted = this.kv.delete(key) || deleted;
    }
    if (!deleted) return;
    if (prefix !== '') this.tombstones.set(prefix, idx);
    this.kvTableIndex = idx;
  }

  lockDelayed(key: string): boolean {
    const until = this.lockDelays.get(key);
    return until !== undefined && until > Date.now();
  }

  /**
   * deleteSessionTxn: held locks are released (or their keys deleted) and each
   * of those keys gets the session's lock-delay, for destroy and expiry alike.
   */
  destroySession(idx: number, id: string): boolean {
    const session = this.sessions.get(id);
    if (!session) return false;
    this.sessions.delete(id);
    this.sessionsTableIndex = idx;
    const delayMs = Math.min(session.LockDelay / 1e6, MAX_LOCK_DELAY_MS);
    const now = Date.now();
    for (const entry of [...this.kv.values()].filter((e) => e.Session === id)) {
      if (session.Behavior === 'delete') this.kvDelete(idx, entry.Key);
      else this.kvSet(idx, { ...entry, Session: '' }, true);
      if (delayMs > 0) this.lockDelays.set(entry.Key, now + delayMs);
    }
    return true;
  }

  /** Sessions die with their node, or when one of their checks goes critical or away. */
  invalidateSessions(idx: number, node: string, checkId?: string): void {
    for (const session of [...this.sessions.values()]) {
      if (session.Node !== node) continue;
      const uses =
        checkId === undefined ||
        session.NodeChecks.includes(checkId) ||
        session.ServiceChecks.some((c) => c.ID === checkId);
      if (uses) this.destroySession(idx, session.ID);
    }
  }

  private snapshot(): Omit<Tables, 'index'> {
    const copyNested = <V>(m: Map<string, Map<string, V>>): Map<string, Map<string, V>> =>
      new Map([...m].map(([k, inner]) => [k, new Map(inner)]));
    return {
      kv: new Map(this.kv),
      tombstones: new Map(this.tombstones),
      kvTableIndex: this.kvTableIndex,
      sessions: new Map(this.sessions),
      sessionsTableIndex: this.sessionsTableIndex,
      lockDelays: new Map(this.lockDelays),
      nodes: new Map(this.nodes),
      services: copyNested(this.services),
      checks: copyNested(this.checks),
      catalogTableIndex: this.catalogTableIndex,
    };
  }
}

function sameEntry(a: KvEntry, b: KvEntry): boolean {
  const sameValue = a.Value === null || b.Value === null ? a.Value === b.Value : a.Value.equals(b.Value);
  return a.LockIndex === b.LockIndex && a.Flags === b.Flags && a.Session === b.Session && sameValue;
}

/** DirEntry as Consul marshals it: Value base64 (null when empty), Session omitted when unset. */
export function entryJson(entry: KvEntry, withValue = true): Record<string, unknown> {
  return {
    LockIndex: entry.LockIndex,
    Key: entry.Key,
    Flags: entry.Flags,
    Value: withValue && entry.Value ? entry.Value.toString('base64') : null,
    ...(entry.Session ? { Session: entry.Session } : {}),
    CreateIndex: entry.CreateIndex,
    ModifyIndex: entry.ModifyIndex,
  };
}
