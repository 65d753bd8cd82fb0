/**
 * Commands are data: a name, arguments, options, examples, and a module loaded only when the command runs.
 */
import type { Context } from '../context.js';
import type { ResultData } from '../ui/json-result.js';
import type { HumanOut } from '../ui/output.js';

export interface ArgSpec {
  name: string;
  description: string;
  required?: boolean;
  variadic?: boolean;
}

export interface OptionSpec {
  flags: string;
  description: string;
  default?: string | boolean;
  /** Parse the value as a non-negative integer (usage error otherwise). */
  integer?: boolean;
  /** Allowed values. */
  choices?: string[];
  /** May be given more than once; values are collected in an array. */
  repeatable?: boolean;
}

export interface CommandResult {
  /** What --json prints, beside the result line's own keys (src/ui/json-result.ts). */
  data: ResultData;
  /** How a person sees it. Absent: the data is printed as JSON. */
  human?: (out: HumanOut) => void;
  /** A non-zero exit code for a result that is not an error (e.g. validate found problems). */
  exitCode?: number;
}

export interface CommandInput {
  args: Record<string, string | string[] | undefined>;
  opts: Record<string, unknown>;
}

export type CommandRun = (ctx: Context, input: CommandInput) => Promise<CommandResult>;

/**
 * Which global flags matter to a command, shown in its --help with their defaults: `store` (--store), `hosts`
 * (--inventory and the SSH flags), `confirm` (--yes), `state` (--state-dir). --json, --no-color and --verbose
 * matter to every command.
 */
export type GlobalUse = 'store' | 'hosts' | 'confirm' | 'state';

export interface CommandSpec {
  path: string[];
  summary: string;
  description?: string;
  args?: ArgSpec[];
  options?: OptionSpec[];
  examples: Array<[command: string, what: string]>;
  globals?: GlobalUse[];
  /** Under --json, reports its progress as NDJSON events on stdout before the result line (long runs). */
  streams?: true;
  load: () => Promise<{ run: CommandRun }>;
}

export interface GroupSpec {
  name: string;
  summary: string;
}
