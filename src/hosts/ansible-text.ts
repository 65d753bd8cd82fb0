/**
 * The two text rules of Ansible's INI inventory, so that persona reads a line as Ansible does: a host line is split
 * like Python's `shlex.split(line, comments=True)`, and every value goes through `ast.literal_eval` (so `22` is a
 * number, `True` a boolean, `"['a']"` a list and `{{ x }}` stays a string).
 */

/** Python's shlex.split(text, comments=True) in POSIX mode; throws on an unclosed quote or a trailing escape. */
export function shlexSplit(text: string): string[] {
  const tokens: string[] = [];
  let token = '';
  let inToken = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      if (inToken) tokens.push(token);
      token = '';
      inToken = false;
      i++;
    } else if (c === '#') {
      break;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error('No closing quotation');
      token += text.slice(i + 1, end);
      inToken = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      let closed = false;
      while (i < text.length) {
        const d = text[i]!;
        if (d === '"') {
          closed = true;
          i++;
          break;
        }
        if (d === '\\' && i + 1 < text.length && (text[i + 1] === '"' || text[i + 1] === '\\')) {
          token += text[i + 1];
          i += 2;
        } else {
          token += d;
          i++;
        }
      }
      if (!closed) throw new Error('No closing quotation');
      inToken = true;
    } else if (c === '\\') {
      if (i + 1 >= text.length) throw new Error('No escaped character');
      token += text[i + 1];
      inToken = true;
      i += 2;
    } else {
      token += c;
      inToken = true;
      i++;
    }
  }
  if (inToken) tokens.push(token);
  return tokens;
}

/** A Python value as JSON would carry it: strings, numbers, booleans, null, lists (tuples, sets) and maps. */
export type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

class NotLiteral extends Error {}

/** Python's ast.literal_eval, or the text itself when it is not a literal (what Ansible's INI parser does). */
export function pyLiteral(text: string): PyValue {
  try {
    const p = new LiteralParser(text);
    const value = p.value();
    p.end();
    return value;
  } catch (error) {
    if (error instanceof NotLiteral) return text;
    throw error;
  }
}

const ESCAPES: Record<string, string> = {
  n: '\n',
  t: '\t',
  r: '\r',
  '0': '\0',
  a: '\x07',
  b: '\b',
  f: '\f',
  v: '\v',
  '\\': '\\',
  "'": "'",
  '"': '"',
  '\n': '',
};

class LiteralParser {
  private i = 0;
  private depth = 0;
  constructor(private readonly s: string) {
    // Python refuses leading indentation at the top level.
    if (/^[ \t]/.test(s)) throw new NotLiteral();
  }

  private skip(): void {
    for (;;) {
      while (this.i < this.s.length && /[ \t\f]/.test(this.s[this.i]!)) this.i++;
      if (this.depth > 0) while (this.i < this.s.length && /[\r\n]/.test(this.s[this.i]!)) this.i++;
      if (this.s[this.i] === '#') {
        while (this.i < this.s.length && this.s[this.i] !== '\n') this.i++;
        continue;
      }
      if (this.s[this.i] === '\\' && this.s[this.i + 1] === '\n') {
        this.i += 2;
        continue;
      }
      break;
    }
  }

  end(): void {
    this.skip();
    while (this.i < this.s.length && /[\r\n]/.test(this.s[this.i]!)) {
      this.i++;
      this.skip();
    }
    if (this.i !== this.s.length) throw new NotLiteral();
  }

  private eat(c: string): boolean {
    this.skip();
    if (this.s[this.i] === c) {
      this.i++;
      return true;
    }
    return false;
  }

