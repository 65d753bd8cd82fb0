import type { InventoryHost } from '../hosts/inventory.js';
import { SshError, type SshFailureKind, type Transport } from '../hosts/ssh.js';
import type { Journal, StepContext } from '../runbook/types.js';

export type Reach = { ok: true } | { ok: false; kind: SshFailureKind; reason: string };

/**
 * How long a host that timed out is taken as timing out still, within one run of one process: the fence's plans
 * and the migrate plan each waited the whole connect timeout for the same dead host (5 s each in the demo). Only a
 * timeout is remembered: a host that answers, refuses or has no route is asked again, since that costs nothing,
 * and an answer is what must never be missed. A resumed run (a new process) asks again.
 */
export const TIMEOUT_MEMORY_MS = 30_000;

interface Seen {
  /** When the question was asked (performance.now()). */
  at: number;
  /** Its answer, once there is one; until then, the question in flight, which a second caller waits for. */
  reach?: Reach;
  pending?: Promise<Reach>;
}

const memory = new WeakMap<Readonly<Journal>, Map<string, Seen>>();
/** The latest answer each host gave in a run, whatever it was (lastAnswer). */
const answers = new WeakMap<Readonly<Journal>, Map<string, Reach>>();

function heard(journal: Readonly<Journal>, host: InventoryHost, reach: Reach): void {
  const known = answers.get(journal) ?? new Map<string, Reach>();
  answers.set(journal, known);
  known.set(host.name, reach);
}

/**
 * The latest answer the host gave in this run, without asking or waiting: undefined while no question about it
 * has ended. For work that only saves time (migrate's early copy skips a backup a host that answers makes
 * unneeded); never for a decision, which asks (reachable).
 */
export function lastAnswer(journal: Readonly<Journal>, host: InventoryHost): Reach | undefined {
  return answers.get(journal)?.get(host.name);
}

function seenFor(journal: Readonly<Journal>): Map<string, Seen> {
  const seen = memory.get(journal) ?? new Map<string, Seen>();
  memory.set(journal, seen);
  return seen;
}

/** One `ssh HOST true`: whether it answers, and how it failed when it does not. */
export async function askReach(ssh: Transport, host: InventoryHost, signal?: AbortSignal): Promise<Reach> {
  try {
    await ssh.exec(host, ['true'], { timeoutMs: 10_000, ...(signal ? { signal } : {}) });
    return { ok: true };
  } catch (error) {
    if (error instanceof SshError && error.kind !== 'cancelled')
      return { ok: false, kind: error.kind, reason: error.message };
    throw error;
  }
}

/**
 * The run's first look at the failed host, asked before its journal existed (recover asks while it probes the
 * candidates, so that a dead host's connect timeout runs beside the probe instead of after it): the fence's
 * question waits for this answer instead of asking again, and a timeout counts as seen at `startedAt`.
 */
export function rememberReach(
  journal: Readonly<Journal>,
  host: InventoryHost,
  question: Promise<Reach>,
  startedAt: number,
): void {
  const entry: Seen = { at: startedAt, pending: question };
  seenFor(journal).set(host.name, entry);
  question.then(
    (reach) => {
      heard(journal, host, reach);
      entry.reach = reach;
      delete entry.pending;
    },
    () => {
      seenFor(journal).delete(host.name);
    },
  );
}

/** Whether the host answers over SSH right now; the kind of failure and its reason when it does not. */
export async function reachable(ctx: StepContext, host: InventoryHost): Promise<Reach> {
  const seen = seenFor(ctx.journal);
  const earlier = seen.get(host.name);
  if (earlier?.pending) {
    // A question in flight (the fence's and migrate's, or the one recover asked while probing): its answer is
    // as current as a new one would be.
    const reach = await earlier.pending.catch(() => undefined);
    if (reach) return reach.ok || reach.kind !== 'timeout' ? reach : noted(earlier, reach);
  } else if (
    earlier?.reach &&
    !earlier.reach.ok &&
    earlier.reach.kind === 'timeout' &&
    performance.now() - earlier.at < TIMEOUT_MEMORY_MS
  ) {
    return noted(earlier, earlier.reach);
  }
  const entry: Seen = { at: performance.now() };
  const question = askReach(ctx.ssh, host, ctx.signal);
  entry.pending = question;
  seen.set(host.name, entry);
  try {
    const reach = await question;
    heard(ctx.journal, host, reach);
    // Only a timeout is remembered (see TIMEOUT_MEMORY_MS).
    if (!reach.ok && reach.kind === 'timeout') {
      entry.reach = reach;
      delete entry.pending;
    } else if (seen.get(host.name) === entry) seen.delete(host.name);
    return reach;
  } catch (error) {
    if (seen.get(host.name) === entry) seen.delete(host.name);
    throw error;
  }
}

/** A remembered failure, saying how old it is. */
function noted(entry: Seen, reach: Reach & { ok: false }): Reach {
  const age = (performance.now() - entry.at) / 1000;
  return { ...reach, reason: `${reach.reason} (${age.toFixed(1)} s ago in this run: not waited for again)` };
}
