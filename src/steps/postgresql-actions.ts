/**
 * data.migration postgresql: the actions of the restore, in order: the base backup into the data directory, the WAL
 * segments into the staging directory (both piped through this machine from the backup host), the recovery (start,
 * wait for the promotion, record the recovery point), and the cleanup of the staged WAL once the check holds.
 */
import { join } from 'node:path';
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import { pipeBetween } from '../hosts/pipe.js';
import { displayCommand, type ExecResult } from '../hosts/ssh.js';
import { privileged, writeRemoteFile } from '../runbook/remote.js';
import type { Action, StepContext } from '../runbook/types.js';
import { stripTerminalControls } from '../util/sanitize.js';
import {
  type ArchiveRun,
  parseRecoveryPoint,
  parseTargetFacts,
  type RecoveryPoint,
  type RestoredMarker,
} from './postgresql-facts.js';
import {
  FINISH_BASE,
  type PgSettings,
  PREPARE_BASE,
  RECEIVE_WAL,
  RECOVERY_SETTINGS,
  recoverySettings,
  TARGET_FACTS,
} from './postgresql-scripts.js';
import { psql, psqlArgv, RECOVERY_POINT_SQL, runOn } from './postgresql-sql.js';

const MiB = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
const shown = (text: string) => stripTerminalControls(text);

export function baseAction(
  ctx: StepContext,
  backupHost: InventoryHost,
  s: PgSettings,
  base: { bytes: number; moveAside: boolean; running: boolean },
): Action {
  const extra = [
    base.running ? `stopping the PostgreSQL running on ${s.dataDir}` : '',
    base.moveAside ? `what is there now is moved aside to ${s.aside}, not deleted` : '',
  ].filter(Boolean);
  return {
    id: 'pg:base',
    title: `restore the base backup ${s.backupHost}:${s.base} (${MiB(base.bytes)}) into ${ctx.target.name}:${s.dataDir}${extra.length ? `; ${extra.join('; ')}` : ''}`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      const started = Date.now();
      const prepared = await runOn(
        c,
        c.target,
        ['sh', '-c', PREPARE_BASE, 'persona-pg-prepare', s.dataDir, s.stage, s.osUser, s.aside, s.bin],
        `preparing ${s.dataDir}`,
      );
      const movedTo = shown(prepared.stdout.trim());
      if (movedTo) c.log(`${s.dataDir} on ${c.target.name}: what was there is kept at ${movedTo}`);
      const sent = await pipe(
        c,
        backupHost,
        ['tar', '-C', s.base, '-cf', '-', '.'],
        ['tar', '-C', s.dataDir, '-xf', '-'],
        `the base backup ${s.base}`,
      );
      await runOn(
        c,
        c.target,
        ['sh', '-c', FINISH_BASE, 'persona-pg-finish', s.dataDir, s.stage, s.osUser],
        `finishing ${s.dataDir}`,
      );
      await c.checkpoint('after-base');
      return {
        base: `${s.backupHost}:${s.base}`,
        transferred_bytes: sent,
        duration_ms: Date.now() - started,
        ...(movedTo ? { moved_aside: movedTo } : {}),
      };
    },
  };
}

/** Segments per tar stream: each name is an argument. */
const WAL_BATCH = 1000;

/** Where segments are copied from: the backup host's archive, or the failed host's pg_wal. */
export interface WalSource {
  id: 'pg:wal' | 'pg:wal-failed';
  host: InventoryHost;
  dir: string;
}

export function walAction(
  ctx: StepContext,
  s: PgSettings,
  from: WalSource,
  names: string[],
  bytes: number,
): Action {
  return {
    id: from.id,
    title: `copy ${names.length} WAL segment(s) (${MiB(bytes)}, ${names[0]}…${names.at(-1)}) from ${from.host.name}:${from.dir} to ${ctx.target.name}:${join(s.stage, 'wal')}, where restore_command reads them`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      const started = Date.now();
      let sent = 0;
      for (let i = 0; i < names.length; i += WAL_BATCH)
        sent += await pipe(
          c,
          from.host,
          ['tar', '-C', from.dir, '-cf', '-', ...names.slice(i, i + WAL_BATCH)],
          ['sh', '-c', RECEIVE_WAL, 'persona-pg-wal', join(s.stage, 'wal'), s.osUser],
          `WAL segments from ${from.dir}`,
        );
      return {
        from: `${from.host.name}:${from.dir}`,
        segments: names.length,
        transferred_bytes: sent,
        duration_ms: Date.now() - started,
      };
    },
  };
}

async function pipe(
  c: StepContext,
  from: InventoryHost,
  send: string[],
  receive: string[],
  what: string,
): Promise<number> {
  const r = await pipeBetween(
    c.ssh,
    { host: from, argv: privileged(from, send) },
    { host: c.target, argv: privileged(c.target, receive) },
    { signal: c.signal },
  );
  if (r.source.exitCode !== 0 || r.sink.exitCode !== 0) {
    const end = (host: InventoryHost, argv: string[], x: ExecResult) =>
      `${host.name}: \`${displayCommand(argv)}\` ${x.exitCode === 0 ? 'ended well' : `exited with code ${x.exitCode}: ${x.stderr.trim().split('\n').slice(-2).join(' ')}`}`;
    throw new PersonaError(
      'E_STEP_FAILED',
      `copying ${what} from ${from.name} to ${c.target.name} failed (${r.bytes} bytes passed): ${end(from, send, r.source)}; ${end(c.target, receive, r.sink)}`,
      {
        hint: `Nothing on ${from.name} changed; resume to start this copy again.`,
      },
    );
  }
  return r.bytes;
}

