/**
 * Text from people: files, stdin and editors may start with a UTF-8 byte order mark (Windows editors write one).
 * It is not part of the document, so it goes before parsing: JSON.parse refuses it, and positions are counted
 * from the first character an editor shows.
 */
const BOM = 0xfeff;

export function stripBom(text: string): string {
  return text.charCodeAt(0) === BOM ? text.slice(1) : text;
}
