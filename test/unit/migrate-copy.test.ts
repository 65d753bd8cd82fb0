import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import type { ExecResult, SshTarget } from '../../src/hosts/ssh.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import { localManifest, parseOwners } from '../../src/runbook/remote.js';
import type { StepContext } from '../../src/runbook/types.js';
import { backupLayout, copyDiff, migrateStep, spaceShortfall } from '../../src/steps/migrate.js';
import { repoRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

describe('the manifest covers owners and modes, not only contents', () => {
  function tree(): string {
    const dir = tempDir('persona-manifest-');
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'a.txt'), 'alpha\n');
    writeFileSync(join(dir, 'b.txt'), 'beta\n');
    return dir;
  }

  test('a changed mode changes the manifest; the content digest stays', async () => {
    const dir = tree();
    const before = await localManifest(dir);
    chmodSync(join(dir, 'b.txt'), 0o600);
    const after = await localManifest(dir);
    expect(after.digest).toBe(before.digest);
    expect(after).not.toEqual(before);
  });

  test.runIf(process.getuid?.() === 0)('a changed owner changes the manifest', async () => {
    const dir = tree();
    const before = await localManifest(dir);
    chownSync(join(dir, 'sub', 'a.txt'), 65534, 65534);
    expect(await localManifest(dir)).not.toEqual(before);
  });

  test('parseOwners groups paths by owner:group (NUL-separated, any byte in names)', () => {
    const text = 'root:root\0.\0app:app\0./a b\0app:app\0./x\ny\0';
    expect(Object.fromEntries(parseOwners(text))).toEqual({
      'root:root': ['.'],
      'app:app': ['./a b', './x\ny'],
    });
  });
});

const host = (name: string): InventoryHost => ({ name, address: name, labels: {}, apps: [] });
const ok = (stdout = ''): ExecResult => ({ exitCode: 0, stdout, stderr: '', durationMs: 1 });

/**
 * Host to host, the failed host answering with the data: its manifest says `sourceBytes`, the target has no copy
 * and a petabyte free; rsync's remote shell is `false`, so a copy that gets as far as rsync fails there.
 */
function hostToHost(sourceBytes: number): StepContext {
  const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
  const profile = validateProfileValue('demo-web.json', raw, 'demo-web');
  const run = async (t: SshTarget, argv: readonly string[]) => {
    if (argv.includes('persona-manifest'))
      return ok(t.name === 'web-1' ? `3 ${sourceBytes} ${'d'.repeat(64)} ${'m'.repeat(64)}` : 'absent');
    if (argv.includes('persona-df')) return ok('/dev/x 1 1 999999999999 1% /srv');
    return ok();
  };
  return {
    journal: { run_id: 'r1', options: { force_no_fence: false, strategy: 'best-fit' }, steps: [] } as never,
    profile,
    failed: host('web-1'),
    target: host('web-2'),
    ssh: {
      exec: async () => ok(),
      run,
      rsyncShell: async (t: SshTarget) => ({ rsh: 'false', host: t.name }),
    } as never,
    signal: new AbortController().signal,
    stateDir: tempDir('persona-state-'),
    env: process.env,
    findHost: host,
    previous: () => undefined,
    checkpoint: async () => {},
    log: () => {},
    now: () => new Date(),
  } as Partial<StepContext> as StepContext;
}

async function onlyAction(ctx: StepContext) {
  const plan = await migrateStep.plan(ctx);
  expect(plan.blocked).toBeUndefined();
  expect(plan.actions).toHaveLength(1);
  return plan.actions[0]!;
}

describe('host-to-host staging on this machine', () => {
  test('a copy larger than the staging area stops before pulling, naming the staging area', async () => {
    const ctx = hostToHost(500 * 1024 ** 4);
    const copy = await onlyAction(ctx);
    await expect(copy.apply(ctx)).rejects.toThrow(/staging area .* GiB free; the copy needs/);
  });

  test('staging is removed after a failed copy', async () => {
    const ctx = hostToHost(1024);
    const copy = await onlyAction(ctx);
    await expect(copy.apply(ctx)).rejects.toThrow(/rsync exited/);
    expect(existsSync(join(ctx.stateDir, 'staging', 'r1'))).toBe(false);
  });
});

