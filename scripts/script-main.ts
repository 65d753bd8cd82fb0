/**
 * The exit path of the project's scripts (demo, bench): an expected failure is one line and a documented exit
 * code, never a stack trace. An unexpected error is a bug and says so; PERSONA_DEBUG=1 adds the stack.
 */

/** An expected failure: the message is the whole story, `code` the documented exit code. */
export class ScriptError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

/** Runs `main` and returns the exit code; every failure becomes one line on stderr prefixed with `name:`. */
export async function runScript(name: string, main: () => Promise<number>): Promise<number> {
  try {
    return await main();
  } catch (error) {
    if (error instanceof ScriptError) {
      process.stderr.write(`${name}: ${error.message}\n`);
      return error.code;
    }
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`${name}: unexpected error (a bug; PERSONA_DEBUG=1 shows the stack): ${message}\n`);
    if (process.env.PERSONA_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    return 1;
  }
}

/** The last non-empty line of a command's stderr: the lab's own one-line reason. */
export function lastLine(text: string): string {
  return (
    text
      .trim()
      .split('\n')
      .filter((l) => l.trim())
      .at(-1) ?? ''
  );
}

/** GET a URL of the lab (3 s at most): "STATUS BODY", or "no answer (why)"; never throws. */
export async function getText(url: string): Promise<string> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return `${r.status} ${(await r.text()).trim()}`;
  } catch (error) {
    return `no answer (${(error as Error).message})`;
  }
}
