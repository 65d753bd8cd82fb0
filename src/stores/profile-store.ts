/**
 * ProfileStore: persona profiles on any KvBackend, with versions, compare-and-set writes and history.
 *
 * Keys: `profiles/<id>` holds the profile text exactly as written; `profile-meta/<id>` who wrote it, when and why;
 * `history/<id>/<version>` each earlier version (text and meta), written in the same transaction that replaces it.
 */
import { PersonaError } from '../errors.js';
import type { Profile } from '../profile/schema.js';
import { parseProfileText } from '../profile/validate.js';
import type { KvBackend, KvEntry } from './kv.js';

export interface WriteMeta {
  author: string;
  at: string;
  message?: string;
}

export interface StoredProfile {
  id: string;
  version: number;
  /** Compare-and-set token for exactly this version. */
  token: string;
  text: string;
  meta?: WriteMeta;
}

export interface HistoryEntry {
  id: string;
  version: number;
  current: boolean;
  meta?: WriteMeta;
  text: string;
}

export interface ProfileSummary {
  id: string;
  version: number;
  valid: boolean;
  problems: number;
  description?: string;
  required_cores?: number;
  required_ram_gb?: number;
  required_storage_gb?: number;
  meta?: WriteMeta;
}

/** Which version a write expects to replace: a token from a read, a version number, or none (create). */
export type Expectation = { token: string } | { version: number } | { create: true };

const profileKey = (id: string) => `profiles/${id}`;
const metaKey = (id: string) => `profile-meta/${id}`;
const historyPrefix = (id: string) => `history/${id}/`;

export class ProfileStore {
  constructor(readonly backend: KvBackend) {}

  get describe(): string {
    return this.backend.describe;
  }

  async get(id: string): Promise<StoredProfile | undefined> {
    const entry = await this.backend.get(profileKey(id));
    if (!entry) return undefined;
    return {
      id,
      version: entry.version,
      token: entry.token,
      text: entry.value,
      meta: await this.readMeta(id, entry),
    };
  }

  async require(id: string): Promise<StoredProfile> {
    const found = await this.get(id);
    if (!found) {
      throw new PersonaError('E_NOT_FOUND', `profile "${id}" not found in ${this.describe}`, {
        hint: 'List profiles with `persona profile list`; create one with `persona profile new ID`.',
      });
    }
    return found;
  }

  /** Reads and validates; throws ValidationError naming the store and the id when the stored text is invalid. */
  async load(id: string): Promise<{ stored: StoredProfile; profile: Profile }> {
    const stored = await this.require(id);
    const { profile } = parseProfileText(
      `${this.describe} profile "${id}" (version ${stored.version})`,
      stored.text,
      id,
    );
    return { stored, profile };
  }

  private async readMeta(id: string, entry: KvEntry): Promise<WriteMeta | undefined> {
    const meta = await this.backend.get(metaKey(id));
    if (!meta) return undefined;
    try {
      const parsed = JSON.parse(meta.value) as WriteMeta & { for_sha?: string; version?: number };
      // Meta written for another content (the file was edited by hand since) does not describe this version.
      return parsed.version === entry.version
        ? { author: parsed.author, at: parsed.at, message: parsed.message }
        : undefined;
    } catch {
      return undefined;
    }
  }

  async list(): Promise<ProfileSummary[]> {
    const entries = await this.backend.list('profiles/');
    const out: ProfileSummary[] = [];
    for (const entry of entries) {
      const id = entry.key.slice('profiles/'.length);
      const meta = await this.readMeta(id, entry);
      try {
        const { profile } = parseProfileText(id, entry.value, id);
        out.push({
          id,
          version: entry.version,
          valid: true,
          problems: 0,
          description: profile.description,
          required_cores: profile.required_cores,
          required_ram_gb: profile.required_ram_gb,
          required_storage_gb: profile.required_storage_gb,
          meta,
        });
      } catch (error) {
        const problems = (error as { problems?: unknown[] }).problems?.length ?? 1;
        out.push({ id, version: entry.version, valid: false, problems, meta });
      }
    }
    return out;
  }

