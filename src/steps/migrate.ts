/**
 * migrate: the data paths onto the new host. From the failed host when it answers, else from the profile's backup
 * (a path on this machine or on an inventory host) when the host is proven down or the operator chose the backup
 * (data-source.ts); refused, clearly, otherwise. The target's free
 * space is checked first; the copy is rsync over the same SSH settings as everything else (delta-efficient on
 * resume), staged on this machine for host-to-host copies (space checked first, removed afterwards), owners set
 * by name from the source, and verified by comparing manifests of contents, owners and modes. The plan compares
 * the manifests of both ends and copies each path that differs; the plan after the copies is the verification.
 * With data.migration snapshot and the failed host as the source, btrfs snapshots move the data (snapshot.ts);
 * from a backup, rsync does.
 */
import { existsSync } from 'node:fs';
import { rm, stat, statfs } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import { runsAsRoot } from '../hosts/local-transport.js';
import {
  localManifest,
  type Manifest,
  manifestIfPresent,
  privileged,
  remoteManifest,
  runPrivileged,
} from '../runbook/remote.js';
import type { Action, Step, StepContext, StepOutputs, StepPlan } from '../runbook/types.js';
import { copyDiff } from './copy-diff.js';
import { decideSource, fenceFacts } from './data-source.js';
import {
  prepareStaging,
  ROOT_ONLY,
  type StagingFacts,
  stagingFacts,
  unstageAction,
  useStaged,
} from './migrate-staging.js';
import { applyOwners } from './owners.js';
import { postgresqlChecks, postgresqlConclude, postgresqlDescribe, postgresqlPlan } from './postgresql.js';
import { lastAnswer, type Reach, reachable } from './reach.js';
import { snapshotPlan } from './snapshot.js';

export { copyDiff } from './copy-diff.js';

type Source =
  | { kind: 'failed-host'; host: InventoryHost }
  | { kind: 'backup-host'; host: InventoryHost; path: string }
  | { kind: 'backup-local'; path: string };

interface Copy {
  target: string;
  /** Where the data comes from: a path on the source host, or on this machine. */
  from: string;
}

const GiB = 1024 ** 3;

/**
 * Where each data path comes from. The failed host: the path itself. A backup of one data path: the backup
 * directory holds its contents. A backup of several: one sub-directory per path, named by the full path under the
 * backup directory (/var/lib/postgresql/15/main from BACKUP/var/lib/postgresql/15/main), so that paths ending in
 * the same name (…/main) never share one. Backups written before this layout held each path under its last name
 * (BACKUP/main): where the full-path directory is absent and the last names are all different, that one is used.
 */
export function backupLayout(
  paths: readonly string[],
  backup: string,
): Array<{ full: string; legacy?: string }> {
  if (paths.length === 1) return [{ full: backup }];
  const names = paths.map((p) => basename(p));
  const unique = new Set(names).size === names.length;
  return paths.map((p) => ({
    full: join(backup, p),
    ...(unique ? { legacy: join(backup, basename(p)) } : {}),
  }));
}

async function copies(ctx: StepContext, source: Source, notes: string[]): Promise<Copy[]> {
  const paths = ctx.profile.data.paths;
  if (source.kind === 'failed-host') return paths.map((target) => ({ target, from: target }));
  const exists = async (dir: string) =>
    source.kind === 'backup-host'
      ? await remoteDirExists(ctx, source.host, dir)
      : (await stat(dir).catch(() => undefined))?.isDirectory() === true;
  const layout = backupLayout(paths, source.path);
  return await Promise.all(
    paths.map(async (target, i) => {
      const { full, legacy } = layout[i]!;
      if (legacy && !(await exists(full)) && (await exists(legacy))) {
        notes.push(
          `${target}: restoring from ${legacy}, the backup's older layout (by last name); new backups hold it at ${full}`,
        );
        return { target, from: legacy };
      }
      return { target, from: full };
    }),
  );
}