  value(): PyValue {
    this.skip();
    const c = this.s[this.i];
    if (c === undefined) throw new NotLiteral();
    if (c === '[' || c === '(') return this.sequence(c === '[' ? ']' : ')');
    if (c === '{') return this.mapOrSet();
    if (c === '"' || c === "'" || /[rRbBuU]/.test(c)) {
      const str = this.strings();
      if (str !== undefined) return str;
    }
    if (c === '-' || c === '+') {
      this.i++;
      this.skip();
      const n = this.number();
      if (typeof n !== 'number') throw new NotLiteral();
      return c === '-' ? -n : n;
    }
    if (/[0-9.]/.test(c)) return this.number();
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.s.slice(this.i))?.[0];
    if (word === 'True' || word === 'False' || word === 'None') {
      this.i += word.length;
      return word === 'True' ? true : word === 'False' ? false : null;
    }
    throw new NotLiteral();
  }

  private number(): number {
    const rest = this.s.slice(this.i);
    const m =
      /^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:\d(?:_?\d)*)?\.(?:\d(?:_?\d)*)?(?:[eE][-+]?\d(?:_?\d)*)?|\d(?:_?\d)*[eE][-+]?\d(?:_?\d)*|[1-9](?:_?\d)*|0+(?:_?0)*)(?![A-Za-z0-9_.])/.exec(
        rest,
      );
    if (!m || m[0] === '.' || /^\.[eE]/.test(m[0])) throw new NotLiteral();
    this.i += m[0].length;
    const t = m[0].replace(/_/g, '');
    if (/^0[oO]/.test(t)) return Number.parseInt(t.slice(2), 8);
    if (/^0[bB]/.test(t)) return Number.parseInt(t.slice(2), 2);
    return Number(t);
  }

  /** One string literal or several adjacent ones; undefined when the prefix letters were a name. */
  private strings(): string | undefined {
    let out: string | undefined;
    for (;;) {
      this.skip();
      const m = /^([rRbBuU]{0,2})(['"])/.exec(this.s.slice(this.i));
      if (!m) return out;
      const prefix = m[1]!.toLowerCase();
      if (prefix && !['r', 'b', 'u', 'rb', 'br'].includes(prefix)) return out;
      this.i += m[0].length;
      const q = m[2]!;
      const triple = this.s.startsWith(q + q, this.i);
      if (triple) this.i += 2;
      const close = triple ? q.repeat(3) : q;
      let str = '';
      for (;;) {
        if (this.i >= this.s.length) throw new NotLiteral();
        if (this.s.startsWith(close, this.i)) {
          this.i += close.length;
          break;
        }
        const d = this.s[this.i]!;
        if (d === '\n' && !triple) throw new NotLiteral();
        if (d === '\\') {
          const e = this.s[this.i + 1] ?? '';
          if (prefix.includes('r')) {
            str += d + e;
          } else if (e in ESCAPES) {
            str += ESCAPES[e];
          } else if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(this.s.slice(this.i + 2, this.i + 4))) {
            str += String.fromCharCode(Number.parseInt(this.s.slice(this.i + 2, this.i + 4), 16));
            this.i += 2;
          } else {
            str += d + e;
          }
          this.i += 2;
          continue;
        }
        str += d;
        this.i++;
      }
      out = (out ?? '') + str;
    }
  }

  private sequence(close: string): PyValue {
    this.i++;
    this.depth++;
    const items: PyValue[] = [];
    let commas = 0;
    while (!this.eat(close)) {
      if (items.length > commas) throw new NotLiteral();
      items.push(this.value());
      if (this.eat(',')) commas++;
    }
    this.depth--;
    // (x) is x, not a tuple.
    if (close === ')' && items.length === 1 && commas === 0) return items[0]!;
    return items;
  }

  private mapOrSet(): PyValue {
    this.i++;
    this.depth++;
    if (this.eat('}')) {
      this.depth--;
      return {};
    }
    const first = this.value();
    if (this.eat(':')) {
      const map: Record<string, PyValue> = {};
      map[keyOf(first)] = this.value();
      while (this.eat(',')) {
        if (this.eat('}')) {
          this.depth--;
          return map;
        }
        const k = this.value();
        if (!this.eat(':')) throw new NotLiteral();
        map[keyOf(k)] = this.value();
      }
      if (!this.eat('}')) throw new NotLiteral();
      this.depth--;
      return map;
    }
    if (first !== null && typeof first === 'object') throw new NotLiteral(); // unhashable in a set
    const set: PyValue[] = [first];
    while (this.eat(',')) {
      if (this.eat('}')) {
        this.depth--;
        return set;
      }
      set.push(this.value());
    }
    if (!this.eat('}')) throw new NotLiteral();
    this.depth--;
    return set;
  }
}

function keyOf(k: PyValue): string {
  if (k !== null && typeof k === 'object') throw new NotLiteral();
  return String(k);
}
