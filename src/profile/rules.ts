/**
 * The value rules of a persona profile. Every value that later reaches a remote command line, a file path or a
 * config file is constrained here, so that no shell metacharacter, newline or path traversal can pass.
 * Each rule carries its own message; schema.ts composes them.
 */
import * as z from 'zod';
import { packageSpecPattern, parsePackageSpec } from './package-spec.js';

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

/**
 * Debian/RPM package names (capitals allowed: NetworkManager, perl-DBI), an optional Debian architecture
 * (libc6:amd64), and an optional version: "=1.22.1-9" exactly, "=1.22.*" a glob, ">=1.22" a minimum
 * (see package-spec.ts).
 */
export { packageSpecPattern } from './package-spec.js';
export const packageSpec = pattern(
  packageSpecPattern,
  'must be a package name, an optional :arch and version, like "nginx", "libc6:amd64", "nginx=1.22.1-9", "php=8.2.*" or "redis>=7.0"',
  240,
).refine((s) => parsePackageSpec(s) !== undefined, { error: 'must not use "*" in a minimum version (">=")' });

export const unixName = pattern(
  /^[a-z_][a-z0-9_.-]{0,31}$/,
  'must be a user or group name: lowercase letters, digits, ".", "_" or "-", starting with a letter or "_"',
  32,
);

/**
 * A host name as Ansible accepts it and ssh can take: a DNS name of labels of at most 63 characters each (253 in
 * all; underscores allowed, as Ansible allows them), or an IPv6 address. Never an option, never a shell character.
 * One rule for the inventory's hosts and the hosts a profile names (data.backup.host).
 */
const dnsLabel = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const ipv6 = '[0-9A-Fa-f]*:[0-9A-Fa-f:.]*';
const dnsOrIpv6 = new RegExp(`^(?:${dnsLabel}(?:\\.${dnsLabel})*\\.?|${ipv6})$`);
export const hostName = z
  .string({ error: 'must be a host name' })
  .max(253, { error: 'must be a host name of at most 253 characters' })
  .regex(dnsOrIpv6, {
    error:
      'must be a host name: labels of letters, digits, "_" or "-" (at most 63 characters each) separated by ".", or an IPv6 address',
  });

export const address = z.string({ error: 'must be an address' }).max(253).regex(dnsOrIpv6, {
  error: 'must be a DNS name, an IPv4 or an IPv6 address (no spaces, no shell characters)',
});

/** Spaces are allowed inside a name ("/srv/My Files"): paths reach the host only as arguments, never as script text. */
const absPathRe = /^\/(?:[A-Za-z0-9._@+=, -]+\/?)*$/;
const rule = 'must be an absolute path of letters, digits, spaces and . _ @ + = , - (no quotes or "..")';
export const absolutePath = pattern(absPathRe, rule, 4096)
  .refine((p) => !p.split('/').some((seg) => seg === '..' || seg === '.'), {
    error: 'must not contain "." or ".." path segments',
  })
  .refine((p) => !p.split('/').some((seg) => seg !== seg.trim()), {
    error: 'must not have a name that starts or ends with a space',
  });

/** Octal, with the setuid/setgid/sticky digit when wanted: "0644", "600", "2755". */
export const fileMode = pattern(
  /^[0-7]?[0-7]{3}$/,
  'must be an octal file mode like "0644", "600" or "2755"',
  4,
);

export const port = integer(1, 65535);

/** A destination port, or a range "30000-32767" (nft's syntax, lowest first). */
export const portRangeText = z
  .string({ error: 'must be a port or a range of ports like "30000-32767"' })
  .max(11)
  .regex(/^[1-9]\d{0,4}-[1-9]\d{0,4}$/, { error: 'must be a port or a range of ports like "30000-32767"' })
  .refine(
    (s) => {
      const [lo = 0, hi = 0] = s.split('-').map(Number);
      return lo < hi && hi <= 65535;
    },
    { error: 'must be a range of ports from 1 to 65535, the lower port first' },
  );
