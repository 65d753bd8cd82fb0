/**
 * Writes proposals into a profile's text, changing only the numbers they name: the rest of the text, its
 * formatting and key order stay as their author wrote them, so the diff a person reviews is the change and
 * nothing else. Pure.
 */

/**
 * Where the value of a top-level key starts and ends in a JSON object's text, or undefined when the object has
 * no such key. The text must be valid JSON (it was parsed before).
 */
export function topLevelValueSpan(text: string, key: string): { start: number; end: number } | undefined {
  let depth = 0;
  let i = 0;
  let expectKey = false;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"') {
      const end = stringEnd(text, i);
      if (depth === 1 && expectKey && JSON.parse(text.slice(i, end)) === key) {
        let j = end;
        while (/\s|:/.test(text[j] ?? '')) j++;
        return { start: j, end: valueEnd(text, j) };
      }
      expectKey = false;
      i = end;
      continue;
    }
    if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') depth--;
    if (depth === 1 && (ch === '{' || ch === ',')) expectKey = true;
    i++;
  }
  return undefined;
}

/** The index just past the string that starts at `start` (a double quote). */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

/** The index just past the value (a scalar, string, object or array) that starts at `start`. */
function valueEnd(text: string, start: number): number {
  if (text[start] === '"') return stringEnd(text, start);
  if (text[start] === '{' || text[start] === '[') {
    let depth = 0;
    let i = start;
    while (i < text.length) {
      const ch = text[i]!;
      if (ch === '"') {
        i = stringEnd(text, i);
        continue;
      }
      if (ch === '{' || ch === '[') depth++;
      else if (ch === '}' || ch === ']') {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return i;
  }
  let i = start;
  while (i < text.length && !/[\s,}\]]/.test(text[i]!)) i++;
  return i;
}

/** The text with each top-level key set to its new number (the keys tune changes are required fields). */
export function setTopLevelNumbers(
  text: string,
  changes: ReadonlyArray<{ path: string; to: number }>,
): string {
  let out = text;
  for (const { path, to } of changes) {
    const span = topLevelValueSpan(out, path);
    if (!span) throw new Error(`profile text has no top-level "${path}" to change`);
    out = `${out.slice(0, span.start)}${String(to)}${out.slice(span.end)}`;
  }
  return out;
}
