/**
 * A host for an application that no inventory host can take (issue 12 §7), the pure half: whether to provision
 * one, with which command (the profile's `provision`, else the provision setting), what the command is told (its
 * environment), and reading what it printed: one inventory entry, checked as an inventory file's hosts are, every
 * problem named by its JSON path. provision-run.ts runs the command and probes the host.
 */
import type { RankedHost, Requirements } from '../broker/broker.js';
import { provisionArgv, type Settings } from '../cli/settings.js';
import { PersonaError, ValidationError } from '../errors.js';
import { type Inventory, type InventoryHost, normaliseInventory } from '../hosts/inventory.js';
import { parseJsonText } from '../profile/json-text.js';
import type { Profile } from '../profile/schema.js';
import type { Provisioned } from '../runbook/journal-schema.js';
import type { RunSummary } from './summary.js';

export interface ProvisionCommand {
  argv: string[];
  timeoutMs: number;
  /** Where it is set, for messages: "profile demo-web" or the setting's source. */
  from: string;
}

/** The profile's provision command, else the provision setting's (environment, then config file); else none. */
export function provisionCommand(
  profile: Pick<Profile, 'id' | 'provision'>,
  settings: Pick<Settings, 'provision' | 'provision_timeout'>,
): ProvisionCommand | undefined {
  if (profile.provision)
    return {
      argv: [...profile.provision.command],
      timeoutMs: profile.provision.timeout_ms,
      from: `profile ${profile.id}, provision`,
    };
  const argv = provisionArgv(settings);
  if (!argv) return undefined;
  const source = settings.provision.source;
  const from =
    source.from === 'env'
      ? source.name
      : source.from === 'file'
        ? `${source.path}:${source.line}`
        : 'the provision setting';
  return { argv, timeoutMs: settings.provision_timeout.value * 1000, from };
}

/**
 * What happens when ranking is done: `no` (a host can take it, or --target chose, or there is no provision
 * command: chooseTarget decides and explains), `provision`, or `would-provision` (a dry run never runs it).
 */
export function provisionNeed(
  ranking: readonly RankedHost[],
  req: { target?: string; dryRun: boolean },
  command: ProvisionCommand | undefined,
): 'no' | 'provision' | 'would-provision' {
  if (req.target || !command || ranking.some((r) => r.verdict === 'eligible')) return 'no';
  return req.dryRun ? 'would-provision' : 'provision';
}

const GiB = 1024 ** 3;
const number = (n: number) => String(Number(n.toFixed(3)));

/**
 * The variables the provision command gets besides PATH, HOME, LANG, LC_ALL and TZ: what the application needs,
 * as the broker will check it on the new host.
 */
export function provisionEnv(
  requirements: Requirements,
  run: { failedHost: string; runId: string },
): Record<string, string> {
  return {
    PERSONA_APP: requirements.app,
    PERSONA_FAILED_HOST: run.failedHost,
    PERSONA_RUN_ID: run.runId,
    PERSONA_CORES: String(requirements.cores),
    PERSONA_RAM_GB: number(requirements.ramBytes / GiB),
    PERSONA_STORAGE_GB: number(requirements.storageBytes / GiB),
    PERSONA_DATA_PATH: requirements.dataPath,
    PERSONA_PACKAGES: requirements.packages.join(' '),
    PERSONA_LABELS: JSON.stringify(requirements.hostLabels),
  };
}

/** The command as messages show it. */
export const commandText = (argv: readonly string[]) =>
  argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');

/**
 * The host the command printed: one JSON object, an inventory entry (name, address, port, user, key_file, jump,
 * labels, apps), new to the inventory and reached over SSH. Anything else is E_PROVISION naming the command and,
 * for each problem, its JSON path.
 */
