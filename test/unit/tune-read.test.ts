/**
 * profile tune's inputs and output text: the observation reader (contract keys, unparsable values skipped and
 * counted), outcomes as observations, the minimal text edit of a profile, and --since durations.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { isPersonaError } from '../../src/errors.js';
import { listObservations, parseObservation } from '../../src/feedback/observations.js';
import { parseProfileText } from '../../src/profile/validate.js';
import { FileBackend } from '../../src/stores/file-backend.js';
import { setTopLevelNumbers, topLevelValueSpan } from '../../src/tune/edit.js';
import { mergeObservations, outcomeObservations, readOutcomeObservations } from '../../src/tune/read.js';
import type { Observation } from '../../src/tune/types.js';
import { parseDuration } from '../../src/util/duration.js';
import { repoRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const obs = (at: string, host: string, extra: Partial<Observation> = {}): Observation => ({
  at,
  app: 'demo-web',
  host,
  source: 'monitor',
  ok: true,
  metrics: { cpu_pct: 10 },
  ...extra,
});
const key = (o: Observation, suffix: string) =>
  `observations/${o.app}/${o.host}/${String(Date.parse(o.at)).padStart(13, '0')}-${suffix}`;

describe('listObservations', () => {
  test('lists the app, sorts by time, filters by since, skips and counts what does not parse', async () => {
    const kv = await new FileBackend(tempDir()).open();
    const a = obs('2026-11-20T10:00:00Z', 'web-2');
    const b = obs('2026-11-20T09:00:00Z', 'web-1');
    const old = obs('2026-11-01T00:00:00Z', 'web-1');
    const other = { ...obs('2026-11-20T11:00:00Z', 'db-1'), app: 'orders-db' };
    await kv.txn({
      puts: [
        { key: key(a, 'aaaaaa'), value: JSON.stringify(a) },
        { key: key(b, 'bbbbbb'), value: JSON.stringify(b) },
        { key: key(old, 'cccccc'), value: JSON.stringify(old) },
        { key: key(other, 'dddddd'), value: JSON.stringify(other) },
        { key: 'observations/demo-web/web-1/1764000000000-zzzzzz', value: '{not json' },
        {
          key: 'observations/demo-web/web-1/1764000000001-yyyyyy',
          value: JSON.stringify({ ...a, metrics: { cpu_pct: 'high' } }),
        },
      ],
    });
    const warnings: string[] = [];
    const got = await listObservations(
      kv,
      { app: 'demo-web', since: new Date('2026-11-10T00:00:00Z') },
      (m) => warnings.push(m),
    );
    expect(got.map((o) => o.host)).toEqual(['web-1', 'web-2']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^2 observation\(s\) skipped: unreadable \(observations\/demo-web\/web-1\/1764000000000-zzzzzz: not JSON, …\)$/,
    );
    expect(await listObservations(kv, { app: 'orders-db' })).toEqual([other]);
    expect(await listObservations(kv, { app: 'nothing-here' })).toEqual([]);
  });

  test('terminal control sequences in names are stripped', () => {
    const o = obs('2026-11-20T00:00:00Z', 'web-1\u001b]52;c;ZXZpbA==\u0007', {
      missed: ['cpu\u001b[2J'],
      vantage: 'peer\u001b[31m',
    });
    expect(parseObservation(JSON.stringify(o))).toMatchObject({
      host: 'web-1',
      missed: ['cpu'],
      vantage: 'peer',
    });
  });

  test.each([
    ['[]', 'not a JSON object'],
    [JSON.stringify({ ...obs('yesterday', 'h') }), '"at" is not an ISO time'],
    [JSON.stringify({ ...obs('2026-11-20T00:00:00Z', 'h'), source: 'guess' }), '"source" is not one of'],
    [JSON.stringify({ ...obs('2026-11-20T00:00:00Z', 'h'), ok: 'yes' }), '"ok" is not true or false'],
    [JSON.stringify({ ...obs('2026-11-20T00:00:00Z', 'h'), missed: 'cpu' }), '"missed" is not a list'],
  ])('%s is refused: %s', (text, reason) => {
    expect(parseObservation(text)).toContain(reason);
  });
});

describe('outcomes as observations', () => {
  const outcome = {
    run_id: '20261120T100000Z-demo-web-abc123',
    app: 'demo-web',
    host: 'web-3',
    failed_host: 'web-1',
    profile_version: 2,
    at: '2026-11-20T10:00:00.000Z',
    success: true,
    durations_ms: {},
    metrics: {
      validate: {
        cpu_pct: 12.5,
        memory_pct: 40,
        memory_used_bytes: 400,
        memory_limit_bytes: 1000,
        window_s: 3,
      },
      monitor: null,
    },
  };

  test('the validate sample becomes a validate observation; a null monitor sample none', () => {
    expect(outcomeObservations(JSON.stringify(outcome))).toEqual([
      {
        at: outcome.at,
        app: 'demo-web',
        host: 'web-3',
        source: 'validate',
        run_id: outcome.run_id,
        ok: true,
        metrics: { cpu_pct: 12.5, memory_pct: 40, memory_used_bytes: 400 },
        profile_version: 2,
      },
    ]);
  });

  test('read from the store, filtered by since; an observation of the same run and source wins', async () => {
    const kv = await new FileBackend(tempDir()).open();
    await kv.txn({
      puts: [
        { key: `outcomes/demo-web/${outcome.run_id}`, value: JSON.stringify(outcome) },
        { key: 'outcomes/demo-web/broken', value: 'nope' },
      ],
    });
    const warnings: string[] = [];
    const fromOutcomes = await readOutcomeObservations(kv, { app: 'demo-web' }, (m) => warnings.push(m));
    expect(fromOutcomes).toHaveLength(1);
    expect(warnings[0]).toContain('1 outcome(s) skipped');
    expect(
      await readOutcomeObservations(kv, { app: 'demo-web', since: new Date('2026-11-21T00:00:00Z') }),
    ).toEqual([]);
    const recorded = obs(outcome.at, 'web-3', { source: 'validate', run_id: outcome.run_id });
    expect(mergeObservations([recorded], fromOutcomes)).toEqual([recorded]);
    const other = obs('2026-11-19T00:00:00Z', 'web-1');
    expect(mergeObservations([other], fromOutcomes).map((o) => o.host)).toEqual(['web-1', 'web-3']);
  });
});

describe('setTopLevelNumbers', () => {
  const demo = readFileSync(`${repoRoot}profiles/demo-web.json`, 'utf8');

  test('changes only the numbers named; the rest of the text is byte for byte the same', () => {
    const out = setTopLevelNumbers(demo, [
      { path: 'required_ram_gb', to: 6 },
      { path: 'required_cores', to: 3 },
    ]);
    expect(out).toBe(
      demo
        .replace('"required_ram_gb": 1', '"required_ram_gb": 6')
        .replace('"required_cores": 1', '"required_cores": 3'),
    );
    const { profile } = parseProfileText('tuned', out, 'demo-web');
    expect([profile.required_ram_gb, profile.required_cores]).toEqual([6, 3]);
  });

  test('a nested key or a string that looks like the key is left alone', () => {
    const text = `{"x": {"required_ram_gb": 1}, "note": "\\"required_ram_gb\\": 1", "list": [{"required_ram_gb": 2}],\n "required_ram_gb":0.5 }`;
    const out = setTopLevelNumbers(text, [{ path: 'required_ram_gb', to: 2 }]);
    expect(JSON.parse(out)).toEqual({
      x: { required_ram_gb: 1 },
      note: '"required_ram_gb": 1',
      list: [{ required_ram_gb: 2 }],
      required_ram_gb: 2,
    });
    expect(out.endsWith('"required_ram_gb":2 }')).toBe(true);
  });

  test('a missing key is a bug, not a silent no-op', () => {
    expect(topLevelValueSpan('{"a": 1}', 'required_cores')).toBeUndefined();
    expect(() => setTopLevelNumbers('{"a": 1}', [{ path: 'required_cores', to: 2 }])).toThrow(/no top-level/);
  });
});

describe('parseDuration', () => {
  test.each([
    ['30m', 1_800_000],
    ['36h', 129_600_000],
    ['7d', 604_800_000],
    ['2w', 1_209_600_000],
    ['90s', 90_000],
  ])('%s', (text, ms) => {
    expect(parseDuration(text, '--since')).toBe(ms);
  });

  test.each(['7', '0d', '-1d', '1.5d', '7 days', ''])('%j is a usage error naming the flag', (text) => {
    try {
      parseDuration(text, '--since');
      expect.unreachable();
    } catch (error) {
      expect(isPersonaError(error) && error.code).toBe('E_USAGE');
      expect((error as Error).message).toContain('--since');
    }
  });
});
