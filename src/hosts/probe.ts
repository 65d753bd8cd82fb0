/**
 * Probing candidate hosts: one SSH round trip each, bounded concurrency, a deadline per host. An unreachable host
 * is a result with its reason, never a failure of the whole probe.
 */

import { availableParallelism } from 'node:os';
import { isPersonaError, PersonaError } from '../errors.js';
import { probeSpec } from '../profile/package-spec.js';
import { mapPool } from '../util/pool.js';
import type { InventoryHost } from './inventory.js';
import { type HostFacts, ProbeParseError, parseProbeOutput } from './parse-probe.js';
import { probeScript } from './probe-script.js';
import { SshError, type SshFailureKind, type Transport } from './ssh.js';

/** `skipped`: not probed on purpose (the failed host, an excluded host). */
export type ProbeFailureKind = SshFailureKind | 'probe' | 'skipped';

export type ProbeResult =
  | {
      host: InventoryHost;
      ok: true;
      facts: HostFacts;
      durationMs: number;
      /** Facts read from the fact cache (fact-cache.ts), not probed now: when they were probed, and their age. */
      cached?: { probedAt: string; ageMs: number };
    }
  | {
      host: InventoryHost;
      ok: false;
      failure: { kind: ProbeFailureKind; message: string; hint?: string };
      durationMs: number;
    };

export interface ProbeOptions {
  /** The data path whose filesystem is measured (the profile's first data path); "/" by default. */
  dataPath?: string;
  /** Packages to look up, as in software_stack. */
  packages?: readonly string[];
  concurrency?: number;
  /** Per-host deadline, connection included. */
  deadlineMs?: number;
  signal?: AbortSignal;
  onResult?: (result: ProbeResult) => void;
}

/**
 * SSH handshakes are CPU work on this machine: more at once than the cores can serve only makes each host slower
 * (and closer to its deadline) without finishing sooner (bench/RESULTS.md). 16 per core, at least 16.
 */
export const DEFAULT_PROBE_CONCURRENCY = Math.max(16, availableParallelism() * 16);

export async function probeHost(
  ssh: Transport,
  host: InventoryHost,
  options: ProbeOptions = {},
): Promise<ProbeResult> {
  const started = Date.now();
  // Exact pins and plain names: a glob or a minimum is matched by the broker (package-spec.ts).
  const packages = (options.packages ?? []).map(probeSpec);
  try {
    const result = await ssh.script(host, probeScript, [options.dataPath ?? '/', ...packages], {
      timeoutMs: options.deadlineMs ?? 15_000,
      startMaster: false,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (result.exitCode !== 0) {
      return fail(
        host,
        started,
        'probe',
        `${host.name}: the probe exited with code ${result.exitCode}: ${result.stderr.trim().split('\n').slice(-2).join(' ')}`,
      );
    }
    return {
      host,
      ok: true,
      facts: parseProbeOutput(result.stdout, packages),
      durationMs: Date.now() - started,
    };
  } catch (error) {
    if (error instanceof SshError) return fail(host, started, error.kind, error.message, error.hint);
    if (error instanceof ProbeParseError)
      return fail(host, started, 'probe', `${host.name}: ${error.message}`);
    if (isPersonaError(error)) return fail(host, started, 'probe', error.message, error.hint);
    throw error;
  }
}

function fail(
  host: InventoryHost,
  started: number,
  kind: ProbeFailureKind,
  message: string,
  hint?: string,
): ProbeResult {
  return {
    host,
    ok: false,
    failure: { kind, message, ...(hint ? { hint } : {}) },
    durationMs: Date.now() - started,
  };
}

/** A host left out of the probe on purpose (the failed host, an excluded host). */
export function notProbed(host: InventoryHost): ProbeResult {
  return { host, ok: false, failure: { kind: 'skipped', message: 'not probed' }, durationMs: 0 };
}

/**
 * Probes every host. Interrupted (options.signal), it throws the interruption once the probes under way have
 * stopped: hosts cut short did not fail, so they are never reported as results (nor ranked as unreachable).
 */
export async function probeHosts(
  ssh: Transport,
  hosts: readonly InventoryHost[],
  options: ProbeOptions = {},
): Promise<ProbeResult[]> {
  const { signal } = options;
  const results = await mapPool(hosts, options.concurrency ?? DEFAULT_PROBE_CONCURRENCY, async (host) => {
    if (signal?.aborted) return fail(host, Date.now(), 'cancelled', `${host.name}: not probed (interrupted)`);
    const result = await probeHost(ssh, host, options);
    if (!signal?.aborted) options.onResult?.(result);
    return result;
  });
  if (signal?.aborted) {
    throw isPersonaError(signal.reason)
      ? signal.reason
      : new PersonaError('E_INTERRUPTED', 'the probe was interrupted', { cause: signal.reason });
  }
  return results;
}
