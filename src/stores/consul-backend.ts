/**
 * Consul KV as a persona store. Keys live under PREFIX/; version = ModifyIndex; writes go through /v1/txn with
 * check-index / check-not-exists, so a transaction applies whole or not at all.
 *
 * Locks: one Consul session per lock (TTL, lock-delay, behavior "release"), taken with the txn `lock` verb on
 * PREFIX/locks/<name> holding the LockInfo JSON, guarded by a check on the exact entry read just before, so the
 * value it replaces is known. The session is renewed every TTL/2. When a holder dies, Consul invalidates its
 * session, releases the key and keeps its value: the next acquirer reads that value and reports the takeover.
 * A clean release (`?release`) replaces the value with a release marker, so it is not reported as a takeover.
 */
import { readFile } from 'node:fs/promises';
import { PersonaError } from '../errors.js';
import { ConsulApi, ConsulCallError, type ConsulKvEntry, type ConsulTxnOp } from './consul-api.js';
import { checkTxnLimits, consulFailure } from './consul-errors.js';
import {
  assertKey,
  type HeldLock,
  type KvBackend,
  type KvEntry,
  type KvTxn,
  type KvTxnResult,
  type LockHandle,
  type LockInfo,
  type LockOptions,
} from './kv.js';
import { lockHeldError } from './kv-lock.js';
import {
  fenceLostError,
  lockHandle,
  parseLockInfo,
  RENEWAL_FRACTION,
  type Renewal,
  sameHolder,
  startRenewal,
} from './lock-renewal.js';
import { LockValidity, systemClock } from './lock-validity.js';
import type { ConsulTarget } from './store-url.js';

const LOCK_DELAY_MAX_S = 15;
const LOCKS = 'locks/';

export class ConsulBackend implements KvBackend {
  readonly shared = true;
  readonly describe: string;
  private readonly renewals = new Set<Renewal>();
  /** The shortest session TTL the agent accepted (learned from its refusal of a shorter one). */
  private minTtlS = 0;

  constructor(
    private readonly api: ConsulApi,
    private readonly target: ConsulTarget,
  ) {
    this.describe = target.describe;
  }

  static async open(target: ConsulTarget): Promise<ConsulBackend> {
    return new ConsulBackend(await connectConsul(target), target);
  }

  /** The agent's API, for the catalog (inventory, traffic) when this is the store. */
  get consulApi(): ConsulApi {
    return this.api;
  }

  get consulTarget(): ConsulTarget {
    return this.target;
  }

  private path(key: string): string {
    assertKey(key);
    return `${this.target.prefix}/${key}`;
  }

  private toEntry(raw: ConsulKvEntry): KvEntry {
    const key = raw.Key.slice(this.target.prefix.length + 1);
    return { key, value: raw.Value, version: raw.ModifyIndex, token: String(raw.ModifyIndex) };
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const raw = await this.attempt(`read ${key}`, () => this.api.get(this.path(key)));
    return raw ? this.toEntry(raw) : undefined;
  }

