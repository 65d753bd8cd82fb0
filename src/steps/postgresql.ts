/**
 * `data.migration: postgresql`, the unplanned recovery: the failed host is down, so the cluster is restored onto the
 * target from the base backup (pg_basebackup, plain format) and the WAL archive on the backup host, replayed to the
 * end of the archive and promoted. The plan is data: per stage (base backup, WAL, recovery) what the target shows
 * decides what is left (restoreWork); the base backup and the WAL segments are piped through this machine (tar on
 * the backup host into tar on the target: the hosts need no trust between them); PostgreSQL's restore_command copies
 * the segments from the target's staging directory. The freshness gate refuses an archive older than max_lag unless
 * the operator chose the backup (--data-from backup). The conclusion reports the recovery point and the possible
 * loss, and compares table checksums with those recorded with the backup when no write happened in between.
 * A failed host that answers with its PostgreSQL stopped completes the archive with its pg_wal (nothing is lost); one
 * whose PostgreSQL runs is not streamed from (that is the planned move): the step says so and waits for a choice.
 */
import { join } from 'node:path';
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import type { Action, StepContext, StepOutputs, StepPlan } from '../runbook/types.js';
import { decideSource, fenceFacts } from './data-source.js';
import { baseAction, cleanupAction, recoverAction, walAction } from './postgresql-actions.js';
import {
  type ArchiveRun,
  archiveRun,
  type BackupFacts,
  type Checksums,
  compareChecksums,
  type FailedFacts,
  freshnessGate,
  isRestored,
  parseBackupFacts,
  parseFailedFacts,
  parseRecordedChecksums,
  parseRestoredMarker,
  parseTargetFacts,
  possibleLoss,
  type RecoveryPoint,
  type Reference,
  type RestoredMarker,
  type RestoreWork,
  restoreWork,
  type TargetFacts,
} from './postgresql-facts.js';
import {
  BACKUP_FACTS,
  FAILED_FACTS,
  type PgSettings,
  pgSettings,
  TARGET_FACTS,
} from './postgresql-scripts.js';
import { clusterChecksums, runOn } from './postgresql-sql.js';
import { reachable } from './reach.js';

export { pgSettings, recoverySettings } from './postgresql-scripts.js';
export { clusterChecksums, psql } from './postgresql-sql.js';

const MiB = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(1)} MiB`;

/** When the failed host was last known down: the fence's record when it found it so, else now. */
function reference(ctx: StepContext): Reference {
  const fence = ctx.previous('fence');
  const facts = fenceFacts(fence);
  const at = fence?.finished_at ?? fence?.started_at;
  if (facts?.host_reachable === false && at)
    return { at: new Date(at), what: `the fence found ${ctx.failed.name} down (${at})` };
  return { at: ctx.now(), what: `now (${ctx.now().toISOString()})` };
}

/** The facts a plan leaves for the conclusion. */
export interface PgFacts extends Omit<RestoredMarker, 'recovery_point'> {
  method: 'postgresql';
  done: boolean;
  recovery_point?: RecoveryPoint;
  reference: { at: string; what: string };
  freshness?: string;
  checksums_recorded?: string;
}

/** The source: the archive, completed by the failed host's pg_wal when it answers with PostgreSQL stopped. */
type Source = { why: string; failed?: FailedFacts };

/**
 * Where the data comes from. The failed host proven down, or --data-from backup: the archive. The failed host
 * answering with its cluster stopped (the fence stopped it): the archive, and its pg_wal for what was not archived.
 * Its cluster running: blocked, since its WAL goes on growing and a live primary is the planned move's business.
 */
async function sourceDecision(ctx: StepContext, s: PgSettings): Promise<Source | { blocked: Blocked }> {
  const dataFrom = ctx.journal.options.data_from ?? 'auto';
  const reach = dataFrom === 'backup' ? ({ ok: true } as const) : await reachable(ctx, ctx.failed);
  const failed =
    dataFrom !== 'backup' && reach.ok
      ? parseFailedFacts(
          (
            await runOn(
              ctx,
              ctx.failed,
              ['sh', '-c', FAILED_FACTS, 'persona-pg-failed', s.dataDir],
              `looking at ${s.dataDir}`,
            )
          ).stdout,
        )
      : undefined;
  const recorded = fenceFacts(ctx.previous('fence'));
  const assumed = ctx.previous('fence')?.status === 'pending' && !recorded && !reach.ok;
  const decision = decideSource({
    failedName: ctx.failed.name,
    reach,
    failedHasData: failed?.cluster === true,
    fence: recorded ?? (assumed ? { host_reachable: false } : undefined),
    dataFrom,
  });
  const name = ctx.failed.name;
  if ('refuse' in decision)
    return {
      blocked: {
        message: `not restoring ${ctx.profile.id}'s PostgreSQL: ${decision.refuse}`,
        hint: decision.hint,
      },
    };
  if (decision.use === 'failed-host' && failed?.running)
    return {
      blocked: {
        message: `${name} answers and its PostgreSQL runs on ${s.dataDir}: its WAL goes on growing past the archive, and persona does not stream from a live primary (that is the planned move's job)`,
        hint: `Stop PostgreSQL on ${name} (the fence does, when deploy.stop stops it) and resume: its pg_wal then completes the archive and nothing is lost. Or resume with \`--data-from backup\` to restore what the archive holds.`,
      },
    };
  if (decision.use === 'failed-host')
    return {
      why: `${decision.why}, with PostgreSQL stopped: its pg_wal completes the archive`,
      failed: failed!,
    };
  const why = assumed
    ? decision.why.replace('the fence found it down too', 'if the fence finds it down too')
    : decision.why;
  return { why };
}

