/**
 * The one resolver of persona's global settings. Each value comes from, in this order: a flag, the environment,
 * the config file (./persona.yaml, else $XDG_CONFIG_HOME/persona/config.yaml, else ~/.config/persona/config.yaml),
 * the default; and each remembers where it came from, so `persona config` and `persona doctor` can say so.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { GlobalOptions } from '../context.js';
import { PersonaError } from '../errors.js';
import { DEFAULT_RETENTION_DAYS } from '../feedback/observations.js';
import { DEFAULT_ALLOWED_SOURCES, parseAllowedSources } from '../runbook/secret-allow.js';
import { DEFAULT_STORE } from '../stores/open.js';

export type SettingSource =
  | { from: 'flag'; name: string }
  | { from: 'env'; name: string }
  | { from: 'file'; path: string; line: number }
  | { from: 'default' };

export interface Setting<T> {
  value: T;
  source: SettingSource;
}

export interface Settings {
  /** A store URL; a relative file store from a flag, env or default is relative to the working directory. */
  store: Setting<string>;
  /** A file path (relative to the working directory) or consul://… */
  inventory: Setting<string>;
  /** undefined: the inventory's ssh_config, else ssh's own default (~/.ssh/config). */
  ssh_config: Setting<string | undefined>;
  /** Absolute. */
  state_dir: Setting<string>;
  /** Seconds. */
  connect_timeout: Setting<number>;
  /** undefined: the probe's CPU-aware default. */
  concurrency: Setting<number | undefined>;
  /** Seconds a dead holder's lock lingers. */
  lock_ttl: Setting<number>;
  /** Comma-separated patterns of the env: and file: secret references a run may read (runbook/secret-allow.ts). */
  allowed_sources: Setting<string>;
  /**
   * The command that creates a host when none can take an application, as the JSON text of its argument array
   * (parse it with provisionArgv); undefined: none. A profile's own `provision` comes first (recover/provision.ts).
   */
  provision: Setting<string | undefined>;
  /** Seconds the provision command, and the wait for its host to answer, may take. */
  provision_timeout: Setting<number>;
  /** Days observations (validate, monitor and watch results) are kept for the broker's history. */
  observation_retention: Setting<number>;
  /** Seconds cached host facts stay usable for ranking (hosts/fact-cache.ts); 0: every decision probes every host. */
  max_fact_age: Setting<number>;
}

export type SettingKey = keyof Settings;

type Kind = 'store' | 'inventory' | 'path' | 'count' | 'patterns' | 'argv';

export interface SettingDef {
  key: SettingKey;
  kind: Kind;
  /** The commander option (camelCase) and how it is spelled on the command line. */
  flag?: { option: keyof GlobalOptions; name: string };
  env: string;
  min?: number;
  max?: number;
  describe: string;
}

export const settingDefs: readonly SettingDef[] = [
  {
    key: 'store',
    kind: 'store',
    flag: { option: 'store', name: '--store' },
    env: 'PERSONA_STORE',
    describe: 'profile store URL',
  },
  {
    key: 'inventory',
    kind: 'inventory',
    flag: { option: 'inventory', name: '--inventory' },
    env: 'PERSONA_INVENTORY',
    describe: 'inventory file or consul://HOST:PORT',
  },
  {
    key: 'ssh_config',
    kind: 'path',
    flag: { option: 'sshConfig', name: '--ssh-config' },
    env: 'PERSONA_SSH_CONFIG',
    describe: 'ssh -F file',
  },
  {
    key: 'state_dir',
    kind: 'path',
    flag: { option: 'stateDir', name: '--state-dir' },
    env: 'PERSONA_STATE_DIR',
    describe: 'run journals and saved edits',
  },
  {
    key: 'connect_timeout',
    kind: 'count',
    flag: { option: 'connectTimeout', name: '--connect-timeout' },
    env: 'PERSONA_CONNECT_TIMEOUT',
    min: 1,
    max: 600,
    describe: 'SSH connect timeout, seconds',
  },
  {
    key: 'concurrency',
    kind: 'count',
    flag: { option: 'concurrency', name: '--concurrency' },
    env: 'PERSONA_CONCURRENCY',
    min: 1,
    max: 10_000,
    describe: 'hosts probed at once',
  },
  {
    key: 'lock_ttl',
    kind: 'count',
    env: 'PERSONA_LOCK_TTL',
    min: 1,
    max: 86_400,
    describe: "seconds a dead holder's lock lingers",
  },
  {
    key: 'allowed_sources',
    kind: 'patterns',
    env: 'PERSONA_ALLOWED_SOURCES',
    describe: 'env: and file: secret references a run may read, comma-separated patterns',
  },
  {
    key: 'provision',
    kind: 'argv',
    env: 'PERSONA_PROVISION',
    describe: 'command that creates a host when none fits, as a list of arguments',
  },
  {
    key: 'provision_timeout',
    kind: 'count',
    env: 'PERSONA_PROVISION_TIMEOUT',
    min: 1,
    max: 86_400,
    describe: 'seconds the provision command and the wait for its host may take',
  },
  {
    key: 'observation_retention',
    kind: 'count',
    env: 'PERSONA_OBSERVATION_RETENTION',
    min: 1,
    max: 3650,
    describe: 'days validate, monitor and watch observations are kept for ranking',
  },
  {
    key: 'max_fact_age',
    kind: 'count',
    env: 'PERSONA_MAX_FACT_AGE',
    min: 0,
    max: 86_400,
    describe: 'seconds cached host facts may be used for ranking (the target is probed again); 0: off',
  },
];