async function remoteDirExists(ctx: StepContext, host: InventoryHost, path: string): Promise<boolean> {
  const r = await ctx.ssh.exec(host, privileged(host, ['test', '-d', path]), {
    signal: ctx.signal,
    timeoutMs: 30_000,
  });
  return r.exitCode === 0;
}

/**
 * Before the fence has run (its record is still pending: a dry run), the fence is assumed to find the host as it
 * answers now, and the reason says so. A source that cannot be used is `blocked`, with the cause and the choice.
 */
async function chooseSource(
  ctx: StepContext,
): Promise<{ source: Source; why: string } | { blocked: NonNullable<StepPlan['blocked']> }> {
  const dataFrom = ctx.journal.options.data_from ?? 'auto';
  const reach: Reach = dataFrom === 'backup' ? { ok: true } : await reachable(ctx, ctx.failed);
  const failedHasData =
    dataFrom !== 'backup' &&
    reach.ok &&
    (await Promise.all(ctx.profile.data.paths.map((p) => remoteDirExists(ctx, ctx.failed, p)))).every(
      Boolean,
    );
  const recorded = fenceFacts(ctx.previous('fence'));
  const fenceAhead = ctx.previous('fence')?.status === 'pending';
  const assumed = fenceAhead && !recorded && !reach.ok;
  const decision = decideSource({
    failedName: ctx.failed.name,
    reach,
    failedHasData,
    fence: recorded ?? (assumed ? { host_reachable: false, kind: reach.ok ? '' : reach.kind } : undefined),
    dataFrom,
  });
  if ('refuse' in decision)
    return {
      blocked: { message: `not migrating ${ctx.profile.id}'s data: ${decision.refuse}`, hint: decision.hint },
    };
  if (assumed)
    decision.why = decision.why.replace('the fence found it down too', 'if the fence finds it down too');
  if (decision.use === 'failed-host')
    return { source: { kind: 'failed-host', host: ctx.failed }, why: decision.why };
  return await backupAsSource(ctx, decision.why);
}

/** The profile's backup as the source, `why` it is used; blocked when there is none, or it is not there. */
async function backupAsSource(
  ctx: StepContext,
  why: string,
): Promise<{ source: Source; why: string } | { blocked: NonNullable<StepPlan['blocked']> }> {
  const backup = ctx.profile.data.backup;
  if (!backup) {
    return {
      blocked: {
        message: `no source for ${ctx.profile.id}'s data: ${why}, and the profile names no backup`,
        hint: `Bring ${ctx.failed.name} back long enough to copy the data, or restore it onto ${ctx.target.name} by hand and skip this step.`,
      },
    };
  }
  if (backup.host) {
    const host = ctx.findHost(backup.host);
    if (!(await remoteDirExists(ctx, host, backup.path)))
      return {
        blocked: {
          message: `no source for the data: ${why}, and the backup ${backup.host}:${backup.path} is not there`,
        },
      };
    return {
      source: { kind: 'backup-host', host, path: backup.path },
      why: `${why}; restoring from ${backup.host}:${backup.path}`,
    };
  }
  const info = await stat(backup.path).catch(() => undefined);
  if (!info?.isDirectory())
    return {
      blocked: {
        message: `no source for the data: ${why}, and the backup ${backup.path} is not a directory on this machine`,
      },
    };
  return {
    source: { kind: 'backup-local', path: backup.path },
    why: `${why}; restoring from ${backup.path} on this machine`,
  };
}

function sourceHost(source: Source): InventoryHost | undefined {
  return source.kind === 'backup-local' ? undefined : source.host;
}

export async function targetFreeBytes(
  ctx: StepContext,
  path: string,
): Promise<{ free: number; mount: string }> {
  const script =
    'p=$1; while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done; df -Pk "$p" | tail -n 1';
  const r = await ctx.ssh.run(ctx.target, ['sh', '-c', script, 'persona-df', path], { signal: ctx.signal });
  const f = r.stdout.trim().split(/\s+/);
  return { free: Number(f[3]) * 1024, mount: f[5] ?? '?' };
}