/** How often, and how long, the restore's promotion is waited for. */
const POLL_MS = 500;

export function recoverAction(
  ctx: StepContext,
  s: PgSettings,
  run: ArchiveRun,
  record: Omit<RestoredMarker, 'recovery_point'>,
): Action {
  return {
    id: 'pg:recover',
    title: `start PostgreSQL ${s.version} on ${ctx.target.name}:${s.port} in archive recovery (restore_command from ${join(s.stage, 'wal')}; target: the end of the WAL, ${run.segments.at(-1)?.name ?? 'the base backup'}), and wait until it promotes itself`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      const started = Date.now();
      const state = parseTargetFacts(
        (
          await runOn(
            c,
            c.target,
            ['sh', '-c', TARGET_FACTS, 'persona-pg-target', s.dataDir, s.stage, s.bin],
            `looking at ${s.dataDir}`,
          )
        ).stdout,
      );
      if (!state.running) {
        await runOn(
          c,
          c.target,
          ['sh', '-c', RECOVERY_SETTINGS, 'persona-pg-settings', s.dataDir, s.osUser],
          'writing the recovery settings',
          recoverySettings(s.stage),
        );
        const log = join(s.stage, 'postgresql.log');
        await runOn(
          c,
          c.target,
          [
            'runuser',
            '-u',
            s.osUser,
            '--',
            join(s.bin, 'pg_ctl'),
            '-D',
            s.configDir,
            '-l',
            log,
            '-o',
            `-p ${s.port}`,
            '-W',
            'start',
          ],
          `starting PostgreSQL (its log: ${log})`,
        );
      }
      const point = await waitForPromotion(c, s);
      await writeRemoteFile(
        c.ssh,
        c.target,
        {
          path: join(s.stage, 'recovered.json'),
          content: `${JSON.stringify({ ...record, recovery_point: point } satisfies RestoredMarker)}\n`,
          mode: '0600',
          owner: 'root',
        },
        c.signal,
      );
      c.log(
        `PostgreSQL on ${c.target.name} promoted onto timeline ${point.timeline} at ${point.lsn}; last transaction replayed: ${point.last_transaction_at ?? 'none'}`,
      );
      return { recovery_point: point, duration_ms: Date.now() - started };
    },
  };
}

async function waitForPromotion(c: StepContext, s: PgSettings): Promise<RecoveryPoint> {
  const sql = 'SELECT pg_is_in_recovery();\n';
  for (;;) {
    c.signal.throwIfAborted();
    const argv = [...psqlArgv(s, 'postgres'), '-f', '-'];
    const r = await c.ssh.exec(c.target, privileged(c.target, argv), { input: sql, signal: c.signal });
    if (r.exitCode === 0 && r.stdout.trim() === 'f') break;
    if (r.exitCode !== 0) {
      const state = parseTargetFacts(
        (
          await runOn(
            c,
            c.target,
            ['sh', '-c', TARGET_FACTS, 'persona-pg-target', s.dataDir, s.stage, s.bin],
            `looking at ${s.dataDir}`,
          )
        ).stdout,
      );
      if (!state.running) {
        const tail = await c.ssh.exec(
          c.target,
          privileged(c.target, ['tail', '-n', '5', '--', join(s.stage, 'postgresql.log')]),
          { signal: c.signal },
        );
        throw new PersonaError(
          'E_STEP_FAILED',
          `PostgreSQL on ${c.target.name} stopped during the restore: ${shown(tail.stdout.trim().split('\n').join(' / '))}`,
          {
            hint: `Read ${join(s.stage, 'postgresql.log')} on ${c.target.name}; fix the cause and resume.`,
          },
        );
      }
    }
    await new Promise((r2) => setTimeout(r2, POLL_MS));
  }
  const line = await psql(c.ssh, c.target, s, 'postgres', RECOVERY_POINT_SQL, c.signal);
  const point = parseRecoveryPoint(line);
  if (!point)
    throw new PersonaError(
      'E_STEP_FAILED',
      `could not read the recovery point on ${c.target.name}: ${shown(line.trim())}`,
    );
  return point;
}

export function cleanupAction(ctx: StepContext, s: PgSettings, segments: number): Action {
  return {
    id: 'pg:cleanup',
    title: `delete the ${segments} staged WAL segment(s) in ${ctx.target.name}:${join(s.stage, 'wal')} (the restore is promoted; the server log and the recovery point stay in ${s.stage})`,
    touches: ctx.target.name,
    mutates: true,
    observable: true,
    apply: async (c) => {
      await runOn(c, c.target, ['rm', '-rf', '--', join(s.stage, 'wal')], 'deleting the staged WAL');
      return { deleted_segments: segments };
    },
  };
}
