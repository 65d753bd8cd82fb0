/**
 * A recovery that needs no lab: a file store whose demo-web profile routes traffic with local commands (so a test
 * sees exactly what ran), an inventory of two hosts that do not answer, and optionally a journal to resume.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freshStepRecords } from '../../src/recover/plan.js';
import { JournalStore } from '../../src/runbook/journal.js';
import type { Journal } from '../../src/runbook/types.js';
import { openBackend } from '../../src/stores/open.js';
import { ProfileStore } from '../../src/stores/profile-store.js';
import { sha256 } from '../../src/util/hash.js';
import { repoRoot } from './cli.js';
import { testJournal } from './journal.js';
import { copyOfProfiles, tempDir } from './tmp.js';

export interface RecoverFixture {
  store: string;
  state: string;
  dir: string;
  env: Record<string, string>;
  /** Files the profile's traffic commands create: they exist only if the command ran. */
  marks: { fence: string; switch: string };
  journalFile(runId: string): string;
}

export function recoverFixture(change: (profile: Record<string, unknown>, dir: string) => void = () => {}) {
  const store = copyOfProfiles();
  const state = tempDir('persona-state-');
  const dir = tempDir('persona-fixture-');
  const marks = { fence: join(dir, 'fence-ran'), switch: join(dir, 'switch-ran') };
  const file = join(store, 'demo-web.json');
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  profile.traffic = { method: 'command', fence: ['touch', marks.fence], switch: ['touch', marks.switch] };
  change(profile, dir);
  writeFileSync(file, `${JSON.stringify(profile, null, 2)}\n`);
  const inventory = join(dir, 'inventory.json');
  writeFileSync(
    inventory,
    JSON.stringify({
      hosts: [
        { name: 'h1', address: '127.0.0.1', port: 1, apps: ['demo-web'] },
        { name: 'h2', address: '127.0.0.1', port: 2 },
      ],
    }),
  );
  const env = {
    PERSONA_STORE: `file:${store}`,
    PERSONA_STATE_DIR: state,
    PERSONA_INVENTORY: inventory,
    PERSONA_AUTHOR: 'alice@test',
    PERSONA_LOCK_TTL: '2',
    CI: 'true',
  };
  return {
    store,
    state,
    dir,
    env,
    marks,
    journalFile: (runId: string) => join(state, 'runs', `${runId}.json`),
  } satisfies RecoverFixture;
}

/** A run of demo-web from h1 to h2, saved as the given step statuses left it. */
export async function savedRun(
  fx: RecoverFixture,
  statuses: Partial<Record<string, Journal['steps'][number]['status']>>,
): Promise<Journal> {
  const store = new ProfileStore(await openBackend(`file:${fx.store}`, fx.env, repoRoot));
  const { stored } = await store.load('demo-web');
  const journal: Journal = testJournal({
    run_id: '20261127T000000Z-demo-web-abcdef',
    app: 'demo-web',
    status: 'interrupted',
    created_at: '2026-11-27T00:00:00.000Z',
    updated_at: '2026-11-27T00:00:00.000Z',
    who: 'alice@test',
    driver: { pid: 1, host: 'elsewhere' },
    store: store.describe,
    inventory: 'inventory.json',
    profile: { id: 'demo-web', version: stored.version, sha256: sha256(stored.text) },
    failed_host: { name: 'h1', address: '127.0.0.1', port: 1 },
    target_host: { name: 'h2', address: '127.0.0.1', port: 2 },
    steps: freshStepRecords().map((s) => ({ ...s, status: statuses[s.kind] ?? s.status })),
  });
  await new JournalStore(fx.state).save(journal);
  await store.backend.close();
  return journal;
}

export const ran = (path: string) => existsSync(path);
