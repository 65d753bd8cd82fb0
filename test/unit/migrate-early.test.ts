/**
 * migrate's early copy goes into a root-only staging directory beside the data path, whatever the failed host
 * answers; nothing is at the data path until migrate decided. Then: the backup chosen, the staged copy is moved
 * into place and only what differs is copied; the failed host chosen, it is removed first. For real (rsync, mv,
 * manifests) onto a `connection: local` target in a temporary directory; the failed host is scripted.
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { LocalTransport } from '../../src/hosts/local-transport.js';
import { SshError, type SshFailureKind, type SshTarget, type Transport } from '../../src/hosts/ssh.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import { localManifest } from '../../src/runbook/remote.js';
import type { StepContext, StepPlan, StepRecord } from '../../src/runbook/types.js';
import { migrateStep, withoutMultiplexing } from '../../src/steps/migrate.js';
import { stagingPath } from '../../src/steps/migrate-staging.js';
import { rememberReach } from '../../src/steps/reach.js';
import { repoRoot } from '../helpers/cli.js';
import { testJournal } from '../helpers/journal.js';
import { tempDir } from '../helpers/tmp.js';

const NOBODY = 65534;
const h1: InventoryHost = { name: 'h1', address: '10.0.0.1', labels: {}, apps: [] };
const here: InventoryHost = { name: 'h2', address: '10.0.0.2', labels: {}, apps: [], connection: 'local' };

/** How the failed host answers: a failure of one kind, or it answers and has data with this manifest. */
type Failed = { fails: SshFailureKind } | { answers: string };

/**
 * The target is this machine (real commands); h1 is scripted. `freeKiB`: what df says is free on the target.
 * Every command h1 and the target got, in order.
 */
function transport(failed: Failed, calls: string[], freeKiB?: number): Transport {
  const local = new LocalTransport();
  const onH1 = async (argv: readonly string[]) => {
    calls.push(`h1: ${argv.join(' ')}`);
    if ('fails' in failed) throw new SshError(failed.fails, 'h1', `h1 (10.0.0.1:22): ${failed.fails}`);
    const stdout = argv.includes('persona-manifest') ? failed.answers : '';
    return { exitCode: 0, stdout, stderr: '', durationMs: 1 };
  };
  const dfSays = (argv: readonly string[]) =>
    freeKiB !== undefined && argv.includes('persona-df')
      ? { exitCode: 0, stdout: `/dev/x 1 1 ${freeKiB} 1% /srv\n`, stderr: '', durationMs: 1 }
      : undefined;
  return {
    async exec(t: SshTarget, argv, options) {
      if (t.name === 'h1') return await onH1(argv);
      calls.push(`h2: ${argv.join(' ')}`);
      return dfSays(argv) ?? (await local.exec(t, argv, options));
    },
    async run(t: SshTarget, argv, options) {
      if (t.name === 'h1') return await onH1(argv);
      calls.push(`h2: ${argv.join(' ')}`);
      return dfSays(argv) ?? (await local.run(t, argv, options));
    },
    script: (t, script, args, options) => local.script(t, script, args, options),
    rsyncShell: (t) => local.rsyncShell(t),
    close: async () => {},
  };
}

/** A backup of two files and a directory, owned by nobody with their own modes; the data path on the target. */
function world(failed: Failed, options: { dataFrom?: 'failed-host' | 'backup'; freeKiB?: number } = {}) {
  const dir = tempDir('persona-early-');
  const backup = join(dir, 'backup');
  const data = join(dir, 'target', 'srv', 'data');
  mkdirSync(join(backup, 'sub'), { recursive: true });
  writeFileSync(join(backup, 'index.txt'), 'alpha\n');
  writeFileSync(join(backup, 'sub', 'b.bin'), Buffer.alloc(64 * 1024, 7));
  for (const [path, mode] of [
    [backup, 0o755],
    [join(backup, 'sub'), 0o750],
    [join(backup, 'index.txt'), 0o644],
    [join(backup, 'sub', 'b.bin'), 0o640],
  ] as const) {
    chownSync(path, NOBODY, NOBODY);
    chmodSync(path, mode);
  }
  const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
  raw.data = { paths: [data], migration: 'rsync', backup: { path: backup } };
  raw.security_profile = { users: [], groups: [], encryption_keys: [] };
  const calls: string[] = [];
  const fence: StepRecord = {
    kind: 'fence',
    title: 'fence',
    mutates: true,
    status: 'pending',
    attempts: 0,
    log: [],
  };
  const journal = testJournal({
    options: {
      force_no_fence: false,
      strategy: 'best-fit',
      ...(options.dataFrom ? { data_from: options.dataFrom } : {}),
    },
  });
  const log: string[] = [];
  const ctx = {
    journal,
    profile: validateProfileValue('demo-web.json', raw, 'demo-web'),
    failed: h1,
    target: here,
    ssh: transport(failed, calls, options.freeKiB),
    signal: new AbortController().signal,
    stateDir: join(dir, 'state'),
    env: process.env,
    log: (line: string) => log.push(line),
    checkpoint: async () => {},
    assertHeld: () => {},
    findHost: () => here,
    previous: (kind: string) => (kind === 'fence' ? fence : undefined),
  } as unknown as StepContext;
  /** The fence is done and found h1 as the transport says. */
  const fenced = () => {
    fence.status = 'succeeded';
    fence.outputs = {
      evidence:
        'fails' in failed
          ? { reachable: false, unreachableKind: failed.fails }
          : { reachable: true, appStopped: true },
    };
  };
  const staging = stagingPath(data, journal.run_id);
  return { ctx, calls, log, backup, data, staging, fenced };
}

