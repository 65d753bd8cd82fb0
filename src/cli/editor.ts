/**
 * Runs the user's editor the way git does: $VISUAL, else $EDITOR, else vi, through sh so that editor commands
 * with arguments ("code --wait") work. The file path is passed as a positional parameter, never spliced into
 * the command text.
 */
import { PersonaError } from '../errors.js';
import type { Streams } from './mode.js';

export async function runEditor(path: string, env: NodeJS.ProcessEnv, streams: Streams): Promise<void> {
  const editor = env.VISUAL || env.EDITOR || 'vi';
  const { execa } = await import('execa');
  const result = await execa('sh', ['-c', `${editor} "$@"`, editor, path], {
    stdin: streams.stdin.isTTY ? 'inherit' : 'ignore',
    stdout: streams.stderr.isTTY ? 'inherit' : 'ignore',
    stderr: 'inherit',
    reject: false,
    env,
  });
  if (result.exitCode !== 0) {
    throw new PersonaError(
      'E_EDITOR',
      `the editor (${editor}) exited with code ${result.exitCode ?? result.signal}; nothing was written`,
      {
        hint: 'Set VISUAL or EDITOR to an editor that exits 0 after saving.',
      },
    );
  }
}
