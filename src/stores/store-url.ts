/**
 * Store URLs and the standard environment variables, turned into connection settings (pure: no I/O).
 *
 *   consul://HOST:PORT/PREFIX[?tls=1][&timeout=5s]   CONSUL_HTTP_ADDR when HOST is empty (consul:///PREFIX),
 *                                                     CONSUL_HTTP_TOKEN, CONSUL_CACERT, CONSUL_HTTP_SSL
 *   etcd://HOST:PORT/PREFIX[?tls=1][&timeout=5s]     ETCDCTL_ENDPOINTS (comma list) when HOST is empty
 *
 * Credentials never come from the URL: a token there would end up in shell history and in messages.
 */
import { PersonaError } from '../errors.js';

export const DEFAULT_PREFIX = 'persona';
export const DEFAULT_TIMEOUT_MS = 5000;

export interface ConsulTarget {
  host: string;
  port: number;
  secure: boolean;
  prefix: string;
  timeoutMs: number;
  /** The ACL token (CONSUL_HTTP_TOKEN); never part of `describe`. */
  token?: string;
  /** Path of the CA bundle (CONSUL_CACERT). */
  caFile?: string;
  describe: string;
}

export interface EtcdTarget {
  /** Base URLs, in the order they are tried: http://HOST:PORT. */
  endpoints: string[];
  prefix: string;
  timeoutMs: number;
  describe: string;
}

const usage = (message: string, hint?: string) => new PersonaError('E_USAGE', message, hint ? { hint } : {});

const truthy = (value: string | undefined) => value !== undefined && /^(1|true|yes|on)$/i.test(value.trim());

interface Parsed {
  scheme: string;
  /** host:port as written, or '' when the URL names no host. */
  authority: string;
  prefix: string;
  tls?: boolean;
  timeoutMs: number;
}

/** Parses SCHEME://[HOST[:PORT]]/PREFIX?options, refusing credentials and unknown options. */
function parseStoreUrl(url: string, scheme: string, shown: string): Parsed {
  const match = /^([a-z]+):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?$/.exec(url);
  if (!match || match[1] !== scheme) {
    throw usage(`cannot read store URL ${JSON.stringify(shown)}`, `Use ${scheme}://HOST:PORT/PREFIX.`);
  }
  const authority = match[2] ?? '';
  if (authority.includes('@')) {
    const env = scheme === 'consul' ? 'CONSUL_HTTP_TOKEN' : 'the environment';
    throw usage(
      `store URL ${JSON.stringify(shown)} carries credentials; persona never takes them from a URL`,
      `Remove them from the URL and pass them in ${env}.`,
    );
  }
  const prefix = (match[3] ?? '').replace(/^\/+|\/+$/g, '') || DEFAULT_PREFIX;
  if (!/^[A-Za-z0-9_.@=+-]+(?:\/[A-Za-z0-9_.@=+-]+)*$/.test(prefix) || /(^|\/)\.\.?(\/|$)/.test(prefix)) {
    throw usage(`invalid key prefix ${JSON.stringify(prefix)} in store URL ${JSON.stringify(shown)}`);
  }
  const parsed: Parsed = { scheme, authority, prefix, timeoutMs: DEFAULT_TIMEOUT_MS };
  for (const [name, value] of new URLSearchParams(match[4] ?? '')) {
    if (name === 'tls') parsed.tls = value === '' || truthy(value);
    else if (name === 'timeout') parsed.timeoutMs = parseTimeout(value, shown);
    else if (/token|password|secret/i.test(name)) {
      throw usage(
        `store URL ${JSON.stringify(shown)} carries a credential (${name}); persona never takes them from a URL`,
        scheme === 'consul' ? 'Pass the token in CONSUL_HTTP_TOKEN.' : undefined,
      );
    } else {
      throw usage(
        `unknown option "${name}" in store URL ${JSON.stringify(shown)}`,
        'Known options: tls, timeout.',
      );
    }
  }
  return parsed;
}

