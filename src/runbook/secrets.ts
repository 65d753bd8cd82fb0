/**
 * Secret references resolved at the moment a step needs them: env:NAME, file:/path, store:key. The value is
 * registered with the redactor before anything else happens, so it can never reach a log, a journal or --json.
 */
import { readFile } from 'node:fs/promises';
import { PersonaError } from '../errors.js';
import type { Profile } from '../profile/schema.js';
import type { KvBackend } from '../stores/kv.js';
import type { Redactor } from '../ui/redact.js';
import { DEFAULT_ALLOWED_SOURCES, refusedSource } from './secret-allow.js';

const MAX_SECRET = 64 * 1024;

export interface SecretSources {
  env: NodeJS.ProcessEnv;
  backend: KvBackend;
  redactor: Redactor;
  /** The allowed_sources patterns (secret-allow.ts); absent: the default, env:* and file:*. */
  allowed?: readonly string[];
}

export async function resolveSecret(ref: string, where: string, sources: SecretSources): Promise<string> {
  const colon = ref.indexOf(':');
  const kind = ref.slice(0, colon);
  const name = ref.slice(colon + 1);
  const refused = refusedSource(ref, sources.allowed ?? DEFAULT_ALLOWED_SOURCES.split(','));
  if (refused)
    throw new PersonaError('E_SECRET', `secret ${ref} (${where}): not read: ${refused}`, {
      hint: 'Reference a secret of the application itself, from an allowed source.',
    });
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
  // Any length: the redactor decides how short values are matched (see ui/redact.ts).
  sources.redactor.add(value);
  return value;
}

function missing(ref: string, where: string, why: string): PersonaError {
  return new PersonaError('E_SECRET', `secret ${ref} (${where}): ${why}`, {
    hint: 'Provide the secret where the reference points, then resume the run.',
  });
}

/** Where a profile uses a secret, and where the secret comes from (the reference, never the value). */
export interface SecretUse {
  where: string;
  ref: string;
  source: string;
}

export function secretUses(profile: Profile): SecretUse[] {
  const kinds: Record<string, string> = {
    env: 'environment variable',
    file: 'file',
    store: 'key in the profile store',
  };
  const use = (where: string, ref: string): SecretUse => ({
    where,
    ref,
    source: kinds[ref.slice(0, ref.indexOf(':'))] ?? 'unknown',
  });
  return [
    ...profile.security_profile.encryption_keys.map((key) =>
      use(`security_profile key ${key.name}`, key.secret),
    ),
    ...Object.entries(profile.fencing?.power?.env ?? {}).map(([name, ref]) =>
      use(`fencing.power env ${name}`, ref),
    ),
    ...Object.entries(profile.provision?.env ?? {}).map(([name, ref]) => use(`provision env ${name}`, ref)),
    ...(profile.data.postgresql?.replication
      ? [use('data.postgresql.replication password', profile.data.postgresql.replication.password)]
      : []),
    ...(profile.traffic.method === 'dns'
      ? [use(`traffic.key ${profile.traffic.key.name}`, profile.traffic.key.secret)]
      : []),
  ];
}

/**
 * Registers the value of every secret the profile references with the redactor before any step runs, so a
 * command that prints one (a fence command's printenv, say) is redacted even before the step that uses it.
 * A secret that cannot be read now is left to the step that needs it, which names the problem.
 */
export async function registerSecrets(profile: Profile, sources: SecretSources): Promise<void> {
  for (const use of secretUses(profile)) {
    await resolveSecret(use.ref, use.where, sources).catch(() => undefined);
  }
}
