/**
 * Text from other machines (probe output, remote stderr, step logs) must not drive the user's terminal: an OSC 52
 * sequence writes the clipboard, others retitle the window, hide text or move the cursor. This strips every
 * terminal control sequence and control character, keeping newlines, tabs and printable Unicode. persona's own
 * colours are added after remote text has passed through here, so they survive.
 */

// Escape sequences, 7-bit (ESC ...) and 8-bit (C1 introducers), payload included. An unterminated string
// sequence runs to the end of the text, as a terminal would swallow it.
const SEQUENCE = new RegExp(
  [
    // CSI: ESC [ or 0x9b, parameters, intermediates, a final byte.
    '(?:\\x1b\\[|\\x9b)[0-?]*[ -/]*[@-~]',
    // OSC: ESC ] or 0x9d, ended by BEL, ST (ESC \ or 0x9c), or the end of the text.
    '(?:\\x1b\\]|\\x9d)[^\\x07\\x1b\\x9c]*(?:\\x07|\\x1b\\\\|\\x9c|$)',
    // DCS, SOS, PM, APC: ESC P/X/^/_ or 0x90/0x98/0x9e/0x9f, ended by ST or the end of the text.
    '(?:\\x1b[PX^_]|[\\x90\\x98\\x9e\\x9f])[^\\x1b\\x9c]*(?:\\x1b\\\\|\\x9c|$)',
    // Any other escape: ESC, intermediates, a final byte (ESC c, ESC ( B, ESC 7, ...); or a lone ESC.
    '\\x1b[ -/]*[0-~]?',
  ].join('|'),
  'g',
);

// C0 controls except tab and newline, DEL, and C1 controls.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** The text with terminal control sequences and characters removed; CRLF becomes LF. */
export function stripTerminalControls(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(SEQUENCE, '').replace(CONTROL, '');
}
