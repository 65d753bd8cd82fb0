/**
 * The context every command receives: the side effects of the world behind small interfaces. main.ts builds the
 * real one; tests build their own with fakes that assert.
 */
import { hostname, userInfo } from 'node:os';
import type { Mode, Streams } from './cli/mode.js';
import type { ResolvedSettings } from './cli/settings.js';
import type { Inventory } from './hosts/inventory.js';
import type { Transport } from './hosts/ssh.js';
import type { ProfileStore } from './stores/profile-store.js';
import type { HumanOut } from './ui/output.js';
import type { Prompter } from './ui/prompter.js';
import type { Redactor } from './ui/redact.js';
import type { Reporter } from './ui/reporter.js';

export interface GlobalOptions {
  store?: string;
  json?: boolean;
  yes?: boolean;
  color?: boolean;
  stateDir?: string;
  inventory?: string;
  sshConfig?: string;
  connectTimeout?: number;
  concurrency?: number;
  acceptNewHostKeys?: boolean;
  verbose?: boolean;
}

export interface Context {
  /** The arguments persona was started with (for journals: how a run was started). */
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly streams: Streams;
  readonly mode: Mode;
  /** The flags as given on the command line. */
  readonly globals: GlobalOptions;
  /** Every global setting's effective value and where it came from (flag, environment, config file, default). */
  readonly settings: ResolvedSettings;
  readonly reporter: Reporter;
  readonly prompter: Prompter;
  readonly redactor: Redactor;
  readonly out: HumanOut;
  /** Who is acting, for history records and locks: PERSONA_AUTHOR, else user@host. */
  readonly author: string;
  readonly stateDir: string;
  readonly signal: AbortSignal;
  now(): Date;
  /** The profile store named by the store setting (default file:./profiles), opened on first use. */
  store(): Promise<ProfileStore>;
  /** Opens $VISUAL / $EDITOR on a file and waits for it to exit. */
  editFile(path: string): Promise<void>;
  /** The inventory named by the inventory setting (default ./inventory.json), loaded on first use. */
  inventory(): Promise<Inventory>;
  /** The SSH transport (one per run: its master connections are closed when the command ends). */
  ssh(): Promise<Transport>;
}

export function resolveAuthor(env: NodeJS.ProcessEnv): string {
  if (env.PERSONA_AUTHOR) return env.PERSONA_AUTHOR;
  let user = env.USER ?? env.LOGNAME;
  if (!user) {
    try {
      user = userInfo().username;
    } catch {
      user = 'unknown';
    }
  }
  return `${user}@${hostname()}`;
}
