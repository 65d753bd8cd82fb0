/**
 * `data.migration: snapshot`: each data path is a btrfs subvolume on both hosts. A read-only snapshot of it on the
 * failed host is a point-in-time copy of live data; `btrfs send` of it, piped through this machine into
 * `btrfs receive` on the target (pipe.ts), replicates it; a writable snapshot of the received subvolume becomes the
 * data path there. Snapshots live next to the path, in DIR/.persona-snapshots/NAME@RUN on both hosts, and are
 * deleted once the step's check holds. The plan is data: per path the facts of both hosts (filesystem type,
 * subvolume, persona's snapshots) and the manifests decide (pure: decidePath) which of snapshot, send and install
 * are left to do; after them the target's manifest equals the snapshot's, and the new plan is empty.
 */
import { basename, dirname, join } from 'node:path';
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import { pipeBetween } from '../hosts/pipe.js';
import { displayCommand, type ExecResult } from '../hosts/ssh.js';
import { type Manifest, manifestIfPresent, privileged, remoteManifest } from '../runbook/remote.js';
import type { Action, StepContext } from '../runbook/types.js';
import { stripTerminalControls } from '../util/sanitize.js';
import { copyDiff } from './copy-diff.js';
import { applyOwners } from './owners.js';

export const SNAPSHOT_DIR = '.persona-snapshots';

/**
 * Where persona keeps the snapshots of a data path on either host, and this run's snapshot's name: NAME@RUN, or
 * NAME@RUN.SUFFIX when a run takes more than one (a planned move: `pre` while serving, `final` after the stop).
 */
export function snapshotNames(path: string, runId: string, suffix?: string) {
  const base = basename(path);
  return {
    dir: join(dirname(path), SNAPSHOT_DIR),
    prefix: `${base}@`,
    name: `${base}@${runId}${suffix ? `.${suffix}` : ''}`,
    /** Where a target's own, different data at the path is moved aside to (never deleted). */
    aside: `${path}.persona-previous-${runId}`,
  };
}

/** What a host shows of a data path, for the snapshot method. */
export interface BtrfsFacts {
  /** The path itself, else its nearest existing parent: what `fstype` is of. */
  probe: string;
  /** `stat -f -c %T`: "btrfs", "ext2/ext3", "tmpfs", ... */
  fstype: string;
  /** Whether the btrfs command is installed. */
  btrfs: boolean;
  kind: 'absent' | 'dir' | 'other';
  subvolume: boolean;
  empty: boolean;
  /** Subvolumes in the snapshot directory: name and whether read-only (a receive that did not end is not). */
  snapshots: Array<{ name: string; readonly: boolean }>;
  /** When this run's snapshot was taken (`btrfs subvolume show`), if it exists. */
  created?: string;
}

/** $1 the data path, $2 the snapshot directory, $3 this run's snapshot name. NUL-separated key=value records. */
const FACTS_SCRIPT = [
  'p=$1 dir=$2 name=$3',
  'e=$p',
  'while [ ! -e "$e" ] && [ "$e" != / ]; do e=$(dirname -- "$e"); done',
  'printf \'probe=%s\\0fstype=%s\\0\' "$e" "$(stat -f -c %T -- "$e")"',
  "command -v btrfs >/dev/null 2>&1 || { printf 'btrfs=no\\0'; exit 0; }",
  "printf 'btrfs=yes\\0'",
  'if [ -d "$p" ] && [ ! -L "$p" ]; then',
  "  printf 'kind=dir\\0'",
  '  btrfs subvolume show -- "$p" >/dev/null 2>&1 && printf \'subvolume=yes\\0\'',
  '  [ -z "$(ls -A -- "$p")" ] && printf \'empty=yes\\0\'',
  'elif [ -e "$p" ] || [ -L "$p" ]; then printf \'kind=other\\0\'',
  "else printf 'kind=absent\\0'; fi",
  '[ -d "$dir" ] || exit 0',
  'find "$dir" -mindepth 1 -maxdepth 1 -type d -exec sh -c \'for s; do printf "snap=%s:%s\\0" "$(btrfs property get -ts "$s" ro 2>/dev/null)" "$(basename -- "$s")"; done\' persona-snaps {} +',
  'if [ -d "$dir/$name" ]; then',
  '  printf \'created=%s\\0\' "$(btrfs subvolume show -- "$dir/$name" | sed -n \'s/^[[:space:]]*Creation time:[[:space:]]*//p\')"',
  'fi',
  'exit 0',
].join('\n');

