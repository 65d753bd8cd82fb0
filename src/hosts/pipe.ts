/**
 * One host's command piped into another's through this machine (`ssh a btrfs send … | ssh b btrfs receive …`):
 * this machine holds the SSH trust to both, the hosts need none to each other, and the bytes are counted on the
 * way. Both ends are argv commands on persona's transport, with its settings, host keys and lock checks.
 */
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ExecResult, SshTarget, StreamOptions, Transport } from './ssh.js';

export interface PipeEnd {
  host: SshTarget;
  argv: readonly string[];
}

export interface PipeResult {
  /** What the source and the sink returned (exit codes, stderr): the caller decides what a failure means. */
  source: ExecResult;
  sink: ExecResult;
  /** Bytes that went from the source's stdout into the sink's stdin. */
  bytes: number;
}

/**
 * Runs source | sink. Resolves once both ended, whatever their exit codes (an end whose connection failed has
 * exit code 255 and the failure as its stderr); rejects only when cancelled or when the pipe broke between two ends
 * that both succeeded. When one end stops, the other is stopped too: a sink
 * that ends early closes the pipe under the source, a source that fails ends the sink's input (btrfs receive
 * never completes a truncated stream).
 */
export async function pipeBetween(
  ssh: Transport,
  source: PipeEnd,
  sink: PipeEnd,
  options: StreamOptions = {},
): Promise<PipeResult> {
  if (!ssh.stream)
    throw new Error('this transport cannot stream data between hosts (it has no `stream` method)');
  const from = await ssh.stream(source.host, source.argv, options);
  let to: Awaited<ReturnType<NonNullable<Transport['stream']>>>;
  try {
    to = await ssh.stream(sink.host, sink.argv, options);
  } catch (error) {
    from.stdout.destroy();
    from.stdin.destroy();
    await from.done.catch(() => undefined);
    throw error;
  }
  from.stdin.end();
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  const [piped, sent, received] = await Promise.allSettled([
    pipeline(from.stdout, counter, to.stdin),
    from.done,
    to.done,
  ]);
  if (options.signal?.aborted) throw options.signal.reason;
  const sending = settled(sent);
  const receiving = settled(received);
  // A broken pipe is what a failing end leaves behind; the exit codes say why, and the caller reads them.
  if (piped.status === 'rejected' && sending.exitCode === 0 && receiving.exitCode === 0) throw piped.reason;
  return { source: sending, sink: receiving, bytes };
}

/**
 * An end whose connection failed reads as a failed command (exit 255, the SshError's message as its stderr): when
 * one end fails, the other usually does too (a broken pipe, a truncated stream), and the caller names both.
 */
function settled(s: PromiseSettledResult<ExecResult>): ExecResult {
  if (s.status === 'fulfilled') return s.value;
  const message = s.reason instanceof Error ? s.reason.message : String(s.reason);
  return { exitCode: 255, stdout: '', stderr: message, durationMs: 0 };
}
