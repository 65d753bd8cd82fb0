/**
 * The one entry that wires the world: real adapters into a context, flags into a mode, errors into exit codes.
 * Nothing deeper calls process.exit, reads process.env or writes to the streams itself.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { resolveMode, type Streams } from './cli/mode.js';
import { buildProgram, type Invocation } from './cli/program.js';
import { describeSource, loadSettings, type ResolvedSettings } from './cli/settings.js';
import { type Context, type GlobalOptions, resolveAuthor } from './context.js';
import { ExitCode, isPersonaError, PersonaError } from './errors.js';
import type { Inventory } from './hosts/inventory.js';
import type { Transport } from './hosts/ssh.js';
import type { ProfileStore } from './stores/profile-store.js';
import { isQuietOutputClose, watchOutput } from './ui/closed-output.js';
import { errorResultLine, resultErrorOf, resultLine } from './ui/json-result.js';
import { humanOut } from './ui/output.js';
import { NonInteractivePrompter, type Prompter, TerminalPrompter } from './ui/prompter.js';
import { Redactor } from './ui/redact.js';
import { HumanReporter, JsonReporter, type Reporter } from './ui/reporter.js';
import { stripTerminalControls } from './util/sanitize.js';

export interface World {
  streams: Streams;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Where SIGINT/SIGTERM are delivered; main turns them into an abort of the running command. */
  signals?: Pick<NodeJS.Process, 'on' | 'off'>;
  /** Tests pass a scripted prompter. */
  prompter?: (reporter: Reporter) => Prompter;
  /**
   * Tests only: the transport to the hosts (a fake, test/fakes/fake-hosts.ts) instead of OpenSSH. Built once per
   * command, when the command first needs it, and closed when it ends, like the real one.
   */
  transport?: () => Transport;
}

function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate))
      return (JSON.parse(readFileSync(candidate, 'utf8')) as { version: string }).version;
    dir = dirname(dir);
  }
  return '0.0.0';
}

export async function main(argv: string[], world: World): Promise<number> {
  const output = watchOutput(world.streams.stdout);
  const code = await dispatch(argv, world, output.signal);
  await output.settle();
  if (!output.signal.aborted) return code;
  const closed = output.signal.reason as PersonaError;
  if (!isQuietOutputClose(closed)) world.streams.stderr.write(`error: ${closed.message}\n`);
  return closed.exitCode;
}

async function dispatch(argv: string[], world: World, outputClosed: AbortSignal): Promise<number> {
  const { streams } = world;
  if (argv.length === 1 && argv[0] === '--version') {
    streams.stdout.write(`${packageVersion()}\n`);
    return ExitCode.ok;
  }
  let invocation: Invocation | undefined;
  const output = {
    writeOut: (s: string) => streams.stdout.write(s),
    writeErr: (s: string) => streams.stderr.write(s),
  };
  const program = buildProgram(packageVersion(), output, (i) => {
    invocation = i;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return ExitCode.ok;
      // Commander has said what is wrong on stderr; --json still ends with its one result line.
      if (wantsJson(argv)) {
        const message = error.message.replace(/^error: /, '');
        streams.stdout.write(`${errorResultLine({ code: 'E_USAGE', message }, ExitCode.usage)}\n`);
      }
      return ExitCode.usage;
    }
    throw error;
  }
  if (!invocation) return ExitCode.ok;
  return await run(invocation, world, argv, outputClosed);
}

/** --json among the options (not after `--`), for errors found before the flags are parsed. */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

