/**
 * data.migration postgresql in a planned move (persona migrate): the source's cluster still serves, so the target
 * becomes its streaming replica (pg_basebackup -R over TCP as data.postgresql.replication's role, the password
 * only in a 0600 passfile of the cluster's user on the target), and precopy waits until the replica is within
 * max_lag seconds and max_lag_bytes (the freshness gate: refused with the figures otherwise). After the fence
 * stopped the source cleanly, the final step reads the stopped source's last checkpoint (pg_controldata), waits
 * until the replica has replayed it and promotes the replica: nothing committed is lost, since a clean stop writes
 * its shutdown checkpoint after every commit and sends it to the replica before it exits.
 *
 * The proof is the LSN: replay reached the stopped primary's final checkpoint, on the same system identifier. The
 * target's table checksums are recorded, not compared: comparing would mean starting the source again (a second
 * primary, inside the downtime) or having taken them after the stop on a running source, which cannot be.
 */
import { join } from 'node:path';
import { PersonaError } from '../errors.js';
import { writeRemoteFile } from '../runbook/remote.js';
import { resolveSecret } from '../runbook/secrets.js';
import type { Action, Step, StepContext, StepOutputs, StepPlan } from '../runbook/types.js';
import { parseFailedFacts } from './postgresql-facts.js';
import {
  type ControlData,
  lsnDistance,
  type PromotedMarker,
  parseControlData,
  parsePromotedMarker,
  parseReplicaLag,
  parseReplicaTarget,
  passfileLine,
  REPLICA_NAME,
  type ReplicaLag,
  replayedTo,
  replicaConninfo,
  replicaGate,
  replicaWork,
} from './postgresql-move-facts.js';
import { FAILED_FACTS, type PgSettings, PREPARE_BASE, pgSettings } from './postgresql-scripts.js';
import { clusterChecksums, psql, runOn } from './postgresql-sql.js';

type Replication = NonNullable<NonNullable<StepContext['profile']['data']['postgresql']>['replication']>;

interface MoveSettings extends PgSettings {
  rep: Replication;
  sourcePort: number;
  passfile: string;
}

function moveSettings(ctx: StepContext): MoveSettings | { problem: string } {
  const s = pgSettings(ctx.profile, ctx.journal.run_id);
  const rep = ctx.profile.data.postgresql?.replication;
  if (!rep)
    return {
      problem:
        'a planned move of a PostgreSQL cluster needs data.postgresql.replication: the role the replica connects as and its password (a secret reference)',
    };
  return { ...s, rep, sourcePort: rep.source_port ?? s.port, passfile: join(s.stage, 'pgpass') };
}

const settingsOrThrow = (ctx: StepContext): MoveSettings => {
  const m = moveSettings(ctx);
  if ('problem' in m) throw new PersonaError('E_STEP_FAILED', m.problem);
  return m;
};

/** $1 data directory, $2 staging directory, $3 binaries. NUL-separated key=value records. */
const REPLICA_TARGET_FACTS = [
  'd=$1 stage=$2 bin=$3',
  '[ -f "$d/PG_VERSION" ] && printf \'cluster=yes\\0\'',
  '[ -f "$d/global/pg_control" ] && printf \'sysid=%s\\0\' "$(od -An -tu8 -N8 -- "$d/global/pg_control" | tr -d \' \')"',
  'if [ -f "$d/postmaster.pid" ]; then',
  '  pid=$(head -n 1 -- "$d/postmaster.pid")',
  '  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && printf \'running=yes\\0\'',
  'fi',
  '[ -f "$d/standby.signal" ] && printf \'standby=yes\\0\'',
  '[ -f "$stage/promoted.json" ] && printf \'promoted=%s\\0\' "$(cat -- "$stage/promoted.json")"',
  '[ -f "$stage/pgpass" ] && printf \'passfile=yes\\0\'',
  'e=$d',
  'while [ ! -e "$e" ] && [ "$e" != / ]; do e=$(dirname -- "$e"); done',
  'printf \'free=%s\\0\' "$(df -Pk -- "$e" | tail -n 1 | awk \'{print $4}\')"',
  '[ -x "$bin/pg_basebackup" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/psql" ] && printf \'binaries=yes\\0\'',
  'exit 0',
].join('\n');

const lookTarget = async (ctx: StepContext, s: MoveSettings) =>
  parseReplicaTarget(
    (
      await runOn(
        ctx,
        ctx.target,
        ['sh', '-c', REPLICA_TARGET_FACTS, 'persona-pg-replica', s.dataDir, s.stage, s.bin],
        `looking at ${s.dataDir}`,
      )
    ).stdout,
  );

const onSource = (s: MoveSettings) => ({ ...s, port: s.sourcePort });

/** The source's WAL position and the replica as it streams (pg_stat_replication, found by application_name). */
const LAG_SQL = `SELECT pg_current_wal_lsn(), r.replay_lsn, extract(epoch FROM r.replay_lag) FROM (SELECT 1) AS one LEFT JOIN pg_stat_replication AS r ON r.application_name = '${REPLICA_NAME}' ORDER BY r.replay_lsn DESC NULLS LAST LIMIT 1;\n`;