async function manifestOf(ctx: StepContext, source: Source, from: string): Promise<Manifest> {
  const host = sourceHost(source);
  return host ? await remoteManifest(ctx.ssh, host, from, ctx.signal) : await localManifest(from, ctx.signal);
}

/**
 * Owners travel by name when the profile creates users on the target (their ids there are new); else by number.
 * Either way applyOwners sets the source's owners by name afterwards, which also repairs a copy staged here by a
 * non-root persona.
 */
export const ownerFlags = (ctx: StepContext) =>
  ctx.profile.security_profile.users.length > 0 ? [] : ['--numeric-ids'];

export async function rsync(
  ctx: StepContext,
  args: string[],
): Promise<{ bytes: number; files: number; stdout: string }> {
  const { execa } = await import('execa');
  const r = await execa('rsync', ['-a', '--delete', ...ownerFlags(ctx), '--stats', ...args], {
    reject: false,
    cancelSignal: ctx.signal,
    env: ctx.env,
  });
  if (r.exitCode !== 0) {
    throw new PersonaError(
      'E_STEP_FAILED',
      `rsync exited with ${r.exitCode ?? r.signal}: ${String(r.stderr).trim().split('\n').slice(-3).join(' ')}`,
      {
        hint:
          r.exitCode === 127 || /rsync: not found|command not found/.test(String(r.stderr))
            ? 'rsync must be installed on both ends (add it to software_stack).'
            : undefined,
      },
    );
  }
  const sent = /Total transferred file size: ([\d,]+)/.exec(String(r.stdout));
  const files = /Number of regular files transferred: ([\d,]+)/.exec(String(r.stdout));
  return {
    bytes: sent ? Number(sent[1]!.replaceAll(',', '')) : 0,
    files: files ? Number(files[1]!.replaceAll(',', '')) : 0,
    stdout: String(r.stdout),
  };
}

export async function rshArgs(
  ctx: StepContext,
  host: InventoryHost,
  ownConnection = false,
): Promise<{ e: string[]; spec: (path: string) => string }> {
  const shell = await ctx.ssh.rsyncShell(host);
  const { host: name } = shell;
  const rsh = ownConnection ? withoutMultiplexing(shell.rsh) : shell.rsh;
  const sudo = runsAsRoot(host) ? [] : ['--rsync-path', 'sudo -n rsync'];
  return { e: ['-e', rsh, ...sudo], spec: (path) => `${name}:${path}` };
}

/** `needed`: the source's bytes, which the staging area must hold for a host-to-host copy. */
async function copyOne(
  ctx: StepContext,
  source: Source,
  copy: Copy,
  index: number,
  needed: number,
  /**
   * The early copy into staging: root-only (ROOT_ONLY), and over an SSH connection of its own, so that its bulk
   * does not queue configure's commands behind it on the shared (multiplexed) one.
   */
  stage = false,
  /** The path's parent is there already (an early copy was just moved into place beside its staging area). */
  parentThere = false,
): Promise<{ transferred: number }> {
  if (!parentThere)
    await runPrivileged(ctx.ssh, ctx.target, ['mkdir', '-p', '--', dirname(copy.target)], ctx.signal);
  const to = await rshArgs(ctx, ctx.target, stage);
  const onTarget = stage ? ROOT_ONLY : [];
  const host = sourceHost(source);
  if (!host) {
    const pushed = await rsync(ctx, [...to.e, ...onTarget, `${copy.from}/`, to.spec(`${copy.target}/`)]);
    return { transferred: pushed.bytes };
  }
  // Host to host: staged on this machine, which holds the SSH trust to both; a resumed copy only moves the delta.
  const staging = join(stagingDir(ctx), String(index));
  const { mkdir } = await import('node:fs/promises');
  await mkdir(staging, { recursive: true, mode: 0o700 });
  await checkStagingSpace(ctx, staging, needed);
  const from = await rshArgs(ctx, host);
  const pulled = await rsync(ctx, [...from.e, from.spec(`${copy.from}/`), `${staging}/`]);
  ctx.log(`pulled ${copy.from} from ${host.name} (${pulled.bytes} bytes transferred)`);
  await ctx.checkpoint('after-pull');
  const pushed = await rsync(ctx, [...to.e, ...onTarget, `${staging}/`, to.spec(`${copy.target}/`)]);
  return { transferred: pulled.bytes + pushed.bytes };
}

