/**
 * A planned move (`persona migrate APP --to HOST`): both hosts are healthy, so the data is copied while the
 * application still serves on the source (precopy: rsync passes until the delta is small), then the source is
 * stopped and taken out of rotation (the fence, with the same evidence rules as a recovery, never a power-off), the
 * final delta is copied (migrate), the application starts on the target (validate: health only, since a sample
 * window here would be downtime; monitor holds the performance targets after the switch), and traffic moves.
 *
 * Every copy goes through a staging area on this machine (the hosts need no trust between them), kept for the
 * whole run: each pass, and the final one, moves only what changed since the one before. The final copy is
 * checked, by default, by metadata manifests of both ends (every entry's type, mode, owner and path; every file's
 * size and mtime to the nanosecond) plus rsync's own whole-file checksum of every file it copied; with
 * `--verify contents`, by sha256 manifests of every file as a recovery does (slower, and inside the downtime).
 *
 * With `data.migration: snapshot` the copies are btrfs snapshots instead (planned-snapshot.ts): one sent in full
 * while the application serves, the difference from it after the stop; the same check of both ends follows.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import type { Profile } from '../profile/schema.js';
import {
  type Manifest,
  manifestIfPresent,
  parseManifest,
  privileged,
  runPrivileged,
} from '../runbook/remote.js';
import type { Action, Applied, Step, StepContext, StepPlan } from '../runbook/types.js';
import { fenceStep } from './fence.js';
import { checkStagingSpace, rshArgs, rsync, stagingDir, stagingRoom, targetFreeBytes } from './migrate.js';
import { chownAsListed, listOwners } from './owners.js';
import { type FinalSnapshotFacts, snapshotFinalPlan, snapshotPrecopyPlan } from './planned-snapshot.js';
import { promoteStep } from './postgresql-promote.js';
import { replicaStep } from './postgresql-replica.js';
import { SNAPSHOT_DIR } from './snapshot.js';
import { concludeValidate, validateStep } from './validate.js';

const MiB = 1024 ** 2;
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

/** The most passes while the application serves; then the final copy takes what is left. */
export const MAX_PASSES = 6;
/** A pass that moved this little (or 1% of the data, if more) leaves a final copy short enough. */
export const SMALL_DELTA_BYTES = 8 * MiB;
/** A pass this quick leaves a final copy about as quick. */
export const QUICK_PASS_MS = 1000;

export interface Pass {
  n: number;
  /** Bytes the pass pulled from the source (what changed since the pass before). */
  bytes: number;
  files: number;
  ms: number;
}

/**
 * Whether another pass is worth it (pure). Stop when the last pass was small (bytes or time), when the delta no
 * longer shrinks (the application writes about as fast as the copy moves), or after MAX_PASSES.
 */
export function precopyVerdict(passes: readonly Pass[], totalBytes: number): { again: boolean; why: string } {
  const last = passes.at(-1);
  if (!last) return { again: true, why: 'no pass yet' };
  const small = Math.max(SMALL_DELTA_BYTES, totalBytes * 0.01);
  if (last.bytes <= small)
    return {
      again: false,
      why: `pass ${last.n} moved ${mib(last.bytes)} (≤ ${mib(small)}, the larger of ${mib(SMALL_DELTA_BYTES)} and 1% of the data)`,
    };
  if (last.ms <= QUICK_PASS_MS)
    return { again: false, why: `pass ${last.n} took ${last.ms} ms (≤ ${QUICK_PASS_MS} ms)` };
  const before = passes.at(-2);
  if (before && passes.length >= 3 && last.bytes >= before.bytes * 0.9)
    return {
      again: false,
      why: `the delta no longer shrinks (${mib(before.bytes)} then ${mib(last.bytes)}): the application writes about as fast as the copy moves`,
    };
  if (passes.length >= MAX_PASSES) return { again: false, why: `${MAX_PASSES} passes, the most there are` };
  return { again: true, why: `pass ${last.n} moved ${mib(last.bytes)} in ${last.ms} ms` };
}

