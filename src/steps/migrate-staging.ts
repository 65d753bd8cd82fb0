/**
 * Where migrate's early copy goes: a staging directory beside each data path, never the path itself. Until
 * migrate has decided where the data comes from, the backup must not be where the application reads its data (a
 * failed host that refuses persona may hold newer data, and a host that answers is copied from). The directory is
 * `<parent>/.persona-staging/<name>@<run>`: on the data path's filesystem, under a directory that is root's and
 * 0700, every entry in it root's and 0700 or 0600. Once migrate chose the backup, the staged copy is moved into
 * place (a rename: atomic on one filesystem) and rsync copies only what differs, owners and modes included; once
 * it chose the failed host, the staged copy is removed before anything is copied from it.
 */
import { basename, dirname, join } from 'node:path';
import { runPrivileged } from '../runbook/remote.js';
import type { Action, StepContext } from '../runbook/types.js';

const STAGING = '.persona-staging';

/** The staging directory of `dataPath` for run `runId`. */
export function stagingPath(dataPath: string, runId: string): string {
  return join(dirname(dataPath), STAGING, `${basename(dataPath)}@${runId}`);
}

/** rsync's arguments that keep a staged copy root-only: root's, directories 0700, files 0600 (no set-id bit). */
export const ROOT_ONLY = ['--chown=root:root', '--chmod=D0700,F0600'];

/** What is at a data path on the target: nothing, an empty directory, or something. */
export type DataPathState = 'absent' | 'empty' | 'present';

export interface StagingFacts {
  path: string;
  staging: string;
  data: DataPathState;
  /** The bytes in the staging directory; undefined when there is none. */
  staged?: number;
  /** Whether rsync is on the target (before configure installs it, it may not be). */
  rsync: boolean;
}

const FACTS = [
  'd=$1; st=$2',
  'if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then s=present',
  'elif [ -d "$d" ]; then if [ -z "$(ls -A -- "$d")" ]; then s=empty; else s=present; fi',
  'else s=absent; fi',
  'if [ -d "$st" ] && [ ! -L "$st" ]; then b=$(du -sb -- "$st" | cut -f1); else b=-; fi',
  'if command -v rsync >/dev/null 2>&1; then r=rsync; else r=no-rsync; fi',
  'echo "$s $b $r"',
].join('\n');

/** The data paths' state on the target, and their staging directories for this run. */
export async function stagingFacts(ctx: StepContext, paths: readonly string[]): Promise<StagingFacts[]> {
  return await Promise.all(
    paths.map(async (path) => {
      const staging = stagingPath(path, ctx.journal.run_id);
      const r = await runPrivileged(
        ctx.ssh,
        ctx.target,
        ['sh', '-c', FACTS, 'persona-staging', path, staging],
        ctx.signal,
      );
      const [data = 'present', bytes = '-', rsync = ''] = r.stdout.trim().split(/\s+/);
      return {
        path,
        staging,
        data: (['absent', 'empty'].includes(data) ? data : 'present') as DataPathState,
        ...(bytes === '-' ? {} : { staged: Number(bytes) || 0 }),
        rsync: rsync === 'rsync',
      };
    }),
  );
}

/** The staging directories' parent: made root's and 0700 (a symbolic link there is refused). */
const PREPARE = [
  'set -e',
  'top=$(dirname -- "$1")',
  'mkdir -p -- "$(dirname -- "$top")"',
  'if [ -L "$top" ]; then echo "$top is a symbolic link" >&2; exit 1; fi',
  'mkdir -m 700 -- "$top" 2>/dev/null || [ -d "$top" ]',
  'chown root:root -- "$top"',
  'chmod 700 -- "$top"',
].join('\n');

export async function prepareStaging(ctx: StepContext, staging: string): Promise<void> {
  await runPrivileged(ctx.ssh, ctx.target, ['sh', '-c', PREPARE, 'persona-stage', staging], ctx.signal);
}

/**
 * Moves the staged copy to the data path when the path is absent, or an empty directory on the same filesystem
 * (rename(2) replaces it); anything else there, or another filesystem (a mount point), leaves the staging as it is.
 */
const MOVE = [
  'set -e',
  'st=$1; d=$2',
  'if [ ! -d "$st" ] || [ -L "$st" ]; then echo none; exit 0; fi',
  'dev() { stat -c %d -- "$1"; }',
  'if [ -e "$d" ] || [ -L "$d" ]; then',
  '  if [ -L "$d" ] || [ ! -d "$d" ] || [ -n "$(ls -A -- "$d")" ] || [ "$(dev "$d")" != "$(dev "$st")" ]; then echo occupied; exit 0; fi',
  'elif [ "$(dev "$(dirname -- "$d")")" != "$(dev "$st")" ]; then echo other-filesystem; exit 0; fi',
  'mv -T -- "$st" "$d"',
  'rmdir -- "$(dirname -- "$st")" 2>/dev/null || :',
  'echo moved',
].join('\n');

export type MoveOutcome = 'moved' | 'none' | 'occupied' | 'other-filesystem';

export async function moveStagedIntoPlace(
  ctx: StepContext,
  staging: string,
  path: string,
): Promise<MoveOutcome> {
  const r = await runPrivileged(
    ctx.ssh,
    ctx.target,
    ['sh', '-c', MOVE, 'persona-unstage', staging, path],
    ctx.signal,
  );
  const said = r.stdout.trim();
  return (['moved', 'none', 'occupied', 'other-filesystem'].includes(said) ? said : 'none') as MoveOutcome;
}

const REMOVE = ['rm -rf --one-file-system -- "$1"', 'rmdir -- "$(dirname -- "$1")" 2>/dev/null || :'].join(
  '\n',
);

export async function removeStaged(ctx: StepContext, staging: string): Promise<void> {
  await runPrivileged(ctx.ssh, ctx.target, ['sh', '-c', REMOVE, 'persona-unstage', staging], ctx.signal);
}

/** Removes the early copy of a data path that migrate will not use, `why`. */
export function unstageAction(ctx: StepContext, f: StagingFacts, why: string): Action {
  return {
    id: `unstage:${f.path}`,
    title: `remove the early copy of the backup ${f.staging} (${why})`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      await removeStaged(c, f.staging);
      return { path: f.path, removed: f.staging };
    },
  };
}

/** What a copy from the backup does with the early copy of its path first: moved into place, or removed. */
export async function useStaged(ctx: StepContext, f: StagingFacts): Promise<MoveOutcome> {
  const moved = await moveStagedIntoPlace(ctx, f.staging, f.path);
  if (moved === 'moved')
    ctx.log(`${f.path}: the early copy moved into place from ${f.staging}; rsync copies only what differs`);
  else if (moved !== 'none') {
    await removeStaged(ctx, f.staging);
    ctx.log(
      `${f.path}: the early copy in ${f.staging} could not be moved into place (${moved === 'occupied' ? 'something is at the path' : 'the path is on another filesystem'}): removed, and the whole copy is made`,
    );
  }
  return moved;
}