async function applyAll(ctx: StepContext, plan: StepPlan) {
  const out = [];
  for (const a of plan.actions) out.push(await a.apply(ctx));
  return out;
}

const mode = (p: string) => statSync(p).mode & 0o7777;
const owner = (p: string) => `${statSync(p).uid}:${statSync(p).gid}`;

describe.runIf(process.getuid?.() === 0)('the early copy: staged, root-only, until migrate decides', () => {
  test.each([
    ['timeout', 'a host that is gone'],
    ['auth', 'a host that refuses persona (it may hold newer data)'],
  ] as const)(
    'h1 fails (%s, %s): the backup goes into staging; nothing at the data path',
    async (kind, _what) => {
      const w = world({ fails: kind });
      const plan = await migrateStep.early!.plan(w.ctx);
      // Planning looked, and changed nothing: no staging, not even the data path's parent (a dry run shows this).
      expect(existsSync(dirname(w.data))).toBe(false);
      expect(plan.actions.map((a) => a.id)).toEqual([`stage:${w.data}`]);
      expect(plan.actions[0]!.title).toContain(`into ${w.staging}`);
      // The early copy never asks h1: it waits for nothing.
      expect(w.calls.filter((c) => c.startsWith('h1'))).toEqual([]);
      await applyAll(w.ctx, plan);
      expect(existsSync(w.data)).toBe(false);
      expect(readdirSync(dirname(w.data))).toEqual(['.persona-staging']);
      expect(readFileSync(join(w.staging, 'index.txt'), 'utf8')).toBe('alpha\n');
      // Root-only: the staging directories and every entry in them.
      for (const [p, m] of [
        [dirname(w.staging), 0o700],
        [w.staging, 0o700],
        [join(w.staging, 'sub'), 0o700],
        [join(w.staging, 'index.txt'), 0o600],
        [join(w.staging, 'sub', 'b.bin'), 0o600],
      ] as const) {
        expect([p, mode(p), owner(p)]).toEqual([p, m, '0:0']);
      }
    },
  );

  test('h1 refuses persona: migrate refuses the backup, and the data path stays empty; the staged copy is kept for a resume', async () => {
    const w = world({ fails: 'auth' });
    await applyAll(w.ctx, await migrateStep.early!.plan(w.ctx));
    w.fenced();
    const plan = await migrateStep.plan(w.ctx);
    expect(plan.blocked?.message).toMatch(/not migrating demo-web's data: h1 does not let persona in \(auth/);
    expect(plan.actions).toEqual([]);
    expect(plan.notes.join('\n')).toContain(`the early copy of the backup stays in ${w.staging}`);
    expect(existsSync(w.data)).toBe(false);
    expect(existsSync(w.staging)).toBe(true);
  });

  test('the failed host is chosen: the staged copy is removed first, and never at the data path', async () => {
    const w = world({ answers: `1 6 ${'d'.repeat(64)} ${'m'.repeat(64)}` });
    // Staged while h1 was still unheard of (the early copy asks nothing).
    await applyAll(w.ctx, await migrateStep.early!.plan(w.ctx));
    w.fenced();
    const plan = await migrateStep.plan(w.ctx);
    expect(plan.notes[0]).toMatch(/^data source: h1 — h1 answers and has the data/);
    expect(plan.actions.map((a) => a.id)).toEqual([`unstage:${w.data}`, `copy:${w.data}`]);
    expect(plan.actions[0]!.title).toBe(
      `remove the early copy of the backup ${w.staging} (migrate copies from h1)`,
    );
    await plan.actions[0]!.apply(w.ctx);
    expect(existsSync(w.staging)).toBe(false);
    expect(readdirSync(dirname(w.data))).toEqual([]);
  });

  test('the backup is chosen: the staged copy is moved into place, only owners and modes change, then nothing is left', async () => {
    const w = world({ fails: 'timeout' });
    await applyAll(w.ctx, await migrateStep.early!.plan(w.ctx));
    w.fenced();
    const plan = await migrateStep.plan(w.ctx);
    expect(plan.notes[0]).toMatch(/^data source: .*backup.* — h1 is down .*the fence found it down too/);
    expect(plan.actions.map((a) => a.id)).toEqual([`copy:${w.data}`]);
    expect(plan.actions[0]!.title).toContain(`the early copy moved into place first (${w.staging})`);
    const [copied] = await applyAll(w.ctx, plan);
    // Nothing of the contents travelled again: the staged copy is the data now.
    expect(copied).toMatchObject({ transferred_bytes: 0, early_copy: `${w.staging}: moved` });
    expect(w.log.join('\n')).toContain(`${w.data}: the early copy moved into place from ${w.staging}`);
    expect(existsSync(dirname(w.staging))).toBe(false);
    expect(await localManifest(w.data)).toEqual(await localManifest(w.backup));
    expect([mode(w.data), owner(w.data)]).toEqual([0o755, `${NOBODY}:${NOBODY}`]);
    expect(mode(join(w.data, 'sub', 'b.bin'))).toBe(0o640);
    const again = await migrateStep.plan(w.ctx);
    expect(again.actions).toEqual([]);
    expect(again.blocked).toBeUndefined();
  });

  test('the target lacks room for a second copy: no early copy, and the log says why', async () => {
    const w = world({ fails: 'timeout' }, { freeKiB: 100 });
    const plan = await migrateStep.early!.plan(w.ctx);
    expect(plan.actions).toEqual([]);
    expect(plan.notes.at(-1)).toMatch(
      /^no early copy: no room for a second copy of the data: h2:\/srv has 0\.00 GiB free/,
    );
  });

  test('the data is on the target already (a resume after the copy): nothing is staged', async () => {
    const w = world({ fails: 'timeout' });
    mkdirSync(w.data, { recursive: true });
    writeFileSync(join(w.data, 'index.txt'), 'old\n');
    const plan = await migrateStep.early!.plan(w.ctx);
    expect(plan.actions).toEqual([]);
    expect(plan.notes.join('\n')).toContain(`${w.data} is on h2 already`);
  });
});

describe('when there is no early copy at all', () => {
  test('--data-from failed-host: no early copy, and neither host is asked', async () => {
    const w = world({ fails: 'timeout' }, { dataFrom: 'failed-host' });
    expect((await migrateStep.early!.plan(w.ctx)).notes).toEqual(['no early copy: --data-from failed-host']);
    expect(w.calls).toEqual([]);
  });

  test('the failed host already answered in this run (recover asks while probing): no early copy', async () => {
    const w = world({ answers: '' });
    rememberReach(w.ctx.journal, h1, Promise.resolve({ ok: true }), performance.now());
    await Promise.resolve();
    expect((await migrateStep.early!.plan(w.ctx)).notes).toEqual([
      'no early copy: h1 answers: migrate copies from it if it has the data',
    ]);
    expect(w.calls).toEqual([]);
  });
});

describe('the early copy has an SSH connection of its own', () => {
  test.each([
    [
      'ssh -F /x/config -o ControlMaster=auto -o ControlPath=/tmp/c/%C -p 22',
      'ssh -o ControlMaster=no -o ControlPath=none -F /x/config -o ControlMaster=auto -o ControlPath=/tmp/c/%C -p 22',
    ],
    [
      "env SHELL=/bin/sh ssh -o 'ProxyCommand=ssh -W %h:%p jump' -o ControlPath=/tmp/c/%C",
      "env SHELL=/bin/sh ssh -o ControlMaster=no -o ControlPath=none -o 'ProxyCommand=ssh -W %h:%p jump' -o ControlPath=/tmp/c/%C",
    ],
    // A local host's shell has no ssh to change.
    [
      'env -i PATH=/bin sh -c \'shift; exec sh -c "$*"\' local',
      'env -i PATH=/bin sh -c \'shift; exec sh -c "$*"\' local',
    ],
  ])('%s', (rsh, own) => {
    // ssh takes the first value given for an option: these come before the shared connection's.
    expect(withoutMultiplexing(rsh)).toBe(own);
  });
});
