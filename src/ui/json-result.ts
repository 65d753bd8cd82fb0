/**
 * The one shape of `--json` output: NDJSON on stdout, every line an object with a `type`. Commands that stream
 * (recover, runs resume) write events first; every command, failed or not, ends with exactly one line
 * `{"type":"result","ok":…,"exit_code":…}`: the command's data beside those keys, or `error` when it failed.
 * A command that only answers a question (list, show, probe, rank) prints that one line and nothing else, so
 * `persona hosts probe --json | jq '.hosts[]'` works as written.
 */
import type { PersonaError } from '../errors.js';

/** What a command returns for --json; the envelope's own keys are reserved. */
export type ResultData = Record<string, unknown> & {
  type?: never;
  ok?: never;
  exit_code?: never;
  error?: never;
};

export interface ResultError {
  code: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

export function resultLine(data: ResultData, exitCode: number): string {
  return JSON.stringify({ type: 'result', ok: exitCode === 0, exit_code: exitCode, ...data });
}

export function errorResultLine(error: ResultError, exitCode: number): string {
  return JSON.stringify({ type: 'result', ok: false, exit_code: exitCode, error });
}

export function resultErrorOf(error: PersonaError): ResultError {
  return {
    code: error.code,
    message: error.message,
    ...(error.hint ? { hint: error.hint } : {}),
    ...(error.details ? { details: error.details } : {}),
  };
}
