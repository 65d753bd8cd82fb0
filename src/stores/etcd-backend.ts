/**
 * etcd (v3 API, through its JSON gateway) as a persona store. Keys live under PREFIX/; version = mod_revision;
 * compare-and-set is a txn comparing mod_revision (create_revision = 0 for "must not exist"), and the failure
 * branch reads the checked keys back, so a refused txn names the keys that changed.
 *
 * Locks: a lease with the TTL, and one txn that creates PREFIX/locks/<name> (the LockInfo, attached to the lease)
 * only if its create_revision is 0, writes PREFIX/lock-last/<name> (the same record, no lease) and reads the
 * previous lock-last record, all at one revision. A lapsed lock vanishes with its lease, but its lock-last record
 * stays: finding one when taking a free lock means its holder never released it, which is reported as a takeover.
 * release() deletes both; the lease is kept alive every TTL/3.
 */
import { PersonaError } from '../errors.js';
import { EtcdApi, EtcdCallError, type EtcdCompare, type EtcdKv, type EtcdOp } from './etcd-api.js';
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
import type { EtcdTarget } from './store-url.js';

/** etcd's default --max-request-bytes (1.5 MiB) and --max-txn-ops. */
export const ETCD_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
export const ETCD_MAX_TXN_OPS = 128;
const LOCKS = 'locks/';
const LAST = 'lock-last/';

export class EtcdBackend implements KvBackend {
  readonly shared = true;
  readonly describe: string;
  private readonly renewals = new Set<Renewal>();

  constructor(
    private readonly api: EtcdApi,
    private readonly prefix: string,
    describe: string,
  ) {
    this.describe = describe;
  }

  static open(target: EtcdTarget): EtcdBackend {
    return new EtcdBackend(new EtcdApi(target.endpoints, target.timeoutMs), target.prefix, target.describe);
  }

  private path(key: string): string {
    assertKey(key);
    return `${this.prefix}/${key}`;
  }

  private toEntry(kv: EtcdKv): KvEntry {
    return {
      key: kv.key.slice(this.prefix.length + 1),
      value: kv.value,
      version: Number(kv.mod_revision),
      token: kv.mod_revision,
    };
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const [kv] = await this.attempt(`read ${key}`, () => this.api.range(this.path(key)));
    return kv ? this.toEntry(kv) : undefined;
  }

  async list(prefix: string): Promise<KvEntry[]> {
    if (prefix !== '') assertKey(prefix.replace(/\/$/, ''));
    const kvs = await this.attempt(`list ${prefix}`, () => this.api.range(`${this.prefix}/${prefix}`, true));
    return kvs.map((kv) => this.toEntry(kv));
  }

