/**
 * Builds what a step runs with, from the run's pieces. Failpoints live here, for tests:
 * PERSONA_FAILPOINT=<step>:<point> makes the process stop at that point of that step (it writes
 * <state>/failpoint-reached and waits to be killed or interrupted), so crash tests can kill persona in the middle
 * of a step, deterministically; <step>:<point>:fail-once makes the step fail there once instead.
 */
import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { PersonaError } from '../errors.js';
import { findHost, type Inventory, type InventoryHost } from '../hosts/inventory.js';
import type { Transport } from '../hosts/ssh.js';
import type { Profile } from '../profile/schema.js';
import type { KvBackend } from '../stores/kv.js';
import type { Redactor } from '../ui/redact.js';
import type { Reporter } from '../ui/reporter.js';
import { execaLocal, type LocalRunner } from '../util/local-process.js';
import { stripTerminalControls } from '../util/sanitize.js';
import type { ClientView, Journal, StepContext, StepRecord } from './types.js';

export interface RunPieces {
  journal: Journal;
  profile: Profile;
  inventory: Inventory;
  failed: InventoryHost;
  target: InventoryHost;
  ssh: Transport;
  backend: KvBackend;
  reporter: Reporter;
  redactor: Redactor;
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** The allowed_sources patterns for env: and file: secrets; absent: the default. */
  allowedSources?: readonly string[];
  /** Days observations are kept; absent: the default. */
  observationRetentionDays?: number;
  now(): Date;
  /** Throws when the run's lock can no longer be trusted (LockHandle.assertHeld). */
  assertHeld?: () => void;
  /** Commands on this machine (default: execa); tests pass their own. */
  local?: LocalRunner;
  /** A planned move's prober through the balancer (StepContext.clientView). */
  clientView?: ClientView;
}

/** The methods of the transport that reach a host: each checks the lock first. */
const REMOTE = new Set(['exec', 'run', 'script', 'rsyncShell', 'stream']);

/**
 * The run's transport, with the lock checked before every remote command: a driver whose lock lapsed (a stopped
 * laptop, SIGSTOP) sends nothing more, even in the middle of an action of several commands.
 */
export function guardedTransport(ssh: Transport, assertHeld?: () => void): Transport {
  if (!assertHeld) return ssh;
  return new Proxy(ssh, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (!REMOTE.has(String(property))) return fn.bind(target);
      return async (...args: unknown[]) => {
        assertHeld();
        return await fn.apply(target, args);
      };
    },
  });
}

const failedOnce = new Set<string>();

export function stepContext(pieces: RunPieces, signal: AbortSignal, record: StepRecord): StepContext {
  const { journal, env, stateDir, reporter, redactor } = pieces;
  return {
    journal,
    profile: pieces.profile,
    failed: pieces.failed,
    target: pieces.target,
    ssh: guardedTransport(pieces.ssh, pieces.assertHeld),
    backend: pieces.backend,
    reporter,
    redactor,
    signal,
    stateDir,
    env,
    ...(pieces.allowedSources ? { allowedSources: pieces.allowedSources } : {}),
    ...(pieces.observationRetentionDays ? { observationRetentionDays: pieces.observationRetentionDays } : {}),
    now: pieces.now,
    assertHeld: () => pieces.assertHeld?.(),
    local: pieces.local ?? execaLocal,
    ...(pieces.clientView ? { clientView: pieces.clientView } : {}),
    findHost: (name) => findHost(pieces.inventory, name),
    previous: (kind) => journal.steps.find((s) => s.kind === kind),
    log(line) {
      const text = redactor.redact(stripTerminalControls(line));
      record.log.push(text);
      reporter.event('log', { run_id: journal.run_id, step: record.kind, message: text });
    },
    async checkpoint(name) {
      const point = `${record.kind}:${name}`;
      if (env.PERSONA_FAILPOINT === `${point}:fail-once` && !failedOnce.has(point)) {
        failedOnce.add(point);
        throw new PersonaError('E_STEP_FAILED', `failpoint ${point}: failing once, as asked`);
      }
      if (env.PERSONA_FAILPOINT !== point) return;
      await writeFile(
        join(stateDir, 'failpoint-reached'),
        `${record.kind}:${name} pid ${process.pid} on ${hostname()}\n`,
      );
      reporter.warn(`failpoint ${record.kind}:${name} reached: waiting to be stopped`);
      // A pending promise alone does not keep Node alive: hold a timer until the signal comes.
      const alive = setInterval(() => {}, 60_000);
      // The signal may have come already (between the file's write and here): then no abort event is left to wait for.
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener('abort', () => resolve(), { once: true });
      });
      clearInterval(alive);
      throw signal.reason;
    },
  };
}
