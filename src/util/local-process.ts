/**
 * Commands on the machine running persona (hooks `on: local`, a `command` traffic method), behind one small
 * interface: no shell, only the environment given (never persona's own), stdin closed unless text is given for it. Tests pass their own.
 */
export interface LocalResult {
  /** Undefined when it did not exit by itself (a signal, a timeout, a program that cannot start). */
  exitCode?: number;
  signal?: string;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved as they were written. */
  output: string;
  /** Why it did not run or did not finish, when it has no exit code. */
  error?: string;
}

export interface LocalRunOptions {
  env: Record<string, string>;
  timeoutMs: number;
  signal: AbortSignal;
  /** Each complete line of stdout as it comes (progress); the whole output is in the result as well. */
  onStdoutLine?: (line: string) => void;
  /** Each line of stderr as it comes (shown while a long command runs); the last one even without a newline. */
  onStderrLine?: (line: string) => void;
  /**
   * Run it as a process group of its own and stop the whole group (SIGTERM, SIGKILL 5 s later) at the time limit
   * or on the signal: a command that starts others (a provisioner's terraform, a sleep) cannot outlive its limit,
   * nor hold its output open so that persona waits for them.
   */
  group?: boolean;
  /** Text for its stdin (closed otherwise). */
  input?: string;
}

export type LocalRunner = (argv: readonly string[], options: LocalRunOptions) => Promise<LocalResult>;

/** The real one: execa, without a shell, with exactly `env`. */
export const execaLocal: LocalRunner = async (
  argv,
  { env, timeoutMs, signal, onStdoutLine, onStderrLine, group, input },
) => {
  const { execa } = await import('execa');
  const child = execa(argv[0]!, argv.slice(1), {
    reject: false,
    env,
    extendEnv: false,
    ...(group ? { detached: true } : { timeout: timeoutMs, cancelSignal: signal }),
    ...(input !== undefined ? { input } : { stdin: 'ignore' as const }),
    all: true,
    maxBuffer: 16_000_000,
  });
  const limit = group ? groupLimit(child.pid, timeoutMs, signal) : undefined;
  if (onStdoutLine) eachLine(child.stdout, onStdoutLine);
  const flushStderr = onStderrLine ? eachLine(child.stderr, onStderrLine) : () => {};
  const r = await child;
  limit?.done();
  flushStderr();
  return {
    ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
    ...(r.signal ? { signal: r.signal } : {}),
    timedOut: r.timedOut || limit?.timedOut === true,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    output: String(r.all ?? ''),
    ...(r.exitCode === undefined && !r.signal && !r.timedOut
      ? { error: r.originalMessage ?? r.shortMessage ?? 'did not run' }
      : {}),
  };
};

/** Stops the process group of `pid` at the time limit or on the signal; `done` when the command ended. */
function groupLimit(pid: number | undefined, timeoutMs: number, signal: AbortSignal) {
  const state = { timedOut: false, done: () => {} };
  if (pid === undefined) return state;
  let hard: NodeJS.Timeout | undefined;
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      // the group is gone already
    }
  };
  const stop = () => {
    kill('SIGTERM');
    hard ??= setTimeout(() => kill('SIGKILL'), 5000);
  };
  const timer = setTimeout(() => {
    state.timedOut = true;
    stop();
  }, timeoutMs);
  signal.addEventListener('abort', stop, { once: true });
  if (signal.aborted) stop();
  state.done = () => {
    clearTimeout(timer);
    clearTimeout(hard);
    signal.removeEventListener('abort', stop);
  };
  return state;
}

/** Calls `onLine` with each complete line of a stream; returns the flush of a last line without a newline. */
function eachLine(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): () => void {
  let partial = '';
  stream?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });
  return () => {
    if (partial !== '') onLine(partial);
    partial = '';
  };
}

/** How it ended, in words: "exit 1", "SIGKILL", "timed out", or why it did not run. */
export function endedAs(r: LocalResult): string {
  if (r.timedOut) return 'timed out';
  if (r.exitCode !== undefined) return `exit ${r.exitCode}`;
  return r.signal ?? r.error ?? 'did not finish';
}
