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
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import type { Profile } from '../profile/schema.js';
import {
  type Manifest,
  manifestIfPresent,
  parseManifest,
  privileged,
  remoteManifest,
  runPrivileged,
} from '../runbook/remote.js';
import type { Action, Step, StepContext, StepOutputs, StepPlan } from '../runbook/types.js';
import { fenceStep } from './fence.js';
import { checkStagingSpace, rshArgs, rsync, stagingDir, targetFreeBytes } from './migrate.js';
import { applyOwners } from './owners.js';
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

/** Where each data path is staged on this machine, for the whole run. */
const stageOf = (ctx: StepContext, index: number) => join(stagingDir(ctx), String(index));

/** One pass for one path: source → staging → target, each rsync moving only what differs. */
async function syncPath(
  ctx: StepContext,
  path: string,
  index: number,
  needed: number,
): Promise<{ pulled: number; files: number; pushed: number }> {
  const staging = stageOf(ctx, index);
  await mkdir(staging, { recursive: true, mode: 0o700 });
  await checkStagingSpace(ctx, staging, needed);
  await runPrivileged(ctx.ssh, ctx.target, ['mkdir', '-p', '--', dirname(path)], ctx.signal);
  const from = await rshArgs(ctx, ctx.failed);
  const to = await rshArgs(ctx, ctx.target);
  const pulled = await rsync(ctx, [...from.e, from.spec(`${path}/`), `${staging}/`]);
  const pushed = await rsync(ctx, [...to.e, `${staging}/`, to.spec(`${path}/`)]);
  return { pulled: pulled.bytes, files: pulled.files, pushed: pushed.bytes };
}

/** The bytes of the data on the source (du), for the thresholds and the space checks. */
async function sourceBytes(ctx: StepContext, path: string): Promise<number> {
  const r = await runPrivileged(ctx.ssh, ctx.failed, ['du', '-sb', '--', path], ctx.signal);
  return Number(r.stdout.trim().split(/\s+/)[0]) || 0;
}