/**
 * An rsync remote shell (`ssh …`, or `env SHELL=/bin/sh ssh …` with jump hosts) made to open a connection of its
 * own instead of the shared master connection: ssh takes the first value given for an option, so these come first.
 * Any other shell (a local host's) is left as it is.
 */
export function withoutMultiplexing(rsh: string): string {
  return rsh.replace(/^((?:env SHELL=\/bin\/sh )?ssh) /, '$1 -o ControlMaster=no -o ControlPath=none ');
}

export const stagingDir = (ctx: StepContext) => join(ctx.stateDir, 'staging', ctx.journal.run_id);

/**
 * The room for a staging area on this machine: the free bytes of the filesystem `fsOf` is on, and the bytes
 * `staging` holds already (0 when it is not there yet), which a copy into it does not need again.
 */
export async function stagingRoom(
  ctx: StepContext,
  staging: string,
  fsOf: string,
): Promise<{ free: number; staged: number }> {
  const fs = await statfs(fsOf);
  let staged = 0;
  if (existsSync(staging)) {
    const { execa } = await import('execa');
    const du = await execa('du', ['-sb', '--', staging], { cancelSignal: ctx.signal });
    staged = Number(String(du.stdout).split(/\s/)[0]) || 0;
  }
  return { free: fs.bavail * fs.bsize, staged };
}

/** The staging area must hold the copy (what is already staged from an earlier attempt counts as room). */
export async function checkStagingSpace(ctx: StepContext, staging: string, needed: number): Promise<void> {
  const { free, staged } = await stagingRoom(ctx, staging, staging);
  if (needed > free + staged) {
    throw new PersonaError(
      'E_STEP_FAILED',
      `the staging area ${staging} on this machine has ${(free / GiB).toFixed(2)} GiB free; the copy needs ${(needed / GiB).toFixed(2)} GiB`,
      { hint: 'Free space there, or point PERSONA_STATE_DIR at a larger filesystem, then resume.' },
    );
  }
}

const describeSource = (s: Source) =>
  s.kind === 'backup-local'
    ? `${s.path} (backup on this machine)`
    : s.kind === 'backup-host'
      ? `${s.host.name}:${s.path} (backup)`
      : s.host.name;

