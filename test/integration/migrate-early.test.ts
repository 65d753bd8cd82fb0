/**
 * migrate's early copy, for real (rsync, chown, a manifest on both ends) onto a `connection: local` target: the
 * contents phase leaves the copy root-only, the owners phase gives it the source's owners and modes.
 */
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { LocalTransport } from '../../src/hosts/local-transport.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import type { StepContext } from '../../src/runbook/types.js';
import { migrateStep } from '../../src/steps/migrate.js';
import { repoRoot } from '../helpers/cli.js';
import { testJournal } from '../helpers/journal.js';
import { tempDir } from '../helpers/tmp.js';

const NOBODY = 65534;

describe.runIf(process.getuid?.() === 0)('the early copy in two phases (root: it sets owners)', () => {
  test('contents: every entry root-only (0700 directories, 0600 files); owners: the source owners and modes; then nothing left', async () => {
    const dir = tempDir('persona-early-');
    const backup = join(dir, 'backup');
    const data = join(dir, 'target', 'data');
    mkdirSync(join(backup, 'sub'), { recursive: true });
    writeFileSync(join(backup, 'a.txt'), 'alpha\n');
    writeFileSync(join(backup, 'sub', 'b.bin'), Buffer.alloc(4096, 7));
    for (const [path, mode] of [
      [backup, 0o755],
      [join(backup, 'sub'), 0o750],
      [join(backup, 'a.txt'), 0o644],
      [join(backup, 'sub', 'b.bin'), 0o640],
    ] as const) {
      chownSync(path, NOBODY, NOBODY);
      chmodSync(path, mode);
    }
    const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
    raw.data = { paths: [data], migration: 'rsync', backup: { path: backup } };
    raw.security_profile = { users: [], groups: [], encryption_keys: [] };
    const profile = validateProfileValue('demo-web.json', raw, 'demo-web');
    const here: InventoryHost = {
      name: 'here',
      address: '10.9.9.9',
      labels: {},
      apps: [],
      connection: 'local',
    };
    const journal = testJournal();
    const ctx = {
      journal,
      profile,
      failed: { name: 'gone', address: '10.9.9.8', labels: {}, apps: [] },
      target: here,
      ssh: new LocalTransport(),
      signal: new AbortController().signal,
      stateDir: join(dir, 'state'),
      env: process.env,
      log: () => {},
      checkpoint: async () => {},
      assertHeld: () => {},
      findHost: () => here,
      previous: () => undefined,
    } as unknown as StepContext;
    const [contents, owners] = migrateStep.early!;
    const mode = (p: string) => statSync(p).mode & 0o7777;
    const owner = (p: string) => [statSync(p).uid, statSync(p).gid];

    const first = await contents!.plan(ctx);
    expect(first.actions.map((a) => a.id)).toEqual([`content:${data}`]);
    for (const a of first.actions) await a.apply(ctx);
    expect(readFileSync(join(data, 'a.txt'), 'utf8')).toBe('alpha\n');
    for (const [p, m] of [
      [data, 0o700],
      [join(data, 'sub'), 0o700],
      [join(data, 'a.txt'), 0o600],
      [join(data, 'sub', 'b.bin'), 0o600],
    ] as const) {
      expect([p, mode(p)]).toEqual([p, m]);
      expect(owner(p)).toEqual([0, 0]);
    }
    // The contents are there: a second contents plan copies nothing.
    expect((await contents!.plan(ctx)).actions).toEqual([]);

    const second = await owners!.plan(ctx);
    expect(second.actions.map((a) => a.id)).toEqual([`copy:${data}`]);
    for (const a of second.actions) await a.apply(ctx);
    for (const [p, m] of [
      [data, 0o755],
      [join(data, 'sub'), 0o750],
      [join(data, 'a.txt'), 0o644],
      [join(data, 'sub', 'b.bin'), 0o640],
    ] as const) {
      expect([p, mode(p)]).toEqual([p, m]);
      expect(owner(p)).toEqual([NOBODY, NOBODY]);
    }
    expect((await owners!.plan(ctx)).actions).toEqual([]);
  });
});
