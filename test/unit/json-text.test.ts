import { describe, expect, test } from 'vitest';
import { locateJsonError, parseJsonText, positionAt } from '../../src/profile/json-text.js';

describe('JSON text', () => {
  test.each([
    ['{"a":}', '1:6', 'expected a value'],
    ['{"a":1,}', '1:8', 'expected a property name'],
    ['{"a" 1}', '1:6', 'expected ":"'],
    ['{\n  "a": 1\n', '3:1', 'expected "," or "}"'],
    ['[1,2', '1:5', 'expected "," or "]"'],
    ['{"a":"x\n"}', '1:8', 'control character'],
    ['{"a": tru}', '1:7', 'expected a value'],
    ['{"a": 1} x', '1:10', 'after the end'],
    ['', '1:1', 'end of input'],
  ])('%j -> %s %s', (text, where, what) => {
    expect(() => parseJsonText('f.json', text)).toThrow(`f.json:${where}: invalid JSON`);
    expect(() => parseJsonText('f.json', text)).toThrow(what);
  });

  test('valid JSON has no error to locate', () => {
    expect(locateJsonError('{"a": [1, 2.5e3, "x\\n", true, null]}')).toBeUndefined();
  });

  test('too large input is refused before parsing', () => {
    expect(() => parseJsonText('big.json', `"${'x'.repeat(2_000_000)}"`)).toThrow(/limit is 1048576 bytes/);
  });

  test('too deep input is refused with its position, never a stack overflow', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(() => parseJsonText('deep.json', deep)).toThrow('deep.json:1:65: nested deeper than 64 levels');
  });

  test('brackets inside strings do not count as depth', () => {
    expect(parseJsonText('s.json', JSON.stringify({ a: '['.repeat(1000) }))).toEqual({ a: '['.repeat(1000) });
  });

  test('a UTF-8 byte order mark is accepted, and positions still count from the first visible character', () => {
    expect(parseJsonText('bom.json', '\ufeff{"a": 1}')).toEqual({ a: 1 });
    expect(() => parseJsonText('bom.json', '\ufeff{"a":}')).toThrow('bom.json:1:6: invalid JSON');
    expect(() => parseJsonText('bom.json', '\ufeff{\n  "a": 1,\n}')).toThrow('bom.json:3:1: invalid JSON');
    expect(() => parseJsonText('bom.json', `\ufeff${'['.repeat(70)}`)).toThrow('bom.json:1:65: nested');
  });

  test('positions count lines and columns from 1', () => {
    expect(positionAt('ab\ncd', 4)).toEqual({ line: 2, column: 2 });
  });
});
