/**
 * Output is events, rendered by a reporter: human (chalk, ora, progress on stderr) or JSON (NDJSON on stdout).
 * Commands and the engine report; they never write to the streams themselves.
 */
import { Chalk, type ChalkInstance } from 'chalk';
import type { Mode, Streams } from '../cli/mode.js';
import { type EventData, type RunEventType, runEvent } from '../runbook/events.js';
import { humanOut } from './output.js';
import type { Redactor } from './redact.js';
import { RunEventRenderer } from './run-events.js';

export interface Task {
  update(text: string): void;
  succeed(text?: string): void;
  fail(text?: string): void;
  warn(text?: string): void;
}

export interface Reporter {
  info(message: string): void;
  warn(message: string): void;
  /** A run event (runbook/events.ts): the JSON reporter writes each; the human one renders those people need. */
  event<T extends RunEventType>(type: T, data: EventData<T>): void;
  task(label: string): Task;
}

const elapsed = (start: number) => `${((Date.now() - start) / 1000).toFixed(1)}s`;

export class HumanReporter implements Reporter {
  readonly c: ChalkInstance;
  private readonly events: RunEventRenderer;
  private spinning = false;

  private constructor(
    private readonly streams: Streams,
    mode: Mode,
    private readonly redactor: Redactor,
    private readonly ora: OraFactory | undefined,
  ) {
    this.c = new Chalk({ level: mode.colorErr ? 1 : 0 });
    // Results (the plan, the ranking, the dry run) on stdout, as a command's result; progress on stderr.
    this.events = new RunEventRenderer({
      out: humanOut(streams.stdout, mode.colorOut, redactor),
      note: (text) => this.write(text),
      c: this.c,
    });
  }

  /** ora is loaded only when spinners will be shown (a terminal that reports its width). */
  static async create(streams: Streams, mode: Mode, redactor: Redactor): Promise<HumanReporter> {
    const ora = mode.spinners ? (await import('ora')).default : undefined;
    return new HumanReporter(streams, mode, redactor, ora);
  }

  private write(text: string): void {
    this.streams.stderr.write(`${this.redactor.redact(text)}\n`);
  }

  info(message: string): void {
    this.write(message);
  }

  warn(message: string): void {
    this.write(`${this.c.yellow('warning:')} ${message}`);
  }

  event<T extends RunEventType>(type: T, data: EventData<T>): void {
    this.events.render(runEvent(type, data));
  }

  task(label: string): Task {
    const start = Date.now();
    const done = (symbol: string, text?: string) =>
      this.write(`${symbol} ${text ?? label} ${this.c.dim(elapsed(start))}`);
    // One spinner at a time: steps that run at the same time would redraw over each other; the others are lines.
    if (!this.ora || this.spinning) {
      this.write(`${this.c.dim('…')} ${label}`);
      return {
        update: () => {},
        succeed: (t) => done(this.c.green('✔'), t),
        fail: (t) => done(this.c.red('✖'), t),
        warn: (t) => done(this.c.yellow('⚠'), t),
      };
    }
    this.spinning = true;
    return new SpinnerTask(label, this.ora, this.streams, this.redactor, start, this.c, () => {
      this.spinning = false;
    });
  }
}

type OraFactory = typeof import('ora').default;

/** An ora spinner on stderr with the elapsed time. */
class SpinnerTask implements Task {
  private readonly spinner: import('ora').Ora;

  constructor(
    private label: string,
    ora: OraFactory,
    streams: Streams,
    private readonly redactor: Redactor,
    private readonly start: number,
    private readonly c: ChalkInstance,
    private readonly ended: () => void,
  ) {
    this.spinner = ora({ text: this.text(), stream: streams.stderr as NodeJS.WriteStream }).start();
  }

  private text(t = this.label): string {
    return `${this.redactor.redact(t)} ${this.c.dim(elapsed(this.start))}`;
  }

  update(text: string): void {
    this.label = text;
    this.spinner.text = this.text();
  }

  succeed(text?: string): void {
    this.spinner.succeed(this.text(text ?? this.label));
    this.ended();
  }

  fail(text?: string): void {
    this.spinner.fail(this.text(text ?? this.label));
    this.ended();
  }

  warn(text?: string): void {
    this.spinner.warn(this.text(text ?? this.label));
    this.ended();
  }
}

/**
 * --json for a command that streams (recover, runs resume): events as NDJSON on stdout, each with its `type`, before
 * the result line main() writes; human logs go to stderr. Other commands keep the human reporter on stderr.
 */
export class JsonReporter implements Reporter {
  constructor(
    private readonly streams: Streams,
    private readonly redactor: Redactor,
  ) {}

  info(message: string): void {
    this.streams.stderr.write(`${this.redactor.redact(message)}\n`);
  }

  warn(message: string): void {
    this.streams.stderr.write(`warning: ${this.redactor.redact(message)}\n`);
  }

  event<T extends RunEventType>(type: T, data: EventData<T>): void {
    // Redacted as a value, so the line stays valid JSON whatever the secret contains.
    const line = JSON.stringify(this.redactor.deep({ type, ts: new Date().toISOString(), ...data }));
    this.streams.stdout.write(`${line}\n`);
  }

  task(label: string): Task {
    const start = Date.now();
    this.event('task', { label, status: 'started' });
    const end = (status: 'succeeded' | 'failed' | 'warning', text?: string) =>
      this.event('task', { label: text ?? label, status, duration_ms: Date.now() - start });
    return {
      update: (text) => this.event('task', { label: text, status: 'progress' }),
      succeed: (text) => end('succeeded', text),
      fail: (text) => end('failed', text),
      warn: (text) => end('warning', text),
    };
  }
}