export function parseProvisionOutput(
  stdout: string,
  argv: readonly string[],
  inventory: { hosts: readonly InventoryHost[]; source: string },
  baseDir: string,
): { host: InventoryHost; entry: Provisioned['entry'] } {
  const source = `provision command \`${commandText(argv)}\``;
  const invalid = (message: string, problems?: Array<{ path: string; message: string }>) =>
    new PersonaError('E_PROVISION', `${source} ${message}`, {
      hint: 'It must print the new host as one JSON object on stdout, e.g. {"name": "web-9", "address": "10.0.0.9", "user": "deploy", "labels": {"zone": "a"}}, and its messages on stderr. No step ran; a host it made is not used.',
      details: { command: [...argv], ...(problems ? { problems } : {}) },
    });
  if (stdout.trim() === '') throw invalid("printed nothing on stdout: no host's inventory entry");
  let value: unknown;
  try {
    value = parseJsonText('stdout', stdout.trim());
  } catch (error) {
    throw invalid(`did not print JSON: ${(error as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalid(`printed ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}, not one JSON object`);
  let host: InventoryHost;
  try {
    [host] = normaliseInventory('stdout', { hosts: [value] }, baseDir).hosts as [InventoryHost];
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const problems = error.problems.map((p) => ({ ...p, path: p.path.replace(/^\/hosts\/0/, '') || '/' }));
    throw invalid(
      `printed an invalid inventory entry:\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`,
      problems,
    );
  }
  const problems = [
    ...(inventory.hosts.some((h) => h.name === host.name)
      ? [{ path: '/name', message: `"${host.name}" is already in the inventory ${inventory.source}` }]
      : []),
    ...(host.connection === 'local'
      ? [{ path: '/connection', message: 'a provisioned host is reached over SSH, not "local"' }]
      : []),
  ];
  if (problems.length > 0)
    throw invalid(
      `printed an entry persona cannot use:\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`,
      problems,
    );
  return { host, entry: entryOf(host) };
}

/** The journal's copy of a host's inventory entry. */
export function entryOf(h: InventoryHost): Provisioned['entry'] {
  return {
    name: h.name,
    address: h.address,
    ...(h.port !== undefined ? { port: h.port } : {}),
    ...(h.user !== undefined ? { user: h.user } : {}),
    ...(h.keyFile !== undefined ? { key_file: h.keyFile } : {}),
    ...(h.jump !== undefined ? { jump: h.jump } : {}),
    labels: { ...h.labels },
    apps: [...h.apps],
  };
}

/** The host of a journal's entry. */
export function hostOfEntry(e: Provisioned['entry']): InventoryHost {
  return {
    name: e.name,
    address: e.address,
    ...(e.port !== undefined ? { port: e.port } : {}),
    ...(e.user !== undefined ? { user: e.user } : {}),
    ...(e.key_file !== undefined ? { keyFile: e.key_file } : {}),
    ...(e.jump !== undefined ? { jump: e.jump } : {}),
    labels: { ...e.labels },
    apps: [...e.apps],
  };
}

/**
 * The inventory with the run's provisioned host, unless it is there already (the operator added it since): a
 * resume finds the host the first driver made.
 */
export function withProvisioned(inventory: Inventory, provisioned: Provisioned | undefined): Inventory {
  if (!provisioned || inventory.hosts.some((h) => h.name === provisioned.entry.name)) return inventory;
  return { ...inventory, hosts: [...inventory.hosts, hostOfEntry(provisioned.entry)] };
}

/**
 * The provisioned host is the target if it passes the same hard requirements as any host; otherwise the run stops,
 * saying why (its reasons, with what would make it pass).
 */
export function provisionedTarget(ranking: readonly RankedHost[], name: string, app: string): string {
  const ranked = ranking.find((r) => r.host === name);
  if (ranked?.verdict === 'eligible') return name;
  const reasons = ranked?.reasons ?? [];
  const fixes = reasons.map((r) => r.fix).filter(Boolean);
  throw new PersonaError(
    'E_PROVISION',
    `the provisioned host ${name} cannot take ${app}: ${reasons.map((r) => r.message).join('; ') || 'not ranked'}`,
    {
      hint: `${fixes.length ? `${fixes.join('; ')}. ` : ''}Make the provision command create a host that meets the profile's requirements (it gets them as PERSONA_CORES, PERSONA_RAM_GB, PERSONA_STORAGE_GB, PERSONA_LABELS, ...). No step ran; ${name} was created and is left as it is, in no inventory file.`,
      details: { host: name, reasons },
    },
  );
}

/** A dry run that would provision a host: no steps can be planned on a host that does not exist yet. */
export function wouldProvision(runId: string, app: string, failedHost: string, version: number): RunSummary {
  return {
    run_id: runId,
    app,
    status: 'dry-run',
    failed_host: failedHost,
    target_host: '(provisioned)',
    profile_version: version,
    steps: [],
  };
}
