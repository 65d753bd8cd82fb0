import { describe, expect, test } from 'vitest';
import { stripTerminalControls } from '../../src/util/sanitize.js';

const cases: Array<[what: string, input: string, expected: string]> = [
  ['plain text', 'Debian GNU/Linux 12', 'Debian GNU/Linux 12'],
  ['newlines and tabs stay', 'a\tb\nc\n', 'a\tb\nc\n'],
  ['CRLF becomes LF; a lone CR goes', 'a\r\nb\rc', 'a\nbc'],
  ['printable Unicode stays', 'héllo → ✔ 日本', 'héllo → ✔ 日本'],
  ['OSC 52 clipboard write (BEL)', 'ok\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07 done', 'ok done'],
  ['OSC 52 terminated by ST', 'ok\x1b]52;c;Zm9v\x1b\\ done', 'ok done'],
  ['OSC window title', '\x1b]0;pwned\x07title', 'title'],
  ['unterminated OSC swallows the rest', 'x\x1b]52;c;Zm9v', 'x'],
  ['CSI colour', '\x1b[31mred\x1b[0m', 'red'],
  ['CSI cursor and erase', 'a\x1b[2J\x1b[1;1Hb\x1b[?25l', 'ab'],
  ['8-bit CSI', 'a\x9b31mb', 'ab'],
  ['8-bit OSC', 'a\x9d52;c;Zm9v\x07b', 'ab'],
  ['DCS', 'a\x1bPq#0;2;0;0;0\x1b\\b', 'ab'],
  ['APC, PM, SOS', 'a\x1b_apc\x1b\\b\x1b^pm\x1b\\c\x1bXsos\x1b\\d', 'abcd'],
  ['two-byte escapes', 'a\x1bcb\x1b(Bc\x1b7d', 'abcd'],
  ['a lone ESC at the end', 'a\x1b', 'a'],
  ['C0 controls, BEL, backspace, DEL', 'a\x00b\x07c\x08d\x7fe\x1ff', 'abcdef'],
  ['C1 controls', 'a\x85b\x9cc', 'abc'],
];

describe('stripTerminalControls', () => {
  test.each(cases)('%s', (_what, input, expected) => {
    expect(stripTerminalControls(input)).toBe(expected);
  });

  test('nothing it returns contains ESC or another control character', () => {
    let all = '';
    for (let i = 0; i < 0xa0; i++) all += String.fromCharCode(i);
    expect(stripTerminalControls(all + all)).toMatch(/^[\t\n -~]*$/);
  });
});
