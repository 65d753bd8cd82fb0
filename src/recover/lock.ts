/**
 * The application's lock for a run. When resuming, a lock still held for this very run belongs to a driver that
 * died: wait for it to lapse (up to its TTL) rather than fail.
 */
import { hostname } from 'node:os';
import type { Context } from '../context.js';
import type { PersonaError } from '../errors.js';
import type { LockHandle } from '../stores/kv.js';
import { describeHolder } from '../stores/kv-lock.js';

export const lockName = (app: string) => `app-${app}`;

/** How long an application's lock outlives a crashed holder: the lock_ttl setting (PERSONA_LOCK_TTL, seconds). */
const lockTtlMs = (ctx: Context) => ctx.settings.values.lock_ttl.value * 1000;

export async function takeLock(
  ctx: Context,
  app: string,
  runId: string,
  purpose: string,
  resuming = false,
): Promise<LockHandle> {
  const store = await ctx.store();
  const ttlMs = lockTtlMs(ctx);
  const deadline = Date.now() + ttlMs * 2 + 20_000;
  const info = { holder: ctx.author, host: hostname(), pid: process.pid, run_id: runId, purpose };
  for (let waited = false; ; ) {
    try {
      return await store.backend.acquireLock(
        lockName(app),
        { ...info, started_at: ctx.now().toISOString() },
        {
          ttlMs,
          onTakeover: (previous, why) =>
            ctx.reporter.warn(`took over the lock on ${app} from ${describeHolder(previous)}: ${why}`),
        },
      );
    } catch (error) {
      const holder = (error as PersonaError).details?.holder as { run_id?: string } | undefined;
      const ownRun = resuming && (error as PersonaError).code === 'E_LOCK_HELD' && holder?.run_id === runId;
      if (!ownRun || Date.now() > deadline || ctx.signal.aborted) throw error;
      if (!waited)
        ctx.reporter.info(
          `${(error as Error).message}; it is this run's previous driver: waiting for it to lapse`,
        );
      waited = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