async function run(
  invocation: Invocation,
  world: World,
  argv: string[],
  outputClosed: AbortSignal,
): Promise<number> {
  const { streams, env, cwd } = world;
  const globals = invocation.globals as GlobalOptions;
  const mode = resolveMode(globals, env, streams);
  const redactor = new Redactor();
  // Store credentials never reach output, whatever error text a server sends back.
  for (const name of ['CONSUL_HTTP_TOKEN', 'PERSONA_STORE_TOKEN']) if (env[name]) redactor.add(env[name]!);
  // --json: a command that streams puts its events on stdout; any other prints only its result line there.
  const reporter: Reporter =
    mode.json && invocation.spec.streams
      ? new JsonReporter(streams, redactor)
      : await HumanReporter.create(streams, mode, redactor);
  const prompter =
    world.prompter?.(reporter) ??
    (mode.interactive
      ? new TerminalPrompter(streams, mode, reporter)
      : new NonInteractivePrompter(mode, reporter));
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts++;
    controller.abort(new PersonaError('E_INTERRUPTED', `interrupted by ${signal}`));
    if (interrupts > 1) reporter.warn('interrupted again: finishing the journal write, then stopping');
  };
  let settings: ResolvedSettings;
  try {
    settings = await loadSettings(globals, env, cwd);
  } catch (error) {
    return reportError(error, { streams, mode, redactor, reporter, globals }, invocation);
  }
  const { values } = settings;
  world.signals?.on('SIGINT', onSignal);
  world.signals?.on('SIGTERM', onSignal);
  const signal = AbortSignal.any([controller.signal, outputClosed]);

  let store: ProfileStore | undefined;
  let inventory: Promise<Inventory> | undefined;
  let ssh: Transport | undefined;
  const ctx: Context = {
    argv,
    env,
    cwd,
    streams,
    mode,
    globals,
    settings,
    reporter,
    prompter,
    redactor,
    out: humanOut(streams.stdout, mode.colorOut, redactor),
    author: resolveAuthor(env),
    stateDir: values.state_dir.value,
    signal,
    now: () => new Date(),
    async store() {
      if (!store) {
        const { openBackend } = await import('./stores/open.js');
        const { ProfileStore } = await import('./stores/profile-store.js');
        store = new ProfileStore(await openBackend(values.store.value, env, cwd));
      }
      return store;
    },
    async editFile(path) {
      const { runEditor } = await import('./cli/editor.js');
      await runEditor(path, env, streams);
    },
    inventory() {
      inventory ??= import('./hosts/inventory.js').then(async ({ loadInventory }) => {
        const { existsSync } = await import('node:fs');
        const { resolve } = await import('node:path');
        const named = values.inventory.value;
        if (named.startsWith('consul:')) {
          const { loadConsulInventory } = await import('./hosts/consul-inventory.js');
          return await loadConsulInventory(named, env, cwd);
        }
        const path = resolve(cwd, named);
        if (values.inventory.source.from === 'default' && !existsSync(path)) {
          throw new PersonaError(
            'E_USAGE',
            'no inventory: pass --inventory FILE, set PERSONA_INVENTORY or add inventory: to persona.yaml',
            {
              hint: 'An inventory lists hosts as JSON/YAML ({"hosts": [{"name", "address", ...}]}) or is an Ansible inventory.',
            },
          );
        }
        return await loadInventory(path);
      });
      return inventory;
    },
    async ssh() {
      if (!ssh && world.transport) ssh = world.transport();
      if (!ssh) {
        const { SshTransport } = await import('./hosts/ssh.js');
        const inv = values.ssh_config.value ? undefined : await ctx.inventory().catch(() => undefined);
        const named = values.ssh_config.value ?? inv?.sshConfig;
        const source = values.ssh_config.source;
        const from = !values.ssh_config.value
          ? `the inventory ${inv?.source}`
          : source.from === 'flag' || source.from === 'env'
            ? source.name
            : describeSource(source);
        const configFile = named ? await requireSshConfig(named, from, cwd) : undefined;
        const { byConnection } = await import('./hosts/local-transport.js');
        // Hosts marked `connection: local` run their commands here, without ssh.
        ssh = byConnection(
          new SshTransport({
            ...(configFile ? { configFile } : {}),
            connectTimeoutSec: values.connect_timeout.value,
            hostKeyChecking: globals.acceptNewHostKeys ? 'accept-new' : 'yes',
            ...(env.XDG_RUNTIME_DIR ? { runtimeDir: env.XDG_RUNTIME_DIR } : {}),
          }),
        );
      }
      return ssh;
    },
  };

  try {
    const module = await invocation.spec.load();
    const result = await module.run(ctx, invocation.input);
    // A command that finished after Ctrl-C (or with its reader gone) still ends as stopped.
    signal.throwIfAborted();
    const exitCode = result.exitCode ?? ExitCode.ok;
    // Values are redacted before encoding, so a secret's JSON-escaped form cannot slip through.
    if (mode.json) streams.stdout.write(`${resultLine(redactor.deep(result.data), exitCode)}\n`);
    else if (!result.human) streams.stdout.write(`${JSON.stringify(redactor.deep(result.data), null, 2)}\n`);
    else result.human(ctx.out);
    return exitCode;
  } catch (error) {
    return reportError(stoppedBy(signal, error), ctx, invocation);
  } finally {
    world.signals?.off('SIGINT', onSignal);
    world.signals?.off('SIGTERM', onSignal);
    await store?.backend.close().catch(() => {});
    await ssh?.close().catch(() => {});
  }
}

