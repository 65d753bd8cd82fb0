import { describe, expect, test } from 'vitest';
import { PersonaError } from '../../src/errors.js';
import { selectApps } from '../../src/recover/apps.js';

const sources = { inventory: 'inv.json', store: 'file:store', exampleApp: 'demo-web' };
const where = new Map([
  ['api', 'web-1'],
  ['db', 'web-1'],
  ['cache', 'web-2'],
]);

describe('selectApps: what recover HOST moves', () => {
  test.each([
    ['everything recorded on the host, sorted', 'web-1', [], { apps: ['api', 'db'], undeclared: [] }],
    ['--app narrows', 'web-1', ['db'], { apps: ['db'], undeclared: [] }],
    ['--app nothing records: to declare', 'web-1', ['new'], { apps: ['new'], undeclared: ['new'] }],
    ['a mix', 'web-1', ['api', 'new'], { apps: ['api', 'new'], undeclared: ['new'] }],
    ['an --app given twice is asked once', 'web-3', ['new', 'new'], { apps: ['new'], undeclared: ['new'] }],
  ])('%s', (_, host, requested, expected) => {
    const got = selectApps(host, requested, where, sources);
    expect(got).toEqual(expected);
  });

  test('nothing recorded on the host: not found, naming both ways to declare it, with an example', () => {
    let error: unknown;
    try {
      selectApps('web-3', [], where, sources);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PersonaError);
    const e = error as PersonaError;
    expect(e.exitCode).toBe(4);
    expect(e.message).toBe('no application is recorded on web-3 (inventory inv.json, store file:store)');
    expect(e.hint).toContain('"apps": ["demo-web"] on web-3');
    expect(e.hint).toContain('persona_apps=demo-web');
    expect(e.hint).toContain('`persona recover web-3 --app demo-web`');
  });

  test('--app recorded on another host is refused (recording it here would move it)', () => {
    expect(() => selectApps('web-1', ['cache'], where, sources)).toThrow(
      'cache is recorded on web-2, not on web-1',
    );
  });
});