  async list(prefix: string): Promise<KvEntry[]> {
    if (prefix !== '') assertKey(prefix.replace(/\/$/, ''));
    const raw = await this.attempt(`list ${prefix}`, () => this.api.list(`${this.target.prefix}/${prefix}`));
    return raw.map((e) => this.toEntry(e)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async txn(txn: KvTxn): Promise<KvTxnResult> {
    const checks = txn.checks ?? [];
    // A token that is not a ModifyIndex (e.g. from another store) can never match.
    const foreign = checks.filter((c) => c.token !== null && !/^[1-9]\d*$/.test(c.token));
    if (foreign.length > 0) return { ok: false, failed: foreign.map((c) => c.key) };
    const ops: ConsulTxnOp[] = [
      ...checks.map(
        (c): ConsulTxnOp =>
          c.token === null
            ? { Verb: 'check-not-exists', Key: this.path(c.key) }
            : { Verb: 'check-index', Key: this.path(c.key), Index: Number(c.token) },
      ),
      // The fence right after the checks: a write applies only while the lock's key is held by its session.
      ...(txn.fence
        ? [
            {
              Verb: 'check-session',
              Key: this.path(`${LOCKS}${txn.fence.lock}`),
              Session: txn.fence.token,
            } as const,
          ]
        : []),
      ...(txn.puts ?? []).map((p): ConsulTxnOp => ({ Verb: 'set', Key: this.path(p.key), Value: p.value })),
      ...(txn.deletes ?? []).map((k): ConsulTxnOp => ({ Verb: 'delete', Key: this.path(k) })),
    ];
    if (ops.length === 0) return { ok: true };
    checkTxnLimits(this.describe, txn, ops);
    const keys = [...new Set([...(txn.puts ?? []).map((p) => p.key), ...(txn.deletes ?? [])])];
    const outcome = await this.attempt(`write ${keys.join(', ') || 'nothing'}`, () => this.api.txn(ops));
    if (outcome.ok) return { ok: true };
    const fenceAt = checks.length;
    if (txn.fence && outcome.errors.some((e) => e.OpIndex === fenceAt)) {
      throw fenceLostError(txn.fence, this.describe, 'its Consul session no longer holds the lock key');
    }
    const failed = outcome.errors.filter((e) => e.OpIndex < checks.length).map((e) => checks[e.OpIndex]!.key);
    if (failed.length > 0) return { ok: false, failed };
    const what = outcome.errors.map((e) => e.What).join('; ');
    throw new PersonaError(
      'E_STORE',
      `store ${this.describe} refused a transaction on ${keys.join(', ')}: ${what}`,
    );
  }

  async acquireLock(name: string, info: LockInfo, options: LockOptions): Promise<LockHandle> {
    const key = this.path(`${LOCKS}${name}`);
    const current = await this.attempt(`read lock ${name}`, () => this.api.get(key));
    if (current?.Session) throw this.heldError(name, current);
    const clock = options.clock ?? systemClock;
    const sent = { mono: clock.monotonicMs(), wall: clock.wallMs() };
    const { id, ttlS } = await this.createSession(name, options.ttlMs);
    const guard: ConsulTxnOp = current
      ? { Verb: 'check-index', Key: key, Index: current.ModifyIndex }
      : { Verb: 'check-not-exists', Key: key };
    const taken = await this.attempt(`take lock ${name}`, () =>
      this.api.txn([guard, { Verb: 'lock', Key: key, Value: JSON.stringify(info), Session: id }]),
    ).catch(async (error: unknown) => {
      await this.api.destroySession(id).catch(() => undefined);
      throw error;
    });
    if (!taken.ok) {
      await this.api.destroySession(id).catch(() => undefined);
      if (taken.errors.some((e) => /lock.delay/i.test(e.What))) throw this.lockDelayError(name, current);
      const now = await this.attempt(`read lock ${name}`, () => this.api.get(key));
      if (now?.Session) throw this.heldError(name, now);
      throw new PersonaError(
        'E_LOCK_HELD',
        `${name} was locked by someone else at the same moment in ${this.describe}`,
        {
          hint: 'Retry in a moment.',
        },
      );
    }
    const previous = parseLockInfo(current?.Value);
    if (previous && !sameHolder(previous, info)) {
      options.onTakeover?.(
        { name, info: previous },
        "its holder's Consul session expired without releasing it",
      );
    }
    // The session's TTL timer started when Consul created it, after `sent`.
    return this.keep(name, info, key, id, new LockValidity(ttlS * 1000, clock, sent));
  }

  private keep(
    name: string,
    info: LockInfo,
    key: string,
    session: string,
    validity: LockValidity,
  ): LockHandle {
    const renewal = startRenewal(
      name,
      this.describe,
      validity.ttlMs * RENEWAL_FRACTION.consul,
      validity,
      async () => {
        if (!(await this.api.renewSession(session))) return 'its Consul session ended (expired or destroyed)';
        const now = await this.api.get(key);
        if (now?.Session !== session) return 'the lock key is no longer held by this session';
        return undefined;
      },
    );
    this.renewals.add(renewal);
    return lockHandle(name, info, session, renewal, async () => {
      this.renewals.delete(renewal);
      const marker = JSON.stringify({ holder: info.holder, released_at: new Date().toISOString() });
      await this.api.release(key, session, marker).catch(() => false);
      await this.api.destroySession(session).catch(() => undefined);
    });
  }

  /** TTL rounded up to whole seconds and to what the agent accepts (10 s in Consul unless configured lower). */
  private async createSession(name: string, ttlMs: number): Promise<{ id: string; ttlS: number }> {
    let ttlS = Math.max(1, Math.ceil(ttlMs / 1000), this.minTtlS);
    for (let attempt = 0; ; attempt++) {
      const spec = {
        name: `persona lock ${name}`,
        ttl: `${ttlS}s`,
        lockDelay: `${Math.min(ttlS, LOCK_DELAY_MAX_S)}s`,
        behavior: 'release' as const,
      };
      try {
        return { id: await this.api.createSession(spec), ttlS };
      } catch (error) {
        const min = error instanceof ConsulCallError ? minimumTtl(error.detail) : undefined;
        if (attempt > 0 || min === undefined || min <= ttlS)
          throw consulFailure(this.target, `create a session for lock ${name}`, error);
        this.minTtlS = min;
        ttlS = min;
      }
    }
  }

  async listLocks(): Promise<HeldLock[]> {
    const entries = await this.attempt('list locks', () => this.api.list(`${this.target.prefix}/${LOCKS}`));
    return entries.flatMap((e) => {
      const info = e.Session ? parseLockInfo(e.Value) : undefined;
      return info ? [{ name: e.Key.slice(this.target.prefix.length + 1 + LOCKS.length), info }] : [];
    });
  }

  /** Stops renewing without destroying sessions: the locks lapse, as after a SIGKILL. */
  async close(): Promise<void> {
    for (const renewal of this.renewals) renewal.stop();
    this.renewals.clear();
    this.api.close();
  }

  private heldError(name: string, entry: ConsulKvEntry): PersonaError {
    const info = parseLockInfo(entry.Value);
    if (info) return lockHeldError(name, { name, info }, this.describe);
    return new PersonaError(
      'E_LOCK_HELD',
      `${name} is locked in ${this.describe} by a session that is not persona's (${entry.Session})`,
    );
  }

  private lockDelayError(name: string, previous: ConsulKvEntry | undefined): PersonaError {
    const info = parseLockInfo(previous?.Value);
    const who = info ? ` by ${info.holder} (pid ${info.pid} on ${info.host})` : '';
    return new PersonaError(
      'E_LOCK_HELD',
      `${name} was held${who} until its Consul session ended moments ago; Consul's lock-delay keeps it for a few more seconds in ${this.describe}`,
      {
        hint: 'Retry in a few seconds; the lock can then be taken over.',
        details: { lock: name, lock_delay: true },
      },
    );
  }

  private async attempt<T>(action: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw consulFailure(this.target, action, error);
    }
  }
}

/** Consul's refusal "Invalid Session TTL '1000000000', must be between [10s=24h0m0s]" gives its minimum. */
function minimumTtl(detail: string): number | undefined {
  const m = /must be between \[(?:(\d+)m)?(\d+(?:\.\d+)?)s=/.exec(detail);
  if (!m) return undefined;
  return Math.ceil(Number(m[1] ?? 0) * 60 + Number(m[2]));
}

/** A connection to the agent a target names (reading its CA file first). */
export async function connectConsul(target: ConsulTarget): Promise<ConsulApi> {
  let ca: Buffer | undefined;
  if (target.caFile) {
    ca = await readFile(target.caFile).catch((error: NodeJS.ErrnoException) => {
      throw new PersonaError(
        'E_USAGE',
        `cannot read CONSUL_CACERT ${target.caFile}: ${error.code ?? error.message}`,
        {
          hint: 'Point CONSUL_CACERT at the PEM file of the CA that signed the Consul agent certificate.',
        },
      );
    });
  }
  const api = new ConsulApi({
    host: target.host,
    port: target.port,
    secure: target.secure,
    timeoutMs: target.timeoutMs,
    ...(target.token ? { token: target.token } : {}),
    ...(ca ? { ca } : {}),
  });
  return api;
}
