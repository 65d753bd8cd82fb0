/**
 * A planned move with `data.migration: snapshot` (issue 12 §2): a read-only snapshot is a consistent
 * point-in-time copy of a live data path, `btrfs send | btrfs receive` replicates it, and `send -p` sends only the
 * difference. precopy snapshots the path on the source while it serves (NAME@RUN.pre) and sends it in full; the
 * target receives it next to the path and leaves the path alone. After the fence stopped the application, the
 * final copy snapshots it again (NAME@RUN.final), sends the difference from the first (`send -p`), and makes the
 * data path on the target a writable snapshot of what it received, as a recovery's snapshot method does (what was
 * there is moved aside, never deleted). The pieces are snapshot.ts's; the conclusion is planned.ts's.
 */
import { join } from 'node:path';
import type { Action, StepContext, StepPlan } from '../runbook/types.js';
import {
  type BtrfsFacts,
  btrfsFacts,
  cleanupAction,
  decideSend,
  existingAt,
  installAction,
  refusal,
  sendAction,
  snapshotAction,
  snapshotNames,
} from './snapshot.js';

/** The snapshot taken while the application serves, and the one taken after the stop. */
export const PRE = 'pre';
export const FINAL = 'final';

type Looked = { source: BtrfsFacts; target: BtrfsFacts } | { blocked: { message: string; hint: string } };

/** Both hosts' facts of a path, or why the snapshot method cannot move it (before anything runs). */
async function look(
  ctx: StepContext,
  path: string,
  names: ReturnType<typeof snapshotNames>,
): Promise<Looked> {
  const [source, target] = await Promise.all([
    btrfsFacts(ctx, ctx.failed, path, names),
    btrfsFacts(ctx, ctx.target, path, names),
  ]);
  const refused = refusal(
    path,
    { name: ctx.failed.name, facts: source },
    { name: ctx.target.name, facts: target },
    names,
  );
  if (refused) return { blocked: { message: `not moving ${path}: ${refused.message}`, hint: refused.hint } };
  return { source, target };
}

const noStream = {
  message: 'data.migration snapshot needs a transport that can stream between hosts; this one cannot',
};

/**
 * precopy: per path, a read-only snapshot of the live path on the source and a full send of it to the target
 * (received next to the path; the path itself is left as it is until the final copy). `sizes`: each path's bytes
 * on the source, for the plan's titles.
 */
export async function snapshotPrecopyPlan(
  ctx: StepContext,
  sizes: readonly number[],
  notes: string[],
): Promise<StepPlan> {
  if (!ctx.ssh.stream) return { actions: [], notes, blocked: noStream };
  const actions: Action[] = [];
  for (const [i, path] of ctx.profile.data.paths.entries()) {
    const names = snapshotNames(path, ctx.journal.run_id, PRE);
    const looked = await look(ctx, path, names);
    if ('blocked' in looked) return { actions: [], notes, blocked: looked.blocked };
    const work = decideSend(looked, names);
    if (work.snapshot) actions.push(snapshotAction(ctx.failed, path, names, 'while it serves'));
    if (work.send)
      actions.push(
        sendAction(
          ctx.failed,
          ctx.target,
          path,
          names,
          work.send,
          `${((sizes[i] ?? 0) / 1024 ** 2).toFixed(1)} MiB`,
        ),
      );
    else notes.push(`${path}: ${ctx.target.name} holds ${join(names.dir, names.name)} already`);
  }
  return { actions, notes };
}

/** What the final plan leaves for the conclusion: per path, what the target's copy is compared with. */
export interface FinalSnapshotFacts {
  method: 'snapshot';
  /** `from`: the final snapshot on the source, or the (stopped) path itself once that snapshot is gone. */
  compare: Array<{ path: string; from: string }>;
}

/**
 * The final copy: per path, a second read-only snapshot of the stopped source, the difference from the precopy's
 * snapshot (`send -p`; in full with --stop-copy-start), and the target's data path made a writable snapshot of it.
 * The install runs once per run (the journal says it ran); after the conclusion holds, persona's snapshots of the
 * path are deleted on both hosts.
 */
export async function snapshotFinalPlan(ctx: StepContext): Promise<StepPlan> {
  if (!ctx.ssh.stream) return { actions: [], notes: [], blocked: noStream };
  const actions: Action[] = [];
  const after: Action[] = [];
  const facts: FinalSnapshotFacts = { method: 'snapshot', compare: [] };
  for (const path of ctx.profile.data.paths) {
    const names = snapshotNames(path, ctx.journal.run_id, FINAL);
    const pre = snapshotNames(path, ctx.journal.run_id, PRE).name;
    const looked = await look(ctx, path, names);
    if ('blocked' in looked) return { actions: [], notes: [], blocked: looked.blocked };
    const work = decideSend(looked, names, pre);
    const at = join(names.dir, names.name);
    if (work.snapshot) actions.push(snapshotAction(ctx.failed, path, names, 'the application is stopped'));
    if (work.send)
      actions.push(
        sendAction(ctx.failed, ctx.target, path, names, work.send, 'no earlier snapshot on both hosts'),
      );
    // Once per run: the facts cannot tell the installed path from another copy of the same data.
    actions.push({
      ...installAction(ctx.failed, ctx.target, path, names, existingAt(looked.target)),
      observable: false,
    });
    const taken = !work.snapshot;
    facts.compare.push({ path, from: taken ? at : path });
    const mine = (f: BtrfsFacts, adds: boolean) => {
      const list = f.snapshots.filter((s) => s.name.startsWith(names.prefix)).map((s) => s.name);
      return adds && !list.includes(names.name) ? [...list, names.name] : list;
    };
    const cleanup = cleanupAction(path, names, [
      { host: ctx.failed, snapshots: mine(looked.source, work.snapshot) },
      { host: ctx.target, snapshots: mine(looked.target, work.send !== undefined) },
    ]);
    if (cleanup) after.push(cleanup);
  }
  return { actions, after, notes: [], facts: facts as unknown as Record<string, unknown> };
}
