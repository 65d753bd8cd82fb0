/**
 * Parsing JSON text from people: size and depth limits before parsing, and syntax errors that name the line
 * and column. V8's messages do not always carry a position, so on failure a small scanner finds it.
 */
import { PersonaError } from '../errors.js';
import { stripBom } from '../util/text.js';

export interface JsonLimits {
  maxBytes: number;
  maxDepth: number;
}

export const defaultJsonLimits: JsonLimits = { maxBytes: 1024 * 1024, maxDepth: 64 };

export interface Position {
  line: number;
  column: number;
}

export function positionAt(text: string, offset: number): Position {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

function syntaxError(source: string, text: string, offset: number, what: string): PersonaError {
  const { line, column } = positionAt(text, offset);
  return new PersonaError('E_JSON_SYNTAX', `${source}:${line}:${column}: invalid JSON: ${what}`, {
    details: { source, line, column },
    hint: 'Fix the JSON at that position; a profile is one JSON object.',
  });
}

/** Rejects input too large or nested too deep, before JSON.parse sees it. */
function checkLimits(source: string, text: string, limits: JsonLimits): void {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limits.maxBytes) {
    throw new PersonaError(
      'E_INPUT_TOO_LARGE',
      `${source}: input is ${bytes} bytes; the limit is ${limits.maxBytes} bytes`,
      { details: { source, bytes, limit: limits.maxBytes } },
    );
  }
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (++depth > limits.maxDepth) {
        const { line, column } = positionAt(text, i);
        throw new PersonaError(
          'E_INPUT_TOO_LARGE',
          `${source}:${line}:${column}: nested deeper than ${limits.maxDepth} levels`,
          { details: { source, line, column, limit: limits.maxDepth } },
        );
      }
    } else if (c === '}' || c === ']') depth--;
  }
}

export function parseJsonText(
  source: string,
  input: string,
  limits: JsonLimits = defaultJsonLimits,
): unknown {
  const text = stripBom(input);
  checkLimits(source, text, limits);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const found = locateJsonError(text);
    if (found) throw syntaxError(source, text, found.offset, found.message);
    const message = error instanceof Error ? error.message : String(error);
    throw new PersonaError('E_JSON_SYNTAX', `${source}: invalid JSON: ${message}`, { details: { source } });
  }
  // JSON.parse keeps the last of two equal keys: a reader of the text may believe the first.
  const dup = locateJsonError(text, { duplicates: true }) as DuplicateKey | undefined;
  if (dup) {
    const { line, column } = positionAt(text, dup.offset);
    const first = positionAt(text, dup.first);
    throw new PersonaError(
      'E_JSON_SYNTAX',
      `${source}:${line}:${column}: duplicate key ${JSON.stringify(dup.key)} in the object at ${dup.path || '/'} (first at line ${first.line}, column ${first.column}): only one value can apply`,
      {
        details: {
          source,
          line,
          column,
          path: `${dup.path}/${dup.key.replaceAll('~', '~0').replaceAll('/', '~1')}`,
        },
        hint: 'Keep one of the two, with the value you mean.',
      },
    );
  }
  return value;
}

interface DuplicateKey {
  offset: number;
  message: string;
  key: string;
  /** JSON pointer of the object holding both. */
  path: string;
  first: number;
}

/** A strict JSON scanner used only to locate the first error; depth is already bounded by checkLimits. */
export function locateJsonError(
  text: string,
  options: { duplicates?: boolean } = {},
): { offset: number; message: string } | undefined {
  let i = 0;
  const path: string[] = [];
  const fail = (message: string, at = i): never => {
    throw { offset: at, message };
  };
  const pointer = () => path.map((p) => `/${p.replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const describe = () => (i >= text.length ? 'end of input' : `${JSON.stringify(text[i])}`);
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail(`unexpected ${describe()}; expected a value`);
  };
  const string = () => {
    const start = i++;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 34) {
        i++;
        return;
      }
      if (c < 32) fail('control character (such as a newline) inside a string; write it as \\n');
      if (c === 92) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail('bad \\u escape in string');
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail('bad escape in string');
      } else i++;
    }
    fail('unterminated string', start);
  };
  const num = () => {
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) fail(`unexpected ${describe()}; expected a value`);
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') object();
    else if (c === '[') array();
    else if (c === '"') string();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) num();
    else fail(`unexpected ${describe()}; expected a value`);
  };
  const object = () => {
    i++;
    ws();
    if (text[i] === '}') {
      i++;
      return;
    }
    const keys = new Map<string, number>();
    for (;;) {
      ws();
      if (text[i] !== '"') fail(`unexpected ${describe()}; expected a property name in double quotes`);
      const start = i;
      string();
      const key = JSON.parse(text.slice(start, i)) as string;
      if (options.duplicates) {
        const first = keys.get(key);
        if (first !== undefined)
          throw {
            offset: start,
            message: 'duplicate key',
            key,
            path: pointer(),
            first,
          } satisfies DuplicateKey;
        keys.set(key, start);
      }
      ws();
      if (text[i] !== ':') fail(`unexpected ${describe()}; expected ":" after the property name`);
      i++;
      path.push(key);
      value();
      path.pop();
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        return;
      }
      fail(`unexpected ${describe()}; expected "," or "}" after a property value`);
    }
  };
  const array = () => {
    i++;
    ws();
    if (text[i] === ']') {
      i++;
      return;
    }
    for (let n = 0; ; n++) {
      path.push(String(n));
      value();
      path.pop();
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return;
      }
      fail(`unexpected ${describe()}; expected "," or "]" after an array element`);
    }
  };
  try {
    value();
    ws();
    if (i < text.length) fail(`unexpected ${describe()} after the end of the JSON value`);
    return undefined;
  } catch (found) {
    if (found && typeof found === 'object' && 'offset' in found)
      return found as { offset: number; message: string };
    throw found;
  }
}
