/**
 * record: the application's assignment moves to the new host, atomically with the outcome of the run (host,
 * profile version, metrics, durations), which later ranking and tuning read back.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PersonaError } from '../errors.js';
import type { Action, Step, StepContext, StepPlan } from '../runbook/types.js';
import type { KvBackend } from '../stores/kv.js';

export interface Assignment {
  app: string;
  host: string;
  previous?: string;
  run_id?: string;
  at: string;
  profile_version?: number;
  /** Who declared it (recover --app, confirmed), when no recovery has recorded it yet. */
  declared_by?: string;
  /**
   * Every host an application with several instances runs on (a rollout's canary and control); absent: `host` and
   * the inventory's apps (rollout/instances.ts). A recovery keeps it, with the failed host replaced by the target.
   */
  hosts?: string[];
}

export const assignmentKey = (app: string) => `assignments/${app}`;
const outcomeKey = (app: string, runId: string) => `outcomes/${app}/${runId}`;

export async function readAssignment(
  backend: KvBackend,
  app: string,
): Promise<(Assignment & { token: string }) | undefined> {
  const entry = await backend.get(assignmentKey(app));
  if (!entry) return undefined;
  return { ...(JSON.parse(entry.value) as Assignment), token: entry.token };
}

/**
 * Records where an application runs when nothing recorded it before (recover --app, after confirmation). Only
 * creates: an assignment written meanwhile by someone else wins, and this says so.
 */
export async function declareAssignment(
  backend: KvBackend,
  assignment: Assignment & { declared_by: string },
): Promise<void> {
  const key = assignmentKey(assignment.app);
  const txn = await backend.txn({
    checks: [{ key, token: null }],
    puts: [{ key, value: JSON.stringify(assignment) }],
  });
  if (!txn.ok) {
    const now = await readAssignment(backend, assignment.app);
    throw new PersonaError(
      'E_CONFLICT',
      `${assignment.app} was recorded on ${now?.host ?? 'another host'} meanwhile; not recorded on ${assignment.host}`,
      { hint: `Look at \`persona runs list\`, then run \`persona recover\` again.` },
    );
  }
}

function outcome(ctx: StepContext) {
  const steps = ctx.journal.steps;
  const durations = Object.fromEntries(steps.map((s) => [s.kind, s.duration_ms ?? null]));
  const monitor = steps.find((s) => s.kind === 'monitor')?.outputs;
  const validate = steps.find((s) => s.kind === 'validate')?.outputs;
  return {
    run_id: ctx.journal.run_id,
    app: ctx.profile.id,
    host: ctx.target.name,
    failed_host: ctx.failed.name,
    profile_version: ctx.journal.profile.version,
    at: ctx.now().toISOString(),
    success: steps.every((s) => s.kind === 'record' || s.status === 'succeeded'),
    durations_ms: durations,
    metrics: { validate: validate?.metrics ?? null, monitor: monitor?.metrics ?? null },
  };
}

export const recordStep: Step = {
  kind: 'record',
  dependsOn: ['monitor'],
  title: 'record the new assignment and the outcome',
  mutates: true,
  describe(ctx) {
    return [
      `assignment of ${ctx.profile.id}: ${ctx.failed.name} → ${ctx.target.name} in ${ctx.backend.describe}; outcome kept for ranking`,
    ];
  },
  checks(ctx) {
    return [`that ${ctx.backend.describe} holds ${ctx.profile.id} on ${ctx.target.name} for this run`];
  },
  async plan(ctx): Promise<StepPlan> {
    const current = await readAssignment(ctx.backend, ctx.profile.id);
    const now = `${ctx.profile.id} recorded on ${current?.host ?? `nothing (${ctx.failed.name} by the inventory)`}${current?.run_id ? ` by run ${current.run_id}` : ''}`;
    if (current?.host === ctx.target.name && current.run_id === ctx.journal.run_id)
      return { actions: [], notes: [now] };
    if (current && current.host !== ctx.failed.name && current.run_id !== ctx.journal.run_id) {
      throw new PersonaError(
        'E_CONFLICT',
        `${ctx.profile.id} is now recorded on ${current.host} (run ${current.run_id ?? '?'}), not on ${ctx.failed.name}: someone else moved it`,
        {
          hint: 'Look at `persona runs list` before going on.',
        },
      );
    }
    const write: Action = {
      id: 'record',
      title: `record ${ctx.profile.id} on ${ctx.target.name} and this run's outcome in ${ctx.backend.describe}`,
      touches: 'store',
      mutates: true,
      observable: true,
      async apply(c) {
        const next: Assignment = {
          app: c.profile.id,
          host: c.target.name,
          previous: c.failed.name,
          run_id: c.journal.run_id,
          at: c.now().toISOString(),
          profile_version: c.journal.profile.version,
          ...(current?.hosts
            ? { hosts: [...new Set(current.hosts.map((h) => (h === c.failed.name ? c.target.name : h)))] }
            : {}),
        };
        const result = outcome(c);
        await c.checkpoint('before-write');
        const txn = await c.backend.txn({
          // Only over what this plan saw: an assignment changed meanwhile refuses the whole write.
          checks: [{ key: assignmentKey(c.profile.id), token: current?.token ?? null }],
          puts: [
            { key: assignmentKey(c.profile.id), value: JSON.stringify(next) },
            { key: outcomeKey(c.profile.id, c.journal.run_id), value: JSON.stringify(result) },
            { key: `host-history/${c.target.name}/${c.journal.run_id}`, value: JSON.stringify(result) },
          ],
        });
        if (!txn.ok)
          throw new PersonaError(
            'E_CONFLICT',
            `the assignment of ${c.profile.id} changed while recording; nothing was written`,
          );
        c.log(`${c.profile.id} is now assigned to ${c.target.name}`);
        return { assignment: next };
      },
    };
    return { actions: [write], notes: [now] };
  },
  async conclude(ctx) {
    const assignment = await readAssignment(ctx.backend, ctx.profile.id);
    const result = await ctx.backend.get(outcomeKey(ctx.profile.id, ctx.journal.run_id));
    // Staged data is a copy of the application's data on this machine: gone once the run is recorded.
    await rm(join(ctx.stateDir, 'staging', ctx.journal.run_id), { recursive: true, force: true });
    if (assignment) delete (assignment as { token?: string }).token;
    return { assignment, outcome: result ? JSON.parse(result.value) : null };
  },
};
