/**
 * The local directory store. Profiles are plain files, `<dir>/<id>.json`, exactly as their author wrote them, so
 * the directory stays readable and diffable in git. Everything else persona keeps (versions, history, locks,
 * assignments) lives under `<dir>/.persona/`.
 *
 * Versions: `.persona/meta/<key>.json` records the version and hash of the last content persona wrote. Content
 * whose hash differs (edited by hand, or written by a transaction that crashed before its meta) counts as the
 * next version, so versions only move forward and a crash never makes a version go back.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { PersonaError } from '../errors.js';
import { sha256 } from '../util/hash.js';
import { processAlive } from '../util/process.js';
import { writeFileAtomic } from './atomic-file.js';
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
import { acquireKvLock, checkKvFence, listKvLocks } from './kv-lock.js';

const PROFILE_PREFIX = 'profiles/';
const TXN_LOCK_STALE_MS = 30_000;
const TXN_LOCK_WAIT_MS = 20_000;
/**
 * An empty or unreadable txn.lock (left by a persona older than the atomic link below, killed between creating
 * and writing it) is stale after this long: well inside TXN_LOCK_WAIT_MS, so a waiter never gives up on it.
 */
const TXN_LOCK_EMPTY_STALE_MS = 2_000;

interface Meta {
  version: number;
  sha256: string;
}

/** What a transaction saved of one key before changing it: file texts, null when the file was absent. */
interface SavedKey {
  key: string;
  content: string | null;
  mode: number;
  meta: string | null;
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

/** Absent, or cannot exist (a parent of the path is a file). */
function isAbsent(error: unknown): boolean {
  return isMissing(error) || (error as NodeJS.ErrnoException)?.code === 'ENOTDIR';
}

export class FileBackend implements KvBackend {
  readonly describe: string;
  readonly shared = false;
  private readonly internal: string;
  private readonly renewing = new Set<() => void>();

  constructor(
    private readonly dir: string,
    describe = `file:${dir}`,
  ) {
    this.describe = describe;
    this.internal = join(dir, '.persona');
  }

  /** Fails with a clear message when the directory is not there. */
  async open(): Promise<this> {
    try {
      const info = await stat(this.dir);
      if (!info.isDirectory()) throw new Error('not a directory');
    } catch (error) {
      throw new PersonaError(
        'E_STORE_UNAVAILABLE',
        `store ${this.describe}: ${this.dir} is not a directory`,
        {
          hint: 'Pass --store file:DIR with an existing directory, or set PERSONA_STORE.',
          cause: error,
        },
      );
    }
    return this;
  }

  private contentPath(key: string): string {
    assertKey(key);
    if (key.startsWith(PROFILE_PREFIX) && !key.slice(PROFILE_PREFIX.length).includes('/')) {
      return join(this.dir, `${key.slice(PROFILE_PREFIX.length)}.json`);
    }
    return join(this.internal, 'data', key);
  }

  private metaPath(key: string): string {
    return join(this.internal, 'meta', `${key}.json`);
  }

  private async readMeta(key: string): Promise<Meta> {
    try {
      return JSON.parse(await readFile(this.metaPath(key), 'utf8')) as Meta;
    } catch (error) {
      if (isMissing(error) || error instanceof SyntaxError) return { version: 0, sha256: '' };
      throw error;
    }
  }

  async get(key: string): Promise<KvEntry | undefined> {
    let value: string;
    try {
      value = await readFile(this.contentPath(key), 'utf8');
    } catch (error) {
      if (isAbsent(error)) return undefined;
      throw this.storeError(`cannot read ${key}`, error);
    }
    const meta = await this.readMeta(key);
    const hash = sha256(value);
    const version = meta.sha256 === hash ? meta.version : meta.version + 1;
    return { key, value, version, token: `${version}:${hash}` };
  }

  async list(prefix: string): Promise<KvEntry[]> {
    const keys = prefix === PROFILE_PREFIX ? await this.profileKeys() : await this.walk(prefix);
    const entries = await Promise.all(keys.sort().map((k) => this.get(k)));
    return entries.filter((e): e is KvEntry => e !== undefined);
  }

