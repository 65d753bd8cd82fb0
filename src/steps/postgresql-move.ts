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
 *
 * This file: the settings and the look at the target both steps share; precopy is postgresql-replica.ts, the
 * promotion postgresql-promote.ts.
 */
import { join } from 'node:path';
import { PersonaError } from '../errors.js';
import type { StepContext } from '../runbook/types.js';
import { parseReplicaTarget } from './postgresql-move-facts.js';
import { type PgSettings, pgSettings } from './postgresql-scripts.js';
import { runOn } from './postgresql-sql.js';

type Replication = NonNullable<NonNullable<StepContext['profile']['data']['postgresql']>['replication']>;

export interface MoveSettings extends PgSettings {
  rep: Replication;
  sourcePort: number;
  passfile: string;
}

export function moveSettings(ctx: StepContext): MoveSettings | { problem: string } {
  const s = pgSettings(ctx.profile, ctx.journal.run_id);
  const rep = ctx.profile.data.postgresql?.replication;
  if (!rep)
    return {
      problem:
        'a planned move of a PostgreSQL cluster needs data.postgresql.replication: the role the replica connects as and its password (a secret reference)',
    };
  return { ...s, rep, sourcePort: rep.source_port ?? s.port, passfile: join(s.stage, 'pgpass') };
}

export const settingsOrThrow = (ctx: StepContext): MoveSettings => {
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

export const lookTarget = async (ctx: StepContext, s: MoveSettings) =>
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

/** How often the replica is looked at while persona waits for it. */
export const POLL_MS = 250;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