export const DEFAULT_INVENTORY = './inventory.json';
export const DEFAULT_CONNECT_TIMEOUT_S = 5;
export const DEFAULT_LOCK_TTL_S = 30;
export const DEFAULT_PROVISION_TIMEOUT_S = 600;
/**
 * Five minutes: what watch refreshes well within, and old enough only for facts that move slowly (cores, memory,
 * disks, packages); the target is probed again before acting, so a stale entry costs a re-choice, not a bad run.
 */
export const DEFAULT_MAX_FACT_AGE_S = 300;

/** A value read from the config file, already checked and with relative paths made absolute. */
export interface FileValue {
  value: string | number;
  line: number;
}

export interface ConfigFile {
  path: string;
  values: Partial<Record<SettingKey, FileValue>>;
}

/** Where persona looks for its config file, in order; the first that exists is read. */
export function configCandidates(env: NodeJS.ProcessEnv, cwd: string): string[] {
  const xdg = env.XDG_CONFIG_HOME?.startsWith('/') ? env.XDG_CONFIG_HOME : undefined;
  const base = xdg ?? join(env.HOME || homedir(), '.config');
  return [resolve(cwd, 'persona.yaml'), join(base, 'persona', 'config.yaml')];
}

export function describeSource(source: SettingSource): string {
  if (source.from === 'flag' || source.from === 'env') return `${source.from} ${source.name}`;
  if (source.from === 'file') return `file ${source.path}:${source.line}`;
  return 'default';
}

function checkCount(def: SettingDef, n: number, name: string, text: string): number {
  if (!(Number.isInteger(n) && n >= (def.min ?? 0) && n <= (def.max ?? Number.MAX_SAFE_INTEGER))) {
    throw new PersonaError(
      'E_USAGE',
      `${name} ${JSON.stringify(text)}: must be a whole number from ${def.min} to ${def.max}`,
    );
  }
  return n;
}

/**
 * A command as a list of arguments (the `provision` setting): checked, and returned as its JSON text, which is how
 * the setting keeps it. `relativeTo`: a first argument with a "/" that is not absolute is made absolute against it
 * (the config file's directory). Throws a message without the place; the caller adds it.
 */
export function checkArgv(raw: unknown, relativeTo?: string): string {
  const list = typeof raw === 'string' ? parseArgvText(raw) : raw;
  if (
    !Array.isArray(list) ||
    list.length === 0 ||
    list.length > 256 ||
    !list.every((a) => typeof a === 'string' && !a.includes('\0'))
  )
    throw new Error('must be a command as a list of arguments, like [/usr/local/bin/make-host, --pool, web]');
  const argv = [...(list as string[])];
  if (argv[0] === '') throw new Error('must name a program first, not an empty argument');
  if (relativeTo && argv[0]!.includes('/') && !argv[0]!.startsWith('/'))
    argv[0] = resolve(relativeTo, argv[0]!);
  return JSON.stringify(argv);
}

const parseArgvText = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/** The provision setting's argument list (undefined: none). */
export const provisionArgv = (settings: Pick<Settings, 'provision'>): string[] | undefined =>
  settings.provision.value === undefined ? undefined : (JSON.parse(settings.provision.value) as string[]);