/**
 * ssh -F with a missing file fails every host alike (exit 255, "Can't open user config file"): say it once,
 * before anything connects.
 */
async function requireSshConfig(file: string, from: string, cwd: string): Promise<string> {
  const { access, constants } = await import('node:fs/promises');
  const { resolve } = await import('node:path');
  const path = resolve(cwd, file);
  try {
    await access(path, constants.R_OK);
    return path;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new PersonaError(
      'E_USAGE',
      `ssh config ${file} (from ${from}): ${code === 'ENOENT' ? 'no such file' : `cannot read (${code})`}`,
      { hint: 'Pass an existing file with --ssh-config FILE, or leave it out to use ~/.ssh/config.' },
    );
  }
}

/**
 * Once the run was stopped (Ctrl-C, SIGTERM, stdout closed), that is what it ended with, whatever error the
 * stopping caused on its way out (a cancelled probe, a lock wait given up): Ctrl-C always exits 130.
 */
function stoppedBy(signal: AbortSignal, error: unknown): unknown {
  if (!signal.aborted) return error;
  if (isPersonaError(error) && (error.code === 'E_INTERRUPTED' || error.code === 'E_OUTPUT_CLOSED'))
    return error;
  return isPersonaError(signal.reason)
    ? signal.reason
    : new PersonaError('E_INTERRUPTED', 'interrupted', { cause: signal.reason });
}

function reportError(
  error: unknown,
  ctx: Pick<Context, 'streams' | 'mode' | 'redactor' | 'reporter' | 'globals'>,
  invocation: Invocation,
): number {
  const { streams, mode, redactor } = ctx;
  const c = (ctx.reporter as { c?: import('chalk').ChalkInstance }).c;
  const red = (s: string) => (c ? c.red(s) : s);
  // Messages may quote remote stderr or a server's answer: no terminal control reaches stderr through them.
  if (isPersonaError(error)) {
    // main() says what it has to about a closed stdout; nobody reads a result line.
    if (error.code === 'E_OUTPUT_CLOSED') return error.exitCode;
    streams.stderr.write(redactor.redact(`${red('error:')} ${stripTerminalControls(error.message)}\n`));
    if (error.hint) streams.stderr.write(redactor.redact(`hint: ${stripTerminalControls(error.hint)}\n`));
    if (mode.json)
      streams.stdout.write(`${errorResultLine(redactor.deep(resultErrorOf(error)), error.exitCode)}\n`);
    return error.exitCode;
  }
  const message = stripTerminalControls(error instanceof Error ? error.message : String(error));
  streams.stderr.write(
    redactor.redact(
      `${red('internal error:')} ${message}\nThis is a bug in persona (command: ${invocation.spec.path.join(' ')}). Please report it with this output.\n`,
    ),
  );
  if (ctx.globals.verbose && error instanceof Error && error.stack)
    streams.stderr.write(`${redactor.redact(error.stack)}\n`);
  if (mode.json) {
    streams.stdout.write(
      `${errorResultLine(redactor.deep({ code: 'E_INTERNAL', message }), ExitCode.internal)}\n`,
    );
  }
  return ExitCode.internal;
}