  private async profileKeys(): Promise<string[]> {
    const names = await readdir(this.dir).catch((error) => {
      throw this.storeError('cannot list profiles', error);
    });
    return names
      .filter((n) => n.endsWith('.json') && !n.startsWith('.') && !n.endsWith('.schema.json'))
      .map((n) => `${PROFILE_PREFIX}${n.slice(0, -'.json'.length)}`);
  }

  private async walk(prefix: string): Promise<string[]> {
    const root = join(this.internal, 'data');
    const start = join(root, prefix.replace(/\/$/, ''));
    const out: string[] = [];
    const visit = async (dir: string): Promise<void> => {
      let names: import('node:fs').Dirent[];
      try {
        names = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw error;
      }
      for (const d of names) {
        if (d.name.startsWith('.')) continue;
        const path = join(dir, d.name);
        if (d.isDirectory()) await visit(path);
        else out.push(relative(root, path));
      }
    };
    await visit(start);
    return out.filter((k) => k.startsWith(prefix));
  }

  async txn(txn: KvTxn): Promise<KvTxnResult> {
    for (const k of [
      ...(txn.checks ?? []).map((c) => c.key),
      ...(txn.puts ?? []).map((p) => p.key),
      ...(txn.deletes ?? []),
    ]) {
      assertKey(k);
    }
    const release = await this.lockDirectory();
    try {
      await this.rollBackUnfinished();
      if (txn.fence) await checkKvFence(this, txn.fence);
      const failed: string[] = [];
      for (const check of txn.checks ?? []) {
        const current = await this.get(check.key);
        if ((current?.token ?? null) !== check.token) failed.push(check.key);
      }
      if (failed.length > 0) return { ok: false, failed };
      await this.applyAll(txn);
      return { ok: true };
    } catch (error) {
      throw this.storeError('transaction failed', error);
    } finally {
      await release();
    }
  }

  private walPath(): string {
    return join(this.internal, 'txn.wal');
  }

  /**
   * Applies every write or none: the files the txn touches are saved first, with their meta, in a write-ahead
   * file (fsynced); a failed write (ENOSPC, a key that is a directory) restores them before the error is thrown,
   * and a crash leaves the file for the next transaction to restore from.
   */
  private async applyAll(txn: KvTxn): Promise<void> {
    const keys = [...new Set([...(txn.puts ?? []).map((p) => p.key), ...(txn.deletes ?? [])])];
    if (keys.length === 0) return;
    const undo = await Promise.all(keys.map((key) => this.saved(key)));
    await writeFileAtomic(this.walPath(), `${JSON.stringify(undo)}\n`);
    try {
      await this.apply(txn);
    } catch (error) {
      await this.restore(undo);
      throw error;
    }
    await rm(this.walPath(), { force: true });
  }

  // Content first, meta after: a crash in between leaves content whose version reads as the next one.
  private async apply(txn: KvTxn): Promise<void> {
    const metas: Array<[string, Meta]> = [];
    for (const put of txn.puts ?? []) {
      const before = await this.get(put.key);
      const base = before ? before.version : (await this.readMeta(put.key)).version;
      const path = this.contentPath(put.key);
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const mode = put.key.startsWith(PROFILE_PREFIX) ? await existingMode(path, 0o644) : 0o600;
      await writeFileAtomic(path, put.value, mode);
      metas.push([put.key, { version: base + 1, sha256: sha256(put.value) }]);
    }
    for (const key of txn.deletes ?? []) {
      const before = await this.get(key);
      if (!before) continue;
      await rm(this.contentPath(key), { force: true });
      metas.push([key, { version: before.version, sha256: '' }]);
    }
    for (const [key, meta] of metas) {
      await mkdir(dirname(this.metaPath(key)), { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.metaPath(key), `${JSON.stringify(meta)}\n`);
    }
  }

  /** A key's content and meta files as they are now (null: absent), to put back if the txn fails. */
  private async saved(key: string): Promise<SavedKey> {
    const read = (path: string) =>
      readFile(path, 'utf8').catch((error: unknown) => {
        if (isAbsent(error)) return null;
        throw error;
      });
    const path = this.contentPath(key);
    return {
      key,
      content: await read(path),
      mode: await existingMode(path, 0o600),
      meta: await read(this.metaPath(key)),
    };
  }

  private async restore(undo: SavedKey[]): Promise<void> {
    const put = async (path: string, text: string | null, mode: number) => {
      if (text === null) {
        return await rm(path, { force: true }).catch((error: unknown) => {
          if (!isAbsent(error)) throw error;
        });
      }
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFileAtomic(path, text, mode);
    };
    for (const saved of undo) {
      await put(this.contentPath(saved.key), saved.content, saved.mode);
      await put(this.metaPath(saved.key), saved.meta, 0o600);
    }
    await rm(this.walPath(), { force: true });
  }

  /** A transaction that crashed while applying left its write-ahead file: put back what it had started to change. */
  private async rollBackUnfinished(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.walPath(), 'utf8');
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    let undo: SavedKey[];
    try {
      undo = JSON.parse(text) as SavedKey[];
    } catch {
      // Cut short while being written (it is written atomically, so only by hand): nothing was applied yet.
      return await rm(this.walPath(), { force: true });
    }
    await this.restore(undo);
  }