/** precopy: rsync passes while the application serves on the source, until the delta is small. */
export const precopyStep: Step = {
  kind: 'precopy',
  dependsOn: ['configure'],
  title: 'copy the data while the application serves',
  mutates: true,
  timeoutMs: () => 6 * 60 * 60_000,
  describe(ctx) {
    if (ctx.journal.options.precopy === false) return ['none: stop-copy-start (--stop-copy-start)'];
    const paths = ctx.profile.data.paths;
    if (ctx.profile.data.migration !== 'rsync' || paths.length === 0) return ['none: no rsync data paths'];
    return [
      `rsync ${paths.join(', ')} from ${ctx.failed.name} (still serving) to ${ctx.target.name} through this machine, pass after pass until one moves ≤ 1% of the data (at most ${MAX_PASSES})`,
    ];
  },
  checks: () => ['each pass copied without error; the final copy after the stop is checked'],
  async plan(ctx): Promise<StepPlan> {
    const { data } = ctx.profile;
    if (ctx.journal.options.precopy === false)
      return { actions: [], notes: ['stop-copy-start: nothing is copied while the application serves'] };
    if (data.migration !== 'rsync' || data.paths.length === 0)
      return { actions: [], notes: [`no copy while it serves: data.migration is ${data.migration}`] };
    const reach = await ctx.ssh.exec(ctx.failed, ['true'], { signal: ctx.signal, timeoutMs: 30_000 });
    if (reach.exitCode !== 0)
      return {
        actions: [],
        notes: [],
        blocked: { message: `${ctx.failed.name} does not run commands (\`true\` exits ${reach.exitCode})` },
      };
    const sizes = await Promise.all(data.paths.map((p) => sourceBytes(ctx, p)));
    const total = sizes.reduce((a, b) => a + b, 0);
    const notes = [`${data.paths.length} path(s), ${mib(total)} on ${ctx.failed.name}`];
    const free = await Promise.all(data.paths.map((p) => targetFreeBytes(ctx, p)));
    for (const [i, f] of free.entries())
      if (f.free < sizes[i]!)
        return {
          actions: [],
          notes,
          blocked: {
            message: `${ctx.target.name}:${f.mount} has ${mib(f.free)} free; ${data.paths[i]} needs ${mib(sizes[i]!)}`,
            hint: 'Free space on the target, or choose another target.',
          },
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
  async conclude(_ctx, { applied }) {
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

/** Metadata of every entry (files: size and mtime to the nanosecond too): equal after a faithful rsync. */
export const META_MANIFEST_SCRIPT = [
  'set -e',
  'cd -- "$1"',
  'LC_ALL=C; export LC_ALL',
  'files=$(find . -type f | wc -l)',
  'bytes=$(find . -type f -printf "%s\\n" | awk "{s+=\\$1} END {print s+0}")',
  'digest=$(find . -type f -printf "%s %T@ %p\\0" | sort -z | sha256sum | cut -d" " -f1)',
  'meta=$(find . -printf "%y %m %u:%g %p\\0" | sort -z | sha256sum | cut -d" " -f1)',
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

interface FinalFacts {
  verify: 'metadata' | 'contents';
  paths: Array<{ path: string; source: Manifest; target: Manifest | null }>;
}

async function finalPlan(ctx: StepContext): Promise<StepPlan> {
  const { data } = ctx.profile;
  if (data.migration !== 'rsync' || data.paths.length === 0)
    return {
      actions: [],
      notes: [`no data to copy: data.migration is ${data.migration}`],
      facts: { skipped: 'no rsync data paths' },
    };
  const verify = ctx.journal.options.verify ?? 'metadata';
  const reach = await ctx.ssh
    .exec(ctx.failed, ['true'], { signal: ctx.signal, timeoutMs: 30_000 })
    .catch((error: Error) => ({ exitCode: -1, stderr: error.message }));
  if (reach.exitCode !== 0)
    return {
      actions: [],
      notes: [],
      blocked: {
        message: `${ctx.failed.name} does not answer (${reach.stderr.trim().split('\n').at(-1)}): the final copy cannot be made; ${ctx.target.name} holds the data as the last pass left it`,
        hint: `If ${ctx.failed.name} is gone, this is a recovery: persona recover ${ctx.failed.name}. Else bring it back and resume.`,
      },
    };
  const manifest = async (host: InventoryHost, path: string) =>
    verify === 'contents'
      ? host === ctx.failed
        ? await remoteManifest(ctx.ssh, host, path, ctx.signal)
        : await manifestIfPresent(ctx.ssh, host, path, ctx.signal)
      : await metaManifest(ctx, host, path);
  const paths = await Promise.all(
    data.paths.map(async (path) => {
      const [source, target] = await Promise.all([manifest(ctx.failed, path), manifest(ctx.target, path)]);
      if (!source)
        throw new PersonaError('E_STEP_FAILED', `${path} is not on ${ctx.failed.name}: nothing to move`);
      return { path, source, target: target ?? null };
    }),
  );
  const same = (p: (typeof paths)[number]) =>
    p.target !== null && p.source.digest === p.target.digest && p.source.meta === p.target.meta;
  const notes = paths.map(
    (p) =>
      `${p.path}: ${p.source.files} files, ${mib(p.source.bytes)} on ${ctx.failed.name}; ${same(p) ? `the same on ${ctx.target.name}` : `${ctx.target.name} differs`} (${verify} manifests)`,
  );
  const todo = paths.flatMap((p, i) => (same(p) ? [] : [{ ...p, index: i }]));
  const actions: Action[] = todo.map((p) => ({
    id: `final:${p.path}`,
    title: `copy what changed in ${p.path} since the last pass, from ${ctx.failed.name} (stopped)`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    async apply(c) {
      const started = Date.now();
      const r = await syncPath(c, p.path, p.index, p.source.bytes);
      await applyOwners(c, c.failed, p.path, p.path);
      c.log(`final copy of ${p.path}: ${r.files} files, ${mib(r.pulled)} in ${Date.now() - started} ms`);
      await c.checkpoint('after-final-copy');
      return { path: p.path, files: r.files, transferred_bytes: r.pulled, duration_ms: Date.now() - started };
    },
  }));
  const facts: FinalFacts = { verify, paths };
  return { actions, notes, facts: facts as unknown as StepOutputs };
}

/** migrate of a planned move: the final delta from the stopped source, then both ends compared. */
export const finalCopyStep: Step = {
  kind: 'migrate',
  dependsOn: ['fence'],
  title: 'copy the final changes',
  mutates: true,
  timeoutMs: () => 6 * 60 * 60_000,
  describe(ctx) {
    const { data } = ctx.profile;
    if (data.migration !== 'rsync' || data.paths.length === 0)
      return [`no data to copy (data.migration ${data.migration})`];
    const verify = ctx.journal.options.verify ?? 'metadata';
    return [
      `rsync what changed in ${data.paths.join(', ')} since the last pass, from ${ctx.failed.name} (stopped) to ${ctx.target.name}; checked by ${verify === 'contents' ? 'sha256 manifests of every file' : "metadata manifests (sizes, mtimes, modes, owners) and rsync's checksum of each file it copies"}`,
    ];
  },
  checks: (ctx) => [
    `${ctx.profile.data.paths.join(', ')}: the same ${ctx.journal.options.verify === 'contents' ? 'contents' : 'metadata'} on both hosts`,
  ],
  plan: finalPlan,
  async conclude(ctx, { plan: final, applied }) {
    const facts = final.facts as unknown as FinalFacts | { skipped: string } | undefined;
    if (!facts) throw new PersonaError('E_STEP_FAILED', 'the final copy found no facts about the data');
    if ('skipped' in facts) return { skipped: facts.skipped };
    for (const p of facts.paths) {
      if (!p.target || p.target.digest !== p.source.digest || p.target.meta !== p.source.meta)
        throw new PersonaError(
          'E_STEP_FAILED',
          `${p.path} on ${ctx.target.name} differs from ${ctx.failed.name}'s after the final copy (${facts.verify} manifests)`,
        );
      ctx.log(
        `${p.path}: ${p.target.files} files, ${p.target.bytes} bytes; ${facts.verify} manifest ${p.target.digest.slice(0, 16)}… and owners/modes match ${ctx.failed.name}`,
      );
    }
    // The staged copy is the application's data on this machine: removed once the target holds it.
    if (!ctx.signal.aborted) await rm(stagingDir(ctx), { recursive: true, force: true });
    return {
      source: { kind: 'failed-host', host: ctx.failed.name, why: 'a planned move: the stopped source' },
      method: 'rsync',
      verify: facts.verify,
      transfers: facts.paths.flatMap((p) => {
        const done = applied.get(`final:${p.path}`);
        return done ? [done] : [];
      }),
      verified: facts.paths.map((p) => ({
        path: p.path,
        files: p.target!.files,
        bytes: p.target!.bytes,
        [facts.verify === 'contents' ? 'digest' : 'meta_digest']: p.target!.digest,
        meta: p.target!.meta,
      })),
    };
  },
};

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
