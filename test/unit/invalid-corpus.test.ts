import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { isPersonaError, ValidationError } from '../../src/errors.js';
import { parseProfileText } from '../../src/profile/validate.js';
import { repoRoot } from '../helpers/cli.js';
import { formattingSlips } from '../helpers/message-slips.js';

const dir = `${repoRoot}test/fixtures/invalid-profiles/`;
const expected = JSON.parse(readFileSync(`${dir}expected-paths.json.txt`, 'utf8')) as Record<
  string,
  string[]
>;
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

describe('the invalid-profile corpus', () => {
  test('has at least 30 profiles, each with its expectation', () => {
    expect(files.length).toBeGreaterThanOrEqual(30);
    expect(Object.keys(expected).sort()).toEqual(files.sort());
  });

  test('the slip check sees the slips it is for', () => {
    expect(formattingSlips('must be x (at most 63 characters) (at most 63 characters), got "a"')).toEqual([
      'repeated parenthetical (at most 63 characters)',
      'two parentheticals in a row',
      'repeated phrase "at most 63"',
      'repeated phrase "most 63 characters"',
    ]);
    expect(formattingSlips('must be be an id, got "a a"')).toEqual(['doubled word "be"']);
    expect(formattingSlips('must be an id, and at most 63 characters, got "x x x x"')).toEqual([]);
  });

  test.each(files)('%s is rejected naming where, in a message without formatting slips', (file) => {
    const text = readFileSync(dir + file, 'utf8');
    let caught: unknown;
    try {
      parseProfileText(file, text);
    } catch (error) {
      caught = error;
    }
    expect(isPersonaError(caught)).toBe(true);
    const paths = expected[file]!;
    if (caught instanceof ValidationError) {
      expect(caught.problems.map((p) => p.path)).toEqual(paths);
      for (const p of caught.problems) {
        expect(p.message.length).toBeGreaterThan(5);
        expect(formattingSlips(p.message), p.message).toEqual([]);
      }
    } else {
      // Syntax, size and depth errors name the line and column instead of a path.
      expect(paths).toEqual(['']);
      expect(formattingSlips((caught as Error).message)).toEqual([]);
      expect((caught as Error).message).toMatch(
        file === 'empty-file.json' ? /is empty/ : new RegExp(`^${file}:\\d+:\\d+: `),
      );
    }
  });
});