/** The replica's replay position first, then the source's: the bytes between them are an upper bound. */
async function measureLag(ctx: StepContext, s: MoveSettings): Promise<ReplicaLag> {
  const own = await psql(ctx.ssh, ctx.target, s, 'postgres', 'SELECT pg_last_wal_replay_lsn();\n', ctx.signal)
    .then((x) => x.trim())
    .catch(() => undefined);
  const line = await psql(ctx.ssh, ctx.failed, onSource(s), 'postgres', LAG_SQL, ctx.signal);
  const lag = parseReplicaLag(line, own || undefined);
  if (!lag)
    throw new PersonaError(
      'E_STEP_FAILED',
      `cannot read the replication lag on ${ctx.failed.name}: ${line.trim()}`,
    );
  return lag;
}

/** The password, registered with the redactor without its final newline (a file: reference has one). */
async function replicationPassword(ctx: StepContext, s: MoveSettings): Promise<string> {
  const raw = await resolveSecret(s.rep.password, 'data.postgresql.replication password', {
    env: ctx.env,
    backend: ctx.backend,
    redactor: ctx.redactor,
    ...(ctx.allowedSources ? { allowed: ctx.allowedSources } : {}),
  });
  const value = raw.replace(/\r?\n$/, '');
  ctx.redactor.add(value);
  return value;
}

const POLL_MS = 250;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function buildAction(ctx: StepContext, s: MoveSettings, build: boolean): Action {
  const from = `${ctx.failed.name} (${ctx.failed.address}:${s.sourcePort}, as ${s.rep.user})`;
  return {
    id: 'pg:replica',
    title: build
      ? `build a streaming replica of ${from} in ${ctx.target.name}:${s.dataDir} with pg_basebackup -R (anything there now is moved aside to ${s.aside}), and start it on port ${s.port}`
      : `start the replica in ${ctx.target.name}:${s.dataDir} on port ${s.port}`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      const started = Date.now();
      const out: StepOutputs = {};
      if (build) {
        const prepared = await runOn(
          c,
          c.target,
          ['sh', '-c', PREPARE_BASE, 'persona-pg-prepare', s.dataDir, s.stage, s.osUser, s.aside, s.bin],
          `preparing ${s.dataDir}`,
        );
        if (prepared.stdout.trim()) out.moved_aside = prepared.stdout.trim();
        await writePassfile(c, s);
        const conninfo = replicaConninfo({
          host: c.failed.address,
          port: s.sourcePort,
          user: s.rep.user,
          passfile: s.passfile,
        });
        await runOn(
          c,
          c.target,
          [
            'runuser',
            '-u',
            s.osUser,
            '--',
            join(s.bin, 'pg_basebackup'),
            '-D',
            s.dataDir,
            '-R',
            '-X',
            'stream',
          ].concat(['-c', 'fast', '-w', '-d', conninfo]),
          `copying the source's cluster (pg_basebackup from ${from})`,
        );
        out.base_ms = Date.now() - started;
      } else await writePassfile(c, s);
      const log = join(s.stage, 'postgresql.log');
      await runOn(
        c,
        c.target,
        ['runuser', '-u', s.osUser, '--', join(s.bin, 'pg_ctl'), '-D', s.configDir, '-l', log].concat([
          '-o',
          `-p ${s.port}`,
          '-w',
          '-t',
          '600',
          'start',
        ]),
        `starting the replica (its log: ${log})`,
      );
      c.log(`replica of ${from} streaming into ${c.target.name}:${s.dataDir} (${Date.now() - started} ms)`);
      return { ...out, duration_ms: Date.now() - started };
    },
  };
}

/** The passfile, written before every start: the replica reads it each time it connects to the source. */
const writePassfile = async (c: StepContext, s: MoveSettings) =>
  writeRemoteFile(
    c.ssh,
    c.target,
    {
      path: s.passfile,
      content: passfileLine(c.failed.address, s.sourcePort, s.rep.user, await replicationPassword(c, s)),
      mode: '0600',
      owner: s.osUser,
    },
    c.signal,
  );

function catchUpAction(ctx: StepContext, s: MoveSettings): Action {
  const max = { seconds: s.maxLag, bytes: s.rep.max_lag_bytes };
  return {
    id: 'pg:catch-up',
    title: `wait (at most ${s.rep.catch_up_seconds} s) until the replica on ${ctx.target.name} is within max_lag ${max.seconds} s and ${max.bytes} bytes of ${ctx.failed.name}`,
    touches: ctx.target.name,
    mutates: false,
    // Once per run; the conclusion measures again.
    observable: false,
    apply: async (c) => {
      const started = Date.now();
      const deadline = started + s.rep.catch_up_seconds * 1000;
      for (;;) {
        const lag = await measureLag(c, s);
        const gate = replicaGate(lag, max);
        if (gate.ok) {
          c.log(`freshness: ${gate.figure}, after ${Date.now() - started} ms`);
          return { lag: lag as unknown as StepOutputs, figure: gate.figure, waited_ms: Date.now() - started };
        }
        if (Date.now() >= deadline)
          throw new PersonaError(
            'E_STEP_FAILED',
            `the replica on ${c.target.name} stays above max_lag after ${s.rep.catch_up_seconds} s: ${gate.figure}`,
            {
              hint: `Nothing was stopped: ${c.failed.name} still serves. Resume when it writes less (the replica catches up), or raise data.postgresql.max_lag / replication.max_lag_bytes if that much lag is acceptable at the stop.`,
            },
          );
        await sleep(POLL_MS);
      }
    },
  };
}