describe('copyDiff and spaceShortfall', () => {
  const m = (digest: string, meta: string) => ({ files: 1, bytes: 1, digest, meta });
  test('why a copy is planned', () => {
    expect(copyDiff(m('a', 'x'), undefined, 'web-2')).toBe('absent on web-2');
    expect(copyDiff(m('a', 'x'), m('b', 'x'), 'web-2')).toBe('contents differ');
    expect(copyDiff(m('a', 'x'), m('a', 'y'), 'web-2')).toBe('owners or modes differ');
    expect(copyDiff(m('a', 'x'), m('a', 'x'), 'web-2')).toBeUndefined();
  });

  test('paths on one filesystem add up; another filesystem has its own room', () => {
    const GiB = 1024 ** 3;
    const needs = [
      { path: '/srv/a', mount: '/srv', free: 3 * GiB, needed: 2 * GiB },
      { path: '/srv/b', mount: '/srv', free: 3 * GiB, needed: 2 * GiB },
      { path: '/var/c', mount: '/var', free: 1 * GiB, needed: 0.5 * GiB },
    ];
    expect(spaceShortfall('web-2', needs)).toBe('web-2:/srv has 3.00 GiB free; /srv/a, /srv/b need 4.00 GiB');
    expect(spaceShortfall('web-2', [needs[0]!, needs[2]!])).toBeUndefined();
  });
});

/**
 * Both ends on this machine: "ssh" runs the command here, and rsync's remote shell drops the host name and runs
 * the rest, as ssh would. The backup is on an inventory host (backup-1), so the copy is staged.
 */
function bothEndsHere() {
  const dir = tempDir('persona-migrate-');
  const source = join(dir, 'source');
  const target = join(dir, 'target');
  mkdirSync(join(source, 'sub'), { recursive: true });
  writeFileSync(join(source, 'a.txt'), 'alpha\n');
  writeFileSync(join(source, 'sub', 'b.txt'), 'beta\n'.repeat(1000));
  chmodSync(join(source, 'a.txt'), 0o640);
  const rsh = join(dir, 'rsh');
  writeFileSync(rsh, '#!/bin/sh\nshift\nexec sh -c "$*"\n', { mode: 0o755 });
  const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
  raw.data = { paths: [target], migration: 'rsync', backup: { host: 'backup-1', path: source } };
  const profile = validateProfileValue('demo-web.json', raw, 'demo-web');
  const exec = async (_t: SshTarget, argv: readonly string[], options: { input?: string } = {}) => {
    const r = await execa(argv[0]!, argv.slice(1), { reject: false, input: options.input ?? '' });
    return { exitCode: r.exitCode ?? 1, stdout: String(r.stdout), stderr: String(r.stderr), durationMs: 1 };
  };
  const checkpoints: string[] = [];
  const ctx = {
    journal: {
      run_id: 'r1',
      options: { force_no_fence: false, strategy: 'best-fit', data_from: 'backup' },
      steps: [],
    } as never,
    profile,
    failed: host('web-1'),
    target: host('web-2'),
    ssh: {
      exec,
      run: async (t: SshTarget, argv: readonly string[], options?: { input?: string }) => {
        const r = await exec(t, argv, options);
        if (r.exitCode !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
        return r;
      },
      rsyncShell: async (t: SshTarget) => ({ rsh, host: t.name }),
    } as never,
    signal: new AbortController().signal,
    stateDir: join(dir, 'state'),
    env: process.env,
    findHost: host,
    previous: () => undefined,
    checkpoint: async (name: string) => {
      checkpoints.push(name);
    },
    log: () => {},
    now: () => new Date(),
  } as Partial<StepContext> as StepContext;
  return { ctx, source, target, checkpoints };
}

describe.runIf(process.getuid?.() === 0)('a copy to convergence, both ends on this machine', () => {
  test('planned, applied (staged, then removed), planned again: nothing left; the conclusion reads the manifests', async () => {
    const { ctx, target, checkpoints } = bothEndsHere();
    const copy = await onlyAction(ctx);
    expect(copy.title).toMatch(
      /^copy from backup-1:\S+ \(backup\): \S+\/target \(0\.0 MiB, 2 files; absent on web-2\)$/,
    );
    const out = await copy.apply(ctx);
    expect(checkpoints).toEqual(['after-pull', 'after-copy']);
    expect(existsSync(join(ctx.stateDir, 'staging', 'r1'))).toBe(false);
    expect(readFileSync(join(target, 'sub', 'b.txt'), 'utf8')).toBe('beta\n'.repeat(1000));

    const final = await migrateStep.plan(ctx);
    expect(final.actions).toEqual([]);
    expect(final.notes[1]).toMatch(/target: 2 files, .*the same contents, owners and modes as the source/);
    const outputs = await migrateStep.conclude(ctx, { plan: final, applied: new Map([[copy.id, out!]]) });
    expect(outputs).toMatchObject({
      source: { kind: 'backup-host', host: 'backup-1', why: expect.stringContaining('as asked') },
      transfers: [{ path: target, transferred_bytes: expect.any(Number) }],
      verified: [{ path: target, files: 2, bytes: 5006 }],
    });
    expect((outputs.transfers as Array<{ transferred_bytes: number }>)[0]!.transferred_bytes).toBeGreaterThan(
      0,
    );
  });

  test('a mode changed on the target afterwards is planned again, as owners or modes', async () => {
    const { ctx, target } = bothEndsHere();
    await (await onlyAction(ctx)).apply(ctx);
    chmodSync(join(target, 'a.txt'), 0o666);
    const again = await onlyAction(ctx);
    expect(again.title).toMatch(/owners or modes differ\)$/);
    const plan = await migrateStep.plan(ctx);
    await expect(migrateStep.conclude(ctx, { plan, applied: new Map() })).rejects.toThrow(
      /has the source's contents but not its owners or modes/,
    );
  });
});

