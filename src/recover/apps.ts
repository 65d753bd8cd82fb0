/**
 * Which applications `persona recover HOST` moves: the store's record of where each one runs (it moves with every
 * recovery), else the inventory. `--app` narrows that list, or names an application nothing records yet: that one
 * is recorded on HOST once the human confirms, so the recovery (and the next one) knows where it ran.
 */
import type { Context } from '../context.js';
import { PersonaError } from '../errors.js';
import type { Inventory } from '../hosts/inventory.js';
import { assignmentKey, declareAssignment } from '../steps/record.js';
import type { ProfileStore } from '../stores/profile-store.js';
import { confirmOrDecline } from '../ui/prompter.js';

/** Where each application runs: the inventory's `apps`, overruled by the store's assignments. */
export async function whereAppsRun(inventory: Inventory, store: ProfileStore): Promise<Map<string, string>> {
  const where = new Map<string, string>();
  for (const h of inventory.hosts) for (const app of h.apps) where.set(app, h.name);
  for (const entry of await store.backend.list('assignments/')) {
    try {
      const a = JSON.parse(entry.value) as { app: string; host: string };
      where.set(a.app, a.host);
    } catch {
      // An unreadable record is ignored here; `record` refuses to overwrite it blindly.
    }
  }
  return where;
}

export interface AppSelection {
  /** What to recover, in order. */
  apps: string[];
  /** Those of `apps` that nothing records yet: to be recorded on the host before the recovery. */
  undeclared: string[];
}

/** Where the facts came from, for messages. */
export interface RecordSources {
  inventory: string;
  store: string;
  /** An application id to show in examples. */
  exampleApp: string;
}

/**
 * Decides what to recover from `host` (pure). Without --app: everything recorded there, or an error that says how
 * to declare it. With --app: each must be recorded there, or nowhere (then it is to be declared); an application
 * recorded on another host is refused, since recording it here would move it.
 */
export function selectApps(
  host: string,
  requested: readonly string[],
  where: ReadonlyMap<string, string>,
  sources: RecordSources,
): AppSelection {
  const running = [...where.entries()]
    .filter(([, h]) => h === host)
    .map(([app]) => app)
    .sort();
  if (requested.length === 0) {
    if (running.length === 0) throw nothingRecorded(host, sources);
    return { apps: running, undeclared: [] };
  }
  const wanted = [...new Set(requested)];
  for (const app of wanted) {
    const elsewhere = where.get(app);
    if (elsewhere !== undefined && elsewhere !== host) {
      throw new PersonaError('E_NOT_FOUND', `${app} is recorded on ${elsewhere}, not on ${host}`, {
        hint: `To recover it from there: \`persona recover ${elsewhere} --app ${app}\`. The record lives in ${sources.store} (${assignmentKey(app)}), else the inventory ${sources.inventory}.`,
        details: { app, host, recorded_on: elsewhere },
      });
    }
  }
  return { apps: wanted, undeclared: wanted.filter((app) => !where.has(app)) };
}

function nothingRecorded(host: string, sources: RecordSources): PersonaError {
  const app = sources.exampleApp;
  return new PersonaError(
    'E_NOT_FOUND',
    `no application is recorded on ${host} (inventory ${sources.inventory}, store ${sources.store})`,
    {
      hint: [
        `Declare what runs there, either way:`,
        `  in the inventory: "apps": ["${app}"] on ${host} (an Ansible inventory: ${host} persona_apps=${app});`,
        `  or name it: \`persona recover ${host} --app ${app}\`, which records ${app} on ${host} once you confirm.`,
      ].join('\n'),
      details: { host, inventory: sources.inventory, store: sources.store },
    },
  );
}

/**
 * Records each undeclared application on the host, after confirmation (the profile must exist first). A dry run
 * records nothing and says what it would record.
 */
export async function declareApps(
  ctx: Context,
  store: ProfileStore,
  host: string,
  undeclared: readonly string[],
  dryRun: boolean,
): Promise<void> {
  for (const app of undeclared) {
    await store.load(app);
    if (dryRun) {
      ctx.reporter.info(
        `dry run: would record ${app} as running on ${host} in ${store.describe}; not recorded`,
      );
      continue;
    }
    await confirmOrDecline(
      ctx.prompter,
      `Nothing records where ${app} runs. Record ${app} as running on ${host}?`,
      `${app} was not recorded; nothing was changed`,
    );
    await declareAssignment(store.backend, {
      app,
      host,
      at: ctx.now().toISOString(),
      declared_by: ctx.author,
    });
    ctx.reporter.info(`recorded ${app} as running on ${host} in ${store.describe} (${assignmentKey(app)})`);
  }
}