/** "5s", "1500ms" or a number of milliseconds. */
export function parseTimeout(value: string, shown: string): number {
  const m = /^(\d+)(ms|s)?$/.exec(value.trim());
  const ms = m ? Number(m[1]) * (m[2] === 's' ? 1000 : 1) : Number.NaN;
  if (!(ms >= 100 && ms <= 600_000)) {
    throw usage(
      `invalid timeout ${JSON.stringify(value)} in store URL ${JSON.stringify(shown)}`,
      'Use e.g. timeout=5s or timeout=1500ms (100ms to 10m).',
    );
  }
  return ms;
}

interface Address {
  host: string;
  port: number;
  secure?: boolean;
}

/** host:port, [v6]:port, or http(s)://host:port. */
function parseAddress(text: string, defaultPort: number, what: string): Address {
  const m = /^(?:(https?):\/\/)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?\/?$/.exec(text.trim());
  if (!m) throw usage(`cannot read ${what} ${JSON.stringify(text)}`, 'Use HOST:PORT or http(s)://HOST:PORT.');
  const port = m[3] ? Number(m[3]) : defaultPort;
  if (port < 1 || port > 65535) throw usage(`invalid port in ${what} ${JSON.stringify(text)}`);
  return { host: m[2]!, port, ...(m[1] ? { secure: m[1] === 'https' } : {}) };
}

const suffix = (p: Parsed, secure: boolean) => {
  const options = [
    ...(secure ? ['tls=1'] : []),
    ...(p.timeoutMs !== DEFAULT_TIMEOUT_MS ? [`timeout=${p.timeoutMs}ms`] : []),
  ];
  return options.length > 0 ? `?${options.join('&')}` : '';
};

export function consulTarget(url: string, env: NodeJS.ProcessEnv, shown = url): ConsulTarget {
  const p = parseStoreUrl(url, 'consul', shown);
  let address: Address;
  if (p.authority) address = parseAddress(p.authority, 8500, `host in store URL ${JSON.stringify(shown)}`);
  else if (env.CONSUL_HTTP_ADDR) address = parseAddress(env.CONSUL_HTTP_ADDR, 8500, 'CONSUL_HTTP_ADDR');
  else address = { host: '127.0.0.1', port: 8500 };
  const secure = p.tls ?? address.secure ?? truthy(env.CONSUL_HTTP_SSL);
  const target: ConsulTarget = {
    host: address.host,
    port: address.port,
    secure,
    prefix: p.prefix,
    timeoutMs: p.timeoutMs,
    describe: `consul://${address.host}:${address.port}/${p.prefix}${suffix(p, secure)}`,
  };
  if (env.CONSUL_HTTP_TOKEN) target.token = env.CONSUL_HTTP_TOKEN.trim();
  if (env.CONSUL_CACERT) target.caFile = env.CONSUL_CACERT;
  return target;
}

export function etcdTarget(url: string, env: NodeJS.ProcessEnv, shown = url): EtcdTarget {
  const p = parseStoreUrl(url, 'etcd', shown);
  const raw = p.authority
    ? [p.authority]
    : (env.ETCDCTL_ENDPOINTS ?? '127.0.0.1:2379').split(',').filter((e) => e.trim() !== '');
  if (raw.length === 0) throw usage('ETCDCTL_ENDPOINTS names no endpoint');
  const what = p.authority ? `host in store URL ${JSON.stringify(shown)}` : 'ETCDCTL_ENDPOINTS';
  const addresses = raw.map((e) => parseAddress(e, 2379, what));
  const endpoints = addresses.map((a) => `${(p.tls ?? a.secure) ? 'https' : 'http'}://${a.host}:${a.port}`);
  const anySecure = endpoints.some((e) => e.startsWith('https:'));
  const hosts = addresses.map((a) => `${a.host}:${a.port}`).join(',');
  return {
    endpoints,
    prefix: p.prefix,
    timeoutMs: p.timeoutMs,
    describe: `etcd://${hosts}/${p.prefix}${suffix(p, anySecure)}`,
  };
}