export function parseBtrfsFacts(text: string): BtrfsFacts {
  const facts: BtrfsFacts = {
    probe: '',
    fstype: '',
    btrfs: false,
    kind: 'absent',
    subvolume: false,
    empty: false,
    snapshots: [],
  };
  for (const record of text.split('\0')) {
    const eq = record.indexOf('=');
    if (eq < 0) continue;
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'probe') facts.probe = value;
    else if (key === 'fstype') facts.fstype = value.trim();
    else if (key === 'btrfs') facts.btrfs = value === 'yes';
    else if (key === 'kind' && (value === 'dir' || value === 'other' || value === 'absent'))
      facts.kind = value;
    else if (key === 'subvolume') facts.subvolume = value === 'yes';
    else if (key === 'empty') facts.empty = value === 'yes';
    else if (key === 'created') facts.created = value.trim();
    else if (key === 'snap') {
      // "ro=true:NAME": the flag has no colon, the name may.
      const colon = value.indexOf(':');
      facts.snapshots.push({ name: value.slice(colon + 1), readonly: value.slice(0, colon) === 'ro=true' });
    }
  }
  return facts;
}

export async function btrfsFacts(
  ctx: StepContext,
  host: InventoryHost,
  path: string,
  names: ReturnType<typeof snapshotNames>,
): Promise<BtrfsFacts> {
  const argv = ['sh', '-c', FACTS_SCRIPT, 'persona-btrfs-facts', path, names.dir, names.name];
  const r = await ctx.ssh.exec(host, privileged(host, argv), { signal: ctx.signal });
  if (r.exitCode !== 0) throw failure(host, argv, r, `looking at ${path}`);
  return parseBtrfsFacts(r.stdout);
}

/** Remote text in a message: no terminal controls. */
const shown = (text: string) => stripTerminalControls(text);

/** Why the snapshot method cannot move this path, or undefined when both hosts can. */
export function refusal(
  path: string,
  source: { name: string; facts: BtrfsFacts },
  target: { name: string; facts: BtrfsFacts },
  names: ReturnType<typeof snapshotNames>,
): { message: string; hint: string } | undefined {
  const other =
    'Use data.migration rsync for this application, or put the data path on a btrfs subvolume on both hosts.';
  const noCommand = (name: string) => ({
    message: `${name}: the btrfs command is not installed (data.migration snapshot needs btrfs-progs on both hosts)`,
    hint: `Install btrfs-progs on ${name} (add it to software_stack), or ${other.charAt(0).toLowerCase()}${other.slice(1)}`,
  });
  // Per host, the filesystem first: installing btrfs-progs would not help a path on ext4.
  const src = source.facts;
  if (src.fstype !== 'btrfs')
    return {
      message: `${source.name}:${path} is on ${shown(src.fstype) || 'an unknown filesystem'}, not btrfs: data.migration snapshot needs each data path to be a btrfs subvolume`,
      hint: other,
    };
  if (!src.btrfs) return noCommand(source.name);
  if (src.kind !== 'dir' || !src.subvolume)
    return {
      message: `${source.name}:${path} is ${src.kind === 'dir' ? 'a plain directory on btrfs' : 'not a directory'}, not a btrfs subvolume: it cannot be snapshotted`,
      hint: `Make it a subvolume (btrfs subvolume create, then move the data into it), or ${other.charAt(0).toLowerCase()}${other.slice(1)}`,
    };
  const dst = target.facts;
  if (dst.fstype !== 'btrfs')
    return {
      message: `${target.name}:${path} is on ${shown(dst.fstype) || 'an unknown filesystem'}${dst.probe !== path ? ` (its parent ${shown(dst.probe)} is)` : ''}, not btrfs: the snapshot cannot be received there`,
      hint: other,
    };
  if (!dst.btrfs) return noCommand(target.name);
  if (dst.kind === 'other')
    return {
      message: `${target.name}:${path} exists and is not a directory`,
      hint: `Remove it on ${target.name} or choose another target.`,
    };
  const own = src.snapshots.find((s) => s.name === names.name);
  if (own && !own.readonly)
    return {
      message: `${source.name}:${join(names.dir, names.name)} exists and is not a read-only snapshot: persona does not replace it`,
      hint: `Look at it and delete it (btrfs subvolume delete) on ${source.name}, then resume.`,
    };
  return undefined;
}

