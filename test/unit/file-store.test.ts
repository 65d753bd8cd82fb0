import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { FileBackend } from '../../src/stores/file-backend.js';
import { ProfileStore } from '../../src/stores/profile-store.js';
import { storeConformance } from '../conformance/store-conformance.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

const dirs = new Map<string, string>();
storeConformance('file', async (namespace) => {
  if (!dirs.has(namespace)) dirs.set(namespace, tempDir());
  return new FileBackend(dirs.get(namespace)!).open();
});

const meta = { author: 't@h', at: '2026-11-27T00:00:00Z' };

describe('file store specifics', () => {
  test('a writer killed while taking the txn lock never blocks the next one (torture run 28)', async () => {
    const dir = tempDir();
    const store = await new FileBackend(dir).open();
    const put = (value: string) => store.txn({ checks: [], puts: [{ key: 'runs/a', value }] });
    await put('1');
    const lock = join(dir, '.persona', 'txn.lock');
    // A persona killed between creating the lock file and writing it (what the old open-then-write left behind).
    writeFileSync(lock, '');
    const started = Date.now();
    await put('2');
    // Cleared after its short staleness, long before a waiter gives up (20 s).
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await store.get('runs/a'))?.value).toBe('2');
    // A killed holder that named itself: cleared at once (its pid is gone).
    writeFileSync(
      lock,
      `${JSON.stringify({ pid: 2 ** 22 + 1, host: (await import('node:os')).hostname(), at: Date.now() })}\n`,
    );
    const again = Date.now();
    await put('3');
    expect(Date.now() - again).toBeLessThan(1_000);
    // The lock appears atomically, with its content: no staging file is left behind.
    expect(readdirSync(join(dir, '.persona')).filter((f) => f.startsWith('txn.lock'))).toEqual([]);
  }, 20_000);

  test('a transaction cut short by a crash is rolled back by the next one', async () => {
    const dir = tempDir();
    const kv = await new FileBackend(dir).open();
    await kv.txn({ puts: [{ key: 'runs/a', value: 'old' }] });
    const before = (await kv.get('runs/a'))!;
    // What a crash after the first of two writes leaves: the write-ahead file saying what runs/a and runs/b
    // were, and runs/a already changed.
    const wal = join(dir, '.persona', 'txn.wal');
    const meta = readFileSync(join(dir, '.persona', 'meta', 'runs', 'a.json'), 'utf8');
    writeFileSync(
      wal,
      JSON.stringify([
        { key: 'runs/a', content: 'old', mode: 0o600, meta },
        { key: 'runs/b', content: null, mode: 0o600, meta: null },
      ]),
    );
    writeFileSync(join(dir, '.persona', 'data', 'runs', 'a'), 'new');
    expect(await kv.txn({ puts: [{ key: 'runs/c', value: 'c' }] })).toEqual({ ok: true });
    expect(await kv.get('runs/a')).toEqual(before);
    expect(await kv.get('runs/b')).toBeUndefined();
    expect((await kv.get('runs/c'))?.value).toBe('c');
    expect(existsSync(wal)).toBe(false);
  });

  test('a missing directory is a clear error naming the store', async () => {
    await expect(new FileBackend('/nonexistent/persona').open()).rejects.toMatchObject({
      code: 'E_STORE_UNAVAILABLE',
      message: expect.stringContaining('file:/nonexistent/persona'),
    });
  });

  test('profiles stay plain files, exactly as written; the schema file is not a profile', async () => {
    const dir = copyOfProfiles();
    const store = new ProfileStore(await new FileBackend(dir).open());
    expect((await store.list()).map((p) => p.id)).toEqual(['billing-api', 'demo-web', 'orders-db']);
    const current = (await store.get('demo-web'))!;
    const text = current.text.replace('"required_cores": 1', '"required_cores": 2');
    await store.put('demo-web', text, { token: current.token }, meta);
    expect(readFileSync(join(dir, 'demo-web.json'), 'utf8')).toBe(text);
  });

  test('a hand edit counts as a new version, and the next write keeps it in the history', async () => {
    const dir = copyOfProfiles();
    const store = new ProfileStore(await new FileBackend(dir).open());
    const v0 = (await store.get('demo-web'))!;
    const v1 = await store.put(
      'demo-web',
      v0.text.replace('"required_cores": 1', '"required_cores": 2'),
      { token: v0.token },
      meta,
    );
    const hand = v1.text.replace('"required_storage_gb": 1', '"required_storage_gb": 2');
    writeFileSync(join(dir, 'demo-web.json'), hand);
    const v2 = (await store.get('demo-web'))!;
    expect(v2.version).toBe(v1.version + 1);
    await expect(store.put('demo-web', v1.text, { token: v1.token }, meta)).rejects.toMatchObject({
      code: 'E_CONFLICT',
    });
    const v3 = await store.put('demo-web', v1.text, { token: v2.token }, meta);
    expect(v3.version).toBe(v2.version + 1);
    expect((await store.version('demo-web', v2.version))?.text).toBe(hand);
  });

  test('content written without its meta (a crash between the two) reads as the next version', async () => {
    const dir = tempDir();
    const kv = await new FileBackend(dir).open();
    await kv.txn({ puts: [{ key: 'runs/r', value: 'a' }] });
    const before = (await kv.get('runs/r'))!;
    writeFileSync(join(dir, '.persona', 'data', 'runs', 'r'), 'b');
    const after = (await kv.get('runs/r'))!;
    expect(after.version).toBe(before.version + 1);
    await kv.txn({ checks: [{ key: 'runs/r', token: after.token }], puts: [{ key: 'runs/r', value: 'c' }] });
    expect((await kv.get('runs/r'))!.version).toBe(after.version + 1);
  });

  test('internal files are private (0600) and no temp files are left behind', async () => {
    const dir = tempDir();
    const kv = await new FileBackend(dir).open();
    await kv.txn({ puts: [{ key: 'runs/secret-ish', value: '{}' }] });
    expect(statSync(join(dir, '.persona', 'data', 'runs', 'secret-ish')).mode & 0o777).toBe(0o600);
    const leftovers = readdirSync(join(dir, '.persona', 'data', 'runs')).filter((n) => n.endsWith('.tmp'));
    expect(leftovers).toEqual([]);
  });

  test('keys that could escape the directory are refused', async () => {
    const kv = await new FileBackend(tempDir()).open();
    await expect(kv.get('../etc/passwd')).rejects.toThrow(/invalid store key/);
    await expect(kv.txn({ puts: [{ key: 'runs/../../x', value: '' }] })).rejects.toThrow(/invalid store key/);
  });
});