  /**
   * Validates and writes a profile if the stored version is still the expected one. The replaced version goes to
   * history in the same transaction. Returns the new stored profile.
   */
  async put(id: string, text: string, expect: Expectation, meta: WriteMeta): Promise<StoredProfile> {
    parseProfileText(`profile "${id}"`, text, id);
    const current = await this.get(id);
    this.checkExpectation(id, current, expect);
    const puts = [{ key: profileKey(id), value: text }];
    if (current) puts.unshift(this.historyPut(current));
    const nextVersion = (current?.version ?? 0) + 1;
    puts.push({ key: metaKey(id), value: JSON.stringify({ ...meta, version: nextVersion }) });
    const result = await this.backend.txn({
      checks: [{ key: profileKey(id), token: current?.token ?? null }],
      puts,
    });
    if (!result.ok) throw this.conflict(id, current?.version ?? 0);
    const written = await this.get(id);
    if (!written) throw new PersonaError('E_STORE', `profile "${id}" vanished right after it was written`);
    // Stores whose versions are not counters (Consul, etcd) stamp the meta with the real version afterwards.
    if (written.version !== nextVersion) {
      await this.backend.txn({
        checks: [{ key: profileKey(id), token: written.token }],
        puts: [{ key: metaKey(id), value: JSON.stringify({ ...meta, version: written.version }) }],
      });
      written.meta = meta;
    }
    return written;
  }

  async delete(id: string, expect: Expectation, meta: WriteMeta): Promise<void> {
    const current = await this.require(id);
    this.checkExpectation(id, current, expect);
    const result = await this.backend.txn({
      checks: [{ key: profileKey(id), token: current.token }],
      puts: [
        this.historyPut(current),
        { key: `deleted/${id}`, value: JSON.stringify({ ...meta, version: current.version }) },
      ],
      deletes: [profileKey(id), metaKey(id)],
    });
    if (!result.ok) throw this.conflict(id, current.version);
  }

  /** Every known version, newest first; the current one included. */
  async history(id: string): Promise<HistoryEntry[]> {
    const [current, entries] = await Promise.all([this.get(id), this.backend.list(historyPrefix(id))]);
    const out: HistoryEntry[] = entries.map((e) => {
      const record = JSON.parse(e.value) as { text: string; meta?: WriteMeta; version: number };
      return { id, version: record.version, current: false, meta: record.meta, text: record.text };
    });
    if (current)
      out.push({ id, version: current.version, current: true, meta: current.meta, text: current.text });
    const byVersion = new Map(out.map((h) => [h.version, h]));
    return [...byVersion.values()].sort((a, b) => b.version - a.version);
  }

  async version(id: string, version: number): Promise<HistoryEntry | undefined> {
    return (await this.history(id)).find((h) => h.version === version);
  }

  private historyPut(current: StoredProfile) {
    return {
      key: `${historyPrefix(current.id)}${String(current.version).padStart(12, '0')}`,
      value: JSON.stringify({ version: current.version, meta: current.meta, text: current.text }),
    };
  }

  private checkExpectation(id: string, current: StoredProfile | undefined, expect: Expectation): void {
    if ('create' in expect) {
      if (current) {
        throw new PersonaError(
          'E_EXISTS',
          `profile "${id}" already exists in ${this.describe} (version ${current.version})`,
          {
            hint: `Use \`persona profile edit ${id}\` or \`persona profile set ${id} --file F --expect-version ${current.version}\`.`,
          },
        );
      }
      return;
    }
    if (!current) {
      throw new PersonaError('E_NOT_FOUND', `profile "${id}" not found in ${this.describe}`);
    }
    const matches = 'token' in expect ? expect.token === current.token : expect.version === current.version;
    if (!matches) throw this.conflict(id, 'version' in expect ? expect.version : undefined, current.version);
  }

  private conflict(id: string, expected: number | undefined, stored?: number): PersonaError {
    const versions =
      expected !== undefined && stored !== undefined
        ? ` (expected version ${expected}, stored version is ${stored})`
        : '';
    return new PersonaError(
      'E_CONFLICT',
      `profile "${id}" changed in ${this.describe} since it was read${versions}: nothing was written`,
      {
        hint: `Review the change with \`persona profile diff ${id}\`, then write again from the new version.`,
        details: {
          id,
          ...(expected !== undefined ? { expected_version: expected } : {}),
          ...(stored !== undefined ? { stored_version: stored } : {}),
        },
      },
    );
  }
}