export const portOrRange = z.union([port, portRangeText], {
  error: 'must be a port (1-65535) or a range of ports like "30000-32767"',
});

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

/** The address of a valid CIDR as a number, and its width (32 or 128). */
function cidrValue(s: string): { value: bigint; width: number; bits: number; v6: boolean } {
  const [addr = '', bitsText = ''] = s.split('/');
  const bits = Number(bitsText);
  if (!addr.includes(':')) {
    const value = addr.split('.').reduce((n, octet) => (n << 8n) | BigInt(Number(octet)), 0n);
    return { value, width: 32, bits, v6: false };
  }
  const [head = '', tail] = addr.split('::');
  const groups = (text: string) => (text === '' ? [] : text.split(':'));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const value = all.reduce((n, g) => (n << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
  return { value, width: 128, bits, v6: true };
}

/** The network a CIDR names, with its host bits cleared: "10.0.0.0/8" for "10.1.2.3/8". */
export function cidrNetwork(s: string): string {
  const { value, width, bits, v6 } = cidrValue(s);
  const mask = ((1n << BigInt(width)) - 1n) ^ ((1n << BigInt(width - bits)) - 1n);
  const net = value & mask;
  if (!v6) return `${[24n, 16n, 8n, 0n].map((sh) => String((net >> sh) & 255n)).join('.')}/${bits}`;
  const hextets = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((sh) => ((net >> sh) & 0xffffn).toString(16));
  // The longest run of zero groups becomes "::".
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && hextets[j] === '0') j++;
    if (j - i > best.len && j - i > 1) best = { at: i, len: j - i };
    i = j === i ? i + 1 : j;
  }
  const text =
    best.at < 0
      ? hextets.join(':')
      : `${hextets.slice(0, best.at).join(':')}::${hextets.slice(best.at + best.len).join(':')}`;
  return `${text}/${bits}`;
}

/** Whether a valid CIDR has bits set after its prefix ("10.1.2.3/8"): nft would refuse it, or mean another range. */
export function cidrHostBitsSet(s: string): boolean {
  const { value, width, bits } = cidrValue(s);
  return (value & ((1n << BigInt(width - bits)) - 1n)) !== 0n;
}

const cidrRule = 'must be an IP range in CIDR notation, like "10.0.0.0/8" or "fd00::/64"';
export const cidr = z
  .string({ error: cidrRule })
  .max(43)
  .refine(cidrOk, { error: cidrRule, abort: true })
  .superRefine((s, ctx) => {
    if (cidrHostBitsSet(s))
      ctx.addIssue({
        code: 'custom',
        message: `has host bits set after the prefix: write the network, "${cidrNetwork(s)}" (or /${s.includes(':') ? 128 : 32} for one address)`,
        input: s,
      });
  });

export const vlanId = integer(1, 4094);

/**
 * References to the operator's own credentials, refused in every profile whatever the allow-list
 * (see secret-allow.ts): a profile must not be able to copy persona's SSH keys or store token onto a host.
 */
