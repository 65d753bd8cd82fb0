/**
 * Running persona in tests: in-process through main() with fake streams and a scripted prompter, or as the built
 * executable (end-to-end).
 */
import type { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { execa, type Options } from 'execa';
import type { Transport } from '../../src/hosts/ssh.js';
import { main } from '../../src/main.js';
import type { Choice, Prompter } from '../../src/ui/prompter.js';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const bin = `${repoRoot}bin/persona`;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

class Sink extends PassThrough {
  text = '';
  isTTY = false;
  constructor() {
    super();
    this.on('data', (d: Buffer) => {
      this.text += d.toString();
    });
  }
}

/** A prompter that answers from a script and fails the test on any question it was not told about. */
export class ScriptedPrompter implements Prompter {
  readonly asked: string[] = [];
  constructor(private readonly answers: Array<{ match: RegExp; answer: unknown }>) {}

  private next(question: string): unknown {
    this.asked.push(question);
    const i = this.answers.findIndex((a) => a.match.test(question));
    if (i < 0) throw new Error(`unexpected question: ${question}`);
    const [found] = this.answers.splice(i, 1);
    return found!.answer;
  }

  async confirm(question: string): Promise<boolean> {
    return this.next(question) as boolean;
  }

  async select<T>(question: string, choices: Choice<T>[]): Promise<T> {
    const answer = this.next(question);
    const choice = choices.find((c) => c.value === answer || c.name === answer);
    if (!choice) throw new Error(`scripted answer ${String(answer)} is not a choice of: ${question}`);
    return choice.value;
  }
}

export interface InProcessOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  stdin?: string;
  prompter?: Prompter;
  tty?: boolean;
  /** Where the test delivers SIGINT/SIGTERM (an EventEmitter). */
  signals?: EventEmitter;
  /** Instead of a sink that keeps the text. */
  stdout?: NodeJS.WritableStream;
  /** The hosts persona talks to, instead of OpenSSH (a FakeHosts, say). */
  transport?: Transport;
}

export async function runInProcess(argv: string[], options: InProcessOptions = {}): Promise<CliResult> {
  const stdout = new Sink();
  const stderr = new Sink();
  const stdin = new PassThrough() as PassThrough & { isTTY?: boolean };
  stdin.isTTY = options.tty ?? false;
  stderr.isTTY = options.tty ?? false;
  stdin.end(options.stdin ?? '');
  const code = await main(argv, {
    streams: { stdin, stdout: options.stdout ?? stdout, stderr },
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...options.env },
    cwd: options.cwd ?? repoRoot,
    ...(options.prompter ? { prompter: () => options.prompter! } : {}),
    ...(options.signals ? { signals: options.signals as unknown as Pick<NodeJS.Process, 'on' | 'off'> } : {}),
    ...(options.transport ? { transport: () => options.transport! } : {}),
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** The built CLI as a child process (run `npm run build` first; `npm test` does). */
export async function runBin(argv: string[], options: Options = {}): Promise<CliResult> {
  const result = await execa(bin, argv, {
    reject: false,
    cwd: repoRoot,
    env: { NO_COLOR: '1', CI: 'true', ...(options.env as Record<string, string>) },
    stdin: 'ignore',
    ...options,
  } as Options);
  return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** The lines of a --json stdout, parsed. */
export function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}