/** precopy: the target becomes a streaming replica of the source, within max_lag. */
async function replicaPlan(ctx: StepContext): Promise<StepPlan> {
  const s = moveSettings(ctx);
  if ('problem' in s) return { actions: [], notes: [], blocked: { message: s.problem } };
  try {
    await replicationPassword(ctx, s);
  } catch (error) {
    if (!(error instanceof PersonaError)) throw error;
    return {
      actions: [],
      notes: [],
      blocked: { message: error.message, ...(error.hint ? { hint: error.hint } : {}) },
    };
  }
  const source = parseFailedFacts(
    (
      await runOn(
        ctx,
        ctx.failed,
        ['sh', '-c', FAILED_FACTS, 'persona-pg-failed', s.dataDir],
        `looking at ${s.dataDir}`,
      )
    ).stdout,
  );
  if (!source.cluster || !source.running)
    return {
      actions: [],
      notes: [],
      blocked: {
        message: `${ctx.failed.name}:${s.dataDir}: ${source.cluster ? 'PostgreSQL does not run' : 'no cluster'}; a planned move streams from the running primary`,
        hint: `Start it on ${ctx.failed.name}, or if it is lost, recover instead: persona recover ${ctx.failed.name}.`,
      },
    };
  const target = await lookTarget(ctx, s);
  if (!target.binaries)
    return {
      actions: [],
      notes: [],
      blocked: {
        message: `${ctx.target.name}: ${s.bin}/pg_basebackup, pg_ctl or psql is not installed`,
        hint: `Add postgresql-${s.version} to software_stack, or install it on ${ctx.target.name}, then resume.`,
      },
    };
  const work = replicaWork(target, source.systemId);
  const notes = [
    `source: ${ctx.failed.name}:${s.dataDir} (system ${source.systemId ?? 'unknown'}), streamed over ${ctx.failed.address}:${s.sourcePort} as ${s.rep.user} (password from ${s.rep.password}, kept in ${ctx.target.name}:${s.passfile}, 0600, until the promotion)`,
    work === 'build'
      ? `${ctx.target.name}:${s.dataDir}: no replica of it yet`
      : `${ctx.target.name}:${s.dataDir}: its replica, ${work === 'streaming' ? 'running' : 'stopped'}`,
  ];
  const actions = work === 'streaming' ? [] : [buildAction(ctx, s, work === 'build')];
  return { actions: [...actions, catchUpAction(ctx, s)], notes };
}

export const replicaStep: Step = {
  kind: 'precopy',
  dependsOn: ['configure'],
  title: 'build a streaming replica while the primary serves',
  mutates: true,
  timeoutMs: () => 6 * 60 * 60_000,
  describe(ctx) {
    const s = moveSettings(ctx);
    if ('problem' in s) return [s.problem];
    return [
      `build a streaming replica of ${ctx.failed.name}'s PostgreSQL ${s.version} in ${ctx.target.name}:${s.dataDir} (pg_basebackup -R over ${ctx.failed.address}:${s.sourcePort} as ${s.rep.user}), start it, and wait until it is within max_lag ${s.maxLag} s and ${s.rep.max_lag_bytes} bytes (refused with the figures after ${s.rep.catch_up_seconds} s)`,
    ];
  },
  checks: (ctx) => [`the replica on ${ctx.target.name} streams from ${ctx.failed.name}; its lag is reported`],
  plan: replicaPlan,
  async conclude(ctx, { applied }) {
    const s = settingsOrThrow(ctx);
    const lag = await measureLag(ctx, s);
    if (lag.replay === undefined)
      throw new PersonaError(
        'E_STEP_FAILED',
        `the replica on ${ctx.target.name} does not stream from ${ctx.failed.name}`,
        {
          hint: `Read ${join(s.stage, 'postgresql.log')} on ${ctx.target.name}; fix the cause and resume.`,
        },
      );
    const caught = applied.get('pg:catch-up');
    return {
      method: 'postgresql-replica',
      replica: `${ctx.target.name}:${s.dataDir}`,
      ...(applied.get('pg:replica') ? { built: applied.get('pg:replica')! } : {}),
      ...(caught ? { catch_up: caught } : {}),
      lag_now: replicaGate(lag, { seconds: s.maxLag, bytes: s.rep.max_lag_bytes }).figure,
    };
  },
};

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
