/**
 * Maintenance silences: `persona ack APP --reason …` stores who, when, why and until when at acks/<app>; watch
 * reads it each round and stays silent for that application while it holds.
 */
import { PersonaError } from '../errors.js';
import type { KvBackend } from '../stores/kv.js';
import type { Ack } from './types.js';

export const ackKey = (app: string) => `acks/${app}`;

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "30m", "2h", "1d" (or a sum: "1h30m") in ms; undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+[smhd])+$/.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(/(\d+)([smhd])/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
  return ms > 0 && ms <= 365 * 86_400_000 ? ms : undefined;
}

/** Checks the reason a person gave: some words, one line, no control characters. */
export function checkReason(reason: unknown): string {
  const text = typeof reason === 'string' ? reason.trim() : '';
  if (text === '')
    throw new PersonaError('E_USAGE', 'ack needs --reason TEXT: why the application is silenced', {
      hint: 'persona ack APP --reason "kernel update" --for 2h',
    });
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
  if (/[\u0000-\u001f\u007f-\u009f]/.test(text))
    throw new PersonaError('E_USAGE', '--reason must be one line of text without control characters');
  if (text.length > 500) throw new PersonaError('E_USAGE', '--reason must be at most 500 characters');
  return text;
}

export function parseAck(app: string, value: string): Ack | undefined {
  try {
    const a = JSON.parse(value) as Partial<Ack>;
    if (typeof a.by !== 'string' || typeof a.at !== 'string' || typeof a.reason !== 'string')
      return undefined;
    return {
      app,
      by: a.by,
      at: a.at,
      reason: a.reason,
      ...(typeof a.until === 'string' ? { until: a.until } : {}),
    };
  } catch {
    return undefined;
  }
}

export async function readAck(backend: KvBackend, app: string): Promise<Ack | undefined> {
  const entry = await backend.get(ackKey(app));
  return entry ? parseAck(app, entry.value) : undefined;
}

export async function writeAck(backend: KvBackend, ack: Ack): Promise<void> {
  const r = await backend.txn({ puts: [{ key: ackKey(ack.app), value: JSON.stringify(ack) }] });
  if (!r.ok) throw new PersonaError('E_STORE', `could not store the ack of ${ack.app}`);
}

/** Removes the ack; whether there was one. */
export async function clearAck(backend: KvBackend, app: string): Promise<Ack | undefined> {
  const entry = await backend.get(ackKey(app));
  if (!entry) return undefined;
  const r = await backend.txn({ checks: [{ key: ackKey(app), token: entry.token }], deletes: [ackKey(app)] });
  if (!r.ok) throw new PersonaError('E_CONFLICT', `the ack of ${app} changed meanwhile; run it again`);
  return parseAck(app, entry.value);
}

/** Every stored ack (unreadable ones left out), by application. */
export async function listAcks(backend: KvBackend): Promise<Ack[]> {
  const entries = await backend.list('acks/');
  return entries
    .map((e) => parseAck(e.key.slice('acks/'.length), e.value))
    .filter((a): a is Ack => a !== undefined)
    .sort((a, b) => a.app.localeCompare(b.app));
}

export const ackActive = (a: Ack, now: Date): boolean =>
  a.until === undefined || Date.parse(a.until) > now.getTime();
