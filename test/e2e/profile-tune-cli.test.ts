/**
 * persona profile tune, the built executable on a file store seeded with observations (no lab): a dry run
 * proposes raising required_ram_gb with evidence and writes nothing; --yes writes a version that validates;
 * lowering comes only with its safety margin.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { runBin } from '../helpers/cli.js';
import { memoryHistory, seedObservations } from '../helpers/observations.js';
import { copyOfProfiles } from '../helpers/tmp.js';

describe('persona profile tune (built CLI)', () => {
  test('--dry-run --json proposes a raise with evidence; --yes then writes a valid new version', async () => {
    const store = copyOfProfiles();
    const env = { PERSONA_STORE: `file:${store}`, PERSONA_AUTHOR: 'e2e@test' };
    // 1 GiB required: 40 observations on 2 hosts, p95 2.5 GiB (a 90% target: 2.5 / 0.9 → 3 GiB).
    await seedObservations(
      store,
      memoryHistory(40, (i) => (i % 4 === 3 ? 2.5 : 1.2)),
    );
    const before = readFileSync(join(store, 'demo-web.json'), 'utf8');

    const dry = await runBin(['profile', 'tune', 'demo-web', '--dry-run', '--json'], { env });
    expect(dry.code).toBe(0);
    const proposed = JSON.parse(dry.stdout);
    expect(proposed).toMatchObject({ ok: true, exit_code: 0, written: false, dry_run: true });
    expect(proposed.proposals).toEqual([
      expect.objectContaining({ path: 'required_ram_gb', from: 1, to: 3, direction: 'raise' }),
    ]);
    expect(proposed.proposals[0].evidence).toContain('p95 use 2.5 GiB over 3 days on 2 hosts');
    expect(readFileSync(join(store, 'demo-web.json'), 'utf8')).toBe(before);

    const refused = await runBin(['profile', 'tune', 'demo-web'], { env });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('confirmation required');

    const wrote = await runBin(['profile', 'tune', 'demo-web', '--yes', '--json'], { env });
    expect(wrote.code).toBe(0);
    expect(JSON.parse(wrote.stdout)).toMatchObject({ written: true, new_version: 2 });
    const after = readFileSync(join(store, 'demo-web.json'), 'utf8');
    expect(after).toBe(before.replace('"required_ram_gb": 1', '"required_ram_gb": 3'));
    const validate = await runBin(['profile', 'validate', join(store, 'demo-web.json')]);
    expect(validate.code).toBe(0);
    const history = JSON.parse((await runBin(['profile', 'history', 'demo-web', '--json'], { env })).stdout);
    expect(history.versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);

    // The evidence is unchanged, and 3 GiB covers it now: nothing more to propose.
    const again = JSON.parse(
      (await runBin(['profile', 'tune', 'demo-web', '--dry-run', '--json'], { env })).stdout,
    );
    expect(again.proposals).toEqual([]);
  });

  test('lowering is proposed only with the margin: 2 × the highest host p95, never below 1', async () => {
    const store = copyOfProfiles();
    const env = { PERSONA_STORE: `file:${store}` };
    const file = join(store, 'demo-web.json');
    writeFileSync(file, readFileSync(file, 'utf8').replace('"required_ram_gb": 1', '"required_ram_gb": 8'));
    await seedObservations(
      store,
      memoryHistory(60, (i) => (i % 2 ? 1.1 : 0.9), { days: 6 }),
    );
    const r = await runBin(['profile', 'tune', 'demo-web', '--dry-run', '--json'], { env });
    expect(r.code).toBe(0);
    const [p] = JSON.parse(r.stdout).proposals;
    // web-2's p95 is 1.1 GiB: 2 × 1.1 = 2.2 → 3 GiB, not the 1.2 GiB a bare p95 / 90% would give.
    expect(p).toMatchObject({ path: 'required_ram_gb', from: 8, to: 3, direction: 'lower' });
    expect(p.numbers.p95_highest_host).toBe(1.1);
    expect(p.evidence).toContain('3 keeps 2× the highest p95');
  });
});