describe('the backup layout of several data paths', () => {
  test('one path: the backup directory itself, as before; several: each under its full path', () => {
    expect(backupLayout(['/srv/app'], '/b')).toEqual([{ full: '/b' }]);
    expect(backupLayout(['/var/lib/postgresql/15/main', '/etc/postgresql/15/main'], '/b')).toEqual([
      { full: '/b/var/lib/postgresql/15/main' },
      { full: '/b/etc/postgresql/15/main' },
    ]);
    // Different last names: a backup in the older layout (by last name) can still be read.
    expect(backupLayout(['/srv/app/data', '/etc/app'], '/b')).toEqual([
      { full: '/b/srv/app/data', legacy: '/b/data' },
      { full: '/b/etc/app', legacy: '/b/app' },
    ]);
  });
});

/** bothEndsHere's context with other data paths and a backup directory laid out by `seed` (path -> file). */
function withPaths(paths: string[], seed: Record<string, string>) {
  const here = bothEndsHere();
  const backup = join(dirname(here.source), 'backup dir');
  for (const [dir, file] of Object.entries(seed)) {
    mkdirSync(join(backup, dir), { recursive: true });
    writeFileSync(join(backup, dir, file), `${file}\n`);
  }
  const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
  raw.data = { paths, migration: 'rsync', backup: { host: 'backup-1', path: backup } };
  const profile = validateProfileValue('demo-web.json', raw, 'demo-web');
  return { ...here, ctx: { ...here.ctx, profile } as StepContext };
}

describe.runIf(process.getuid?.() === 0)(
  'several data paths from a backup, both ends on this machine',
  () => {
    test('paths ending in the same name (…/main) restore from their own directories, never from one', async () => {
      const root = tempDir('persona-pg root-');
      const pg = [join(root, 'var/lib/postgresql/15/main'), join(root, 'etc/postgresql/15/main')];
      const { ctx } = withPaths(pg, { [pg[0]!]: 'PG_VERSION', [pg[1]!]: 'postgresql.conf', main: 'stale' });
      const plan = await migrateStep.plan(ctx);
      expect(plan.actions.map((a) => a.id)).toEqual(pg.map((p) => `copy:${p}`));
      for (const a of plan.actions) await a.apply(ctx);
      expect(readdirSync(pg[0]!)).toEqual(['PG_VERSION']);
      expect(readdirSync(pg[1]!)).toEqual(['postgresql.conf']);
      expect((await migrateStep.plan(ctx)).actions).toEqual([]);
    });

    test('a backup in the older layout (by last name) is still restored, and the plan says so', async () => {
      const root = tempDir('persona-app-');
      const paths = [join(root, 'srv/app/data'), join(root, 'etc/app')];
      const { ctx } = withPaths(paths, { data: 'db.sqlite', app: 'app.conf' });
      const plan = await migrateStep.plan(ctx);
      expect(plan.notes.filter((n) => n.includes("the backup's older layout"))).toHaveLength(2);
      for (const a of plan.actions) await a.apply(ctx);
      expect(readdirSync(paths[0]!)).toEqual(['db.sqlite']);
      expect(readdirSync(paths[1]!)).toEqual(['app.conf']);
    });
  },
);

describe('nothing to migrate', () => {
  test('migration none: an empty plan, and the conclusion says so', async () => {
    const ctx = hostToHost(1);
    (ctx.profile.data as { migration: string }).migration = 'none';
    const plan = await migrateStep.plan(ctx);
    expect(plan).toMatchObject({ actions: [] });
    expect(plan.blocked).toBeUndefined();
    expect(await migrateStep.conclude(ctx, { plan, applied: new Map() })).toEqual({
      skipped: 'no data to migrate',
    });
  });
});
