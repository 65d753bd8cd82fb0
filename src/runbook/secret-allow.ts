/**
 * Which env: and file: secret references a run may read: the operator's allow-list (the allowed_sources setting:
 * PERSONA_ALLOWED_SOURCES, or allowed_sources in persona's config file), comma-separated patterns where `*`
 * matches anything, like `env:BILLING_*,file:/etc/persona/secrets/*`. Default: `env:*,file:*`. store: references
 * are always allowed (the profile store is persona's own). Whatever the list, the operator's own credentials
 * (a file in an .ssh directory, CONSUL_HTTP_TOKEN, ETCDCTL_*, PERSONA_STORE_TOKEN) are refused: profile
 * validation refuses them (rules.ts, operatorCredential) and so does resolving.
 */
import { globMatches } from '../profile/package-spec.js';
import { operatorCredential } from '../profile/rules.js';

export const DEFAULT_ALLOWED_SOURCES = 'env:*,file:*';

const PATTERN = /^(?:env|file):[A-Za-z0-9_*./@+=-]+$/;

/** The patterns of a setting's text; an error message for the first that is not one. */
export function parseAllowedSources(text: string): { patterns: string[] } | { error: string } {
  const patterns = text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const bad = patterns.find((p) => !PATTERN.test(p));
  if (bad !== undefined)
    return {
      error: `${JSON.stringify(bad)} is not a pattern like env:NAME_* or file:/dir/* (comma-separated)`,
    };
  return { patterns };
}

/** Why the reference may not be read, or undefined when it may. */
export function refusedSource(ref: string, patterns: readonly string[]): string | undefined {
  const credential = operatorCredential(ref);
  if (credential) return `it names ${credential}, which persona never sends to a host`;
  if (ref.startsWith('store:')) return undefined;
  if (patterns.some((p) => globMatches(p, ref))) return undefined;
  return `it is not in the allowed secret sources (${patterns.join(',') || 'none'}): add a pattern for it to allowed_sources in persona's config file (or PERSONA_ALLOWED_SOURCES)`;
}
