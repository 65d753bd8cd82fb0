/**
 * A reader that goes away (`persona profile validate … | head -1`) makes writes to stdout fail with EPIPE. Node
 * reports that as an 'error' event on the stream which, unheard, ends the process with a stack trace and exit 1.
 * persona stops quietly instead, as git does: the running command is aborted (a run saves its journal) and the
 * exit code is 141 (128 + SIGPIPE), so `set -o pipefail` scripts still see that the output was cut short.
 */
import { PersonaError } from '../errors.js';

export interface OutputWatch {
  /** Aborted, with an E_OUTPUT_CLOSED reason, once a write to stdout has failed. */
  readonly signal: AbortSignal;
  /** Waits for writes still queued, so that a late EPIPE is seen before the exit code is decided. */
  settle(): Promise<void>;
}

type Stdout = NodeJS.WritableStream & { writableLength?: number; destroyed?: boolean };

export function watchOutput(stdout: NodeJS.WritableStream): OutputWatch {
  const controller = new AbortController();
  const onError = (error: NodeJS.ErrnoException) => {
    if (controller.signal.aborted) return;
    const quiet = error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED';
    controller.abort(
      new PersonaError('E_OUTPUT_CLOSED', `cannot write to stdout: ${error.message}`, {
        details: { quiet, ...(error.code ? { errno: error.code } : {}) },
      }),
    );
  };
  // Stays attached: a write can still fail after main() has returned, and must not crash the process then.
  stdout.on('error', onError);
  return {
    signal: controller.signal,
    async settle() {
      const out = stdout as Stdout;
      if ((out.writableLength ?? 0) > 0 && !out.destroyed) {
        await new Promise<void>((resolve) => {
          const done = () => {
            out.off('drain', done);
            out.off('close', done);
            out.off('error', done);
            resolve();
          };
          out.once('drain', done);
          out.once('close', done);
          out.once('error', done);
        });
      }
      // An error of the last write is emitted on a later tick.
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

/** Whether this error is the quiet end of a closed stdout (nothing more to say; nobody reads it). */
export function isQuietOutputClose(error: unknown): boolean {
  return error instanceof PersonaError && error.code === 'E_OUTPUT_CLOSED' && error.details?.quiet === true;
}
