/**
 * Builds the commander program from the command declarations. Actions load their module only when they run.
 */
import { Command, Help, InvalidArgumentError, Option } from 'commander';
import { exitCodeTable } from '../errors.js';
import { commands, groups } from './registry.js';
import type { CommandInput, CommandSpec, GlobalUse } from './spec.js';

export interface Invocation {
  spec: CommandSpec;
  input: CommandInput;
  globals: Record<string, unknown>;
}

function parseCount(value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new InvalidArgumentError('must be a whole number (0 or more)');
  return Number(value);
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

function exitCodesHelp(): string {
  return `\nExit codes:\n${exitCodeTable.map(([code, what]) => `  ${String(code).padStart(3)}  ${what}`).join('\n')}\n`;
}

function examplesHelp(spec: Pick<CommandSpec, 'examples'>): string {
  const width = Math.max(...spec.examples.map(([cmd]) => cmd.length));
  return `\nExamples:\n${spec.examples.map(([cmd, what]) => `  $ ${cmd.padEnd(width)}  # ${what}`).join('\n')}\n`;
}

/** The global options (by commander's attribute name) each kind of use brings into a command's --help. */
const globalsFor: Record<GlobalUse | 'always', string[]> = {
  always: ['json', 'color', 'verbose'],
  store: ['store'],
  hosts: ['inventory', 'sshConfig', 'connectTimeout', 'concurrency', 'acceptNewHostKeys'],
  confirm: ['yes'],
  state: ['stateDir'],
};

export interface ProgramOutput {
  writeOut(text: string): void;
  writeErr(text: string): void;
}

/** Subcommands copy these settings when created, so they are set before any command is added. */
export function buildProgram(
  version: string,
  output: ProgramOutput,
  onInvoke: (invocation: Invocation) => void,
): Command {
  // A command's --help lists the global flags that matter to it, with their defaults.
  const shownGlobals = new WeakMap<Command, Set<string>>();
  const program = new Command('persona')
    .exitOverride()
    .configureOutput(output)
    .configureHelp({
      showGlobalOptions: true,
      visibleGlobalOptions(this: Help, cmd: Command) {
        const shown = shownGlobals.get(cmd);
        return Help.prototype.visibleGlobalOptions
          .call(this, cmd)
          .filter((o) => shown?.has(o.attributeName()) ?? false);
      },
    })
    .description(
      "Runbook-driven host recovery: find where a failed host's applications should go, explain why, and move them.",
    )
    // Only -V here: subcommands use --version N for profile versions. main() answers a lone --version.
    .version(version, '-V', 'output the version number (also --version)')
    .option(
      '--store <url>',
      'profile store: file:DIR, consul://HOST:PORT/PREFIX, etcd://HOST:PORT/PREFIX (env PERSONA_STORE; default file:./profiles)',
    )
    .option(
      '--json',
      'machine output on stdout: one {"type":"result",…} line, after NDJSON events for long runs; nothing interactive',
    )
    .option('-y, --yes', 'answer yes to confirmations (said on stderr each time)')
    .option('--no-color', 'no colours (also NO_COLOR)')
    .option(
      '--state-dir <dir>',
      'run journals and saved edits (env PERSONA_STATE_DIR; default $XDG_STATE_HOME/persona, else ~/.local/state/persona)',
    )
    .option(
      '--inventory <file>',
      "hosts: JSON, YAML, an Ansible inventory, or consul://HOST:PORT for Consul's catalog (env PERSONA_INVENTORY; default ./inventory.json)",
    )
    .option(
      '--ssh-config <file>',
      "ssh -F file (env PERSONA_SSH_CONFIG; default: the inventory's, else ~/.ssh/config)",
    )
    // No commander defaults for settings: a default would hide whether the flag was given (settings.ts decides).
    .addOption(
      new Option(
        '--connect-timeout <seconds>',
        'SSH connect timeout (env PERSONA_CONNECT_TIMEOUT; default 5)',
      ).argParser(parseCount),
    )
    .addOption(
      new Option(
        '--concurrency <n>',
        'hosts probed at once (env PERSONA_CONCURRENCY; default: 16 per core, at least 16)',
      ).argParser(parseCount),
    )
    .option(
      '--accept-new-host-keys',
      'trust the host key of a host seen for the first time (changed keys are still refused)',
    )
    .option('-v, --verbose', 'more detail on stderr')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `${examplesHelp({
        examples: [
          ['persona profile list', 'what the store holds'],
          ['persona profile validate profiles/*.json', 'check profiles before committing them'],
          ['persona profile edit demo-web', 'change a profile safely'],
        ],
      })}${exitCodesHelp()}`,
    );

  const groupCommands = new Map<string, Command>();
  for (const group of groups) {
    const g = program.command(group.name).description(group.summary);
    groupCommands.set(group.name, g);
  }

  for (const spec of commands) {
    const [first, ...rest] = spec.path;
    const parent = rest.length > 0 ? groupCommands.get(first!) : program;
    if (!parent) throw new Error(`command ${spec.path.join(' ')} names an unknown group`);
    const cmd = parent
      .command(rest.length > 0 ? rest.join(' ') : first!)
      .description(spec.description ?? spec.summary);
    for (const arg of spec.args ?? []) {
      const name = `${arg.name}${arg.variadic ? '...' : ''}`;
      cmd.argument(arg.required ? `<${name}>` : `[${name}]`, arg.description);
    }
    for (const opt of spec.options ?? []) {
      const option = new Option(opt.flags, opt.description);
      if (opt.integer) option.argParser(parseCount);
      if (opt.repeatable) option.argParser(collect);
      if (opt.choices) option.choices(opt.choices);
      if (opt.default !== undefined) option.default(opt.default);
      cmd.addOption(option);
    }
    shownGlobals.set(
      cmd,
      new Set(['always' as const, ...(spec.globals ?? [])].flatMap((g) => globalsFor[g])),
    );
    cmd.addHelpText('after', `${examplesHelp(spec)}${exitCodesHelp()}`);
    cmd.action((...params: unknown[]) => {
      const command = params[params.length - 1] as Command;
      const args: CommandInput['args'] = {};
      (spec.args ?? []).forEach((arg, i) => {
        args[arg.name] = params[i] as string | string[] | undefined;
      });
      onInvoke({ spec, input: { args, opts: command.opts() }, globals: command.optsWithGlobals() });
    });
  }
  return program;
}