type Blocked = NonNullable<StepPlan['blocked']>;
const blocked = (notes: string[], message: string, hint?: string): StepPlan => ({
  actions: [],
  notes,
  blocked: { message, ...(hint ? { hint } : {}) },
});

/** What the backup host and the target show. */
async function look(ctx: StepContext, s: PgSettings, backupHost: InventoryHost) {
  const [backupText, targetText] = await Promise.all([
    runOn(
      ctx,
      backupHost,
      ['sh', '-c', BACKUP_FACTS, 'persona-pg-backup', s.base, s.wal, s.checksums],
      'looking at the backup',
    ),
    runOn(
      ctx,
      ctx.target,
      ['sh', '-c', TARGET_FACTS, 'persona-pg-target', s.dataDir, s.stage, s.bin],
      `looking at ${s.dataDir}`,
    ),
  ]);
  return { backup: parseBackupFacts(backupText.stdout), target: parseTargetFacts(targetText.stdout) };
}

/**
 * Restored and promoted by this run: nothing left but deleting the staged WAL once the check holds. The marker
 * says where the WAL came from, so the failed host is not asked again (it may be back by now, even running).
 */
function restoredPlan(
  ctx: StepContext,
  s: PgSettings,
  target: TargetFacts,
  backup: BackupFacts,
): StepPlan | undefined {
  const marker = isRestored(target, backup.systemId) ? parseRestoredMarker(target.recovered!) : undefined;
  if (!marker) return undefined;
  const point = marker.recovery_point;
  const ref = reference(ctx);
  const facts: PgFacts = {
    method: 'postgresql',
    ...marker,
    done: true,
    reference: { at: ref.at.toISOString(), what: ref.what },
    ...(backup.checksums !== undefined ? { checksums_recorded: backup.checksums } : {}),
  };
  const staged = target.staged.length;
  return {
    actions: [],
    ...(staged > 0 ? { after: [cleanupAction(ctx, s, staged)] } : {}),
    notes: [
      `${ctx.target.name}:${s.dataDir}: restored by this run and promoted, at ${point.lsn} (last transaction ${point.last_transaction_at ?? 'none'}), from ${marker.archive.base} and ${marker.archive.wal}${marker.source.wal_tail_from ? ` and ${marker.source.wal_tail_from}'s pg_wal` : ''}`,
    ],
    facts: facts as unknown as StepOutputs,
  };
}

