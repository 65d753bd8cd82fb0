/**
 * Hosts marked `connection: local` (Ansible's ansible_connection=local) are the machine persona runs on: their
 * commands run here, without ssh, as the user persona runs as. They get what an ssh session would give them and
 * nothing of persona's own environment (no store token, no secret): a fixed PATH, HOME, USER, LOGNAME and SHELL.
 * Exit codes read as ssh's do: the command's own, 127 for a program that is not there.
 */
import { constants, userInfo } from 'node:os';
import { stripTerminalControls } from '../util/sanitize.js';
import {
  checked,
  displayCommand,
  type ExecOptions,
  type ExecResult,
  SshError,
  type SshTarget,
  type StreamedCommand,
  type StreamOptions,
  type Transport,
} from './ssh.js';

/** The PATH an sshd session on Debian gives root; for a local host it also finds sbin tools for other users. */
export const SESSION_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const isLocal = (target: SshTarget): boolean => target.connection === 'local';

/** Whether commands on the host run as root: the login user for ssh, the user persona runs as for a local host. */
export function runsAsRoot(target: SshTarget): boolean {
  if (isLocal(target)) return process.getuid?.() === 0;
  return !target.user || target.user === 'root';
}

/**
 * Who commands on the host run as: the login user over ssh (undefined: ssh's default), the user persona runs as
 * for a local host.
 */
export function loginUser(target: SshTarget): string | undefined {
  return isLocal(target) ? userInfo().username : target.user;
}

function sessionEnv(): Record<string, string> {
  const me = userInfo();
  return { PATH: SESSION_PATH, HOME: me.homedir, USER: me.username, LOGNAME: me.username, SHELL: '/bin/sh' };
}

/** What an ended local command returns, read as ssh's would be. */
function outcome(
  target: SshTarget,
  argv: readonly string[],
  r: {
    exitCode?: number;
    signal?: string;
    stdout?: unknown;
    stderr?: unknown;
    isCanceled: boolean;
    timedOut: boolean;
    originalMessage?: string;
  },
  started: number,
  timeoutMs: number | undefined,
): ExecResult {
  const shown = `${target.name} (this machine): \`${displayCommand(argv)}\``;
  const stderr = stripTerminalControls(String(r.stderr ?? ''));
  const result: ExecResult = {
    exitCode: r.exitCode ?? 255,
    stdout: r.stdout === undefined ? '' : String(r.stdout),
    stderr,
    durationMs: Date.now() - started,
  };
  if (r.isCanceled) throw new SshError('cancelled', target.name, `${shown}: cancelled`, undefined, result);
  if (r.timedOut)
    throw new SshError(
      'timeout',
      target.name,
      `${shown} did not finish within ${timeoutMs} ms`,
      undefined,
      result,
    );
  if (r.exitCode === undefined) {
    // As a remote shell reports it: 128 + the signal's number, 127 for a program that could not start.
    const signal = r.signal ? constants.signals[r.signal as keyof typeof constants.signals] : undefined;
    return signal !== undefined
      ? { ...result, exitCode: 128 + signal }
      : { ...result, exitCode: 127, stderr: `${stderr}${argv[0]}: ${r.originalMessage ?? 'not found'}\n` };
  }
  return result;
}

export class LocalTransport implements Transport {
  async exec(target: SshTarget, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const { execa } = await import('execa');
    const started = Date.now();
    const r = await execa(argv[0]!, argv.slice(1), {
      input: options.input ?? '',
      reject: false,
      stripFinalNewline: false,
      env: sessionEnv(),
      extendEnv: false,
      ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
      ...(options.signal ? { cancelSignal: options.signal } : {}),
      maxBuffer: 64 * 1024 * 1024,
    });
    return outcome(target, argv, r, started, options.timeoutMs);
  }

  /** Starts argv here with stdin and stdout as streams (see Transport.stream). */
  async stream(
    target: SshTarget,
    argv: readonly string[],
    options: StreamOptions = {},
  ): Promise<StreamedCommand> {
    const { execa } = await import('execa');
    const started = Date.now();
    const subprocess = execa(argv[0]!, argv.slice(1), {
      stdin: 'pipe',
      stdout: 'pipe',
      buffer: { stdout: false },
      reject: false,
      env: sessionEnv(),
      extendEnv: false,
      ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
      ...(options.signal ? { cancelSignal: options.signal } : {}),
    });
    return {
      stdin: subprocess.stdin,
      stdout: subprocess.stdout,
      done: subprocess.then((r) => outcome(target, argv, r, started, options.timeoutMs)),
    };
  }

  async script(
    target: SshTarget,
    script: string,
    args: readonly string[] = [],
    options: ExecOptions = {},
  ): Promise<ExecResult> {
    return await this.exec(target, ['sh', '-s', '--', ...args], { ...options, input: script });
  }

  async run(target: SshTarget, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    return checked(target, argv, await this.exec(target, argv, options));
  }

  /**
   * rsync runs `RSH HOST COMMAND...`, and ssh hands COMMAND joined with spaces to the login shell. This "remote
   * shell" does exactly that here, with the session's environment: the host word is dropped, the rest is one
   * `sh -c` (rsync quotes its remote arguments for a shell, as it does for ssh). rsync splits the -e string itself,
   * honouring single quotes.
   */
  async rsyncShell(_target: SshTarget): Promise<{ rsh: string; host: string }> {
    return { rsh: `env -i PATH=${SESSION_PATH} sh -c 'shift; exec sh -c "$*"' local`, host: 'local' };
  }

  async close(): Promise<void> {}
}

/** One transport for an inventory: local hosts run here, every other host over `remote` (ssh). */
export function byConnection(remote: Transport, local: Transport = new LocalTransport()): Transport {
  const pick = (target: SshTarget) => (isLocal(target) ? local : remote);
  return {
    exec: (target, argv, options) => pick(target).exec(target, argv, options),
    script: (target, script, args, options) => pick(target).script(target, script, args, options),
    run: (target, argv, options) => pick(target).run(target, argv, options),
    rsyncShell: (target) => pick(target).rsyncShell(target),
    ...(remote.stream
      ? {
          stream: (target: SshTarget, argv: readonly string[], options?: StreamOptions) => {
            const chosen = pick(target);
            return chosen.stream
              ? chosen.stream(target, argv, options)
              : Promise.reject(new Error(`${target.name}: this transport cannot stream`));
          },
        }
      : {}),
    // Programs that run ssh themselves (ansible-playbook) reach a local host without it: see runPlaybook.
    ...(remote.sshSettings
      ? {
          sshSettings: (target: SshTarget) =>
            isLocal(target)
              ? Promise.reject(new Error(`${target.name} is this machine: it is reached without ssh`))
              : remote.sshSettings!(target),
        }
      : {}),
    close: async () => {
      await Promise.all([remote.close(), local.close()]);
    },
  };
}
