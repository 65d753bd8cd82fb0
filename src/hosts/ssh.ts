/**
 * SSH on OpenSSH: the user's ssh_config, agent and ProxyJump apply; host keys are checked strictly; connections
 * are multiplexed (ControlMaster in a private directory, closed on exit); commands are argument arrays, quoted
 * here and nowhere else; every failure is classified so people read "connection refused", not exit code 255.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PersonaError } from '../errors.js';
import { processAlive } from '../util/process.js';
import { stripTerminalControls } from '../util/sanitize.js';
import { shellJoin } from './shell-quote.js';

export interface SshTarget {
  /** The inventory name; ssh_config `Host` blocks match it. */
  name: string;
  address?: string;
  port?: number;
  user?: string;
  /** -i: a private key file from the inventory. */
  keyFile?: string;
  /** -J: jump host(s) from the inventory. */
  jump?: string;
}

/**
 * How ssh is told which host to reach: the inventory's address, port, user, key file and jump host, then `--` and
 * the inventory name (so ssh_config `Host` blocks match it). Every ssh persona starts ends with these, `ssh -G`
 * in `persona doctor` included.
 */
export function targetArgs(target: SshTarget): string[] {
  return [
    ...(target.address && target.address !== target.name ? ['-o', `HostName=${target.address}`] : []),
    ...(target.port ? ['-p', String(target.port)] : []),
    ...(target.user ? ['-l', target.user] : []),
    ...(target.keyFile ? ['-i', target.keyFile] : []),
    ...(target.jump ? ['-J', target.jump] : []),
    '--',
    target.name,
  ];
}

export interface SshOptions {
  /** -F: an ssh_config to use instead of ~/.ssh/config. */
  configFile?: string;
  connectTimeoutSec?: number;
  /** `yes` (default) refuses unknown and changed keys; `accept-new` trusts a first contact. Never `no`. */
  hostKeyChecking?: 'yes' | 'accept-new';
  /** Multiplexing: on by default. */
  multiplex?: boolean;
  /** How long an idle master connection stays up. */
  persistSec?: number;
  /** Where the private directory of master sockets goes (XDG_RUNTIME_DIR, else the temp dir). */
  runtimeDir?: string;
  env?: NodeJS.ProcessEnv;
}

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * One-shot calls (a probe of many hosts) use a master connection when one is up but never start one: starting
   * masters costs more than it saves for a single command (bench/RESULTS.md).
   */
  startMaster?: boolean;
}

export interface ExecResult {
  exitCode: number;
  /** As the command wrote it (it may be data: NUL-separated, binary-safe text); parsers clean what they show. */
  stdout: string;
  /** Remote diagnostics, only ever shown to people: stripped of terminal control characters here. */
  stderr: string;
  durationMs: number;
}

export type SshFailureKind =
  | 'refused'
  | 'timeout'
  | 'unreachable'
  | 'dns'
  | 'host-key-unknown'
  | 'host-key-changed'
  | 'auth'
  | 'connection'
  | 'cancelled'
  | 'command';

export class SshError extends PersonaError {
  constructor(
    readonly kind: SshFailureKind,
    readonly host: string,
    message: string,
    hint?: string,
    readonly result?: ExecResult,
  ) {
    super('E_SSH', message, {
      hint,
      details: { host, kind, ...(result ? { exit_code: result.exitCode } : {}) },
    });
    this.name = 'SshError';
  }
}

