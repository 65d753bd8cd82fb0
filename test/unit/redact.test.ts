import { describe, expect, test } from 'vitest';
import { Redactor } from '../../src/ui/redact.js';

describe('redactor (issue 10)', () => {
  test('a JSON-escaped secret (quotes, backslash) is redacted in text', () => {
    const r = new Redactor();
    r.add('a"b\\c-long');
    expect(r.redact(JSON.stringify({ pw: 'a"b\\c-long' }))).toBe('{"pw":"[redacted]"}');
  });

  test('each line of a multi-line secret is redacted where output was split by lines', () => {
    const r = new Redactor();
    r.add('-----BEGIN KEY-----\nAAAABBBBCCCC\nDDDDEEEE\n-----END KEY-----\n');
    expect(r.redact('got DDDDEEEE')).toBe('got [redacted]');
    expect(r.redact(JSON.stringify('-----BEGIN KEY-----\nAAAABBBBCCCC'))).not.toContain('AAAABBBBCCCC');
  });

  test('a 3-character secret is redacted where it stands alone, not inside longer words', () => {
    const r = new Redactor();
    r.add('x7q');
    expect(r.redact('password=x7q; again "x7q"')).toBe('password=[redacted]; again "[redacted]"');
    expect(r.redact('ax7qz')).toBe('ax7qz');
  });

  test('deep keeps the structure valid whatever the secret is', () => {
    const r = new Redactor();
    r.add('"');
    r.add('s3cr3t-value');
    const out = r.deep({ a: ['s3cr3t-value', 'say " hi'], n: 1 });
    expect(out).toEqual({ a: ['[redacted]', 'say [redacted] hi'], n: 1 });
    expect(JSON.parse(JSON.stringify(out))).toEqual(out);
  });
});
