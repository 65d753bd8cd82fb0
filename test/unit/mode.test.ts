import { describe, expect, test } from 'vitest';
import { resolveMode, type Streams } from '../../src/cli/mode.js';

const streams = (tty: boolean, columns = 80): Streams =>
  ({
    stdin: { isTTY: tty },
    stdout: { isTTY: tty, columns },
    stderr: { isTTY: tty, columns },
  }) as unknown as Streams;

describe('mode resolution', () => {
  test('a terminal without CI is interactive', () => {
    expect(resolveMode({}, {}, streams(true))).toMatchObject({
      interactive: true,
      yes: false,
      colorErr: true,
      spinners: true,
    });
  });
  test.each([['true'], ['1'], ['yes']])('CI=%s is never interactive, even on a terminal', (ci) => {
    expect(resolveMode({}, { CI: ci }, streams(true))).toMatchObject({
      interactive: false,
      ci: true,
      spinners: false,
    });
  });
  test.each([['false'], ['0'], ['']])('CI=%s does not count as CI', (ci) => {
    expect(resolveMode({}, { CI: ci }, streams(true)).interactive).toBe(true);
  });
  test('no terminal is not interactive and --yes does not change that', () => {
    expect(resolveMode({ yes: true }, {}, streams(false))).toMatchObject({ interactive: false, yes: true });
  });
  test('--json is never interactive and never coloured on stdout', () => {
    expect(resolveMode({ json: true }, {}, streams(true))).toMatchObject({
      interactive: false,
      json: true,
      colorOut: false,
    });
  });
  test('NO_COLOR and --no-color turn colours off; FORCE_COLOR turns them on when piped', () => {
    expect(resolveMode({}, { NO_COLOR: '1' }, streams(true))).toMatchObject({
      colorOut: false,
      colorErr: false,
    });
    expect(resolveMode({ color: false }, {}, streams(true))).toMatchObject({
      colorOut: false,
      colorErr: false,
    });
    expect(resolveMode({}, { FORCE_COLOR: '1' }, streams(false))).toMatchObject({
      colorOut: true,
      colorErr: true,
    });
  });
  test('a terminal reporting 0 columns gets no spinner (ora would hang)', () => {
    expect(resolveMode({}, {}, streams(true, 0)).spinners).toBe(false);
  });
});