export function operatorCredential(ref: string): string | undefined {
  if (ref.startsWith('file:') && ref.split('/').includes('.ssh'))
    return "a file in an .ssh directory (someone's SSH keys)";
  if (ref === 'env:CONSUL_HTTP_TOKEN') return "persona's Consul token (CONSUL_HTTP_TOKEN)";
  if (ref.startsWith('env:ETCDCTL_')) return "persona's etcd credentials (ETCDCTL_*)";
  if (ref === 'env:PERSONA_STORE_TOKEN') return "persona's store token (PERSONA_STORE_TOKEN)";
  return undefined;
}

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
    abort: true,
  })
  .superRefine((s, ctx) => {
    const why = operatorCredential(s);
    if (why)
      ctx.addIssue({
        code: 'custom',
        message: `names ${why}, which persona never sends to a host: give the application a secret of its own`,
        input: s,
      });
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

/** The options sshd accepts before a key in authorized_keys (sshd(8), AUTHORIZED_KEYS FILE FORMAT). */
export const authorizedKeyOptions = [
  'agent-forwarding',
  'cert-authority',
  'command',
  'environment',
  'expiry-time',
  'from',
  'no-agent-forwarding',
  'no-port-forwarding',
  'no-pty',
  'no-user-rc',
  'no-x11-forwarding',
  'permitlisten',
  'permitopen',
  'port-forwarding',
  'principals',
  'pty',
  'no-touch-required',
  'verify-required',
  'restrict',
  'tunnel',
  'user-rc',
  'x11-forwarding',
];
const keyType =
  '(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\\.com|sk-ecdsa-sha2-nistp256@openssh\\.com)';
const keyOption = '[A-Za-z0-9-]+(?:="(?:[^"\\\\\\x00-\\x1f\\x7f]|\\\\")*")?';
const authorizedKeyRe = new RegExp(
  `^(?:(${keyOption}(?:,${keyOption})*) )?${keyType} [A-Za-z0-9+/]+={0,3}(?: [\\x20-\\x7e]{0,200})?$`,
);

/**
 * An OpenSSH authorized_keys line (public keys are not secrets), options allowed:
 * `from="10.0.0.0/8",no-pty ssh-ed25519 AAAA... ci`, `cert-authority ssh-ed25519 AAAA... ca`.
 */
export const authorizedKey = pattern(
  authorizedKeyRe,
  'must be one authorized_keys line: options if any, then a public key, like \'from="10.0.0.0/8",no-pty ssh-ed25519 AAAA... ci\'',
  16384,
).refine(
  (line) => {
    const options = authorizedKeyRe.exec(line)?.[1];
    if (!options) return true;
    // One option after another (a quoted value may hold commas): the name is what precedes "=" or ",".
    const one = new RegExp(`,?(${keyOption})`, 'y');
    const names: string[] = [];
    for (let m = one.exec(options); m; m = one.exec(options)) names.push(m[1]!.split('=')[0]!);
    return names.every((n) => authorizedKeyOptions.includes(n.toLowerCase()));
  },
  { error: `must use only options sshd knows (${authorizedKeyOptions.slice(0, 6).join(', ')}, ...)` },
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

/** A DNS zone: labels of letters, digits, "_" or "-" separated by "."; the final dot optional. */
const zoneLabel = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
export const dnsZone = pattern(
  new RegExp(`^${zoneLabel}(?:\\.${zoneLabel})*\\.?$`),
  'must be a DNS zone name like "example.com" (labels of letters, digits, "_" or "-")',
  254,
);

/** A DNS record name: absolute (final dot) or relative to the zone, "@" for the apex; {app} allowed in a label. */
const recordLabel = '(?:[A-Za-z0-9_-]|\\{app\\}){1,63}';
export const dnsRecordName = pattern(
  new RegExp(`^(?:@|${recordLabel}(?:\\.${recordLabel})*\\.?)$`),
  'must be a DNS name, absolute ("www.example.com.") or relative to the zone ("www"), or "@" for the zone itself (placeholder {app} allowed)',
  254,
);

/** A DNS server: an IPv4 address or host name with an optional :port, or [IPv6]:port. */
export const dnsServer = pattern(
  /^(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:.]+\])(?::\d{1,5})?$/,
  'must be a DNS server as host, host:port or [IPv6]:port, like "192.0.2.53" or "ns1.example.com:5353"',
  260,
);

export const httpUrl = pattern(
  /^https?:\/\/(?:[A-Za-z0-9.-]+|\{host\}|\{address\}|\[[0-9a-fA-F:]+\])(?::\d{1,5})?(?:\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$/,
  'must be an http(s) URL without spaces (placeholders {host} and {address} allowed in the host part)',
  2048,
);

/** A Host header: a DNS name or address, an optional port. */
export const hostHeader = pattern(
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/,
  'must be a host name with an optional port, like "app.example.com:8443"',
  260,
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
