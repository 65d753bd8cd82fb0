/**
 * migrate: the data paths onto the new host. From the failed host when it answers, else from the profile's backup
 * (a path on this machine or on an inventory host) when the host is proven down or the operator chose the backup
 * (data-source.ts); refused, clearly, otherwise. The target's free
 * space is checked first; the copy is rsync over the same SSH settings as everything else (delta-efficient on
 * resume), staged on this machine for host-to-host copies (space checked first, removed afterwards), owners set
 * by name from the source, and verified by comparing manifests of contents, owners and modes.
 */
import { rm, stat, statfs } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import {
  CHOWN_SCRIPT,
  localManifest,
  type Manifest,
  OWNERS_SCRIPT,
  parseOwners,
  privileged,
  remoteManifest,
  runPrivileged,
  sameTree,
} from '../runbook/remote.js';
import type { Step, StepContext } from '../runbook/types.js';
import { decideSource, type SourceFacts } from './data-source.js';
import { type Reach, reachable } from './reach.js';

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

function copies(ctx: StepContext, source: Source): Copy[] {
  const paths = ctx.profile.data.paths;
  return paths.map((target) => {
    if (source.kind === 'failed-host') return { target, from: target };
    // One data path: the backup holds its contents; several: one sub-directory per path, named after it.
    return { target, from: paths.length === 1 ? source.path : join(source.path, basename(target)) };
  });
}

async function remoteDirExists(ctx: StepContext, host: InventoryHost, path: string): Promise<boolean> {
  const r = await ctx.ssh.exec(host, privileged(host, ['test', '-d', path]), {
    signal: ctx.signal,
    timeoutMs: 30_000,
  });
  return r.exitCode === 0;
}

function fenceFacts(ctx: StepContext): SourceFacts['fence'] {
  const evidence = ctx.previous('fence')?.outputs?.evidence as
    | { reachable?: unknown; unreachableKind?: unknown }
    | undefined;
  if (!evidence) return undefined;
  return {
    ...(typeof evidence.reachable === 'boolean' ? { host_reachable: evidence.reachable } : {}),
    ...(typeof evidence.unreachableKind === 'string' ? { kind: evidence.unreachableKind } : {}),
  };
}

/**
 * planning (a dry run, before any fence): the fence is assumed to find the host as it answers now, and the
 * reason says so.
 */
async function chooseSource(ctx: StepContext, planning = false): Promise<{ source: Source; why: string }> {
  const dataFrom = ctx.journal.options.data_from ?? 'auto';
  const reach: Reach = dataFrom === 'backup' ? { ok: true } : await reachable(ctx, ctx.failed);
  const failedHasData =
    dataFrom !== 'backup' &&
    reach.ok &&
    (await Promise.all(ctx.profile.data.paths.map((p) => remoteDirExists(ctx, ctx.failed, p)))).every(
      Boolean,
    );
  const recorded = fenceFacts(ctx);
  const assumed = planning && !recorded && !reach.ok;
  const decision = decideSource({
    failedName: ctx.failed.name,
    reach,
    failedHasData,
    fence: recorded ?? (assumed ? { host_reachable: false, kind: reach.ok ? '' : reach.kind } : undefined),
    dataFrom,
  });
  if ('refuse' in decision)
    throw new PersonaError('E_STEP_FAILED', `not migrating ${ctx.profile.id}'s data: ${decision.refuse}`, {
      hint: decision.hint,
    });
  if (assumed && 'use' in decision)
    decision.why = decision.why.replace('the fence found it down too', 'if the fence finds it down too');
  if (decision.use === 'failed-host')
    return { source: { kind: 'failed-host', host: ctx.failed }, why: decision.why };
  const why = decision.why;
  const backup = ctx.profile.data.backup;
  if (!backup) {
    throw new PersonaError(
      'E_STEP_FAILED',
      `no source for ${ctx.profile.id}'s data: ${why}, and the profile names no backup`,
      {
        hint: `Bring ${ctx.failed.name} back long enough to copy the data, or restore it onto ${ctx.target.name} by hand and skip this step.`,
      },
    );
  }
  if (backup.host) {
    const host = ctx.findHost(backup.host);
    if (!(await remoteDirExists(ctx, host, backup.path))) {
      throw new PersonaError(
        'E_STEP_FAILED',
        `no source for the data: ${why}, and the backup ${backup.host}:${backup.path} is not there`,
      );
    }
    return {
      source: { kind: 'backup-host', host, path: backup.path },
      why: `${why}; restoring from ${backup.host}:${backup.path}`,
    };
  }
  const info = await stat(backup.path).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new PersonaError(
      'E_STEP_FAILED',
      `no source for the data: ${why}, and the backup ${backup.path} is not a directory on this machine`,
    );
  }
  return {
    source: { kind: 'backup-local', path: backup.path },
    why: `${why}; restoring from ${backup.path} on this machine`,
  };
}

