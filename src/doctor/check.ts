/**
 * What a doctor check is: a small function from settings and ports (the side effects it may use) to one verdict
 * with the fix. Checks never connect to an inventory host: ssh runs only as `ssh -V` and `ssh -G`.
 */
import type { Settings } from '../cli/settings.js';
import type { Inventory } from '../hosts/inventory.js';
import type { KvBackend } from '../stores/kv.js';

/** `skip`: the check could not run because one it depends on failed (that one carries the fix). */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  id: string;
  status: CheckStatus;
  summary: string;
  fix?: string;
  details?: Record<string, unknown>;
}

export interface LocalRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface DoctorPorts {
  /** Runs a local program with an argument array; undefined when it is not installed. */
  exec(file: string, args: readonly string[]): Promise<LocalRun | undefined>;
  /** The store named by the settings (its errors are PersonaErrors with hints). */
  openStore(): Promise<KvBackend>;
  /** The inventory named by the settings, parsed and validated. */
  loadInventory(): Promise<Inventory>;
  /** A file's text, or undefined when it does not exist. */
  readText(path: string): Promise<string | undefined>;
  exists(path: string): Promise<boolean>;
  /** stat of a path (mode, owner), or undefined when it does not exist. */
  stat(path: string): Promise<{ mode: number; uid: number; isDirectory: boolean } | undefined>;
  /** Creates and removes a file in a directory: undefined when that worked, else the error code. */
  tryWrite(dir: string): Promise<string | undefined>;
  uid: number | undefined;
  hostname: string;
  pid: number;
}

export interface DoctorInput {
  settings: Settings;
  /** The config file in use, if any. */
  configFile: string | undefined;
  configCandidates: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  acceptNewHostKeys: boolean;
}

/** What several checks share: the inventory (loaded once) and the ssh config that will be used. */
export interface Shared {
  inventory(): Promise<Inventory | undefined>;
  /** The -F file ssh will be given, or undefined for ssh's own default (~/.ssh/config). */
  sshConfig(): Promise<string | undefined>;
}

export type Check = (input: DoctorInput, ports: DoctorPorts, shared: Shared) => Promise<CheckResult>;

export const firstLine = (text: string) => text.trim().split('\n')[0] ?? '';

export const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