/** What is left to do for one path. */
export type PathWork =
  | { converged: true }
  | {
      converged: false;
      why: string;
      snapshot: boolean;
      /** Absent: the target has the snapshot already. `parent`: a snapshot both hosts hold, for `send -p`. */
      send?: { parent?: string; replaceIncomplete: boolean };
      /** What is at the path on the target now: nothing, an empty directory (removed), data (moved aside). */
      existing: 'absent' | 'empty' | 'aside';
    };

/**
 * Pure: whether this run's snapshot is still to take on the source and to send to the target, and from which
 * parent: `prefer` (a planned move's precopy snapshot) when both hosts hold it read-only, else the latest of
 * persona's read-only snapshots of the path that both hold, else none (a full send).
 */
export function decideSend(
  facts: { source: BtrfsFacts; target: BtrfsFacts },
  names: ReturnType<typeof snapshotNames>,
  prefer?: string,
): { snapshot: boolean; send?: { parent?: string; replaceIncomplete: boolean } } {
  const own = facts.source.snapshots.find((s) => s.name === names.name);
  const received = facts.target.snapshots.find((s) => s.name === names.name);
  const shared = facts.source.snapshots
    .filter((s) => s.readonly && s.name !== names.name && s.name.startsWith(names.prefix))
    .map((s) => s.name)
    .filter((n) => facts.target.snapshots.some((t) => t.name === n && t.readonly))
    .sort();
  const parent = prefer && shared.includes(prefer) ? prefer : shared.at(-1);
  return {
    snapshot: !own,
    ...(received?.readonly
      ? {}
      : { send: { ...(parent ? { parent } : {}), replaceIncomplete: received !== undefined } }),
  };
}

/** What is at the data path on the target now: nothing, an empty directory (replaced), data (moved aside). */
export const existingAt = (target: BtrfsFacts): 'absent' | 'empty' | 'aside' =>
  target.kind === 'absent' ? 'absent' : target.empty ? 'empty' : 'aside';

/** Pure: what the facts and manifests leave to do for a path both hosts can take (see `refusal`). */
export function decidePath(
  facts: { source: BtrfsFacts; target: BtrfsFacts },
  manifests: { source: Manifest; target: Manifest | undefined; targetName: string },
  names: ReturnType<typeof snapshotNames>,
): PathWork {
  const why = copyDiff(manifests.source, manifests.target, manifests.targetName);
  if (!why) return { converged: true };
  return { converged: false, why, ...decideSend(facts, names), existing: existingAt(facts.target) };
}

function failure(host: InventoryHost, argv: readonly string[], r: ExecResult, what: string): PersonaError {
  const said = r.stderr.trim().split('\n').slice(-3).join(' ');
  return new PersonaError(
    'E_STEP_FAILED',
    `${host.name}: ${what}: \`${displayCommand(argv)}\` exited with code ${r.exitCode}${said ? `: ${said}` : ''}`,
  );
}

async function runOn(
  ctx: StepContext,
  host: InventoryHost,
  argv: string[],
  what: string,
): Promise<ExecResult> {
  const r = await ctx.ssh.exec(host, privileged(host, argv), { signal: ctx.signal });
  if (r.exitCode !== 0) throw failure(host, argv, r, what);
  return r;
}