const MiB = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(1)} MiB`;

interface PathFacts {
  path: string;
  from: string;
  source: Manifest;
  target: Manifest | null;
}

/** The facts a plan leaves for the conclusion: the source and both manifests of every path. */
type MigrateFacts =
  | { skipped: string }
  | {
      source: { kind: Source['kind']; host?: string; why: string };
      method: 'rsync' | 'snapshot';
      paths: PathFacts[];
      /** snapshot: the snapshot each path's copy is of, and when it was taken. */
      recovery_points?: Array<{ path: string; snapshot: string; taken_at: string }>;
    };

/** data.migration snapshot from the failed host: btrfs snapshots, send and receive (snapshot.ts). */
async function viaSnapshots(
  ctx: StepContext,
  host: InventoryHost,
  why: string,
  notes: string[],
): Promise<StepPlan> {
  const planned = await snapshotPlan(ctx, host);
  const facts: MigrateFacts = {
    source: { kind: 'failed-host', host: host.name, why },
    method: 'snapshot',
    paths: planned.paths,
    recovery_points: planned.recovery_points,
  };
  return {
    actions: planned.actions,
    ...(planned.after.length > 0 ? { after: planned.after } : {}),
    notes: [...notes, ...planned.notes],
    facts: facts as unknown as StepOutputs,
    ...(planned.blocked ? { blocked: planned.blocked } : {}),
  };
}

/**
 * Free space on the target, per filesystem, for the paths to copy: each needs the source's bytes less what the
 * target already holds of it (a resumed copy moves only the delta). A message when one is short.
 */
export function spaceShortfall(
  targetName: string,
  needs: Array<{ path: string; mount: string; free: number; needed: number }>,
): string | undefined {
  const byMount = new Map<string, { free: number; needed: number; paths: string[] }>();
  for (const n of needs) {
    const m = byMount.get(n.mount) ?? { free: n.free, needed: 0, paths: [] };
    m.needed += n.needed;
    m.paths.push(n.path);
    byMount.set(n.mount, m);
  }
  for (const [mount, m] of byMount)
    if (m.needed > m.free)
      return `${targetName}:${mount} has ${(m.free / GiB).toFixed(2)} GiB free; ${m.paths.join(', ')} ${m.paths.length > 1 ? 'need' : 'needs'} ${(m.needed / GiB).toFixed(2)} GiB`;
  return undefined;
}

async function plan(ctx: StepContext): Promise<StepPlan> {
  const { data } = ctx.profile;
  if (data.migration === 'postgresql') return await postgresqlPlan(ctx);
  if (data.migration === 'none' || data.paths.length === 0)
    return {
      actions: [],
      notes: ['no data to migrate (data.migration is none or no paths)'],
      facts: { skipped: 'no data to migrate' },
    };
  // The staged copies are looked at while the source is chosen and the manifests are made (planCopies).
  const staging = stagedCopies(ctx);
  staging.catch(() => {});
  const chosen = await chooseSource(ctx);
  if ('blocked' in chosen)
    return {
      actions: [],
      notes: (await staging).map(
        (f) =>
          `the early copy of the backup stays in ${f.staging} on ${ctx.target.name} (root-only, not at ${f.path}) until migrate decides: resumed, it is moved into place if the backup is chosen, else removed`,
      ),
      blocked: chosen.blocked,
    };
  const { source, why } = chosen;
  const notes = [`data source: ${describeSource(source)} — ${why}`];
  if (data.migration === 'snapshot') {
    if (source.kind === 'failed-host') {
      const staged = await staging;
      const planned = await viaSnapshots(ctx, source.host, why, notes);
      const unstage = staged.map((f) => unstageAction(ctx, f, `migrate copies from ${source.host.name}`));
      return { ...planned, actions: [...unstage, ...planned.actions] };
    }
    notes.push(
      'data.migration snapshot: the backup is a directory of files, so it is restored with rsync; snapshots need the failed host to answer',
    );
  }
  return await planCopies(ctx, source, why, notes, staging);
}

/** The early copies this run left in staging directories on the target (migrate-staging.ts). */
async function stagedCopies(ctx: StepContext): Promise<StagingFacts[]> {
  const { data } = ctx.profile;
  if (data.migration !== 'rsync' && data.migration !== 'snapshot') return [];
  return (await stagingFacts(ctx, data.paths)).filter((f) => f.staged !== undefined);
}

/**
 * The copies from `source` that the target still needs (manifests of both ends), with the space they need. An
 * early copy in `staged` is moved into place first when `source` is the backup and its path needs a copy (then
 * only what differs is copied); else it is removed first.
 */
async function planCopies(
  ctx: StepContext,
  source: Source,
  why: string,
  notes: string[],
  staging: Promise<readonly StagingFacts[]> | readonly StagingFacts[] = [],
): Promise<StepPlan> {
  const list = await copies(ctx, source, notes);
  const found: Array<{
    copy: Copy;
    index: number;
    source: Manifest;
    target: Manifest | undefined;
    room: { free: number; mount: string };
  }> = [];
  for (const [index, copy] of list.entries()) {
    // The free space is asked beside the manifests (one round trip less), whether or not a copy is needed.
    const [src, dst, room] = await Promise.all([
      manifestOf(ctx, source, copy.from),
      manifestIfPresent(ctx.ssh, ctx.target, copy.target, ctx.signal),
      targetFreeBytes(ctx, copy.target),
    ]);
    found.push({ copy, index, source: src, target: dst, room });
  }
  const staged = await staging;
  const todo = found.flatMap((f) => {
    const why = copyDiff(f.source, f.target, ctx.target.name);
    if (!why) {
      notes.push(
        `${f.copy.target}: ${f.target!.files} files, ${MiB(f.target!.bytes)}, the same contents, owners and modes as the source`,
      );
      return [];
    }
    return [{ ...f, why }];
  });

  const fromBackup = source.kind !== 'failed-host';
  const stagedFor = (path: string) => staged.find((s) => s.path === path);
  const short = spaceShortfall(
    ctx.target.name,
    todo.map((f) => {
      const { free, mount } = f.room;
      // An early copy is moved into place (what it holds is not needed again), or removed first (room freed).
      const early = stagedFor(f.copy.target)?.staged ?? 0;
      return {
        path: f.copy.target,
        mount,
        free: free + (fromBackup ? 0 : early),
        needed: Math.max(0, f.source.bytes - (f.target?.bytes ?? 0) - (fromBackup ? early : 0)),
      };
    }),
  );

  const moves = fromBackup ? todo.flatMap((f) => stagedFor(f.copy.target) ?? []) : [];
  const unstage = staged
    .filter((f) => !moves.includes(f))
    .map((f) =>
      unstageAction(
        ctx,
        f,
        fromBackup ? `${f.path} already holds the backup` : `migrate copies from ${ctx.failed.name}`,
      ),
    );
  const copyActions: Action[] = todo.map((f, i) => ({
    id: `copy:${f.copy.target}`,
    title: `copy from ${describeSource(source)}: ${f.copy.target} (${MiB(f.source.bytes)}, ${f.source.files} files; ${f.why})${fromBackup && stagedFor(f.copy.target) ? `, the early copy moved into place first (${stagedFor(f.copy.target)!.staging}): only what differs is copied` : ''}`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      const started = Date.now();
      let transferred: number;
      const early = fromBackup ? stagedFor(f.copy.target) : undefined;
      let moved: string | undefined;
      try {
        if (early) moved = await useStaged(c, early);
        ({ transferred } = await copyOne(
          c,
          source,
          f.copy,
          f.index,
          f.source.bytes,
          false,
          moved === 'moved',
        ));
        await applyOwners(c, sourceHost(source), f.copy.from, f.copy.target);
      } finally {
        // Staged data is a full copy of the application's data on this machine: never left behind. An
        // interrupted run keeps it, so that its resume moves only the delta; the resumed run removes it.
        if (!c.signal.aborted) await rm(stagingDir(c), { recursive: true, force: true });
      }
      if (i === todo.length - 1) await c.checkpoint('after-copy');
      return {
        path: f.copy.target,
        from: f.copy.from,
        transferred_bytes: transferred,
        duration_ms: Date.now() - started,
        ...(early ? { early_copy: `${early.staging}: ${moved}` } : {}),
      };
    },
  }));
  const actions = [...unstage, ...copyActions];

  const host = sourceHost(source);
  const facts: MigrateFacts = {
    source: { kind: source.kind, ...(host ? { host: host.name } : {}), why },
    method: 'rsync',
    paths: found.map((f) => ({
      path: f.copy.target,
      from: f.copy.from,
      source: f.source,
      target: f.target ?? null,
    })),
  };
  return {
    actions,
    notes,
    facts: facts as unknown as StepOutputs,
    ...(short
      ? { blocked: { message: short, hint: 'Free space on the target, or choose another target.' } }
      : {}),
  };
}

/**
 * The early copy (Step.early): the backup, copied onto the target as soon as the run starts, while the fence still
 * runs (typically waiting out the connect timeout of a host that is gone) and configure too; into a staging
 * directory beside each data path, root-only, never at the path (migrate-staging.ts). It decides nothing: when the
 * fence is done, migrate chooses the source as always, and only then is the staged copy moved into place (the
 * backup chosen: rsync copies only what differs) or removed (the failed host chosen). Only for rsync, only with a
 * backup; not when the failed host already answered (its data is what migrate will copy), nor when the target
 * lacks room for a second copy, nor before rsync is on it.
 */
async function earlyPlan(ctx: StepContext): Promise<StepPlan> {
  const { data } = ctx.profile;
  const none = (why: string, notes: string[] = []): StepPlan => ({
    actions: [],
    notes: [...notes, `no early copy: ${why}`],
  });
  if (data.migration !== 'rsync' || data.paths.length === 0)
    return none(`data.migration is ${data.migration}${data.paths.length === 0 ? ' with no paths' : ''}`);
  const dataFrom = ctx.journal.options.data_from ?? 'auto';
  if (dataFrom === 'failed-host') return none('--data-from failed-host');
  // Never waited for: only an answer already heard in this run (recover asks while it probes).
  if (dataFrom === 'auto' && lastAnswer(ctx.journal, ctx.failed)?.ok)
    return none(`${ctx.failed.name} answers: migrate copies from it if it has the data`);
  const backup = await backupAsSource(
    ctx,
    'early, into a staging directory, root-only: moved into place only if migrate chooses the backup',
  );
  if ('blocked' in backup) return none(backup.blocked.message);
  const { source } = backup;
  const notes = [`early copy: ${describeSource(source)} — ${backup.why}`];
  const list = await copies(ctx, source, notes);
  const [facts, manifests, room] = await Promise.all([
    stagingFacts(
      ctx,
      list.map((c) => c.target),
    ),
    Promise.all(list.map((c) => manifestOf(ctx, source, c.from))),
    Promise.all(list.map((c) => targetFreeBytes(ctx, c.target))),
  ]);
  if (facts.some((f) => !f.rsync)) return none(`rsync is not on ${ctx.target.name} yet`, notes);
  const todo = facts.flatMap((f, index) => {
    if (f.data !== 'present') return [{ f, index, copy: list[index]!, source: manifests[index]! }];
    notes.push(
      `${f.path} is on ${ctx.target.name} already: migrate copies only what differs once it decided`,
    );
    return [];
  });
  // Room for the staged copy beside the one migrate may make from the failed host (it removes this one first).
  const short = spaceShortfall(
    ctx.target.name,
    todo.map((t) => ({
      path: t.f.staging,
      mount: room[t.index]!.mount,
      free: room[t.index]!.free,
      needed: Math.max(0, 2 * t.source.bytes - (t.f.staged ?? 0)),
    })),
  );
  if (short) return none(`no room for a second copy of the data: ${short}`, notes);
  const actions: Action[] = todo.map((t) => ({
    id: `stage:${t.f.path}`,
    title: `copy from ${describeSource(source)} into ${t.f.staging} (${MiB(t.source.bytes)}, ${t.source.files} files; root-only, beside ${t.f.path}: moved there only if migrate chooses the backup)`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      const started = Date.now();
      let transferred: number;
      await prepareStaging(c, t.f.staging);
      try {
        const copy = { target: t.f.staging, from: t.copy.from };
        ({ transferred } = await copyOne(c, source, copy, t.index, t.source.bytes, true));
      } finally {
        if (!c.signal.aborted) await rm(stagingDir(c), { recursive: true, force: true });
      }
      return {
        path: t.f.path,
        staging: t.f.staging,
        from: t.copy.from,
        transferred_bytes: transferred,
        duration_ms: Date.now() - started,
      };
    },
  }));
  return { actions, notes };
}

export const migrateStep: Step = {
  kind: 'migrate',
  /** The fence: its finding decides the data source, and a failed host that answers must have stopped writing before its data is copied. Configure: the data's owners exist only after it. */
  dependsOn: ['fence', 'configure'],
  /** The early copy needs nothing of the fence or configure: it goes to a root-only staging directory. */
  early: { dependsOn: [], plan: earlyPlan },
  title: 'migrate the data',
  mutates: true,
  timeoutMs: () => 6 * 60 * 60_000,
  describe(ctx) {
    const { data } = ctx.profile;
    if (data.migration === 'postgresql') return postgresqlDescribe(ctx);
    if (data.migration === 'none' || data.paths.length === 0)
      return ['no data to migrate (data.migration is none or no paths)'];
    const backup = data.backup
      ? `, else from the backup ${data.backup.host ? `${data.backup.host}:` : ''}${data.backup.path}`
      : ', no backup named';
    if (data.migration === 'snapshot')
      return [
        `btrfs snapshots of ${data.paths.join(', ')}, sent from ${ctx.failed.name} if it answers to ${ctx.target.name} (btrfs send | receive through this machine)${data.backup ? `, else rsync${backup}` : backup}; verified by checksum manifests`,
      ];
    return [
      `rsync ${data.paths.join(', ')} to ${ctx.target.name}: from ${ctx.failed.name} if it answers${backup}; verified by checksum manifests`,
    ];
  },
  plan,
  checks(ctx) {
    const { data } = ctx.profile;
    if (data.migration === 'postgresql') return postgresqlChecks(ctx);
    if (data.migration === 'none' || data.paths.length === 0) return [];
    return [
      `${data.paths.join(', ')} on ${ctx.target.name}: the source's contents, owners and modes (sha256 manifests of both ends)`,
    ];
  },
  async conclude(ctx, { plan: final, applied }) {
    if (ctx.profile.data.migration === 'postgresql') return await postgresqlConclude(ctx, final);
    const facts = final.facts as unknown as MigrateFacts | undefined;
    if (!facts) throw new PersonaError('E_STEP_FAILED', 'migrate found no facts about the data');
    if ('skipped' in facts) return { skipped: facts.skipped };
    for (const v of facts.paths) {
      if (!v.target)
        throw new PersonaError('E_STEP_FAILED', `${v.path} is not on ${ctx.target.name} after the copy`);
      if (v.source.digest !== v.target.digest) {
        throw new PersonaError(
          'E_STEP_FAILED',
          `${v.path} on ${ctx.target.name} differs from its source after the copy (${v.target.files} files, digest ${v.target.digest.slice(0, 12)} vs ${v.source.files} files, ${v.source.digest.slice(0, 12)})`,
        );
      }
      if (v.source.meta !== v.target.meta) {
        throw new PersonaError(
          'E_STEP_FAILED',
          `${v.path} on ${ctx.target.name} has the source's contents but not its owners or modes after the copy`,
          { hint: `Compare \`find ${v.path} -printf '%m %u:%g %p\\n'\` on both ends.` },
        );
      }
      ctx.log(
        `${v.path}: ${v.target.files} files, ${v.target.bytes} bytes, sha256 manifest ${v.target.digest.slice(0, 16)}… and owners/modes match the source`,
      );
    }
    return {
      source: facts.source,
      method: facts.method,
      transfers: facts.paths.flatMap((p) => {
        const done = applied.get(`copy:${p.path}`) ?? applied.get(`send:${p.path}`);
        return done ? [done] : [];
      }),
      ...(facts.recovery_points ? { recovery_points: facts.recovery_points } : {}),
      verified: facts.paths.map((v) => ({
        path: v.path,
        files: v.target!.files,
        bytes: v.target!.bytes,
        digest: v.target!.digest,
        meta: v.target!.meta,
      })),
    };
  },
};
