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
  try {
    return JSON.parse(text);
  } catch (error) {
    const found = locateJsonError(text);
    if (found) throw syntaxError(source, text, found.offset, found.message);
    const message = error instanceof Error ? error.message : String(error);
    throw new PersonaError('E_JSON_SYNTAX', `${source}: invalid JSON: ${message}`, { details: { source } });
  }
}

/** A strict JSON scanner used only to locate the first error; depth is already bounded by checkLimits. */
export function locateJsonError(text: string): { offset: number; message: string } | undefined {
  let i = 0;
  const fail = (message: string, at = i): never => {
    throw { offset: at, message };
  };
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
    for (;;) {
      ws();
      if (text[i] !== '"') fail(`unexpected ${describe()}; expected a property name in double quotes`);
      string();
      ws();
      if (text[i] !== ':') fail(`unexpected ${describe()}; expected ":" after the property name`);
      i++;
      value();
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
    for (;;) {
      value();
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
