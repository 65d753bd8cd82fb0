/**
 * Opens the store a URL names: file:DIR (or a plain directory path), consul://HOST:PORT/PREFIX,
 * etcd://HOST:PORT/PREFIX (see store-url.ts for the options and environment variables). Backends load lazily so
 * commands that never touch a store start fast; nothing here imports a client library at top level.
 */
import { isAbsolute, resolve } from 'node:path';
import { PersonaError } from '../errors.js';
import type { KvBackend } from './kv.js';

export const DEFAULT_STORE = 'file:./profiles';

export async function openBackend(url: string, env: NodeJS.ProcessEnv, cwd: string): Promise<KvBackend> {
  if (url.startsWith('file:') || !/^[a-z][a-z0-9+.-]*:\/\//.test(url)) {
    const raw = url.startsWith('file:') ? url.slice('file:'.length) : url;
    const dir = isAbsolute(raw) ? raw : resolve(cwd, raw);
    const { FileBackend } = await import('./file-backend.js');
    return await new FileBackend(dir, `file:${raw}`).open();
  }
  const scheme = url.slice(0, url.indexOf(':'));
  const shown = redactUrl(url);
  if (scheme === 'consul') {
    const { consulTarget } = await import('./store-url.js');
    const target = consulTarget(url, env, shown);
    const { ConsulBackend } = await import('./consul-backend.js');
    return await ConsulBackend.open(target);
  }
  if (scheme === 'etcd') {
    const { etcdTarget } = await import('./store-url.js');
    const target = etcdTarget(url, env, shown);
    const { EtcdBackend } = await import('./etcd-backend.js');
    return EtcdBackend.open(target);
  }
  throw new PersonaError('E_USAGE', `unsupported store URL scheme "${scheme}" in ${JSON.stringify(shown)}`, {
    hint: 'Use file:DIR, consul://HOST:PORT/PREFIX or etcd://HOST:PORT/PREFIX.',
  });
}

/** A URL as it may be shown: no user info, no token query parameters. */
export function redactUrl(url: string): string {
  return url
    .replace(/\/\/[^/@]*@/, '//[redacted]@')
    .replace(/([?&](?:token|password|secret)[^=&]*=)[^&]*/gi, '$1[redacted]');
}