/** Where a planned move's staging area goes once the target holds the data, until the runner removes it. */
export const finishedStaging = (stateDir: string, runId: string) =>
  join(stateDir, 'staging', `${runId}.done`);

/** Where each data path is staged on this machine, for the whole run. */
const stageOf = (ctx: StepContext, index: number) => join(stagingDir(ctx), String(index));

/**
 * One pass for one path: source → staging → target, each rsync moving only what differs. `needed`: the source's
 * bytes, which the staging area must hold (0: not checked, as in the final copy, which follows the passes).
 */
async function syncPath(
  ctx: StepContext,
  path: string,
  index: number,
  needed: number,
  parentThere = false,
): Promise<{ pulled: number; files: number; pushed: number; pull_ms: number; push_ms: number }> {
  const staging = stageOf(ctx, index);
  await mkdir(staging, { recursive: true, mode: 0o700 });
  if (needed > 0) await checkStagingSpace(ctx, staging, needed);
  if (!parentThere)
    await runPrivileged(ctx.ssh, ctx.target, ['mkdir', '-p', '--', dirname(path)], ctx.signal);
  const from = await rshArgs(ctx, ctx.failed);
  const to = await rshArgs(ctx, ctx.target);
  const t0 = Date.now();
  const pulled = await rsync(ctx, [...from.e, from.spec(`${path}/`), `${staging}/`]);
  const t1 = Date.now();
  const pushed = await rsync(ctx, [...to.e, `${staging}/`, to.spec(`${path}/`)]);
  return {
    pulled: pulled.bytes,
    files: pulled.files,
    pushed: pushed.bytes,
    pull_ms: t1 - t0,
    push_ms: Date.now() - t1,
  };
}

/** Whether the staging area on this machine lacks room for `needed` bytes (what it holds already counts). */
async function stagingShortfall(
  ctx: StepContext,
  needed: number,
): Promise<NonNullable<StepPlan['blocked']> | undefined> {
  const dir = stagingDir(ctx);
  const fsOf = existsSync(dir) ? dir : ctx.stateDir;
  // A state directory not made yet (a first dry run) has nothing to measure.
  if (!existsSync(fsOf)) return undefined;
  const room = await stagingRoom(ctx, dir, fsOf);
  if (needed <= room.free + room.staged) return undefined;
  return {
    message: `the staging area ${dir} on this machine has ${mib(room.free)} free; the move needs ${mib(needed - room.staged)} more`,
    hint: 'Free space there, or point PERSONA_STATE_DIR at a larger filesystem, then resume.',
  };
}

/** The methods the rsync-or-snapshot steps copy with (postgresql has steps of its own: byMigration). */
const moves = (ctx: StepContext) => {
  const { data } = ctx.profile;
  return (data.migration === 'rsync' || data.migration === 'snapshot') && data.paths.length > 0;
};

/** What the send actions of this run returned, per path (snapshot, parent, bytes). */
const sends = (ctx: StepContext, applied: Applied) =>
  ctx.profile.data.paths.flatMap((p) => {
    const done = applied.get(`send:${p}`);
    return done ? [done] : [];
  });

/** The bytes of a data path on a host (du; 0 when it is absent), for the thresholds and the space checks. */
async function bytesOn(ctx: StepContext, host: InventoryHost, path: string): Promise<number> {
  const script = 'if [ -d "$1" ]; then du -sb -- "$1"; else echo 0; fi';
  const r = await runPrivileged(ctx.ssh, host, ['sh', '-c', script, 'persona-du', path], ctx.signal);
  return Number(r.stdout.trim().split(/\s+/)[0]) || 0;
}

