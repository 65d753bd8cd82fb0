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
import type { SshTransport } from './hosts/ssh.js';
import type { ProfileStore } from './stores/profile-store.js';
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
      return ExitCode.usage;
    }
    throw error;
  }
  if (!invocation) return ExitCode.ok;
  return await run(invocation, world, argv);
}

async function run(invocation: Invocation, world: World, argv: string[]): Promise<number> {
  const { streams, env, cwd } = world;
  const globals = invocation.globals as GlobalOptions;
  const mode = resolveMode(globals, env, streams);
  const redactor = new Redactor();
  // Store credentials never reach output, whatever error text a server sends back.
  for (const name of ['CONSUL_HTTP_TOKEN', 'PERSONA_STORE_TOKEN']) if (env[name]) redactor.add(env[name]!);
  const reporter: Reporter = mode.json
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

  let store: ProfileStore | undefined;
  let inventory: Promise<Inventory> | undefined;
  let ssh: SshTransport | undefined;
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
    signal: controller.signal,
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
      if (!ssh) {
        const { SshTransport } = await import('./hosts/ssh.js');
        const inv = values.ssh_config.value ? undefined : await ctx.inventory().catch(() => undefined);
        const named = values.ssh_config.value ?? inv?.sshConfig;
        const from = values.ssh_config.value
          ? describeSource(values.ssh_config.source)
          : `the inventory ${inv?.source}`;
        const configFile = named ? await requireSshConfig(named, from, cwd) : undefined;
        ssh = new SshTransport({
          ...(configFile ? { configFile } : {}),
          connectTimeoutSec: values.connect_timeout.value,
          hostKeyChecking: globals.acceptNewHostKeys ? 'accept-new' : 'yes',
          ...(env.XDG_RUNTIME_DIR ? { runtimeDir: env.XDG_RUNTIME_DIR } : {}),
        });
      }
      return ssh;
    },
  };

  try {
    const module = await invocation.spec.load();
    const result = await module.run(ctx, invocation.input);
    // --json: one line, so a streamed run stays NDJSON (events, then the result).
    if (mode.json) streams.stdout.write(`${JSON.stringify(redactor.deep(result.data))}\n`);
    else if (!result.human) streams.stdout.write(`${JSON.stringify(redactor.deep(result.data), null, 2)}\n`);
    else result.human(ctx.out);
    return result.exitCode ?? ExitCode.ok;
  } catch (error) {
    return reportError(error, ctx, invocation);
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
    streams.stderr.write(redactor.redact(`${red('error:')} ${stripTerminalControls(error.message)}\n`));
    if (error.hint) streams.stderr.write(redactor.redact(`hint: ${stripTerminalControls(error.hint)}\n`));
    if (mode.json) streams.stdout.write(`${JSON.stringify(redactor.deep({ error: error.toJSON() }))}\n`);
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
      `${JSON.stringify(redactor.deep({ error: { code: 'E_INTERNAL', message, exit_code: ExitCode.internal } }))}\n`,
    );
  }
  return ExitCode.internal;
}