/** A command as people should read it in a message: scripts by their name ($0), never their whole text. */
export function displayCommand(argv: readonly string[]): string {
  const shown = argv[0] === 'sh' && argv[1] === '-c' && argv.length > 3 ? argv.slice(3) : argv;
  const text = shellJoin(shown).replace(/\n/g, '⏎');
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

const tail = (text: string, lines = 5) => text.trim().split('\n').slice(-lines).join('\n');

function where(target: SshTarget): string {
  const address =
    target.address && target.address !== target.name
      ? ` (${target.address}${target.port ? `:${target.port}` : ''})`
      : '';
  return `${target.name}${address}`;
}

/** Reads what went wrong from ssh's own exit status 255 and its stderr. */
export function classifySshFailure(
  target: SshTarget,
  result: ExecResult,
  timedOut: boolean,
  options: SshOptions,
): SshError | undefined {
  const host = where(target);
  const err = result.stderr;
  const addr = target.address ?? target.name;
  const known = options.configFile
    ? ` (UserKnownHostsFile in ${options.configFile})`
    : ' (~/.ssh/known_hosts)';
  if (timedOut) {
    return new SshError(
      'timeout',
      target.name,
      `${host}: no answer within the deadline`,
      'The host or its sshd may hang; check it from a console.',
      result,
    );
  }
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(err)) {
    return new SshError(
      'host-key-changed',
      target.name,
      `${host}: the host key has CHANGED since it was recorded — possibly a man-in-the-middle, or a reinstalled host; refusing to connect`,
      `If you know why it changed, verify the new key out of band, then remove the old one with \`ssh-keygen -R ${addr}\`${known} and add the new one.`,
      result,
    );
  }
  if (/No .*host key is known|Host key verification failed/i.test(err)) {
    return new SshError(
      'host-key-unknown',
      target.name,
      `${host}: its host key is not known${known}; refusing to connect`,
      `Verify the key out of band, then add it: \`ssh-keyscan ${target.port ? `-p ${target.port} ` : ''}${addr} >> known_hosts\` (check the fingerprint), or run with --accept-new-host-keys for a first contact you trust.`,
      result,
    );
  }
  if (/Permission denied \(/i.test(err) || /Too many authentication failures/i.test(err)) {
    return new SshError(
      'auth',
      target.name,
      `${host}: authentication failed (${tail(err, 1)})`,
      'Check the user, the key (IdentityFile) and your agent (`ssh-add -l`).',
      result,
    );
  }
  if (/Connection refused/i.test(err)) {
    return new SshError(
      'refused',
      target.name,
      `${host}: connection refused — sshd is not running or the port is wrong`,
      undefined,
      result,
    );
  }
  if (
    /Connection timed out|Operation timed out|timed out during banner exchange|Connection to .* timed out/i.test(
      err,
    )
  ) {
    return new SshError(
      'timeout',
      target.name,
      `${host}: connection timed out`,
      'The host may be down, partitioned, or its sshd hung.',
      result,
    );
  }
  if (/No route to host|Network is unreachable|Host is down/i.test(err)) {
    return new SshError(
      'unreachable',
      target.name,
      `${host}: unreachable (${tail(err, 1)})`,
      undefined,
      result,
    );
  }
  if (/Could not resolve hostname|Name or service not known|nodename nor servname/i.test(err)) {
    return new SshError(
      'dns',
      target.name,
      `${host}: the name does not resolve`,
      'Check the address in the inventory.',
      result,
    );
  }
  if (
    result.exitCode === 255 &&
    /^(ssh|kex_exchange_identification|banner exchange|Connection (closed|reset))|ssh_exchange_identification|Broken pipe|mux_client/im.test(
      err,
    )
  ) {
    return new SshError('connection', target.name, `${host}: ssh failed: ${tail(err, 2)}`, undefined, result);
  }
  return undefined;
}

/**
 * A persona killed with SIGKILL cannot remove its control directory; the next one does, when the pid in the
 * directory's name is gone (`persona-ssh-<pid>-XXXXXX`).
 */
async function sweepStaleControlDirs(base: string): Promise<void> {
  const names = await readdir(base).catch(() => [] as string[]);
  await Promise.all(
    names
      .map((name) => ({ name, pid: /^persona-ssh-(\d+)-/.exec(name)?.[1] }))
      .filter((d) => d.pid !== undefined && Number(d.pid) !== process.pid && !processAlive(Number(d.pid)))
      .map((d) => rm(join(base, d.name), { recursive: true, force: true }).catch(() => {})),
  );
}

/**
 * What persona asks of a connection to its hosts: the port the runbook, the probe and the CLI use. SshTransport is
 * the real one (OpenSSH); tests pass a fake through World.transport (test/fakes/fake-hosts.ts).
 */
export interface Transport {
  /** Runs argv on the target; resolves with the remote exit code, throws SshError when the connection failed. */
  exec(target: SshTarget, argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** Runs a POSIX sh script (on stdin) with quoted arguments. */
  script(
    target: SshTarget,
    script: string,
    args?: readonly string[],
    options?: ExecOptions,
  ): Promise<ExecResult>;
  /** Like exec, but a non-zero exit is an SshError of kind "command". */
  run(target: SshTarget, argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** The ssh command for `rsync -e` and the host to name after it. */
  rsyncShell(target: SshTarget): Promise<{ rsh: string; host: string }>;
  /** Closes what the transport keeps open (master connections). */
  close(): Promise<void>;
}

export class SshTransport implements Transport {
  /** The private directory of master sockets; a promise, so that parallel first calls share one. */
  private controlDir: Promise<string> | undefined;
  private readonly options: Required<Omit<SshOptions, 'configFile' | 'env' | 'runtimeDir'>> &
    Pick<SshOptions, 'configFile' | 'env' | 'runtimeDir'>;

  constructor(options: SshOptions = {}) {
    this.options = {
      connectTimeoutSec: 5,
      hostKeyChecking: 'yes',
      multiplex: true,
      persistSec: 60,
      ...options,
    };
  }

  private async control(): Promise<string> {
    this.controlDir ??= (async () => {
      const base = this.options.runtimeDir ?? tmpdir();
      await sweepStaleControlDirs(base);
      return await mkdtemp(join(base, `persona-ssh-${process.pid}-`));
    })();
    return await this.controlDir;
  }

  /** The ssh argument vector for a target and a remote command (already quoted into one string). */
  async argv(target: SshTarget, remoteCommand: string | undefined, startMaster = true): Promise<string[]> {
    const o = this.options;
    const args = [
      '-o',
      'BatchMode=yes',
      '-o',
      `ConnectTimeout=${o.connectTimeoutSec}`,
      '-o',
      `StrictHostKeyChecking=${o.hostKeyChecking}`,
      '-o',
      'ServerAliveInterval=5',
      '-o',
      'ServerAliveCountMax=3',
      '-o',
      'LogLevel=ERROR',
      '-o',
      'KexAlgorithms=^curve25519-sha256',
      '-T',
    ];
    if (o.configFile) args.unshift('-F', o.configFile);
    if (o.multiplex) {
      args.push(
        '-o',
        `ControlMaster=${startMaster ? 'auto' : 'no'}`,
        '-o',
        `ControlPath=${await this.control()}/%C`,
        '-o',
        `ControlPersist=${o.persistSec}`,
      );
    }
    args.push(...targetArgs(target));
    if (remoteCommand !== undefined) args.push(remoteCommand);
    return args;
  }

  /**
   * The ssh command for `rsync -e`: the same options, control path and host-key checking as every other call.
   * rsync splits it on spaces and honours quotes, so an argument with a space is quoted and one with a quote is
   * refused.
   */
  async rsyncShell(target: SshTarget): Promise<{ rsh: string; host: string }> {
    const args = await this.argv(target, undefined);
    const host = args.pop()!;
    args.pop(); // '--': rsync appends the host after the options.
    const quoted = ['ssh', ...args].map((a) => {
      if (/['"]/.test(a))
        throw new PersonaError('E_USAGE', `cannot pass ${JSON.stringify(a)} to rsync's ssh command`);
      return /\s/.test(a) ? `'${a}'` : a;
    });
    return { rsh: quoted.join(' '), host };
  }

  /**
   * Runs argv on the target. Resolves with the remote exit code for commands that ran; throws SshError when the
   * connection itself failed (refused, timeout, host key, auth, ...).
   */
  async exec(target: SshTarget, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    return this.execRaw(target, shellJoin(argv), options);
  }

  /** Runs a POSIX sh script (sent on stdin, never on the command line) with quoted arguments. */
  async script(
    target: SshTarget,
    script: string,
    args: readonly string[] = [],
    options: ExecOptions = {},
  ): Promise<ExecResult> {
    return this.execRaw(target, shellJoin(['sh', '-s', '--', ...args]), { ...options, input: script });
  }

  /** Like exec, but a non-zero exit is an SshError of kind "command" with the exit code and stderr tail. */
  async run(target: SshTarget, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const result = await this.exec(target, argv, options);
    if (result.exitCode !== 0) {
      throw new SshError(
        'command',
        target.name,
        `${where(target)}: \`${displayCommand(argv)}\` exited with code ${result.exitCode}${result.stderr.trim() ? `: ${tail(result.stderr)}` : ''}`,
        undefined,
        result,
      );
    }
    return result;
  }

  private async execRaw(target: SshTarget, command: string, options: ExecOptions): Promise<ExecResult> {
    const { execa } = await import('execa');
    const args = await this.argv(target, command, options.startMaster ?? true);
    const started = Date.now();
    const subprocess = execa('ssh', args, {
      input: options.input ?? '',
      reject: false,
      stripFinalNewline: false,
      timeout: options.timeoutMs,
      cancelSignal: options.signal,
      env: this.options.env,
      extendEnv: this.options.env === undefined,
      maxBuffer: 64 * 1024 * 1024,
    });
    // A multiplexed session hands its stdio to the master connection, which keeps the pipes open until the
    // remote command ends. Once our ssh process has gone (cancelled or timed out), stop waiting for them.
    subprocess.once('exit', () => {
      if (
        options.signal?.aborted ||
        (options.timeoutMs !== undefined && Date.now() - started >= options.timeoutMs)
      ) {
        subprocess.stdout?.destroy();
        subprocess.stderr?.destroy();
      }
    });
    const child = await subprocess;
    const result: ExecResult = {
      exitCode: child.exitCode ?? 255,
      stdout: String(child.stdout ?? ''),
      stderr: stripTerminalControls(String(child.stderr ?? '')),
      durationMs: Date.now() - started,
    };
    if (child.isCanceled) {
      throw new SshError('cancelled', target.name, `${where(target)}: cancelled`, undefined, result);
    }
    if (child.timedOut || result.exitCode === 255) {
      const failure = classifySshFailure(target, result, Boolean(child.timedOut), this.options);
      if (failure) throw failure;
    }
    return result;
  }

  /** Closes every master connection and removes the private control directory. */
  async close(): Promise<void> {
    const pending = this.controlDir;
    if (!pending) return;
    this.controlDir = undefined;
    const dir = await pending;
    const { execa } = await import('execa');
    const sockets = await readdir(dir).catch(() => [] as string[]);
    await Promise.all(
      sockets.map((s) =>
        execa('ssh', ['-o', `ControlPath=${join(dir, s)}`, '-O', 'exit', 'persona-control'], {
          reject: false,
          timeout: 5000,
        }),
      ),
    );
    await rm(dir, { recursive: true, force: true });
  }
}
