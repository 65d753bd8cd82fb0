/**
 * localManifest hashes a tree on this machine once per process while its signature (treeSignature: every entry's
 * type, mode, owners, size, inode, mtime and ctime) stays the same; any change to a file's contents, even one that
 * keeps its size and puts its mtime back, changes its ctime and so the signature, and the tree is hashed again.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { localManifest, treeSignature } from '../../src/runbook/remote.js';

const root = mkdtempSync(join(tmpdir(), 'persona-manifest-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function tree(name: string): string {
  const dir = join(root, name);
  mkdirSync(join(dir, 'sub'), { recursive: true });
  writeFileSync(join(dir, 'a.txt'), 'alpha\n');
  writeFileSync(join(dir, 'sub', 'b.bin'), Buffer.alloc(4096, 7));
  return dir;
}

const tick = () => new Promise((r) => setTimeout(r, 20));

describe('treeSignature', () => {
  test('is stable while nothing changes', async () => {
    const dir = tree('stable');
    expect(await treeSignature(dir)).toBe(await treeSignature(dir));
  });

  test('changes when contents change with the same size and the old mtime put back', async () => {
    const dir = tree('same-size');
    const file = join(dir, 'a.txt');
    // A whole second, which utimes sets exactly (a Date would lose the nanoseconds).
    utimesSync(file, 1_700_000_000, 1_700_000_000);
    const before = await treeSignature(dir);
    const mtimeNs = statSync(file, { bigint: true }).mtimeNs;
    await tick();
    writeFileSync(file, 'ALPHA\n');
    utimesSync(file, 1_700_000_000, 1_700_000_000);
    expect(statSync(file, { bigint: true }).mtimeNs).toBe(mtimeNs);
    expect(await treeSignature(dir)).not.toBe(before);
  });

  test('changes with a mode, a new entry or a removed one', async () => {
    const dir = tree('shape');
    const s0 = await treeSignature(dir);
    chmodSync(join(dir, 'a.txt'), 0o600);
    const s1 = await treeSignature(dir);
    writeFileSync(join(dir, 'sub', 'c'), '');
    const s2 = await treeSignature(dir);
    rmSync(join(dir, 'sub', 'c'));
    const s3 = await treeSignature(dir);
    expect(new Set([s0, s1, s2, s3]).size).toBe(4);
  });
});

describe('localManifest', () => {
  test('gives the same manifest again for an unchanged tree, and a new one after a change', async () => {
    const dir = tree('manifest');
    const initial = await localManifest(dir);
    expect(initial.files).toBe(2);
    expect(initial.bytes).toBe(6 + 4096);
    expect(await localManifest(dir)).toEqual(initial);
    const file = join(dir, 'a.txt');
    utimesSync(file, 1_700_000_000, 1_700_000_000);
    const first = await localManifest(dir);
    await tick();
    writeFileSync(file, 'ALPHA\n');
    utimesSync(file, 1_700_000_000, 1_700_000_000);
    const second = await localManifest(dir);
    expect(second.bytes).toBe(first.bytes);
    expect(second.digest).not.toBe(first.digest);
    expect(second.meta).toBe(first.meta);
  });

  test('two trees with the same contents have the same manifest (the cache is by tree, not shared)', async () => {
    const a = tree('twin-a');
    const b = tree('twin-b');
    const ma = await localManifest(a);
    const mb = await localManifest(b);
    expect(mb.digest).toBe(ma.digest);
    writeFileSync(join(b, 'a.txt'), 'other\n');
    expect((await localManifest(b)).digest).not.toBe(ma.digest);
    expect((await localManifest(a)).digest).toBe(ma.digest);
  });
});
