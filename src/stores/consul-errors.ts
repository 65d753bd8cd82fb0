/**
 * What the Consul store tells people when something goes wrong: which store, what it was doing, why, and how
 * to fix it. No message ever carries the ACL token (it is scrubbed even from Consul's own words).
 */
import { PersonaError } from '../errors.js';
import { ConsulApi, ConsulCallError, type ConsulTxnOp } from './consul-api.js';
import type { KvTxn } from './kv.js';
import type { ConsulTarget } from './store-url.js';

/** kv_max_value_size and txn_max_req_len defaults. */
export const CONSUL_MAX_VALUE_BYTES = 512 * 1024;
export const CONSUL_MAX_TXN_BYTES = 512 * 1024;
/** Consul before 1.x allowed 64 operations per transaction (128 since); persona stays within the lower one. */
export const CONSUL_MAX_TXN_OPS = 64;

const kib = (bytes: number) => `${Math.ceil(bytes / 1024)} KiB`;

/** Consul refuses oversized values and transactions; say so before sending anything. */
export function checkTxnLimits(store: string, txn: KvTxn, ops: ConsulTxnOp[]): void {
  for (const put of txn.puts ?? []) {
    const bytes = Buffer.byteLength(put.value, 'utf8');
    if (bytes > CONSUL_MAX_VALUE_BYTES) {
      throw new PersonaError(
        'E_INPUT_TOO_LARGE',
        `${put.key} is ${kib(bytes)}; Consul KV values are limited to ${kib(CONSUL_MAX_VALUE_BYTES)} (kv_max_value_size): nothing was written to ${store}`,
        {
          hint: 'Keep large data (files, archives) out of the profile; reference it by path instead.',
          details: { key: put.key, bytes, limit: CONSUL_MAX_VALUE_BYTES },
        },
      );
    }
  }
  if (ops.length > CONSUL_MAX_TXN_OPS) {
    throw new PersonaError(
      'E_STORE',
      `a transaction of ${ops.length} operations exceeds Consul's limit of ${CONSUL_MAX_TXN_OPS}: nothing was written to ${store}`,
    );
  }
  const bytes = Buffer.byteLength(JSON.stringify(ConsulApi.txnBody(ops)), 'utf8');
  if (bytes > CONSUL_MAX_TXN_BYTES) {
    const keys = (txn.puts ?? []).map((p) => p.key).join(', ');
    throw new PersonaError(
      'E_INPUT_TOO_LARGE',
      `writing ${keys} takes a ${kib(bytes)} transaction (values travel base64-encoded, with the previous version for the history); Consul accepts ${kib(CONSUL_MAX_TXN_BYTES)} (txn_max_req_len): nothing was written to ${store}`,
      {
        hint: 'Make the profile smaller; keep large data out of it.',
        details: { keys, bytes, limit: CONSUL_MAX_TXN_BYTES },
      },
    );
  }
}

/** A failed call as a PersonaError naming the store and the action. */
export function consulFailure(target: ConsulTarget, action: string, error: unknown): PersonaError {
  if (error instanceof PersonaError) return error;
  const store = target.describe;
  const scrub = (text: string) => (target.token ? text.split(target.token).join('[redacted]') : text);
  if (!(error instanceof ConsulCallError)) {
    return new PersonaError('E_STORE', `store ${store}: cannot ${action}: ${scrub(String(error))}`);
  }
  const detail = scrub(error.detail);
  if (error.kind === 'denied') return deniedError(target, action, detail);
  if (error.kind === 'rejected') {
    return new PersonaError('E_STORE', `store ${store} refused to ${action}: ${detail}`, {
      details: { status: error.status },
    });
  }
  const tls = /certificate|self.signed|CERT_|SSL|TLS/i.test(`${error.code ?? ''} ${detail}`);
  const hint = tls
    ? 'The agent certificate is not trusted: set CONSUL_CACERT to the CA file that signed it.'
    : error.kind === 'server'
      ? 'Consul answered with an error: check the agent and its servers (consul members, consul operator raft list-peers).'
      : 'Is the Consul agent running and reachable? Check --store / PERSONA_STORE and CONSUL_HTTP_ADDR; add ?tls=1 for https.';
  return new PersonaError(
    'E_STORE_UNAVAILABLE',
    `store ${store} is unavailable: cannot ${action}: ${detail}`,
    {
      hint,
    },
  );
}

function deniedError(target: ConsulTarget, action: string, detail: string): PersonaError {
  const store = target.describe;
  const given = target.token !== undefined;
  const message = !given
    ? `store ${store} needs an ACL token to ${action}: ${detail}`
    : /ACL not found/i.test(detail)
      ? `store ${store} does not know the ACL token in CONSUL_HTTP_TOKEN (cannot ${action}: ${detail})`
      : `store ${store} refused to ${action} with the ACL token in CONSUL_HTTP_TOKEN: ${detail}`;
  const hint = !given
    ? 'Set CONSUL_HTTP_TOKEN to a token with key write on the prefix and session write.'
    : `Check CONSUL_HTTP_TOKEN: it needs key_prefix "${target.prefix}/" write and session write.`;
  return new PersonaError('E_STORE', message, { hint });
}
