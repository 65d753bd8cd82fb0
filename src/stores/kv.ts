/**
 * The small interface every store backend implements (file, Consul KV, etcd): versioned reads, atomic
 * transactions with compare-and-set checks, prefix listing. ProfileStore, locks, assignments and journals are
 * built on it, so the three backends behave alike and one conformance suite covers them.
 */

export interface KvEntry {
  key: string;
  value: string;
  /** Store-native version: a counter (file), ModifyIndex (Consul), mod_revision (etcd). */
  version: number;
  /** Opaque compare-and-set token for this exact value. */
  token: string;
}

/** `token: null` means "the key must not exist". */
export interface KvCheck {
  key: string;
  token: string | null;
}

export interface KvTxn {
  checks?: KvCheck[];
  puts?: Array<{ key: string; value: string }>;
  deletes?: string[];
}

export type KvTxnResult = { ok: true } | { ok: false; failed: string[] };

export interface KvBackend {
  /** How the store is named to people: its URL without credentials. */
  readonly describe: string;
  /** Whether the store is shared between machines (journals are mirrored there). */
  readonly shared: boolean;
  get(key: string): Promise<KvEntry | undefined>;
  list(prefix: string): Promise<KvEntry[]>;
  /** All checks pass and every write applies, or nothing changes. */
  txn(txn: KvTxn): Promise<KvTxnResult>;
  close(): Promise<void>;
}

/** Keys are slash-separated segments of safe characters; this keeps them valid file paths and URL paths. */
const keyRe = /^[A-Za-z0-9_.@=+-]+(?:\/[A-Za-z0-9_.@=+-]+)*$/;

export function assertKey(key: string): void {
  if (!keyRe.test(key) || key.split('/').some((s) => s === '.' || s === '..')) {
    throw new Error(`invalid store key ${JSON.stringify(key)}`);
  }
}