export async function postgresqlPlan(ctx: StepContext): Promise<StepPlan> {
  const s = pgSettings(ctx.profile, ctx.journal.run_id);
  const backupHost = ctx.findHost(s.backupHost);
  const { backup, target } = await look(ctx, s, backupHost);
  const restored = restoredPlan(ctx, s, target, backup);
  if (restored) return restored;
  const chosen = await sourceDecision(ctx, s);
  if ('blocked' in chosen) return { actions: [], notes: [], blocked: chosen.blocked };
  const where = `${s.backupHost}:${s.wal}`;
  const notes = [
    `data source: ${s.backupHost}:${s.base} and ${where} (PostgreSQL ${s.version} base backup and WAL archive) — ${chosen.why}`,
  ];
  const run = archiveRun(backup, chosen.failed?.segments);
  if ('problem' in run)
    return blocked(
      notes,
      `${s.backupHost}:${s.base}: ${run.problem}`,
      'Take a base backup there with pg_basebackup -D (plain format), then resume.',
    );
  if (chosen.failed && chosen.failed.systemId !== backup.systemId)
    return blocked(
      notes,
      `${ctx.failed.name}:${s.dataDir} holds another cluster than the base backup (system identifier ${chosen.failed.systemId ?? 'unknown'}, the backup's ${backup.systemId ?? 'unknown'}): its WAL cannot complete the archive`,
      'Resume with `--data-from backup` to restore what the archive holds.',
    );
  const tail = run.segments.filter((x) => x.from === 'failed-host');
  const ref = reference(ctx);
  const facts: PgFacts = {
    method: 'postgresql',
    source: {
      kind: 'backup-host',
      host: s.backupHost,
      why: chosen.why,
      ...(tail.length > 0 ? { wal_tail_from: ctx.failed.name } : {}),
    },
    done: false,
    reference: { at: ref.at.toISOString(), what: ref.what },
    archive: {
      base: `${s.backupHost}:${s.base}`,
      wal: where,
      segments: run.segments.length,
      ...(run.segments.at(-1) ? { last_segment: run.segments.at(-1)!.name } : {}),
      ...(run.newestAt ? { newest_at: run.newestAt.toISOString() } : {}),
      ...(tail.length > 0 ? { from_failed_host: tail.length } : {}),
    },
    ...(backup.checksums !== undefined ? { checksums_recorded: backup.checksums } : {}),
  };
  if (run.unused.afterGap > 0)
    notes.push(
      `${where} has ${run.unused.afterGap} segment(s) after a gap following ${run.unused.gapAfter}: replay stops at the gap`,
    );
  if (chosen.failed && tail.length === 0)
    notes.push(`${ctx.failed.name}'s pg_wal does not continue the archive: restoring what the archive holds`);
  const work = restoreWork(target, run, backup.systemId);
  if (work === 'done')
    return restoredPlan(ctx, s, target, backup) ?? blocked(notes, 'unreadable restore marker');
  if (!target.binaries)
    return blocked(
      notes,
      `${ctx.target.name}: ${s.bin}/pg_ctl or psql is not installed (data.migration postgresql needs PostgreSQL ${s.version} on the target)`,
      `Add postgresql-${s.version} to software_stack, or install it on ${ctx.target.name}, then resume.`,
    );
  const freshness =
    tail.length > 0
      ? {
          ok: true as const,
          note: `freshness: ${ctx.failed.name}'s pg_wal continues the archive to its last write (${tail.at(-1)!.name}): nothing to gate`,
        }
      : freshnessGate({
          newestAt: run.newestAt,
          reference: ref,
          maxLagSeconds: s.maxLag,
          accepted: (ctx.journal.options.data_from ?? 'auto') === 'backup',
          where,
        });
  if (!freshness.ok) return blocked(notes, freshness.message, freshness.hint);
  notes.push(freshness.note);
  return restoreActions(ctx, s, {
    backupHost,
    backup,
    target,
    run,
    work,
    notes,
    facts: { ...facts, freshness: freshness.note },
  });
}

/** The actions left, once the source, the gate and the target's room are settled. */
function restoreActions(
  ctx: StepContext,
  s: PgSettings,
  p: {
    backupHost: InventoryHost;
    backup: BackupFacts;
    target: TargetFacts;
    run: ArchiveRun;
    work: RestoreWork;
    notes: string[];
    facts: PgFacts;
  },
): StepPlan {
  const { work, run, target } = p;
  const from = new Map(run.segments.map((x) => [x.name, x]));
  const todo = (origin: 'archive' | 'failed-host') => work.wal.filter((n) => from.get(n)?.from === origin);
  const bytes = (names: string[]) => names.reduce((n, name) => n + (from.get(name)?.bytes ?? 0), 0);
  const [archived, local] = [todo('archive'), todo('failed-host')];
  const needed = (work.base ? p.backup.baseBytes : 0) + bytes(archived) + bytes(local);
  if (needed > target.freeBytes)
    return blocked(
      p.notes,
      `${ctx.target.name}: ${MiB(target.freeBytes)} free for ${s.dataDir}; the base backup and WAL need ${MiB(needed)}`,
      'Free space on the target, or choose another target.',
    );
  const actions: Action[] = [];
  if (work.base)
    actions.push(
      baseAction(ctx, p.backupHost, s, {
        bytes: p.backup.baseBytes,
        moveAside: work.moveAside,
        running: target.running,
      }),
    );
  if (archived.length > 0)
    actions.push(
      walAction(ctx, s, { id: 'pg:wal', host: p.backupHost, dir: s.wal }, archived, bytes(archived)),
    );
  if (local.length > 0)
    actions.push(
      walAction(
        ctx,
        s,
        { id: 'pg:wal-failed', host: ctx.failed, dir: join(s.dataDir, 'pg_wal') },
        local,
        bytes(local),
      ),
    );
  actions.push(recoverAction(ctx, s, run, { source: p.facts.source, archive: p.facts.archive }));
  return { actions, notes: p.notes, facts: p.facts as unknown as StepOutputs };
}

