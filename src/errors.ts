/**
 * Typed errors with stable codes, and the one exit-code table of persona.
 * A message says what happened; `hint` says how to fix it. Anything that is not a PersonaError is a bug.
 */

export const ExitCode = {
  ok: 0,
  /** An unexpected error: a bug in persona. */
  internal: 1,
  /** Bad flags, bad arguments, invalid profile or inventory, malformed JSON. Nothing changed. */
  usage: 2,
  /** A confirmation was needed and not given: no TTY and no --yes, or the human said no. Nothing changed. */
  notConfirmed: 3,
  /** A precondition failed and nothing changed: not found, version conflict, lock held, no candidate host,
   * store unreachable. */
  precondition: 4,
  /** A step failed; the run is saved and can be resumed. */
  stepFailed: 5,
  /** watch --once: a failure of some application counts (N of M rounds, from two vantage points). */
  unhealthy: 6,
  /** Interrupted (Ctrl-C / SIGTERM); the run is saved and can be resumed. */
  interrupted: 130,
  /** stdout was closed before persona finished writing (`| head`): 128 + SIGPIPE, as git and coreutils end. */
  outputClosed: 141,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** The documented table, printed by `persona --help` and the README. */
export const exitCodeTable: ReadonlyArray<readonly [number, string]> = [
  [ExitCode.ok, 'success'],
  [ExitCode.internal, 'internal error (a bug in persona; please report it with the output)'],
  [ExitCode.usage, 'usage error or invalid input (flags, profile, inventory, JSON); nothing changed'],
  [
    ExitCode.notConfirmed,
    'confirmation required (non-interactive without --yes) or declined; nothing changed',
  ],
  [
    ExitCode.precondition,
    'precondition failed, nothing changed (not found, version conflict, lock held, no suitable host, store unreachable, provisioning a host failed); profile rollout: the candidate was reverted',
  ],
  [
    ExitCode.stepFailed,
    'a runbook step failed, or its journal could not be saved after a step started; resumable',
  ],
  [ExitCode.unhealthy, 'watch --once: a failure counts for at least one application'],
  [ExitCode.interrupted, 'interrupted (Ctrl-C, SIGTERM); the run is saved and resumable'],
  [
    ExitCode.outputClosed,
    'stdout closed early (e.g. piped into head); stopped quietly, as git does (128 + SIGPIPE)',
  ],
];

export type ErrorCode =
  | 'E_USAGE'
  | 'E_INVALID_PROFILE'
  | 'E_INVALID_INPUT'
  | 'E_JSON_SYNTAX'
  | 'E_INPUT_TOO_LARGE'
  | 'E_NOT_FOUND'
  | 'E_EXISTS'
  | 'E_CONFLICT'
  | 'E_CONFIRM_REQUIRED'
  | 'E_DECLINED'
  | 'E_ABORTED'
  | 'E_STORE_UNAVAILABLE'
  | 'E_STORE'
  | 'E_LOCK_HELD'
  | 'E_LOCK_LOST'
  | 'E_NO_CANDIDATE'
  | 'E_PROVISION'
  | 'E_SSH'
  | 'E_STEP_FAILED'
  | 'E_INTERRUPTED'
  | 'E_OUTPUT_CLOSED'
  | 'E_EDITOR'
  | 'E_SECRET'
  | 'E_STATE'
  | 'E_JOURNAL'
  | 'E_INTERNAL';

const exitFor: Record<ErrorCode, ExitCodeValue> = {
  E_USAGE: ExitCode.usage,
  E_INVALID_PROFILE: ExitCode.usage,
  E_INVALID_INPUT: ExitCode.usage,
  E_JSON_SYNTAX: ExitCode.usage,
  E_INPUT_TOO_LARGE: ExitCode.usage,
  E_NOT_FOUND: ExitCode.precondition,
  E_EXISTS: ExitCode.precondition,
  E_CONFLICT: ExitCode.precondition,
  E_CONFIRM_REQUIRED: ExitCode.notConfirmed,
  E_DECLINED: ExitCode.notConfirmed,
  E_ABORTED: ExitCode.notConfirmed,
  E_STORE_UNAVAILABLE: ExitCode.precondition,
  E_STORE: ExitCode.precondition,
  E_LOCK_HELD: ExitCode.precondition,
  E_LOCK_LOST: ExitCode.stepFailed,
  E_NO_CANDIDATE: ExitCode.precondition,
  /** No host fit and the provision command did not give one: no step ran (the command may have made a host). */
  E_PROVISION: ExitCode.precondition,
  E_SSH: ExitCode.precondition,
  E_STEP_FAILED: ExitCode.stepFailed,
  E_INTERRUPTED: ExitCode.interrupted,
  E_OUTPUT_CLOSED: ExitCode.outputClosed,
  E_EDITOR: ExitCode.usage,
  E_SECRET: ExitCode.precondition,
  E_STATE: ExitCode.usage,
  /** The journal could not be saved after steps may have changed things: resumable, not "nothing changed". */
  E_JOURNAL: ExitCode.stepFailed,
  E_INTERNAL: ExitCode.internal,
};

export interface ErrorOptions {
  hint?: string;
  /** Structured details for --json output (never secrets). */
  details?: Record<string, unknown>;
  cause?: unknown;
  /** Overrides the exit code implied by the error code. */
  exitCode?: ExitCodeValue;
}

export class PersonaError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;
  readonly exitCode: ExitCodeValue;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PersonaError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
    this.exitCode = options.exitCode ?? exitFor[code];
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint ? { hint: this.hint } : {}),
      ...(this.details ? { details: this.details } : {}),
      exit_code: this.exitCode,
    };
  }
}

/** One problem found while validating input, named by its JSON path (RFC 6901 pointer). */
export interface Problem {
  path: string;
  message: string;
}

export function formatProblems(problems: readonly Problem[]): string {
  return problems.map((p) => `${p.path || '/'}: ${p.message}`).join('\n');
}

export class ValidationError extends PersonaError {
  readonly problems: readonly Problem[];
  readonly source: string;

  constructor(source: string, problems: readonly Problem[], code: ErrorCode = 'E_INVALID_PROFILE') {
    const n = problems.length;
    super(code, `${source}: ${n} problem${n === 1 ? '' : 's'}\n${formatProblems(problems)}`, {
      details: { source, problems },
    });
    this.name = 'ValidationError';
    this.problems = problems;
    this.source = source;
  }
}

export function isPersonaError(error: unknown): error is PersonaError {
  return error instanceof PersonaError;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
