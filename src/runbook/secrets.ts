/**
 * Secret references resolved at the moment a step needs them: env:NAME, file:/path, store:key. The value is
 * registered with the redactor before anything else happens, so it can never reach a log, a journal or --json.
 */
import { readFile } from 'node:fs/promises';
import { PersonaError } from '../errors.js';
import type { KvBackend } from '../stores/kv.js';
import type { Redactor } from '../ui/redact.js';

const MAX_SECRET = 64 * 1024;

export interface SecretSources {
  env: NodeJS.ProcessEnv;
  backend: KvBackend;
  redactor: Redactor;
}

export async function resolveSecret(ref: string, where: string, sources: SecretSources): Promise<string> {
  const colon = ref.indexOf(':');
  const kind = ref.slice(0, colon);
  const name = ref.slice(colon + 1);
  let value: string | undefined;
  if (kind === 'env') {
    value = sources.env[name];
    if (value === undefined || value === '')
      throw missing(ref, where, `the environment variable ${name} is not set`);
  } else if (kind === 'file') {
    try {
      value = await readFile(name, 'utf8');
    } catch (error) {
      throw missing(ref, where, `cannot read ${name} (${(error as NodeJS.ErrnoException).code})`);
    }
  } else if (kind === 'store') {
    const entry = await sources.backend.get(name);
    if (!entry) throw missing(ref, where, `no key ${name} in ${sources.backend.describe}`);
    value = entry.value;
  } else {
    throw missing(ref, where, 'unknown kind of reference');
  }
  if (value.length > MAX_SECRET) throw missing(ref, where, `larger than ${MAX_SECRET} bytes`);
  sources.redactor.add(value);
  return value;
}

function missing(ref: string, where: string, why: string): PersonaError {
  return new PersonaError('E_SECRET', `secret ${ref} (${where}): ${why}`, {
    hint: 'Provide the secret where the reference points, then resume the run.',
  });
}