/** precopy: rsync passes while the application serves on the source, until the delta is small. */
const rsyncPrecopyStep: Step = {
  kind: 'precopy',
  dependsOn: ['configure'],
  title: 'copy the data while the application serves',
  mutates: true,
  timeoutMs: () => 6 * 60 * 60_000,
  describe(ctx) {
    if (ctx.journal.options.precopy === false) return ['none: stop-copy-start (--stop-copy-start)'];
    const paths = ctx.profile.data.paths;
    if (!moves(ctx)) return ['none: no rsync or snapshot data paths'];
    if (ctx.profile.data.migration === 'snapshot')
      return [
        `a read-only btrfs snapshot of ${paths.join(', ')} on ${ctx.failed.name} (still serving), sent in full to ${ctx.target.name} through this machine (received next to the path; the path is installed by the final copy)`,
      ];
    return [
      `rsync ${paths.join(', ')} from ${ctx.failed.name} (still serving) to ${ctx.target.name} through this machine, pass after pass until one moves ≤ 1% of the data (at most ${MAX_PASSES})`,
    ];
  },
  checks: () => ['each pass copied without error; the final copy after the stop is checked'],
  async plan(ctx): Promise<StepPlan> {
    const { data } = ctx.profile;
    if (!moves(ctx))
      return { actions: [], notes: [`no copy while it serves: data.migration is ${data.migration}`] };
    const reach = await ctx.ssh.exec(ctx.failed, ['true'], { signal: ctx.signal, timeoutMs: 30_000 });
    if (reach.exitCode !== 0)
      return {
        actions: [],
        notes: [],
        blocked: { message: `${ctx.failed.name} does not run commands (\`true\` exits ${reach.exitCode})` },
      };
    const sizes = await Promise.all(data.paths.map((p) => bytesOn(ctx, ctx.failed, p)));
    const total = sizes.reduce((a, b) => a + b, 0);
    const notes = [`${data.paths.length} path(s), ${mib(total)} on ${ctx.failed.name}`];
    // What the target holds of a path already (an earlier pass, a resume) needs no room again.
    const there = await Promise.all(data.paths.map((p) => bytesOn(ctx, ctx.target, p)));
    const free = await Promise.all(data.paths.map((p) => targetFreeBytes(ctx, p)));
    for (const [i, f] of free.entries()) {
      const needed = Math.max(0, sizes[i]! - there[i]!);
      if (f.free < needed)
        return {
          actions: [],
          notes,
          blocked: {
            message: `${ctx.target.name}:${f.mount} has ${mib(f.free)} free; ${data.paths[i]} needs ${mib(needed)} more`,
            hint: 'Free space on the target, or choose another target.',
          },
        };
    }
    if (data.migration === 'snapshot')
      return ctx.journal.options.precopy === false
        ? { actions: [], notes: [...notes, 'stop-copy-start: nothing is sent while the application serves'] }
        : await snapshotPrecopyPlan(ctx, sizes, notes);
    // Every byte goes through the staging area on this machine: checked here, before the source stops.
    const staged = await stagingShortfall(ctx, total);
    if (staged) return { actions: [], notes, blocked: staged };
    if (ctx.journal.options.precopy === false)
      return {
        actions: [],
        notes: [...notes, 'stop-copy-start: nothing is copied while the application serves'],
      };
    const action: Action = {
      id: 'precopy',
      title: `copy ${data.paths.join(', ')} (${mib(total)}) from ${ctx.failed.name} while it serves, until the delta is small`,
      touches: ctx.target.name,
      mutates: true,
      // Run once per run (the journal says it ran); a resume after a crash in it copies again, only the delta.
      observable: false,
      async apply(c) {
        const passes: Pass[] = [];
        let verdict = precopyVerdict(passes, total);
        while (verdict.again) {
          const started = Date.now();
          let bytes = 0;
          let files = 0;
          for (const [i, path] of data.paths.entries()) {
            const r = await syncPath(c, path, i, sizes[i]!);
            bytes += r.pulled;
            files += r.files;
          }
          const pass = { n: passes.length + 1, bytes, files, ms: Date.now() - started };
          passes.push(pass);
          c.log(`pass ${pass.n}: ${files} files, ${mib(bytes)} in ${(pass.ms / 1000).toFixed(1)} s`);
          await c.checkpoint(`after-pass-${pass.n}`);
          verdict = precopyVerdict(passes, total);
        }
        c.log(`copied while serving: ${verdict.why}`);
        return { passes, total_bytes: total, stopped_because: verdict.why };
      },
    };
    return { actions: [action], notes };
  },
  async conclude(ctx, { applied }) {
    if (ctx.profile.data.migration === 'snapshot' && moves(ctx))
      return { method: 'snapshot', transfers: sends(ctx, applied) };
    return { ...(applied.get('precopy') ?? { precopy: 'none' }) };
  },
};

