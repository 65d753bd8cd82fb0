/**
 * The one place that decides how persona talks to its user. Interactive only on a terminal without CI set;
 * "no terminal" never means "yes".
 */

export interface Streams {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

export interface Mode {
  /** A human can answer questions: stdin and stderr are terminals, CI is not set, output is not JSON. */
  interactive: boolean;
  /** --yes: confirmations are answered yes (and said so). */
  yes: boolean;
  /** --json: machine output on stdout, nothing interactive. */
  json: boolean;
  /** CI is set in the environment. */
  ci: boolean;
  colorOut: boolean;
  colorErr: boolean;
  /** Spinners: only on a terminal that reports its width (ora hangs on 0 columns). */
  spinners: boolean;
}

export interface ModeFlags {
  yes?: boolean;
  json?: boolean;
  color?: boolean;
}

const truthy = (value: string | undefined) =>
  value !== undefined && value !== '' && value !== '0' && value !== 'false';

export function resolveMode(flags: ModeFlags, env: NodeJS.ProcessEnv, streams: Streams): Mode {
  const ci = truthy(env.CI);
  const json = flags.json === true;
  const interactive = Boolean(streams.stdin.isTTY && streams.stderr.isTTY) && !ci && !json;
  const noColor =
    flags.color === false || (env.NO_COLOR !== undefined && env.NO_COLOR !== '') || env.TERM === 'dumb';
  const force = truthy(env.FORCE_COLOR);
  return {
    interactive,
    yes: flags.yes === true,
    json,
    ci,
    colorOut: !noColor && !json && (force || Boolean(streams.stdout.isTTY)),
    colorErr: !noColor && (force || Boolean(streams.stderr.isTTY)),
    spinners: !json && !ci && Boolean(streams.stderr.isTTY && streams.stderr.columns),
  };
}