  async txn(txn: KvTxn): Promise<KvTxnResult> {
    const checks = txn.checks ?? [];
    for (const c of checks) {
      if (c.token !== null && !/^\d+$/.test(c.token)) return { ok: false, failed: [c.key] };
    }
    // etcd refuses a txn that both puts and deletes one key; the delete comes last, so it wins (as elsewhere).
    const deletes = [...new Set(txn.deletes ?? [])];
    const puts = new Map(
      (txn.puts ?? []).filter((p) => !deletes.includes(p.key)).map((p) => [p.key, p.value]),
    );
    const success: EtcdOp[] = [
      ...[...puts].map(([key, value]) => ({ request_put: { key: this.path(key), value } })),
      ...deletes.map((key) => ({ request_delete_range: { key: this.path(key) } })),
    ];
    if (checks.length === 0 && success.length === 0 && !txn.fence) return { ok: true };
    const fence = txn.fence ? this.path(`${LOCKS}${txn.fence.lock}`) : undefined;
    // A token that is not a revision can never be the lock key's create_revision.
    if (txn.fence && !/^[1-9]\d*$/.test(txn.fence.token)) {
      throw fenceLostError(txn.fence, this.describe, 'its fence token is not one of this store');
    }
    this.checkLimits(puts, checks.length + success.length + (fence ? 1 : 0));
    const compare: EtcdCompare[] = checks.map((c) =>
      c.token === null
        ? { key: this.path(c.key), target: 'CREATE' as const, create_revision: '0' }
        : { key: this.path(c.key), target: 'MOD' as const, mod_revision: c.token },
    );
    const failure: EtcdOp[] = checks.map((c) => ({ request_range: { key: this.path(c.key) } }));
    if (fence && txn.fence) {
      // The lock key as this holder created it: gone with its lease, or re-created by a new holder, it differs.
      compare.push({ key: fence, target: 'CREATE', create_revision: txn.fence.token });
      failure.push({ request_range: { key: fence } });
    }
    const keys = [...puts.keys(), ...deletes];
    const result = await this.attempt(`write ${keys.join(', ') || 'nothing'}`, () =>
      this.api.txn(compare, success, failure),
    );
    if (result.succeeded) return { ok: true };
    if (txn.fence && result.ranges[checks.length]?.[0]?.create_revision !== txn.fence.token) {
      throw fenceLostError(txn.fence, this.describe, 'its lock key is gone or was taken by another holder');
    }
    const failed = checks.filter((c, i) => (result.ranges[i]?.[0]?.mod_revision ?? null) !== c.token);
    return { ok: false, failed: (failed.length > 0 ? failed : checks).map((c) => c.key) };
  }

  private checkLimits(puts: Map<string, string>, ops: number): void {
    if (ops > ETCD_MAX_TXN_OPS) {
      throw new PersonaError(
        'E_STORE',
        `a transaction of ${ops} operations exceeds etcd's default limit of ${ETCD_MAX_TXN_OPS}: nothing was written to ${this.describe}`,
      );
    }
    let bytes = 0;
    for (const [key, value] of puts) bytes += Buffer.byteLength(value, 'utf8') + key.length + 64;
    if (bytes > ETCD_MAX_REQUEST_BYTES) {
      throw new PersonaError(
        'E_INPUT_TOO_LARGE',
        `writing ${[...puts.keys()].join(', ')} takes ${Math.ceil(bytes / 1024)} KiB; etcd accepts ${ETCD_MAX_REQUEST_BYTES / 1024} KiB per request (--max-request-bytes): nothing was written to ${this.describe}`,
        { hint: 'Make the profile smaller; keep large data out of it.' },
      );
    }
  }

  async acquireLock(name: string, info: LockInfo, options: LockOptions): Promise<LockHandle> {
    const key = this.path(`${LOCKS}${name}`);
    const last = this.path(`${LAST}${name}`);
    const clock = options.clock ?? systemClock;
    const sent = { mono: clock.monotonicMs(), wall: clock.wallMs() };
    const lease = await this.attempt(`grant a lease for lock ${name}`, () =>
      this.api.grant(Math.max(1, Math.ceil(options.ttlMs / 1000))),
    );
    const value = JSON.stringify(info);
    const taken = await this.attempt(`take lock ${name}`, () =>
      this.api.txn(
        [{ key, target: 'CREATE', create_revision: '0' }],
        [
          { request_range: { key: last } },
          { request_put: { key, value, lease: lease.id } },
          { request_put: { key: last, value } },
        ],
        [{ request_range: { key } }],
      ),
    ).catch(async (error: unknown) => {
      await this.api.revoke(lease.id).catch(() => undefined);
      throw error;
    });
    if (!taken.succeeded) {
      await this.api.revoke(lease.id).catch(() => undefined);
      const holder = taken.ranges[0]?.[0];
      const held = holder ? await this.held(name, holder) : undefined;
      if (held) throw lockHeldError(name, held, this.describe);
      throw new PersonaError(
        'E_LOCK_HELD',
        `${name} is locked in ${this.describe} by a record that is not persona's`,
      );
    }
    const previous = parseLockInfo(taken.ranges[0]?.[0]?.value);
    if (previous && !sameHolder(previous, info)) {
      options.onTakeover?.(
        { name, info: previous },
        'its lease expired without a release (its holder is gone)',
      );
    }
    // The lease's timer started when etcd granted it, after `sent`.
    const validity = new LockValidity(lease.ttlS * 1000, clock, sent);
    return this.keep(name, info, validity, { key, last, lease: lease.id, revision: taken.revision });
  }