/** The fence of a planned move never powers the source off: it must answer for the final copy. */
const withoutPower = (p: Profile): Profile =>
  p.fencing?.power ? { ...p, fencing: { ...p.fencing, power: undefined } } : p;
const noPower = (ctx: StepContext): StepContext => ({ ...ctx, profile: withoutPower(ctx.profile) });

export const plannedFenceStep: Step = {
  ...fenceStep,
  dependsOn: ['precopy'],
  title: 'stop on the source and take it out of rotation',
  describe: (ctx) => fenceStep.describe(noPower(ctx)),
  checks: (ctx) => [
    `that ${ctx.failed.name} no longer serves: out of rotation, and ${ctx.profile.id} stopped there (deploy.status, else deploy.stop's exit)`,
  ],
  plan: (ctx) => fenceStep.plan(noPower(ctx)),
  conclude: (ctx, done) => fenceStep.conclude(noPower(ctx), done),
};

/**
 * Metadata of every entry (files: size and mtime to the nanosecond too), in one walk of the tree: equal on both
 * ends after a faithful rsync. `digest` covers the files, `meta` the other entries (directories, links).
 */
export const META_MANIFEST_SCRIPT = [
  'set -e',
  'cd -- "$1"',
  'LC_ALL=C; export LC_ALL',
  'list=$(mktemp)',
  'trap \'rm -f "$list"\' EXIT',
  'find . \\( -type f -printf "f %m %u:%g %s %T@ %p\\0" \\) -o \\( ! -type f -printf "%y %m %u:%g %p\\0" \\) | sort -z > "$list"',
  'files=$(grep -zc "^f " "$list" || true)',
  'bytes=$(grep -z "^f " "$list" | tr "\\0\\n" "\\n " | awk "{s+=\\$4} END {print s+0}")',
  'digest=$(grep -z "^f " "$list" | sha256sum | cut -d" " -f1)',
  'meta=$(grep -zv "^f " "$list" | sha256sum | cut -d" " -f1)',
  'echo "$files $bytes $digest $meta"',
].join('\n');

async function metaManifest(
  ctx: StepContext,
  host: InventoryHost,
  dir: string,
): Promise<Manifest | undefined> {
  const r = await ctx.ssh.exec(
    host,
    privileged(host, [
      'sh',
      '-c',
      `[ -d "$1" ] || { echo absent; exit 0; }\n${META_MANIFEST_SCRIPT}`,
      'persona-meta',
      dir,
    ]),
    { signal: ctx.signal, timeoutMs: 10 * 60_000 },
  );
  if (r.exitCode !== 0)
    throw new PersonaError(
      'E_STEP_FAILED',
      `cannot list ${dir} on ${host.name}: ${r.stderr.trim().split('\n').at(-1)}`,
    );
  return r.stdout.trim() === 'absent' ? undefined : parseManifest(r.stdout);
}

const manifestOf = (ctx: StepContext, verify: Verify, host: InventoryHost, path: string) =>
  verify === 'contents' ? manifestIfPresent(ctx.ssh, host, path, ctx.signal) : metaManifest(ctx, host, path);

type Verify = 'metadata' | 'contents';

/**
 * The final copy needs no look first (whatever changed since the last pass, rsync finds), so its plan sends
 * nothing: the clients are waiting. It runs once per run (a resume after a crash in it runs it again: rsync moves
 * only what still differs); the conclusion compares both ends.
 */
