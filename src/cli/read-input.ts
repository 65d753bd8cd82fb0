import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { PersonaError } from '../errors.js';
import { stripBom } from '../util/text.js';
import type { Streams } from './mode.js';

const MAX_INPUT = 4 * 1024 * 1024;

/**
 * Reads a file argument, or stdin for "-", with a size bound; a missing file is a usage error that names it.
 * A byte order mark is dropped, so it never reaches the store.
 */
export async function readInput(file: string, cwd: string, streams: Streams): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of streams.stdin as AsyncIterable<Buffer | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += buf.length;
      if (size > MAX_INPUT)
        throw new PersonaError('E_INPUT_TOO_LARGE', `stdin: more than ${MAX_INPUT} bytes`);
      chunks.push(buf);
    }
    return stripBom(Buffer.concat(chunks).toString('utf8'));
  }
  try {
    return stripBom(await readFile(resolve(cwd, file), 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new PersonaError(
      'E_USAGE',
      `${file}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code})`}`,
    );
  }
}
