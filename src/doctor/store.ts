/**
 * The store: reachable and writable (a compare-and-set on a scratch key, then its delete), and a lock TTL that
 * leaves room for the store's timeout when a lock is renewed.
 */

import { describeSource } from '../cli/settings.js';
import { errorMessage, isPersonaError } from '../errors.js';
import { RENEWAL_FRACTION } from '../stores/lock-renewal.js';
import { consulTarget, etcdTarget } from '../stores/store-url.js';
import type { Check, CheckResult } from './check.js';

export const checkStore: Check = async (input, ports) => {
  const named = input.settings.store.value;
  const fixFor = (error: unknown) =>
    (isPersonaError(error) && error.hint) ||
    'check the store (--store, PERSONA_STORE or store in persona.yaml) and that it accepts writes';
  let backend: Awaited<ReturnType<typeof ports.openStore>>;
  try {
    backend = await ports.openStore();
  } catch (error) {
    return {
      id: 'store',
      status: 'fail',
      summary: `cannot open ${named}: ${errorMessage(error)}`,
      fix: fixFor(error),
    };
  }
  // One key per machine, so repeated runs leave no trail of scratch keys (or their file-store metadata).
  const key = `doctor/scratch-${ports.hostname.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
  const value = JSON.stringify({ written_by: 'persona doctor', pid: ports.pid });
  const fail = (summary: string, fix?: string): CheckResult => ({
    id: 'store',
    status: 'fail',
    summary: `${backend.describe}: ${summary}`,
    fix:
      fix ??
      'the store must accept compare-and-set writes from this user: check its permissions or ACL token',
  });
  let written = false;
  try {
    const started = Date.now();
    // A key left by a doctor that died is overwritten by a compare-and-set on its token.
    const before = await backend.get(key);
    const put = await backend.txn({
      checks: [{ key, token: before?.token ?? null }],
      puts: [{ key, value }],
    });
    if (!put.ok) return fail(`a compare-and-set on the scratch key ${key} was refused`);
    written = true;
    const read = await backend.get(key);
    if (read?.value !== value)
      return fail(`wrote ${key} but read back ${read ? 'something else' : 'nothing'}`);
    const removed = await backend.txn({ checks: [{ key, token: read.token }], deletes: [key] });
    if (!removed.ok) return fail(`could not delete the scratch key ${key}`);
    written = false;
    return {
      id: 'store',
      status: 'ok',
      summary: `${backend.describe}: reachable and writable (compare-and-set, read, delete in ${Date.now() - started} ms)`,
    };
  } catch (error) {
    return fail(errorMessage(error).split('\n')[0]!, fixFor(error));
  } finally {
    if (written) await backend.txn({ deletes: [key] }).catch(() => undefined);
  }
};

/** How the store renews a lock: every `fraction` of the TTL, each request bounded by `timeoutMs`. */
export interface RenewalShape {
  kind: 'file' | 'etcd' | 'consul';
  timeoutMs: number;
  fraction: number;
}

export function renewalShape(url: string, env: NodeJS.ProcessEnv): RenewalShape | undefined {
  try {
    if (url.startsWith('etcd://'))
      return { kind: 'etcd', timeoutMs: etcdTarget(url, env).timeoutMs, fraction: RENEWAL_FRACTION.etcd };
    if (url.startsWith('consul://'))
      return {
        kind: 'consul',
        timeoutMs: consulTarget(url, env).timeoutMs,
        fraction: RENEWAL_FRACTION.consul,
      };
  } catch {
    return undefined;
  }
  return /^[a-z][a-z0-9+.-]*:\/\//.test(url)
    ? undefined
    : { kind: 'file', timeoutMs: 0, fraction: RENEWAL_FRACTION.file };
}

/**
 * A holder renews every `fraction × TTL` and gives its lock up after a whole TTL without a successful renewal.
 * Fits when two renewals that each wait the full store timeout still end inside the TTL; tight when only one does.
 */
export function lockTtlVerdict(ttlS: number, shape: RenewalShape, ttlSource: string): CheckResult {
  const id = 'lock-ttl';
  const intervalS = ttlS * shape.fraction;
  const timeoutS = shape.timeoutMs / 1000;
  const said = `lock TTL ${ttlS} s (${ttlSource}), renewed every ${round(intervalS)} s`;
  if (shape.kind === 'file')
    return { id, status: 'ok', summary: `${said}; the file store has no network timeout` };
  const needS = Math.ceil((2 * timeoutS) / (1 - shape.fraction));
  const fix = `raise lock_ttl (PERSONA_LOCK_TTL) to ${needS} s or more, or lower the store's timeout (?timeout= in its URL)`;
  const withTimeout = `${said}, ${shape.kind} timeout ${round(timeoutS)} s`;
  if (intervalS + timeoutS > ttlS)
    return {
      id,
      status: 'fail',
      summary: `${withTimeout}: one slow renewal outlasts the TTL, so a live run can lose its lock`,
      fix,
    };
  if (intervalS + 2 * timeoutS > ttlS)
    return { id, status: 'warn', summary: `${withTimeout}: no room for a second renewal attempt`, fix };
  if (shape.kind === 'consul' && ttlS < 10)
    return {
      id,
      status: 'warn',
      summary: `${withTimeout}: Consul raises session TTLs under 10 s to 10 s`,
      fix: 'set lock_ttl to 10 or more',
    };
  return { id, status: 'ok', summary: `${withTimeout}: fits` };
}

const round = (n: number) => String(Math.round(n * 10) / 10);

export const checkLockTtl: Check = async (input) => {
  const { value, source } = input.settings.lock_ttl;
  const shape = renewalShape(input.settings.store.value, input.env);
  if (!shape)
    return { id: 'lock-ttl', status: 'skip', summary: 'the store URL cannot be read (see the store check)' };
  return lockTtlVerdict(value, shape, describeSource(source));
};