async function finalPlan(ctx: StepContext): Promise<StepPlan> {
  const { data } = ctx.profile;
  if (!moves(ctx)) return { actions: [], notes: [`no data to copy: data.migration is ${data.migration}`] };
  if (data.migration === 'snapshot') return await snapshotFinalPlan(ctx);
  const actions: Action[] = data.paths.map((path, index) => ({
    id: `final:${path}`,
    title: `copy what changed in ${path} since the last pass, from ${ctx.failed.name} (stopped)`,
    touches: ctx.target.name,
    mutates: true,
    observable: false,
    async apply(c) {
      const started = Date.now();
      let r: Awaited<ReturnType<typeof syncPath>>;
      let listing: string;
      try {
        // The source is stopped: its owners are listed while its data is pulled. After passes, the path's
        // parent is on the target already.
        [r, listing] = await Promise.all([
          syncPath(c, path, index, 0, c.journal.options.precopy !== false),
          listOwners(c, c.failed, path),
        ]);
      } catch (error) {
        const answers = await c.ssh
          .exec(c.failed, ['true'], { signal: c.signal, timeoutMs: 30_000 })
          .then((x) => x.exitCode === 0)
          .catch(() => false);
        if (answers || c.signal.aborted) throw error;
        throw new PersonaError(
          'E_STEP_FAILED',
          `${c.failed.name} does not answer: the final copy of ${path} cannot be made; ${c.target.name} holds it as the last pass left it`,
          {
            hint: `If ${c.failed.name} is gone, this is a recovery: persona recover ${c.failed.name}. Else bring it back and resume.`,
          },
        );
      }
      const owners = Date.now();
      await chownAsListed(c, path, listing);
      c.log(
        `final copy of ${path}: ${r.files} files, ${mib(r.pulled)} in ${Date.now() - started} ms (pull ${r.pull_ms} ms, push ${r.push_ms} ms, owners ${Date.now() - owners} ms)`,
      );
      await c.checkpoint('after-final-copy');
      return { path, files: r.files, transferred_bytes: r.pulled, duration_ms: Date.now() - started };
    },
  }));
  return { actions, notes: [] };
}

