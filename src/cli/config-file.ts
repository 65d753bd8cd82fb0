/**
 * Reading persona's config file strictly: unknown keys (with a "did you mean"), wrong types and secrets are
 * errors naming the file, the line and the key (exit 2). Relative paths in the file are relative to the file's
 * directory, so the file means the same thing whatever the working directory. Loaded only when a file exists.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument } from 'yaml';
import { PersonaError } from '../errors.js';
import { parseAllowedSources } from '../runbook/secret-allow.js';
import type { ConfigFile, FileValue, SettingDef, SettingKey } from './settings.js';
import { checkArgv, settingDefs } from './settings.js';

const secretKey = /token|passw|secret|credential|api[_-]?key|private[_-]?key|auth/i;

function bad(where: string, message: string, hint?: string): PersonaError {
  return new PersonaError('E_USAGE', `${where}: ${message}`, hint ? { hint } : {});
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

export function suggestKey(key: string): string | undefined {
  const normal = key.toLowerCase().replace(/-/g, '_');
  const ranked = settingDefs
    .map((d) => ({ key: d.key, d: distance(normal, d.key) }))
    .sort((x, y) => x.d - y.d);
  const best = ranked[0]!;
  return best.d <= Math.max(2, Math.floor(best.key.length / 3)) ? best.key : undefined;
}

const tilde = (text: string, env: NodeJS.ProcessEnv) =>
  text === '~' || text.startsWith('~/') ? `${env.HOME ?? ''}${text.slice(1)}` : text;

/** A checked value; paths and file stores made absolute against the file's directory. */
function checkValue(def: SettingDef, raw: unknown, dir: string, env: NodeJS.ProcessEnv, where: string) {
  if (def.kind === 'count') {
    if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < def.min! || raw > def.max!)
      throw bad(where, `${def.key} must be a whole number from ${def.min} to ${def.max}, got ${show(raw)}`);
    return raw;
  }
  if (def.kind === 'patterns') {
    // A YAML list or one comma-separated string.
    const text = Array.isArray(raw) && raw.every((p) => typeof p === 'string') ? raw.join(',') : raw;
    if (typeof text !== 'string')
      throw bad(
        where,
        `${def.key} must be a list of patterns like env:APP_* or file:/etc/app/*, got ${show(raw)}`,
      );
    const parsed = parseAllowedSources(text);
    if ('error' in parsed) throw bad(where, `${def.key}: ${parsed.error}`);
    return parsed.patterns.join(',');
  }
  if (def.kind === 'argv') {
    try {
      const list =
        Array.isArray(raw) && typeof raw[0] === 'string' ? [tilde(raw[0], env), ...raw.slice(1)] : raw;
      return checkArgv(list, dir);
    } catch (error) {
      throw bad(where, `${def.key} ${(error as Error).message}, got ${show(raw)}`);
    }
  }
  if (typeof raw !== 'string' || raw.trim() === '' || /[\0\n]/.test(raw))
    throw bad(where, `${def.key} must be a non-empty string (${def.describe}), got ${show(raw)}`);
  if (def.kind === 'store') {
    if (/\/\/[^/@]*@|[?&](?:token|password|secret)/i.test(raw))
      throw bad(where, `${def.key} carries a credential`, secretHint);
    if (/^[a-z][a-z0-9+.-]*:\/\//.test(raw)) return raw;
    const path = raw.startsWith('file:') ? raw.slice('file:'.length) : raw;
    return `file:${resolve(dir, tilde(path, env))}`;
  }
  if (def.kind === 'inventory' && /^consul:/.test(raw)) return raw;
  const path = tilde(raw, env);
  return isAbsolute(path) ? path : resolve(dir, path);
}

const show = (v: unknown) =>
  v === null ? 'nothing' : typeof v === 'string' || typeof v === 'object' ? JSON.stringify(v) : String(v);

const secretHint =
  'Secrets never go in the config file: pass them in the environment (CONSUL_HTTP_TOKEN, PERSONA_STORE_TOKEN).';

/** Parses and checks the text of a config file. */
export function parseConfigText(path: string, text: string, env: NodeJS.ProcessEnv): ConfigFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number | undefined) => (offset === undefined ? 1 : lines.linePos(offset).line);
  const first = doc.errors[0];
  if (first) {
    const message = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
    throw bad(`${path}:${lineOf(first.pos[0])}`, `invalid YAML: ${message}`);
  }
  const values: ConfigFile['values'] = {};
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null))
    return { path, values };
  if (!isMap(doc.contents))
    throw bad(`${path}:${lineOf(doc.contents.range?.[0])}`, 'must be a mapping of settings (key: value)');
  for (const pair of doc.contents.items) {
    const keyNode = pair.key;
    const line = lineOf(isScalar(keyNode) ? keyNode.range?.[0] : undefined);
    const where = `${path}:${line}`;
    const key = isScalar(keyNode) ? String(keyNode.value) : '';
    if (secretKey.test(key))
      throw bad(where, `"${key}" looks like a secret; persona refuses it here`, secretHint);
    const def = settingDefs.find((d) => d.key === key);
    if (!def) {
      const guess = suggestKey(key);
      throw bad(
        where,
        `unknown key "${key}"${guess ? ` (did you mean "${guess}"?)` : ''}`,
        `Known keys: ${settingDefs.map((d) => d.key).join(', ')}.`,
      );
    }
    const raw = isScalar(pair.value) ? pair.value.value : pair.value === null ? null : pair.value.toJSON();
    const valueLine = isScalar(pair.value) ? lineOf(pair.value.range?.[0]) : line;
    const value: FileValue = { value: checkValue(def, raw, dirname(path), env, where), line: valueLine };
    values[key as SettingKey] = value;
  }
  return { path, values };
}
