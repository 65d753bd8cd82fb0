/**
 * The value rules of a persona profile. Every value that later reaches a remote command line, a file path or a
 * config file is constrained here, so that no shell metacharacter, newline or path traversal can pass.
 * Each rule carries its own message; schema.ts composes them.
 */
import * as z from 'zod';

const MAX_INT = 1_000_000;

export function integer(min: number, max = MAX_INT) {
  const rule = max === MAX_INT ? `must be an integer >= ${min}` : `must be an integer from ${min} to ${max}`;
  return z.int({ error: rule }).min(min, { error: rule }).max(max, { error: rule });
}

export function number(min: number, max: number) {
  const rule = `must be a number from ${min} to ${max}`;
  return z.number({ error: rule }).min(min, { error: rule }).max(max, { error: rule });
}

/**
 * A string rule. The length bound is stated here, once, as its own clause: rule texts do not repeat it, and it
 * is not a second parenthetical after one the rule text may end with.
 */
function pattern(re: RegExp, rule: string, maxLength = 255) {
  return z
    .string({ error: rule })
    .max(maxLength, { error: `${rule}, and at most ${maxLength} characters` })
    .regex(re, { error: rule });
}

/** Application/service ids: also used as store keys and file names. */
export const idPattern = /^[a-z0-9](?:[a-z0-9._-]{0,62})$/;
export const applicationId = pattern(
  idPattern,
  'must be an id: lowercase letters, digits, ".", "_" or "-", starting with a letter or digit',
  63,
).refine((s) => !s.includes('..'), { error: 'must not contain ".."' });

/** Debian/RPM package names; an optional exact version after "=". */
export const packageSpecPattern = /^[a-z0-9][a-z0-9+._-]{0,99}(?:=[A-Za-z0-9][A-Za-z0-9.+~:_-]{0,99})?$/;
export const packageSpec = pattern(
  packageSpecPattern,
  'must be a package name with an optional exact version, like "nginx" or "nginx=1.22.1-9" (letters, digits, + . _ - ~ :)',
  201,
);

export const unixName = pattern(
  /^[a-z_][a-z0-9_-]{0,31}$/,
  'must be a user or group name: lowercase letters, digits, "_" or "-", starting with a letter or "_"',
  32,
);

const absPathRe = /^\/(?:[A-Za-z0-9._@+=,-]+\/?)*$/;
const rule = 'must be an absolute path of letters, digits and . _ @ + = , - (no spaces, quotes or "..")';
export const absolutePath = pattern(absPathRe, rule, 4096).refine(
  (p) => !p.split('/').some((seg) => seg === '..' || seg === '.'),
  { error: 'must not contain "." or ".." path segments' },
);

export const fileMode = pattern(/^0?[0-7]{3}$/, 'must be an octal file mode like "0644" or "600"', 4);

export const port = integer(1, 65535);

