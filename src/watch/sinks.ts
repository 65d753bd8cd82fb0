/**
 * Where watch's events go besides the reporter: an NDJSON file (appended, one event a line), a command run with
 * the event's JSON on stdin (no shell; only PATH, HOME, LANG, LC_ALL, TZ and PERSONA_WATCH_* in its
 * environment), and a webhook, which may only be a loopback address (127.0.0.0/8).
 */
import { appendFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { PersonaError } from '../errors.js';
import { endedAs, type LocalRunner } from '../util/local-process.js';
import type { WatchEvent } from './types.js';

/** A webhook URL, refused unless it is http to an address in 127.0.0.0/8. */
export function loopbackWebhook(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new PersonaError('E_USAGE', `--webhook ${JSON.stringify(text)} is not a URL`, {
      hint: 'Like --webhook http://127.0.0.1:9000/persona',
    });
  }
  if (url.protocol !== 'http:' || !isIPv4(url.hostname) || !url.hostname.startsWith('127.'))
    throw new PersonaError(
      'E_USAGE',
      `--webhook ${url.origin}: only http to a loopback address (127.0.0.0/8) is allowed`,
      {
        hint: 'Run a local relay (on 127.0.0.1) that forwards to your alerting, or use --on-failure with a command.',
      },
    );
  return url;
}

/** POSTs the event as JSON; the receiver's status, or why there was none. */
export async function postWebhook(
  url: URL,
  event: WatchEvent,
  signal: AbortSignal,
): Promise<string | undefined> {
  const { request } = await import('node:http');
  const body = JSON.stringify(event);
  return await new Promise((resolve) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        signal: AbortSignal.any([signal, AbortSignal.timeout(5000)]),
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve(res.statusCode && res.statusCode < 300 ? undefined : `answered ${res.statusCode}`),
        );
      },
    );
    req.on('error', (e) => resolve(e.message));
    req.end(body);
  });
}

export async function appendEvent(path: string, event: WatchEvent): Promise<void> {
  await appendFile(path, `${JSON.stringify(event)}\n`, { mode: 0o640 });
}

/** Runs the --on-failure command with the event on stdin; why it failed, if it did. */
export async function runOnFailure(
  local: LocalRunner,
  argv: readonly string[],
  event: WatchEvent,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
): Promise<string | undefined> {
  const keep = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ'];
  const r = await local(argv, {
    env: {
      ...Object.fromEntries(keep.filter((k) => env[k] !== undefined).map((k) => [k, env[k]!])),
      PERSONA_WATCH_APP: event.app,
      PERSONA_WATCH_HOST: event.host,
      PERSONA_WATCH_KIND: event.kind,
    },
    timeoutMs: 60_000,
    signal,
    input: `${JSON.stringify(event)}\n`,
  });
  return r.exitCode === 0 ? undefined : `${argv[0]} ${endedAs(r)}`;
}