export function checkPatterns(name: string, text: string): string[] {
  const parsed = parseAllowedSources(text);
  if ('error' in parsed) throw new PersonaError('E_USAGE', `${name}: ${parsed.error}`);
  return parsed.patterns;
}

const parseEnvCount = (def: SettingDef, text: string) =>
  checkCount(def, /^\s*\d{1,9}\s*$/.test(text) ? Number(text) : Number.NaN, def.env, text);

function envArgv(name: string, text: string): string {
  try {
    return checkArgv(text);
  } catch (error) {
    throw new PersonaError('E_USAGE', `${name}: ${(error as Error).message} (as JSON)`, {
      hint: `For example: ${name}='["/usr/local/bin/make-host","--pool","web"]'`,
    });
  }
}

function defaultStateDir(env: NodeJS.ProcessEnv, cwd: string): string {
  const base = env.XDG_STATE_HOME ? resolve(cwd, env.XDG_STATE_HOME) : join(homedir(), '.local', 'state');
  return join(base, 'persona');
}

/** Pure: flags, environment and an already-read config file in, every effective value with its source out. */
export function resolveSettings(
  flags: GlobalOptions,
  env: NodeJS.ProcessEnv,
  cwd: string,
  file: ConfigFile | undefined,
): Settings {
  const pick = (def: SettingDef, fallback: string | number | undefined): Setting<unknown> => {
    const flagged = def.flag ? flags[def.flag.option] : undefined;
    if (flagged !== undefined && flagged !== '') {
      const name = def.flag!.name;
      const value =
        def.kind === 'count'
          ? checkCount(def, Number(flagged), name, String(flagged))
          : def.kind === 'path'
            ? resolve(cwd, String(flagged))
            : flagged;
      return { value, source: { from: 'flag', name } };
    }
    const fromEnv = env[def.env];
    if (fromEnv !== undefined && fromEnv !== '') {
      if (def.kind === 'patterns') checkPatterns(def.env, fromEnv);
      const value =
        def.kind === 'count'
          ? parseEnvCount(def, fromEnv)
          : def.kind === 'path'
            ? resolve(cwd, fromEnv)
            : def.kind === 'argv'
              ? envArgv(def.env, fromEnv)
              : fromEnv;
      return { value, source: { from: 'env', name: def.env } };
    }
    const inFile = file?.values[def.key];
    if (inFile) return { value: inFile.value, source: { from: 'file', path: file!.path, line: inFile.line } };
    return { value: fallback, source: { from: 'default' } };
  };
  const defaults: Record<SettingKey, string | number | undefined> = {
    store: DEFAULT_STORE,
    inventory: DEFAULT_INVENTORY,
    ssh_config: undefined,
    state_dir: defaultStateDir(env, cwd),
    connect_timeout: DEFAULT_CONNECT_TIMEOUT_S,
    concurrency: undefined,
    lock_ttl: DEFAULT_LOCK_TTL_S,
    allowed_sources: DEFAULT_ALLOWED_SOURCES,
    provision: undefined,
    provision_timeout: DEFAULT_PROVISION_TIMEOUT_S,
    observation_retention: DEFAULT_RETENTION_DAYS,
    max_fact_age: DEFAULT_MAX_FACT_AGE_S,
  };
  const out: Partial<Record<SettingKey, Setting<unknown>>> = {};
  for (const def of settingDefs) out[def.key] = pick(def, defaults[def.key]);
  return out as Settings;
}

/** The effective settings, and which config file (if any) they were read from. */
export interface ResolvedSettings {
  values: Settings;
  /** The config file that was read; undefined when none of the candidates exists. */
  file: string | undefined;
  /** Where persona looked, in order. */
  candidates: string[];
}

/** Finds, reads and checks the config file (exit 2 on any problem), then resolves every setting. */
export async function loadSettings(
  flags: GlobalOptions,
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<ResolvedSettings> {
  const candidates = configCandidates(env, cwd);
  const file = await readConfigFile(candidates, env);
  return { values: resolveSettings(flags, env, cwd, file), file: file?.path, candidates };
}

/** Reads the first candidate that exists; undefined when none does. The YAML parser loads only then. */
async function readConfigFile(
  candidates: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<ConfigFile | undefined> {
  for (const path of candidates) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      throw new PersonaError('E_USAGE', `${path}: cannot read the config file (${code})`);
    }
    const { parseConfigText } = await import('./config-file.js');
    return parseConfigText(path, text, env);
  }
  return undefined;
}
