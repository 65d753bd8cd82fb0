/**
 * Jump hosts (bastions) with persona's own ssh options. OpenSSH starts a `-J`/ProxyJump hop from the ssh_config
 * alone (only -F and -v are passed on), so a config saying `StrictHostKeyChecking no` for the bastion would win.
 * persona therefore turns every jump, from the inventory or from the user's ssh_config, into the ProxyCommand that
 * -J would have run, with persona's options in front: `ssh <options> -W '[%h]:%p' -- bastion`. ssh hands that text
 * to a shell after expanding its % tokens, so every word is %-escaped and then quoted here (hops must also pass
 * the jumpHost rule of the inventory), and ssh is run with SHELL=/bin/sh so that the quoting is POSIX sh's.
 */
import { PersonaError } from '../errors.js';
import { shellQuote } from './shell-quote.js';

export interface Hop {
  user?: string;
  host: string;
  port?: number;
}

/** One hop as ssh -J spells it: [user@]host[:port], [user@][v6]:port, or ssh://[user@]host[:port]. */
const USER = /^[A-Za-z0-9_][A-Za-z0-9_.@-]*$/;
const HOST_PORT =
  /^(?:\[(?<v6>[0-9A-Fa-f:.]+)\]|(?<host>[A-Za-z0-9_][A-Za-z0-9_.-]*))(?::(?<port>\d{1,5}))?$/;

/** The hops of a -J / ProxyJump value (comma-separated, first hop first); refuses anything else. */
export function parseJump(spec: string, from = 'the jump host'): Hop[] {
  return spec.split(',').map((raw) => {
    const text = raw.trim().replace(/^ssh:\/\//, '');
    // The last "@" separates the user: directory accounts (alice@corp.example.com) have one of their own.
    const at = text.lastIndexOf('@');
    const user = at >= 0 ? text.slice(0, at) : undefined;
    const m = HOST_PORT.exec(text.slice(at + 1));
    const port = m?.groups?.port ? Number(m.groups.port) : undefined;
    if (!m || (user !== undefined && !USER.test(user)) || (port !== undefined && (port < 1 || port > 65535)))
      throw new PersonaError('E_USAGE', `${from} "${spec}": "${raw}" is not [user@]host[:port]`);
    return {
      ...(user ? { user } : {}),
      host: (m.groups?.v6 ?? m.groups?.host)!,
      ...(port ? { port } : {}),
    };
  });
}

/** A hop as people read it: user@host:port. */
export function hopName(hop: Hop): string {
  const host = hop.host.includes(':') ? `[${hop.host}]` : hop.host;
  return `${hop.user ? `${hop.user}@` : ''}${host}${hop.port ? `:${hop.port}` : ''}`;
}

/** ssh expands % tokens in a ProxyCommand before the shell sees it: a literal % is written %%. */
const percent = (word: string) => word.replaceAll('%', '%%');

/**
 * The ProxyCommand that reaches the target through `hops` (first hop first), each hop an ssh with `options`
 * (persona's -F and -o options). Several hops nest: the last hop's ssh reaches its host through the hops before it.
 */
export function proxyCommand(hops: readonly Hop[], options: readonly string[]): string {
  const last = hops.at(-1);
  if (!last) throw new Error('proxyCommand: no hop');
  const before = hops.slice(0, -1);
  const words = [
    'ssh',
    ...options,
    ...(before.length > 0 ? ['-o', `ProxyCommand=${proxyCommand(before, options)}`] : []),
    ...(last.user ? ['-l', last.user] : []),
    ...(last.port ? ['-p', String(last.port)] : []),
  ];
  const hopWords = ['--', last.host];
  // `[%h]:%p` is ssh's own -J form (IPv6 safe); quoted, as the brackets are a glob to the shell.
  return [
    ...words.map((w) => shellQuote(percent(w))),
    '-W',
    "'[%h]:%p'",
    ...hopWords.map((w) => shellQuote(percent(w))),
  ].join(' ');
}
