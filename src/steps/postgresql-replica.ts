/**
 * precopy of a planned PostgreSQL move (postgresql-move.ts): the target becomes a streaming replica of the running
 * source (pg_basebackup -R over TCP; the password only in a 0600 passfile), and the freshness gate waits until it is
 * within max_lag seconds and max_lag_bytes, or refuses with the figures.
 */
import { join } from 'node:path';
import { PersonaError } from '../errors.js';
import { writeRemoteFile } from '../runbook/remote.js';
import { resolveSecret } from '../runbook/secrets.js';
import type { Action, Step, StepContext, StepOutputs, StepPlan } from '../runbook/types.js';
import { parseFailedFacts } from './postgresql-facts.js';
import {
  lookTarget,
  type MoveSettings,
  moveSettings,
  POLL_MS,
  settingsOrThrow,
  sleep,
} from './postgresql-move.js';
import {
  parseReplicaLag,
  passfileLine,
  REPLICA_NAME,
  type ReplicaLag,
  replicaConninfo,
  replicaGate,
  replicaWork,
} from './postgresql-move-facts.js';
import { FAILED_FACTS, PREPARE_BASE } from './postgresql-scripts.js';
import { psql, runOn } from './postgresql-sql.js';

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
    ...(ctx.journal.options.precopy === false
      ? [
          '--stop-copy-start does not apply to data.migration postgresql: the replica streams while the source serves',
        ]
      : []),
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