/**
 * Sends the read-only snapshot DIR/NAME from one host into DIR on the other: in full, or as the difference from
 * `parent` (a snapshot both hold: `send -p`, what a planned move's final delta pass uses). The stream goes
 * through this machine. Errors name both hosts, the path and the btrfs command that failed.
 */
export async function sendSnapshot(
  ctx: Pick<StepContext, 'ssh' | 'signal'>,
  move: { from: InventoryHost; to: InventoryHost; dir: string; name: string; parent?: string },
): Promise<{ bytes: number; duration_ms: number }> {
  const send = [
    'btrfs',
    'send',
    ...(move.parent ? ['-p', join(move.dir, move.parent)] : []),
    '--',
    join(move.dir, move.name),
  ];
  const receive = ['btrfs', 'receive', '--', move.dir];
  const started = Date.now();
  const r = await pipeBetween(
    ctx.ssh,
    { host: move.from, argv: privileged(move.from, send) },
    { host: move.to, argv: privileged(move.to, receive) },
    { signal: ctx.signal },
  );
  if (r.source.exitCode !== 0 || r.sink.exitCode !== 0) {
    const end = (host: InventoryHost, argv: string[], x: ExecResult) =>
      x.exitCode === 0
        ? `${host.name}: \`${displayCommand(argv)}\` ended well`
        : `${host.name}: \`${displayCommand(argv)}\` exited with code ${x.exitCode}: ${x.stderr.trim().split('\n').slice(-2).join(' ')}`;
    throw new PersonaError(
      'E_STEP_FAILED',
      `sending ${join(move.dir, move.name)} from ${move.from.name} to ${move.to.name} failed (${r.bytes} bytes passed): ${end(move.from, send, r.source)}; ${end(move.to, receive, r.sink)}`,
      {
        hint: 'An unfinished receive is left writable and is replaced when the step is resumed; the source is untouched.',
      },
    );
  }
  return { bytes: r.bytes, duration_ms: Date.now() - started };
}

/** $1 the data path, $2 the received snapshot, $3 where data already at the path goes. Prints where it went. */
const INSTALL_SCRIPT = [
  'set -e',
  'p=$1 snap=$2 aside=$3',
  'if [ -e "$p" ] || [ -L "$p" ]; then',
  '  if [ -d "$p" ] && [ ! -L "$p" ] && [ -z "$(ls -A -- "$p")" ]; then',
  '    if btrfs subvolume show -- "$p" >/dev/null 2>&1; then btrfs subvolume delete -- "$p" >/dev/null; else rmdir -- "$p"; fi',
  '  else',
  '    a=$aside i=1',
  '    while [ -e "$a" ] || [ -L "$a" ]; do i=$((i + 1)); a=$aside.$i; done',
  '    mv -T -- "$p" "$a"',
  '    printf "%s" "$a"',
  '  fi',
  'fi',
  'mkdir -p -- "$(dirname -- "$p")"',
  'btrfs subvolume snapshot -- "$snap" "$p" >/dev/null',
].join('\n');

interface PathPlan {
  path: string;
  names: ReturnType<typeof snapshotNames>;
  work: Exclude<PathWork, { converged: true }>;
  source: Manifest;
}

type Names = ReturnType<typeof snapshotNames>;

/** Takes the read-only snapshot DIR/NAME of the data path on the source. */
export function snapshotAction(source: InventoryHost, path: string, names: Names, why: string): Action {
  const at = join(names.dir, names.name);
  return {
    id: `snapshot:${path}`,
    title: `take a read-only snapshot of ${source.name}:${path} at ${at} (${why})`,
    touches: source.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      await runOn(c, source, ['mkdir', '-p', '-m', '0700', '--', names.dir], `creating ${names.dir}`);
      await runOn(
        c,
        source,
        ['btrfs', 'subvolume', 'snapshot', '-r', '--', path, at],
        `snapshotting the data path ${path}`,
      );
      return { path, snapshot: at };
    },
  };
}

