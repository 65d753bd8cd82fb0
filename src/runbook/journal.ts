/**
 * Run journals: one JSON file per run in the state directory, 0600, written atomically (temp file, fsync,
 * rename) before and after every step. With a shared store the journal is mirrored there, so a run started on
 * one machine can be listed and resumed from another.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isPersonaError, PersonaError } from '../errors.js';
import { writeFileAtomic } from '../stores/atomic-file.js';
import type { KvBackend } from '../stores/kv.js';
import type { Redactor } from '../ui/redact.js';
import { JOURNAL_VERSION, type Journal, journalSchema } from './journal-schema.js';

export function newRunId(app: string, now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${app}-${randomBytes(3).toString('hex')}`;
}

export const runKey = (runId: string) => `runs/${runId}`;

export class JournalStore {
  constructor(
    readonly dir: string,
    /** A shared store to mirror journals to; undefined for local-only runs. */
    private readonly mirror?: KvBackend,
    /** Every string of a journal passes through it before it is written, locally or to the store. */
    private readonly redactor?: Redactor,
    /** Throws when the run's lock can no longer be trusted (LockHandle.assertHeld): then nothing is saved. */
    private readonly assertHeld?: () => void,
  ) {}

  private path(runId: string): string {
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(runId) || runId.startsWith('.')) {
      throw new PersonaError('E_USAGE', `"${runId}" is not a run id`, {
        hint: 'List runs with `persona runs list`.',
      });
    }
    return join(this.dir, 'runs', `${runId}.json`);
  }

  /**
   * The token of the mirrored copy as this store last wrote or read it, per run: the next save must replace
   * exactly that copy. A fresh read just before writing would accept anyone's save in between (a zombie driver
   * would overwrite the journal of the driver that took its run over).
   */
  private readonly mirrored = new Map<string, string | null>();

  /**
   * Mirrors the journal when the store is shared (first: a driver that lost its run writes nothing, not even
   * locally), then writes it locally, atomically, 0600. A fenced mirror refuses with E_LOCK_LOST.
   */
  async save(journal: Journal): Promise<void> {
    this.assertHeld?.();
    const path = this.path(journal.run_id);
    const text = `${JSON.stringify(this.redactor ? this.redactor.deep(journal) : journal, null, 2)}\n`;
    if (this.mirror) await this.saveMirror(this.mirror, journal.run_id, text);
    try {
      await mkdir(join(this.dir, 'runs'), { recursive: true, mode: 0o700 });
      await chmod(this.dir, 0o700).catch(() => {});
      await writeFileAtomic(path, text, 0o600);
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      throw new PersonaError(
        'E_STATE',
        `cannot write the run journal ${path}: ${e.code ?? 'error'} (${e.message})`,
        {
          hint: 'The state directory (--state-dir, PERSONA_STATE_DIR) must be a writable directory with free space.',
          details: { path, errno: e.code },
          cause: error,
        },
      );
    }
  }

  private async saveMirror(mirror: KvBackend, runId: string, text: string): Promise<void> {
    const key = runKey(runId);
    const result = await mirror.txn({
      checks: [{ key, token: this.mirrored.get(runId) ?? null }],
      puts: [{ key, value: text }],
    });
    if (!result.ok) {
      throw new PersonaError(
        'E_STATE',
        `run ${runId}: the journal in ${mirror.describe} changed under us: another driver saved it since this one last did; nothing was written`,
        {
          hint: `Another persona may be driving this run: check \`persona runs show ${runId}\` and \`persona locks list\`.`,
        },
      );
    }
    const now = await mirror.get(key);
    // Someone saved right after us: leave a token that matches nothing, so our next save is refused.
    this.mirrored.set(runId, now?.value === text ? now.token : '');
  }

  /** The journal of a run: the local copy or the shared store's, whichever was written last. */
  async load(runId: string): Promise<Journal> {
    const path = this.path(runId);
    const found: Journal[] = [];
    try {
      found.push(parseJournal(path, await readFile(path, 'utf8')));
    } catch (error) {
      if (isPersonaError(error)) throw error;
      const e = error as NodeJS.ErrnoException;
      if (e.code !== 'ENOENT') {
        throw new PersonaError('E_STATE', `cannot read the run journal ${path}: ${e.code} (${e.message})`, {
          hint: 'The state directory (--state-dir, PERSONA_STATE_DIR) must be a readable directory.',
          details: { path, errno: e.code },
        });
      }
    }
    const entry = this.mirror ? await this.mirror.get(runKey(runId)) : undefined;
    if (this.mirror) this.mirrored.set(runId, entry?.token ?? null);
    if (entry) found.push(parseJournal(`${this.mirror!.describe} ${runKey(runId)}`, entry.value));
    if (found.length === 0) {
      throw new PersonaError(
        'E_NOT_FOUND',
        `run ${runId} not found in ${this.dir}${this.mirror ? ` or ${this.mirror.describe}` : ''}`,
        {
          hint: 'List runs with `persona runs list`.',
        },
      );
    }
    return found.reduce((a, b) => (b.updated_at > a.updated_at ? b : a));
  }

  async list(): Promise<Journal[]> {
    const byId = new Map<string, Journal>();
    const names = await readdir(join(this.dir, 'runs')).catch(() => [] as string[]);
    for (const name of names.filter((n) => n.endsWith('.json') && !n.startsWith('.'))) {
      try {
        const j = parseJournal(name, await readFile(join(this.dir, 'runs', name), 'utf8'));
        byId.set(j.run_id, j);
      } catch {
        // An unreadable journal is reported by `runs show`, not by the listing.
      }
    }
    for (const entry of this.mirror ? await this.mirror.list('runs/') : []) {
      try {
        const j = parseJournal(entry.key, entry.value);
        const local = byId.get(j.run_id);
        if (!local || local.updated_at < j.updated_at) byId.set(j.run_id, j);
      } catch {
        // as above
      }
    }
    return [...byId.values()].sort((a, b) => b.created_at.localeCompare(a.created_at));
  }
}

export function parseJournal(source: string, text: string): Journal {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new PersonaError(
      'E_STATE',
      `${source}: the journal is not valid JSON (${(error as Error).message}); it was not written by persona, or was damaged`,
    );
  }
  const version = (value as { version?: unknown })?.version;
  if (typeof version === 'number' && version > JOURNAL_VERSION) {
    throw new PersonaError(
      'E_STATE',
      `${source}: journal format ${version} is newer than this persona understands (${JOURNAL_VERSION})`,
      {
        hint: 'Resume it with the persona version that started it, or upgrade.',
      },
    );
  }
  const parsed = journalSchema.safeParse(value);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    throw new PersonaError(
      'E_STATE',
      `${source}: not a valid persona journal (/${first.path.join('/')}: ${first.message})`,
    );
  }
  return parsed.data;
}