function sourceHost(source: Source): InventoryHost | undefined {
  return source.kind === 'backup-local' ? undefined : source.host;
}

async function sourceBytes(ctx: StepContext, source: Source, from: string): Promise<number> {
  const host = sourceHost(source);
  if (!host) {
    const { execa } = await import('execa');
    return Number(
      String((await execa('du', ['-sb', '--', from], { cancelSignal: ctx.signal })).stdout).split(/\s/)[0],
    );
  }
  const r = await runPrivileged(ctx.ssh, host, ['du', '-sb', '--', from], ctx.signal);
  return Number(r.stdout.split(/\s/)[0]);
}

async function targetFreeBytes(ctx: StepContext, path: string): Promise<{ free: number; mount: string }> {
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
const ownerFlags = (ctx: StepContext) =>
  ctx.profile.security_profile.users.length > 0 ? [] : ['--numeric-ids'];

async function rsync(ctx: StepContext, args: string[]): Promise<{ bytes: number }> {
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
  return { bytes: sent ? Number(sent[1]!.replaceAll(',', '')) : 0 };
}

async function rshArgs(
  ctx: StepContext,
  host: InventoryHost,
): Promise<{ e: string[]; spec: (path: string) => string }> {
  const { rsh, host: name } = await ctx.ssh.rsyncShell(host);
  const sudo = host.user && host.user !== 'root' ? ['--rsync-path', 'sudo -n rsync'] : [];
  return { e: ['-e', rsh, ...sudo], spec: (path) => `${name}:${path}` };
}

async function copyOne(
  ctx: StepContext,
  source: Source,
  copy: Copy,
  index: number,
): Promise<{ transferred: number }> {
  await runPrivileged(ctx.ssh, ctx.target, ['mkdir', '-p', '--', dirname(copy.target)], ctx.signal);
  const to = await rshArgs(ctx, ctx.target);
  const host = sourceHost(source);
  if (!host) {
    const pushed = await rsync(ctx, [...to.e, `${copy.from}/`, to.spec(`${copy.target}/`)]);
    return { transferred: pushed.bytes };
  }
  // Host to host: staged on this machine, which holds the SSH trust to both; a resumed copy only moves the delta.
  const staging = join(stagingDir(ctx), String(index));
  const { mkdir } = await import('node:fs/promises');
  await mkdir(staging, { recursive: true, mode: 0o700 });
  await checkStagingSpace(ctx, staging, await sourceBytes(ctx, source, copy.from));
  const from = await rshArgs(ctx, host);
  const pulled = await rsync(ctx, [...from.e, from.spec(`${copy.from}/`), `${staging}/`]);
  ctx.log(`pulled ${copy.from} from ${host.name} (${pulled.bytes} bytes transferred)`);
  await ctx.checkpoint('after-pull');
  const pushed = await rsync(ctx, [...to.e, `${staging}/`, to.spec(`${copy.target}/`)]);
  return { transferred: pulled.bytes + pushed.bytes };
}

const stagingDir = (ctx: StepContext) => join(ctx.stateDir, 'staging', ctx.journal.run_id);

/** The staging area must hold the copy (what is already staged from an earlier attempt counts as room). */
async function checkStagingSpace(ctx: StepContext, staging: string, needed: number): Promise<void> {
  const fs = await statfs(staging);
  const { execa } = await import('execa');
  const du = await execa('du', ['-sb', '--', staging], { cancelSignal: ctx.signal });
  const staged = Number(String(du.stdout).split(/\s/)[0]) || 0;
  const free = fs.bavail * fs.bsize;
  if (needed > free + staged) {
    throw new PersonaError(
      'E_STEP_FAILED',
      `the staging area ${staging} on this machine has ${(free / GiB).toFixed(2)} GiB free; the copy needs ${(needed / GiB).toFixed(2)} GiB`,
      { hint: 'Free space there, or point PERSONA_STATE_DIR at a larger filesystem, then resume.' },
    );
  }
}

/** Gives every copied entry its source owner and group by name; a name the target lacks stops the step. */
async function applyOwners(ctx: StepContext, source: Source, copy: Copy): Promise<void> {
  const host = sourceHost(source);
  let listing: string;
  if (host) {
    listing = (
      await runPrivileged(ctx.ssh, host, ['sh', '-c', OWNERS_SCRIPT, 'persona-owners', copy.from], ctx.signal)
    ).stdout;
  } else {
    const { execa } = await import('execa');
    listing = String(
      (await execa('sh', ['-c', OWNERS_SCRIPT, 'persona-owners', copy.from], { cancelSignal: ctx.signal }))
        .stdout,
    );
  }
  for (const [owner, paths] of parseOwners(listing)) {
    const r = await ctx.ssh.exec(
      ctx.target,
      privileged(ctx.target, ['sh', '-c', CHOWN_SCRIPT, 'persona-chown', copy.target, owner]),
      { signal: ctx.signal, input: `${paths.join('\0')}\0` },
    );
    if (r.exitCode !== 0) {
      throw new PersonaError(
        'E_STEP_FAILED',
        `cannot give ${paths.length} entries of ${copy.target} on ${ctx.target.name} their owner ${owner}: ${r.stderr.trim().split('\n').slice(-1)[0]}`,
        {
          hint: `Add the user and group to the profile's security_profile (users, groups) so configure creates them on ${ctx.target.name}, then resume.`,
        },
      );
    }
  }
}

async function verifyCopies(
  ctx: StepContext,
  source: Source,
): Promise<Array<{ path: string; source: Manifest; target: Manifest }>> {
  const out = [];
  for (const copy of copies(ctx, source)) {
    const [src, dst] = await Promise.all([
      manifestOf(ctx, source, copy.from),
      remoteManifest(ctx.ssh, ctx.target, copy.target, ctx.signal),
    ]);
    out.push({ path: copy.target, source: src, target: dst });
  }
  return out;
}

const describeSource = (s: Source) =>
  s.kind === 'backup-local'
    ? `${s.path} (backup on this machine)`
    : s.kind === 'backup-host'
      ? `${s.host.name}:${s.path} (backup)`
      : s.host.name;

export const migrateStep: Step = {
  kind: 'migrate',
  title: 'migrate the data',
  mutates: true,
  timeoutMs: () => 6 * 60 * 60_000,
  describe(ctx) {
    const { data } = ctx.profile;
    if (data.migration === 'none' || data.paths.length === 0)
      return ['no data to migrate (data.migration is none or no paths)'];
    const backup = data.backup
      ? `, else from the backup ${data.backup.host ? `${data.backup.host}:` : ''}${data.backup.path}`
      : ', no backup named';
    return [
      `rsync ${data.paths.join(', ')} to ${ctx.target.name}: from ${ctx.failed.name} if it answers${backup}; verified by checksum manifests`,
    ];
  },
  async simulate(ctx) {
    const { data } = ctx.profile;
    if (data.migration === 'none' || data.paths.length === 0) return ['nothing to migrate'];
    const { source, why } = await chooseSource(ctx, true);
    const lines = [`would copy from ${describeSource(source)}: ${why}`];
    for (const copy of copies(ctx, source)) {
      const [bytes, free] = await Promise.all([
        sourceBytes(ctx, source, copy.from),
        targetFreeBytes(ctx, copy.target),
      ]);
      lines.push(
        `${copy.target}: ${(bytes / 1024 ** 2).toFixed(1)} MiB to copy; ${(free.free / GiB).toFixed(2)} GiB free on ${ctx.target.name}:${free.mount}${bytes > free.free ? ' — NOT ENOUGH' : ''}`,
      );
    }
    return lines;
  },
  async verify(ctx) {
    if (ctx.profile.data.migration === 'none' || ctx.profile.data.paths.length === 0) return true;
    const { source } = await chooseSource(ctx);
    return (await verifyCopies(ctx, source)).every((c) => sameTree(c.source, c.target));
  },
  async run(ctx) {
    const { data } = ctx.profile;
    if (data.migration === 'none' || data.paths.length === 0) return { skipped: 'no data to migrate' };
    const { source, why } = await chooseSource(ctx);
    ctx.log(`data source: ${describeSource(source)} — ${why}`);
    const plan = copies(ctx, source);
    for (const copy of plan) {
      const [bytes, free] = await Promise.all([
        sourceBytes(ctx, source, copy.from),
        targetFreeBytes(ctx, copy.target),
      ]);
      if (bytes > free.free) {
        throw new PersonaError(
          'E_STEP_FAILED',
          `${ctx.target.name}:${free.mount} has ${(free.free / GiB).toFixed(2)} GiB free; ${copy.target} needs ${(bytes / GiB).toFixed(2)} GiB`,
          {
            hint: 'Free space on the target, or choose another target.',
          },
        );
      }
    }
    const transfers = [];
    try {
      for (const [i, copy] of plan.entries()) {
        const started = Date.now();
        const { transferred } = await copyOne(ctx, source, copy, i);
        await applyOwners(ctx, source, copy);
        transfers.push({
          path: copy.target,
          from: copy.from,
          transferred_bytes: transferred,
          duration_ms: Date.now() - started,
        });
      }
    } finally {
      // Staged data is a full copy of the application's data on this machine: never left behind. An interrupted
      // run keeps it, so that its resume moves only the delta; the resumed run removes it.
      if (!ctx.signal.aborted) await rm(stagingDir(ctx), { recursive: true, force: true });
    }
    await ctx.checkpoint('after-copy');
    const verified = await verifyCopies(ctx, source);
    for (const v of verified) {
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
      source: { kind: source.kind, ...(sourceHost(source) ? { host: sourceHost(source)!.name } : {}), why },
      transfers,
      verified: verified.map((v) => ({
        path: v.path,
        files: v.target.files,
        bytes: v.target.bytes,
        digest: v.target.digest,
        meta: v.target.meta,
      })),
    };
  },
};