/** Sends DIR/NAME from the source into DIR on the target: in full (`size` says how much), or the difference. */
export function sendAction(
  source: InventoryHost,
  target: InventoryHost,
  path: string,
  names: Names,
  send: { parent?: string; replaceIncomplete: boolean },
  size: string,
): Action {
  const at = join(names.dir, names.name);
  const { parent, replaceIncomplete } = send;
  return {
    id: `send:${path}`,
    title: `send ${at} from ${source.name} to ${target.name}:${names.dir} (${parent ? `the difference from ${parent}` : `in full, ${size}`}${replaceIncomplete ? '; replacing an unfinished receive' : ''})`,
    touches: target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      await runOn(c, target, ['mkdir', '-p', '-m', '0700', '--', names.dir], `creating ${names.dir}`);
      if (replaceIncomplete)
        await runOn(
          c,
          target,
          ['btrfs', 'subvolume', 'delete', '--', at],
          `deleting an unfinished receive of ${path}`,
        );
      const sent = await sendSnapshot(c, {
        from: source,
        to: target,
        dir: names.dir,
        name: names.name,
        ...(parent ? { parent } : {}),
      });
      c.log(
        `${path}: sent ${at} to ${target.name} (${sent.bytes} bytes, ${parent ? `-p ${parent}` : 'full'})`,
      );
      return {
        path,
        snapshot: at,
        ...(parent ? { parent } : {}),
        transferred_bytes: sent.bytes,
        duration_ms: sent.duration_ms,
      };
    },
  };
}

/**
 * Makes the data path on the target a writable snapshot of the received DIR/NAME. What was there: an empty
 * directory is replaced, data is moved aside to PATH.persona-previous-RUN, never deleted.
 */
export function installAction(
  source: InventoryHost,
  target: InventoryHost,
  path: string,
  names: Names,
  existing: 'absent' | 'empty' | 'aside',
): Action {
  const at = join(names.dir, names.name);
  const aside =
    existing === 'aside'
      ? `; what is there now differs from the source and is moved aside to ${names.aside}, not deleted`
      : existing === 'empty'
        ? '; the empty directory there now is replaced'
        : '';
  return {
    id: `install:${path}`,
    title: `make ${target.name}:${path} a writable snapshot of the received ${at}${aside}`,
    touches: target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      const argv = ['sh', '-c', INSTALL_SCRIPT, 'persona-btrfs-install', path, at, names.aside];
      const r = await runOn(c, target, argv, `making ${path} a writable snapshot of ${at}`);
      const movedTo = r.stdout.trim();
      if (movedTo) c.log(`${path} on ${target.name}: what was there is kept at ${shown(movedTo)}`);
      // The stream carries numeric ids; users configure created have new ones, so those travel by name.
      if (c.profile.security_profile.users.length > 0) await applyOwners(c, source, at, path);
      return { path, from: at, ...(movedTo ? { moved_aside: shown(movedTo) } : {}) };
    },
  };
}

/** The actions of one path, in order: snapshot on the source, send, install on the target. */
export function pathActions(ctx: StepContext, failed: InventoryHost, p: PathPlan): Action[] {
  const { path, names, work } = p;
  return [
    ...(work.snapshot ? [snapshotAction(failed, path, names, work.why)] : []),
    ...(work.send
      ? [
          sendAction(
            failed,
            ctx.target,
            path,
            names,
            work.send,
            `${(p.source.bytes / 1024 ** 2).toFixed(1)} MiB in ${p.source.files} files`,
          ),
        ]
      : []),
    installAction(failed, ctx.target, path, names, work.existing),
  ];
}