  private keep(
    name: string,
    info: LockInfo,
    validity: LockValidity,
    lock: { key: string; last: string; lease: string; revision: string },
  ): LockHandle {
    const renewal = startRenewal(
      name,
      this.describe,
      validity.ttlMs * RENEWAL_FRACTION.etcd,
      validity,
      async () => {
        if ((await this.api.keepAlive(lock.lease)) <= 0) return 'its etcd lease expired';
        const [now] = await this.api.range(lock.key);
        if (!now || now.lease !== lock.lease) return 'the lock key is gone or belongs to another lease';
        return undefined;
      },
    );
    this.renewals.add(renewal);
    // The txn that took the lock created its key: its revision is the key's create_revision, the fence token.
    return lockHandle(name, info, lock.revision, renewal, async () => {
      this.renewals.delete(renewal);
      const mine = (key: string) => ({ key, target: 'MOD' as const, mod_revision: lock.revision });
      const del = (key: string) => ({ request_delete_range: { key } });
      try {
        const both = await this.api.txn(
          [mine(lock.key), mine(lock.last)],
          [del(lock.key), del(lock.last)],
          [],
        );
        // The lease lapsed but nobody took over: still clear the last-holder record, it is ours.
        if (!both.succeeded) await this.api.txn([mine(lock.last)], [del(lock.last)], []);
        await this.api.revoke(lock.lease);
      } catch {
        // Unreachable: the lease lapses by itself; the next holder is told it took over from us.
      }
    });
  }

  private async held(name: string, kv: EtcdKv): Promise<HeldLock | undefined> {
    const info = parseLockInfo(kv.value);
    if (!info) return undefined;
    const ttl = kv.lease ? await this.api.timeToLive(kv.lease).catch(() => -1) : -1;
    return {
      name,
      info,
      ...(ttl >= 0 ? { expires_at: new Date(Date.now() + ttl * 1000).toISOString() } : {}),
    };
  }

  async listLocks(): Promise<HeldLock[]> {
    const kvs = await this.attempt('list locks', () => this.api.range(`${this.prefix}/${LOCKS}`, true));
    const held = await Promise.all(
      kvs.map((kv) => this.held(kv.key.slice(this.prefix.length + 1 + LOCKS.length), kv)),
    );
    return held.filter((h): h is HeldLock => h !== undefined);
  }

  /** Stops keepalives without revoking leases: the locks lapse, as after a SIGKILL. */
  async close(): Promise<void> {
    for (const renewal of this.renewals) renewal.stop();
    this.renewals.clear();
  }

  private async attempt<T>(action: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.failure(action, error);
    }
  }

  private failure(action: string, error: unknown): PersonaError {
    if (error instanceof PersonaError) return error;
    if (!(error instanceof EtcdCallError)) {
      return new PersonaError('E_STORE', `store ${this.describe}: cannot ${action}: ${String(error)}`);
    }
    if (error.kind === 'rejected') {
      return new PersonaError('E_STORE', `store ${this.describe} refused to ${action}: ${error.detail}`);
    }
    const unknown = error.ambiguous
      ? ' (the request may or may not have been applied: read before retrying)'
      : '';
    return new PersonaError(
      'E_STORE_UNAVAILABLE',
      `store ${this.describe} is unavailable: cannot ${action}: ${error.detail}${unknown}`,
      {
        hint: 'Is etcd running and reachable? Check --store / PERSONA_STORE and ETCDCTL_ENDPOINTS (`etcdctl endpoint health`).',
      },
    );
  }
}
