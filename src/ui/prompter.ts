/**
 * Questions to the human. The engine and commands ask through this interface; tests pass a scripted prompter.
 */
import type { Mode, Streams } from '../cli/mode.js';
import { PersonaError } from '../errors.js';
import type { Reporter } from './reporter.js';

export interface Choice<T> {
  name: string;
  value: T;
  description?: string;
  /** A reason the choice cannot be taken (shown, not selectable). */
  disabled?: string;
}

export interface Prompter {
  confirm(question: string, options?: { default?: boolean; flag?: string }): Promise<boolean>;
  select<T>(question: string, choices: Choice<T>[], options?: { default?: T; flag?: string }): Promise<T>;
}

/**
 * Asks a yes/no question that guards a change (default no; `--yes` answers it without a terminal). A no is
 * E_DECLINED: "not confirmed: <what stays as it is>".
 */
export async function confirmOrDecline(
  prompter: Prompter,
  question: string,
  unchanged = 'nothing was changed',
): Promise<void> {
  const yes = await prompter.confirm(question, { default: false, flag: '--yes' });
  if (!yes) throw new PersonaError('E_DECLINED', `not confirmed: ${unchanged}`);
}

/** No terminal: --yes answers confirmations (and says so); anything else fails naming the flag to pass. */
export class NonInteractivePrompter implements Prompter {
  constructor(
    private readonly mode: Pick<Mode, 'yes' | 'ci'>,
    private readonly reporter: Reporter,
  ) {}

  async confirm(question: string, options: { flag?: string } = {}): Promise<boolean> {
    if (this.mode.yes) {
      this.reporter.event('confirm', { question, answer: true, by: '--yes' });
      return true;
    }
    const why = this.mode.ci ? 'CI is set' : 'there is no terminal to ask on';
    throw new PersonaError(
      'E_CONFIRM_REQUIRED',
      `confirmation required: ${question} (${why}); nothing was changed`,
      {
        hint: `Pass ${options.flag ?? '--yes'} to confirm non-interactively, or run it on a terminal.`,
        details: { question },
      },
    );
  }

  async select<T>(
    question: string,
    choices: Choice<T>[],
    options: { default?: T; flag?: string } = {},
  ): Promise<T> {
    const chosen = choices.find((c) => !c.disabled && Object.is(c.value, options.default));
    if (chosen) {
      this.reporter.event('select', { question, answer: chosen.name, by: 'default (non-interactive)' });
      return chosen.value;
    }
    throw new PersonaError(
      'E_CONFIRM_REQUIRED',
      `a choice is required: ${question}; there is no terminal to ask on`,
      {
        hint: options.flag ? `Pass ${options.flag}.` : 'Run it on a terminal.',
      },
    );
  }
}

/** A human at a terminal: @inquirer/prompts, loaded only when a question is actually asked. */
export class TerminalPrompter implements Prompter {
  constructor(
    private readonly streams: Streams,
    private readonly mode: Pick<Mode, 'yes'>,
    private readonly reporter: Reporter,
  ) {}

  private context() {
    return {
      input: this.streams.stdin as NodeJS.ReadStream,
      output: this.streams.stderr as NodeJS.WriteStream,
      clearPromptOnDone: false,
    };
  }

  async confirm(question: string, options: { default?: boolean } = {}): Promise<boolean> {
    if (this.mode.yes) {
      this.reporter.event('confirm', { question, answer: true, by: '--yes' });
      return true;
    }
    const { confirm } = await import('@inquirer/prompts');
    return await guard(confirm({ message: question, default: options.default ?? false }, this.context()));
  }

  async select<T>(question: string, choices: Choice<T>[], options: { default?: T } = {}): Promise<T> {
    const { select } = await import('@inquirer/prompts');
    return await guard(
      select<T>(
        {
          message: question,
          choices: choices.map((c) => ({
            name: c.name,
            value: c.value,
            description: c.description,
            disabled: c.disabled ?? false,
          })),
          default: options.default,
          pageSize: 15,
        },
        this.context(),
      ),
    );
  }
}

/** Ctrl-C at a prompt is an interruption, not a crash. */
async function guard<T>(answer: Promise<T>): Promise<T> {
  try {
    return await answer;
  } catch (error) {
    if (error instanceof Error && error.name === 'ExitPromptError') {
      throw new PersonaError('E_INTERRUPTED', 'interrupted at a prompt; nothing more was done');
    }
    throw error;
  }
}