/** Deletes persona's snapshots of a path on both hosts (never the path itself: only DIR/NAME@… subvolumes). */
export function cleanupAction(
  path: string,
  names: ReturnType<typeof snapshotNames>,
  hosts: Array<{ host: InventoryHost; snapshots: string[] }>,
): Action | undefined {
  const todo = hosts.filter((h) => h.snapshots.length > 0);
  if (todo.length === 0) return undefined;
  return {
    id: `cleanup:${path}`,
    title: `delete persona's snapshots of ${path}: ${todo.map((h) => `${h.host.name}: ${h.snapshots.map(shown).join(', ')}`).join('; ')}`,
    touches: todo.map((h) => h.host.name).join(', '),
    mutates: true,
    observable: true,
    apply: async (c) => {
      for (const { host, snapshots } of todo) {
        const paths = snapshots.map((n) => join(names.dir, n));
        await runOn(
          c,
          host,
          ['btrfs', 'subvolume', 'delete', '--', ...paths],
          `deleting snapshots of ${path}`,
        );
        await runOn(
          c,
          host,
          ['rmdir', '--ignore-fail-on-non-empty', '--', names.dir],
          `removing ${names.dir}`,
        );
      }
      return { path, deleted: todo.map((h) => ({ host: h.host.name, snapshots: h.snapshots })) };
    },
  };
}

export interface SnapshotPlan {
  actions: Action[];
  after: Action[];
  notes: string[];
  blocked?: { message: string; hint?: string };
  paths: Array<{ path: string; from: string; source: Manifest; target: Manifest | null }>;
  /** Per path: the snapshot the target's copy is of, and when it was taken (the recovery point). */
  recovery_points: Array<{ path: string; snapshot: string; taken_at: string }>;
}

/** The plan of the snapshot method, from the failed host (which answers and has the data) to the target. */
export async function snapshotPlan(ctx: StepContext, failed: InventoryHost): Promise<SnapshotPlan> {
  const out: SnapshotPlan = { actions: [], after: [], notes: [], paths: [], recovery_points: [] };
  if (!ctx.ssh.stream)
    return {
      ...out,
      blocked: {
        message: 'data.migration snapshot needs a transport that can stream between hosts; this one cannot',
      },
    };
  for (const path of ctx.profile.data.paths) {
    const names = snapshotNames(path, ctx.journal.run_id);
    const [source, target] = await Promise.all([
      btrfsFacts(ctx, failed, path, names),
      btrfsFacts(ctx, ctx.target, path, names),
    ]);
    const refused = refusal(
      path,
      { name: failed.name, facts: source },
      { name: ctx.target.name, facts: target },
      names,
    );
    if (refused)
      return {
        ...out,
        blocked: { message: `not migrating ${path}: ${refused.message}`, hint: refused.hint },
      };
    const own = source.snapshots.find((s) => s.name === names.name);
    const from = own ? join(names.dir, names.name) : path;
    const [sourceManifest, targetManifest] = await Promise.all([
      remoteManifest(ctx.ssh, failed, from, ctx.signal),
      manifestIfPresent(ctx.ssh, ctx.target, path, ctx.signal),
    ]);
    out.paths.push({ path, from, source: sourceManifest, target: targetManifest ?? null });
    if (own && source.created)
      out.recovery_points.push({ path, snapshot: from, taken_at: shown(source.created) });
    const work = decidePath(
      { source, target },
      { source: sourceManifest, target: targetManifest, targetName: ctx.target.name },
      names,
    );
    if (work.converged)
      out.notes.push(
        `${path}: ${targetManifest!.files} files, the same contents, owners and modes on ${ctx.target.name} as ${own ? `the snapshot ${from}${source.created ? ` (taken ${shown(source.created)})` : ''}` : `${failed.name}:${path}`}`,
      );
    else out.actions.push(...pathActions(ctx, failed, { path, names, work, source: sourceManifest }));
    // Taken or received by this plan's actions, or left by an earlier run: all persona's, all deleted at the end.
    const mine = (f: BtrfsFacts) =>
      f.snapshots.filter((s) => s.name.startsWith(names.prefix)).map((s) => s.name);
    const created = (list: string[], adds: boolean) =>
      adds && !list.includes(names.name) ? [...list, names.name] : list;
    const cleanup = cleanupAction(path, names, [
      { host: failed, snapshots: created(mine(source), !work.converged) },
      { host: ctx.target, snapshots: created(mine(target), !work.converged) },
    ]);
    if (cleanup) out.after.push(cleanup);
  }
  return out;
}
