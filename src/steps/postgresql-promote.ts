/**
 * migrate of a planned PostgreSQL move (postgresql-move.ts): once the fence stopped the source cleanly, the replica
 * is promoted after it replayed the source's final checkpoint (pg_controldata), and the LSNs are the proof.
 */
import { join } from 'node:path';
import { PersonaError } from '../errors.js';
import { writeRemoteFile } from '../runbook/remote.js';
import type { Action, Step, StepContext, StepOutputs, StepPlan } from '../runbook/types.js';
import {
  lookTarget,
  type MoveSettings,
  moveSettings,
  POLL_MS,
  settingsOrThrow,
  sleep,
} from './postgresql-move.js';
import {
  type ControlData,
  lsnDistance,
  type PromotedMarker,
  parseControlData,
  parsePromotedMarker,
  replayedTo,
} from './postgresql-move-facts.js';
import { clusterChecksums, psql, runOn } from './postgresql-sql.js';

/** The stopped source's pg_control (LC_ALL=C: the labels parsed are English). */
async function sourceControl(ctx: StepContext, s: MoveSettings) {
  const r = await runOn(
    ctx,
    ctx.failed,
    ['env', 'LC_ALL=C', join(s.bin, 'pg_controldata'), '-D', s.dataDir],
    `reading ${s.dataDir}'s pg_control`,
  );
  return parseControlData(r.stdout);
}

const blockedPlan = (notes: string[], message: string, hint?: string): StepPlan => ({
  actions: [],
  notes,
  blocked: { message, ...(hint ? { hint } : {}) },
});

async function promotePlan(ctx: StepContext): Promise<StepPlan> {
  const s = moveSettings(ctx);
  if ('problem' in s) return blockedPlan([], s.problem);
  const target = await lookTarget(ctx, s);
  const marker = target.promoted ? parsePromotedMarker(target.promoted) : undefined;
  if (marker && !target.standby)
    return {
      actions: [],
      notes: [
        `${ctx.target.name}:${s.dataDir}: promoted by this run at ${marker.promoted_lsn}, after replaying ${ctx.failed.name}'s final checkpoint ${marker.source_checkpoint}`,
      ],
      facts: { promoted: marker as unknown as StepOutputs },
    };
  const control = await sourceControl(ctx, s);
  const notes = [
    `${ctx.failed.name}:${s.dataDir}: ${control.state ?? 'state unknown'}, latest checkpoint ${control.checkpoint ?? 'unknown'} on timeline ${control.timeline ?? '?'}`,
  ];
  // Before the fence and precopy ran (a dry run, the plan shown for confirmation), the source still serves and
  // the replica may not be there yet: the plan says what will be read then.
  const done = (kind: 'fence' | 'precopy') => ctx.previous(kind)?.status === 'succeeded';
  if (!done('fence') || !done('precopy'))
    return {
      actions: [promoteAction(ctx, s)],
      notes: [...notes, 'precopy builds the replica and the fence stops the source first'],
    };
  const stopped = cleanStop(ctx, control);
  if (!stopped.ok) return blockedPlan(notes, stopped.message, stopped.hint);
  if (!target.cluster || target.systemId !== control.systemId || !target.standby || !target.running)
    return blockedPlan(
      notes,
      `${ctx.target.name}:${s.dataDir} is not a running replica of ${ctx.failed.name}'s cluster (system ${target.systemId ?? 'none'}, the source's ${control.systemId ?? 'unknown'}; ${target.running ? 'running' : 'not running'}${target.standby ? ', standby' : ''})`,
      `Start ${ctx.failed.name}'s PostgreSQL again and resume from precopy, or recover instead.`,
    );
  return { actions: [promoteAction(ctx, s, control.checkpoint)], notes };
}

/** The source must be cleanly stopped: only then is its final checkpoint after its last commit. */
function cleanStop(
  ctx: StepContext,
  control: ControlData,
): { ok: true; checkpoint: string } | { ok: false; message: string; hint: string } {
  if (control.state === 'shut down' && control.checkpoint)
    return { ok: true, checkpoint: control.checkpoint };
  return {
    ok: false,
    message: `${ctx.failed.name}'s cluster is not cleanly stopped (${control.state ?? 'unknown state'}): its final checkpoint is not known, so the replica cannot be shown to hold every commit`,
    hint: 'Stop it cleanly (pg_ctl stop -m fast, which deploy.stop should do), then resume.',
  };
}

const walTimeline = (walfile: string) => Number.parseInt(walfile.slice(0, 8), 16);