export function postgresqlDescribe(ctx: StepContext): string[] {
  const s = pgSettings(ctx.profile, ctx.journal.run_id);
  return [
    `restore PostgreSQL ${s.version} onto ${ctx.target.name}:${s.dataDir} from the base backup ${s.backupHost}:${s.base} and the WAL archive ${s.backupHost}:${s.wal}, to the end of the archive, then promote it (when ${ctx.failed.name} is proven down, or with --data-from backup; when it answers with PostgreSQL stopped, its pg_wal completes the archive); an archive older than max_lag ${s.maxLag} s is refused unless chosen with --data-from backup`,
  ];
}

export function postgresqlChecks(ctx: StepContext): string[] {
  const s = pgSettings(ctx.profile, ctx.journal.run_id);
  return [
    `PostgreSQL on ${ctx.target.name}:${s.port} promoted; the recovery point (last replayed transaction, LSN) and the possible loss reported; table checksums compared with ${s.backupHost}:${s.checksums} when it saw the same transactions`,
  ];
}

export async function postgresqlConclude(ctx: StepContext, final: StepPlan): Promise<StepOutputs> {
  const facts = final.facts as unknown as PgFacts | undefined;
  if (!facts?.done || !facts.recovery_point)
    throw new PersonaError(
      'E_STEP_FAILED',
      `PostgreSQL on ${ctx.target.name} is not restored and promoted after the restore`,
    );
  const s = pgSettings(ctx.profile, ctx.journal.run_id);
  const point = facts.recovery_point;
  const ref: Reference = { at: new Date(facts.reference.at), what: facts.reference.what };
  const loss = possibleLoss(point, ref, {
    ...(facts.archive.last_segment ? { lastSegment: facts.archive.last_segment } : {}),
    ...(facts.source.wal_tail_from ? { tailFrom: facts.source.wal_tail_from } : {}),
  });
  ctx.log(
    `recovery point: ${point.lsn} on timeline ${point.timeline}, last transaction ${point.last_transaction_at ?? 'none replayed'}; possible loss: ${loss.seconds === null ? 'unknown' : `${loss.seconds} s`} (until ${loss.until_what}), at most ${loss.bytes_at_most} bytes of WAL: ${loss.bytes_basis}`,
  );
  const restored = await clusterChecksums(ctx.ssh, ctx.target, s, ctx.signal);
  const verdict = verifyChecksums(ctx, s, facts.checksums_recorded, restored);
  const tables = Object.keys(restored.tables).length;
  return {
    method: 'postgresql',
    source: facts.source,
    archive: facts.archive,
    ...(facts.freshness ? { freshness: facts.freshness } : {}),
    recovery_point: point,
    possible_loss: loss,
    checksums: {
      next_xid: restored.next_xid,
      tables,
      ...(tables <= 200 ? { by_table: restored.tables } : {}),
      verdict,
    },
  };
}

function verifyChecksums(
  ctx: StepContext,
  s: PgSettings,
  recordedText: string | undefined,
  restored: Checksums,
) {
  if (recordedText === undefined) {
    ctx.log(
      `no checksums recorded with the backup (${s.backupHost}:${s.checksums}): the restored tables' checksums are kept in the journal`,
    );
    return { compared: false as const, why: 'no checksums recorded with the backup' };
  }
  const recorded = parseRecordedChecksums(recordedText);
  if ('problem' in recorded)
    throw new PersonaError('E_STEP_FAILED', `${s.backupHost}:${s.checksums} ${recorded.problem}`, {
      hint: 'Record it again (see the README), or remove it, then resume.',
    });
  const verdict = compareChecksums(recorded, restored);
  if (verdict.compared && !verdict.equal)
    throw new PersonaError(
      'E_STEP_FAILED',
      `the restored tables differ from the checksums recorded with the backup: ${verdict.differences.slice(0, 5).join('; ')}`,
      {
        hint: `The restore saw the same transactions (next transaction id ${restored.next_xid}), so the data should be equal: look at the archive and the base backup.`,
      },
    );
  ctx.log(
    verdict.compared
      ? `${verdict.tables} table checksums equal those recorded with the backup`
      : `checksums recorded with the backup not compared: ${verdict.why}`,
  );
  return verdict;
}