function ipv4Ok(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^(?:0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

function ipv6Ok(s: string): boolean {
  if (!/^[0-9a-fA-F:]+$/.test(s) || s.length > 39) return false;
  const double = s.split('::');
  if (double.length > 2) return false;
  const groups = s.split(':').filter((g) => g !== '');
  if (groups.some((g) => g.length > 4)) return false;
  return double.length === 2 ? groups.length <= 7 : groups.length === 8;
}

export function cidrOk(s: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!m) return false;
  const [, addr = '', bitsText = ''] = m;
  const bits = Number(bitsText);
  if (ipv4Ok(addr)) return bits <= 32;
  if (ipv6Ok(addr)) return bits <= 128;
  return false;
}

export const cidr = z
  .string({ error: 'must be an IP range in CIDR notation, like "10.0.0.0/8" or "fd00::/64"' })
  .max(43)
  .refine(cidrOk, { error: 'must be an IP range in CIDR notation, like "10.0.0.0/8" or "fd00::/64"' });

export const vlanId = integer(1, 4094);

/**
 * Secrets are references, never values: env:NAME, file:/absolute/path, or store:key (a key in the profile store).
 * Inline key material is rejected with its own message.
 */
export const secretRefPattern =
  /^(?:env:[A-Za-z_][A-Za-z0-9_]{0,127}|file:\/[A-Za-z0-9._@+=,/-]{1,4095}|store:[a-z0-9][a-z0-9._/-]{0,254})$/;
export const secretRef = z
  .string({ error: 'must be a secret reference: env:NAME, file:/path or store:key' })
  .refine((s) => !/-----BEGIN|PRIVATE KEY|^[A-Za-z0-9+/]{40,}={0,2}$/.test(s), {
    error:
      'looks like inline key material: store the secret elsewhere and reference it (env:NAME, file:/path or store:key)',
    abort: true,
  })
  .refine((s) => secretRefPattern.test(s) && !s.includes('/../') && !s.endsWith('/..'), {
    error: 'must be a secret reference: env:NAME, file:/path or store:key',
  });

/**
 * The name of an environment variable persona sets for a local command (a fence agent's password, say). The
 * variables persona passes anyway (PATH, HOME, LANG, LC_ALL, TZ) are not secrets and cannot be replaced by one.
 */
export const envName = pattern(
  /^[A-Za-z_][A-Za-z0-9_]{0,127}$/,
  'must be an environment variable name: letters, digits and "_", not starting with a digit',
  128,
).refine((s) => !['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ'].includes(s), {
  error: 'must not be PATH, HOME, LANG, LC_ALL or TZ (persona passes those from its own environment)',
});

/** An OpenSSH public key line (public keys are not secrets). */
export const authorizedKey = pattern(
  /^(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}(?: [\x20-\x7e]{0,200})?$/,
  'must be one OpenSSH public key line, like "ssh-ed25519 AAAA... comment"',
  16384,
);

/**
 * One argument of a command (argv element). Commands are argument arrays: persona quotes each element before it
 * reaches a remote shell, so metacharacters are inert; control characters are refused all the same.
 * The placeholders {host}, {address} and {app} are replaced by validated values.
 */
export const argument = z
  .string({ error: 'must be a string' })
  .max(4096, { error: 'must be at most 4096 characters' })
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point of this rule.
  .regex(/^[^\x00-\x1f\x7f]*$/, { error: 'must not contain control characters (newline, tab, NUL, ...)' });

export const command = z
  .array(argument, {
    error: 'must be a command as an array of arguments, like ["systemctl", "start", "app"]',
  })
  .min(1, { error: 'must not be empty' })
  .max(256);

/** Names used in HAProxy and similar configs: backend, server. */
export const configName = pattern(
  /^(?:[A-Za-z0-9_.:-]|\{host\}|\{app\}){1,64}$/,
  'must be a name of letters, digits, "_", ".", ":" or "-" (placeholders {host} and {app} allowed)',
  128,
);

/** host:port or an absolute unix socket path. */
export const socketAddress = pattern(
  /^(?:\/[A-Za-z0-9._@+=,/-]+|[A-Za-z0-9.-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5})$/,
  'must be an absolute unix socket path or host:port',
  4096,
).refine((s) => !s.split('/').includes('..'), { error: 'must not contain ".." path segments' });

export const httpUrl = pattern(
  /^https?:\/\/(?:[A-Za-z0-9.-]+|\{host\}|\{address\}|\[[0-9a-fA-F:]+\])(?::\d{1,5})?(?:\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$/,
  'must be an http(s) URL without spaces (placeholders {host} and {address} allowed in the host part)',
  2048,
);

export const httpPath = pattern(
  /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$/,
  'must be an absolute URL path like "/health" (no spaces)',
  2048,
);

export const description = z
  .string({ error: 'must be a string' })
  .max(2000, { error: 'must be at most 2000 characters' });

export const label = pattern(
  /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/,
  'must be a label of letters, digits, . _ / -',
  63,
);

export const labelValue = pattern(
  /^[A-Za-z0-9._/-]{0,63}$/,
  'must be a label value of letters, digits, . _ / -',
  63,
);