/** `checkpoint`: what the plan read, for its title; the action reads the stopped source's again before it waits. */
function promoteAction(ctx: StepContext, s: MoveSettings, planned?: string): Action {
  return {
    id: 'pg:promote',
    title: `wait until the replica on ${ctx.target.name} has replayed ${ctx.failed.name}'s final checkpoint ${planned ?? '(read with pg_controldata once it is stopped)'}, then promote it (pg_promote)`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      const control = await sourceControl(c, s);
      const stopped = cleanStop(c, control);
      if (!stopped.ok) throw new PersonaError('E_STEP_FAILED', stopped.message, { hint: stopped.hint });
      const { checkpoint } = stopped;
      const timeline = control.timeline;
      const started = Date.now();
      const deadline = started + s.rep.catch_up_seconds * 1000;
      let replayed = '';
      for (;;) {
        replayed = (
          await psql(c.ssh, c.target, s, 'postgres', 'SELECT pg_last_wal_replay_lsn();\n', c.signal)
        ).trim();
        if (replayedTo(replayed, checkpoint)) break;
        if (Date.now() >= deadline)
          throw new PersonaError(
            'E_STEP_FAILED',
            `the replica on ${c.target.name} replayed up to ${replayed || 'nothing'}, ${lsnDistance(replayed || '0/0', checkpoint)} bytes short of ${c.failed.name}'s final checkpoint ${checkpoint}, after ${s.rep.catch_up_seconds} s`,
            {
              hint: `Nothing was promoted. Read ${join(s.stage, 'postgresql.log')} on ${c.target.name}: the replica may have lost the source's WAL (start ${c.failed.name} again and rebuild with a resume from precopy).`,
            },
          );
        await sleep(POLL_MS);
      }
      const waited = Date.now() - started;
      const ok = (
        await psql(c.ssh, c.target, s, 'postgres', 'SELECT pg_promote(true, 300);\n', c.signal)
      ).trim();
      if (ok !== 't')
        throw new PersonaError('E_STEP_FAILED', `pg_promote() on ${c.target.name} answered ${ok}`);
      const [lsn = '', walfile = ''] = (
        await psql(
          c.ssh,
          c.target,
          s,
          'postgres',
          'SELECT pg_current_wal_lsn(), pg_walfile_name(pg_current_wal_lsn());\n',
          c.signal,
        )
      )
        .trim()
        .split('|');
      const marker: PromotedMarker = {
        source_checkpoint: checkpoint,
        ...(timeline !== undefined ? { source_timeline: timeline } : {}),
        replayed_lsn: replayed,
        promoted_lsn: lsn,
        timeline: walTimeline(walfile),
      };
      await writeRemoteFile(
        c.ssh,
        c.target,
        {
          path: join(s.stage, 'promoted.json'),
          content: `${JSON.stringify(marker)}\n`,
          mode: '0600',
          owner: 'root',
        },
        c.signal,
      );
      // The password's one copy on the target goes: the promoted cluster no longer connects to the source.
      await runOn(c, c.target, ['rm', '-f', '--', s.passfile], 'deleting the passfile');
      c.log(
        `promoted ${c.target.name} onto timeline ${marker.timeline} at ${lsn}: it had replayed ${replayed} ≥ ${c.failed.name}'s final checkpoint ${checkpoint} (waited ${waited} ms, promoted in ${Date.now() - started - waited} ms)`,
      );
      return { ...(marker as unknown as StepOutputs), waited_ms: waited, duration_ms: Date.now() - started };
    },
  };
}

export const promoteStep: Step = {
  kind: 'migrate',
  dependsOn: ['fence'],
  title: 'promote the replica once it holds every commit',
  mutates: true,
  timeoutMs: () => 60 * 60_000,
  describe(ctx) {
    const s = moveSettings(ctx);
    if ('problem' in s) return [s.problem];
    return [
      `read ${ctx.failed.name}'s final checkpoint (pg_controldata on the stopped cluster), wait until the replica on ${ctx.target.name} has replayed it, promote it; the target's table checksums are recorded`,
    ];
  },
  checks: (ctx) => [
    `${ctx.target.name} promoted after replaying ${ctx.failed.name}'s final checkpoint: nothing lost; its table checksums recorded`,
  ],
  plan: promotePlan,
  async conclude(ctx, { plan, applied }) {
    const s = settingsOrThrow(ctx);
    const marker = (applied.get('pg:promote') ?? plan.facts?.promoted) as unknown as
      | PromotedMarker
      | undefined;
    if (!marker) throw new PersonaError('E_STEP_FAILED', `the replica on ${ctx.target.name} is not promoted`);
    const inRecovery = (
      await psql(ctx.ssh, ctx.target, s, 'postgres', 'SELECT pg_is_in_recovery();\n', ctx.signal)
    ).trim();
    if (inRecovery !== 'f')
      throw new PersonaError(
        'E_STEP_FAILED',
        `PostgreSQL on ${ctx.target.name} is still in recovery after the promotion`,
      );
    const sums = await clusterChecksums(ctx.ssh, ctx.target, s, ctx.signal);
    const tables = Object.keys(sums.tables).length;
    ctx.log(
      `nothing lost: ${ctx.target.name} replayed ${ctx.failed.name}'s WAL to ${marker.replayed_lsn}, at or past its final checkpoint ${marker.source_checkpoint}; ${tables} table checksums recorded`,
    );
    return {
      method: 'postgresql-replica',
      source: {
        kind: 'failed-host',
        host: ctx.failed.name,
        why: 'a planned move: the stopped primary, streamed',
      },
      lsn: {
        source_final_checkpoint: marker.source_checkpoint,
        replayed: marker.replayed_lsn,
        promoted: marker.promoted_lsn,
        timeline: marker.timeline,
      },
      possible_loss: {
        bytes: 0,
        basis: `the replica replayed up to ${marker.replayed_lsn}, at or past the stopped primary's final (shutdown) checkpoint ${marker.source_checkpoint}, written after its last commit`,
      },
      checksums: {
        next_xid: sums.next_xid,
        tables,
        ...(tables <= 200 ? { by_table: sums.tables } : {}),
        verdict: {
          compared: false,
          why: "the source is stopped: the LSN is the proof; the checksums are the target's, recorded",
        },
      },
    };
  },
};