/** migrate of a planned move: the final delta from the stopped source, then both ends compared. */
const rsyncFinalStep: Step = {
  kind: 'migrate',
  dependsOn: ['fence'],
  title: 'copy the final changes',
  mutates: true,
  timeoutMs: () => 6 * 60 * 60_000,
  describe(ctx) {
    const { data } = ctx.profile;
    if (!moves(ctx)) return [`no data to copy (data.migration ${data.migration})`];
    const verify = ctx.journal.options.verify ?? 'metadata';
    if (data.migration === 'snapshot')
      return [
        `a second read-only snapshot of ${data.paths.join(', ')} on ${ctx.failed.name} (stopped), the difference from the first sent to ${ctx.target.name} (btrfs send -p), installed there as a writable snapshot; checked by ${verify === 'contents' ? 'sha256 manifests of every file' : 'metadata manifests (sizes, mtimes, modes, owners)'}; then persona's snapshots are deleted on both hosts`,
      ];
    return [
      `rsync what changed in ${data.paths.join(', ')} since the last pass, from ${ctx.failed.name} (stopped) to ${ctx.target.name}; checked by ${verify === 'contents' ? 'sha256 manifests of every file' : "metadata manifests (sizes, mtimes, modes, owners) and rsync's checksum of each file it copies"}`,
    ];
  },
  checks: (ctx) => [
    `${ctx.profile.data.paths.join(', ')}: the same ${ctx.journal.options.verify === 'contents' ? 'contents' : 'metadata'} on both hosts`,
  ],
  plan: finalPlan,
  async conclude(ctx, { plan, applied }) {
    const { data } = ctx.profile;
    if (!moves(ctx)) return { skipped: 'no rsync or snapshot data paths' };
    const verify: Verify = ctx.journal.options.verify ?? 'metadata';
    // The snapshot method compares the target with the final snapshot on the source; rsync, with the path.
    const snapshot =
      data.migration === 'snapshot' ? (plan.facts as unknown as FinalSnapshotFacts) : undefined;
    const fromOf = (path: string) => snapshot?.compare.find((c) => c.path === path)?.from ?? path;
    const comparing = Date.now();
    const verified = await Promise.all(
      data.paths.map(async (path) => {
        const [source, target] = await Promise.all([
          manifestOf(ctx, verify, ctx.failed, fromOf(path)),
          manifestOf(ctx, verify, ctx.target, path),
        ]);
        if (!source)
          throw new PersonaError(
            'E_STEP_FAILED',
            `${path} is not on ${ctx.failed.name}: nothing to compare with`,
          );
        if (!target || target.digest !== source.digest || target.meta !== source.meta)
          throw new PersonaError(
            'E_STEP_FAILED',
            `${path} on ${ctx.target.name} differs from ${ctx.failed.name}'s after the final copy (${verify} manifests: ${target ? `${target.files} files, ${target.bytes} bytes` : 'absent'} vs ${source.files} files, ${source.bytes} bytes)`,
            {
              hint: snapshot
                ? `Look at ${path} on ${ctx.target.name} and at the snapshots in ${join(dirname(path), SNAPSHOT_DIR)} (kept until the check holds), then resume.`
                : `Resume: the final copy runs again and moves only what differs.`,
            },
          );
        ctx.log(
          `${path}: ${target.files} files, ${target.bytes} bytes; ${verify} manifest ${target.digest.slice(0, 16)}… and owners/modes match ${ctx.failed.name}:${fromOf(path)} (compared in ${Date.now() - comparing} ms)`,
        );
        return {
          path,
          files: target.files,
          bytes: target.bytes,
          [verify === 'contents' ? 'digest' : 'meta_digest']: target.digest,
          meta: target.meta,
        };
      }),
    );
    const source = { kind: 'failed-host', host: ctx.failed.name, why: 'a planned move: the stopped source' };
    if (snapshot) return { source, method: 'snapshot', verify, transfers: sends(ctx, applied), verified };
    // The staged copy is the application's data on this machine: set aside now (a rename), removed by the
    // runner once the run ends (removing a GiB here would be time the clients wait for).
    if (!ctx.signal.aborted && existsSync(stagingDir(ctx)))
      await rename(stagingDir(ctx), finishedStaging(ctx.stateDir, ctx.journal.run_id));
    return {
      source,
      method: 'rsync',
      verify,
      transfers: data.paths.flatMap((p) => {
        const done = applied.get(`final:${p}`);
        return done ? [done] : [];
      }),
      verified,
    };
  },
};

/**
 * A step of the planned move that data.migration postgresql does its own way (a streaming replica, then its
 * promotion: postgresql-move.ts); every other method, the rsync way.
 */
function byMigration(rsync: Step, postgresql: Step): Step {
  const pick = (ctx: StepContext) => (ctx.profile.data.migration === 'postgresql' ? postgresql : rsync);
  return {
    ...rsync,
    describe: (ctx) => pick(ctx).describe(ctx),
    checks: (ctx) => pick(ctx).checks?.(ctx) ?? [],
    plan: (ctx) => pick(ctx).plan(ctx),
    conclude: (ctx, done) => pick(ctx).conclude(ctx, done),
  };
}

export const precopyStep = byMigration(rsyncPrecopyStep, replicaStep);
export const finalCopyStep = byMigration(rsyncFinalStep, promoteStep);

/** validate of a planned move: start and health only (the clients wait); the targets are monitor's. */
export const plannedValidateStep: Step = {
  ...validateStep,
  describe: (ctx) => [
    `start on ${ctx.target.name}: ${ctx.profile.deploy.start.join(' ')}`,
    `health checks: ${ctx.profile.health_checks.map((c) => c.name ?? c.type).join(', ') || '(none)'}, asked every 50 ms; the performance targets are held by monitor, after the switch`,
  ],
  checks: (ctx) => [`${ctx.profile.health_checks.length} health check(s)`],
  conclude: (ctx) => concludeValidate(ctx, { sample: false }),
};