  /** A short-lived exclusive lock on the whole directory, held only for the length of one transaction. */
  private async lockDirectory(): Promise<() => Promise<void>> {
    const path = join(this.internal, 'txn.lock');
    await mkdir(this.internal, { recursive: true, mode: 0o700 });
    const me = `${JSON.stringify({ pid: process.pid, host: hostname(), at: Date.now(), nonce: randomBytes(4).toString('hex') })}\n`;
    const deadline = Date.now() + TXN_LOCK_WAIT_MS;
    // The lock file appears with its content, atomically (link fails if it exists): a writer killed at any moment
    // leaves either no lock or a lock that names it (a dead pid is cleared at once), never an empty one.
    const staged = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
    await writeFile(staged, me, { mode: 0o600 });
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await link(staged, path);
          return async () => {
            const now = await readFile(path, 'utf8').catch(() => '');
            if (now === me) await rm(path, { force: true });
          };
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
        await this.clearStaleLock(path);
        if (Date.now() > deadline) {
          throw new PersonaError(
            'E_STORE',
            `store ${this.describe} is busy: ${path} is held by another writer`,
            {
              hint: 'Retry; if no persona process is running, remove the lock file.',
            },
          );
        }
        await new Promise((r) => setTimeout(r, Math.min(50, 2 + attempt) + Math.random() * 5));
      }
    } finally {
      await rm(staged, { force: true });
    }
  }

  private async clearStaleLock(path: string): Promise<void> {
    let holder: { pid?: number; host?: string; at?: number };
    try {
      holder = JSON.parse(await readFile(path, 'utf8'));
    } catch {
      // Empty or half-written: only an older persona killed between creating and writing it leaves one.
      const info = await stat(path).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs > TXN_LOCK_EMPTY_STALE_MS) await rm(path, { force: true });
      return;
    }
    const sameHost = holder.host === hostname();
    const dead = sameHost && typeof holder.pid === 'number' && !processAlive(holder.pid);
    const old = typeof holder.at === 'number' && Date.now() - holder.at > TXN_LOCK_STALE_MS;
    if (dead || old) await rm(path, { force: true });
  }

  private storeError(what: string, error: unknown): PersonaError {
    if (error instanceof PersonaError) return error;
    const reason =
      (error as NodeJS.ErrnoException)?.code ?? (error instanceof Error ? error.message : String(error));
    return new PersonaError('E_STORE', `store ${this.describe}: ${what}: ${reason}`, { cause: error });
  }

  async acquireLock(name: string, info: LockInfo, options: LockOptions): Promise<LockHandle> {
    const lock = await acquireKvLock(this, name, info, options);
    this.renewing.add(lock.abandon);
    return lock.handle;
  }

  listLocks(): Promise<HeldLock[]> {
    return listKvLocks(this);
  }

  /** Stops renewing this handle's locks without releasing them: they lapse, as after a crash. */
  async close(): Promise<void> {
    for (const stop of this.renewing) stop();
    this.renewing.clear();
  }
}

async function existingMode(path: string, fallback: number): Promise<number> {
  try {
    return (await stat(path)).mode & 0o777;
  } catch {
    return fallback;
  }
}
