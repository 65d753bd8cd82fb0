/**
 * persona profile tune, in-process on a file store: the evidence and proposals, --dry-run writes nothing,
 * no terminal without --yes refuses (exit 3), --yes writes a valid new version, a concurrent change fails the
 * compare-and-set cleanly (exit 4), and lowering comes only with a long history and its margin.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseProfileText } from '../../src/profile/validate.js';
import { FileBackend } from '../../src/stores/file-backend.js';
import { ProfileStore } from '../../src/stores/profile-store.js';
import type { Prompter } from '../../src/ui/prompter.js';
import { runInProcess, ScriptedPrompter } from '../helpers/cli.js';
import { memoryHistory, seedObservations } from '../helpers/observations.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

async function setup(usedGiB: (i: number) => number = (i) => (i % 5 === 4 ? 1.6 : 0.8), days = 3, n = 30) {
  const store = copyOfProfiles();
  const env = { PERSONA_STORE: `file:${store}`, PERSONA_STATE_DIR: tempDir(), PERSONA_AUTHOR: 'tune@test' };
  await seedObservations(store, memoryHistory(n, usedGiB, { days }));
  const profiles = new ProfileStore(await new FileBackend(store).open());
  return { store, env, profiles };
}

const demoText = (store: string) => readFileSync(join(store, 'demo-web.json'), 'utf8');

describe('profile tune demo-web', () => {
  test('--dry-run --json: raises required_ram_gb with its evidence and the diff; the store is unchanged', async () => {
    const { store, env, profiles } = await setup();
    const before = demoText(store);
    const r = await runInProcess(['profile', 'tune', 'demo-web', '--dry-run', '--json'], { env });
    expect(r.code).toBe(0);
    const data = JSON.parse(r.stdout);
    expect(data).toMatchObject({ type: 'result', ok: true, dry_run: true, written: false, version: 1 });
    expect(data.observations).toBe(30);
    expect(data.hosts).toEqual(['web-1', 'web-2']);
    // p95 1.6 GiB against 1 GiB required with a 90% target: 1.6 / 0.9 = 1.8 → 2.
    expect(data.proposals).toEqual([
      expect.objectContaining({ path: 'required_ram_gb', from: 1, to: 2, direction: 'raise' }),
    ]);
    expect(data.proposals[0].evidence).toMatch(
      /^required_ram_gb 1 → 2: p95 use 1\.6 GiB over 3 days on 2 hosts; target memory 90% never missed$/,
    );
    expect(data.diff).toContain('-  "required_ram_gb": 1,\n+  "required_ram_gb": 2,');
    expect(
      data.evidence.find(
        (e: { metric: string; host: string }) => e.metric === 'memory_gib' && e.host === '(all)',
      ),
    ).toMatchObject({ p95: 1.6, requirement: '1 GiB' });
    expect(demoText(store)).toBe(before);
    expect((await profiles.require('demo-web')).version).toBe(1);
    expect(await profiles.history('demo-web')).toHaveLength(1);
  });

  test('human --dry-run: the evidence table, the proposal and the diff on stdout', async () => {
    const { env } = await setup();
    const r = await runInProcess(['profile', 'tune', 'demo-web', '--dry-run'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/demo-web version 1: 30 observation\(s\) from 2 host\(s\) over 3 days/);
    expect(r.stdout).toMatch(/metric .*host .*n .*p50 .*p95 .*target .*requirement .*missed %/);
    expect(r.stdout).toContain('▲ required_ram_gb 1 → 2');
    expect(r.stdout).toContain('+  "required_ram_gb": 2,');
    expect(r.stdout).toContain('dry run: nothing written');
  });

  test('no terminal and no --yes: exit 3 naming --yes, the proposals in the error, nothing written', async () => {
    const { store, env, profiles } = await setup();
    const before = demoText(store);
    const r = await runInProcess(['profile', 'tune', 'demo-web', '--json'], { env });
    expect(r.code).toBe(3);
    const data = JSON.parse(r.stdout);
    expect(data.error.code).toBe('E_CONFIRM_REQUIRED');
    expect(data.error.hint).toContain('--yes');
    expect(data.error.details.proposals[0]).toMatchObject({ path: 'required_ram_gb', to: 2 });
    expect(demoText(store)).toBe(before);
    expect((await profiles.require('demo-web')).version).toBe(1);
  });

  test('--yes writes a new version that validates, with the evidence in the history', async () => {
    const { store, env, profiles } = await setup();
    const r = await runInProcess(['profile', 'tune', 'demo-web', '--yes', '--json'], { env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ written: true, new_version: 2, version: 1 });
    const now = await profiles.require('demo-web');
    expect(now.version).toBe(2);
    expect(parseProfileText('tuned', now.text, 'demo-web').profile.required_ram_gb).toBe(2);
    expect(demoText(store)).toBe(
      (await profiles.version('demo-web', 1))!.text.replace('"required_ram_gb": 1', '"required_ram_gb": 2'),
    );
    expect(now.meta).toMatchObject({ author: 'tune@test' });
    expect(now.meta?.message).toMatch(/^profile tune: required_ram_gb 1 → 2: p95 use 1\.6 GiB/);
    expect(r.stderr).toContain('yes (--yes)');
  });

  test('interactive: the evidence is shown before the question; no keeps version 1, yes writes version 2', async () => {
    const { env, profiles } = await setup();
    const no = new ScriptedPrompter([
      { match: /^Write a new version of demo-web .*required_ram_gb 1 → 2/, answer: false },
    ]);
    const declined = await runInProcess(['profile', 'tune', 'demo-web'], { env, tty: true, prompter: no });
    expect(declined.code).toBe(3);
    expect(declined.stdout).toContain('▲ required_ram_gb 1 → 2');
    expect(declined.stderr).toContain('not confirmed: demo-web stays at version 1');
    expect((await profiles.require('demo-web')).version).toBe(1);
    const yes = new ScriptedPrompter([{ match: /^Write a new version of demo-web/, answer: true }]);
    const wrote = await runInProcess(['profile', 'tune', 'demo-web'], { env, tty: true, prompter: yes });
    expect(wrote.code).toBe(0);
    expect(wrote.stdout).toContain('wrote demo-web version 2 (was 1)');
    expect(yes.asked).toHaveLength(1);
  });

  test('a change made while the question was open fails the compare-and-set: exit 4, theirs kept', async () => {
    const { store, env, profiles } = await setup();
    const theirs = demoText(store).replace('"required_cores": 1', '"required_cores": 2');
    const racing: Prompter = {
      async confirm() {
        const current = await profiles.require('demo-web');
        await profiles.put(
          'demo-web',
          theirs,
          { token: current.token },
          { author: 'bob@test', at: new Date().toISOString() },
        );
        return true;
      },
      async select() {
        throw new Error('unexpected select');
      },
    };
    const r = await runInProcess(['profile', 'tune', 'demo-web'], { env, tty: true, prompter: racing });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/profile "demo-web" changed in file:.* since it was read: nothing was written/);
    const now = await profiles.require('demo-web');
    expect(now.version).toBe(2);
    expect(now.text).toBe(theirs);
    expect(now.meta?.author).toBe('bob@test');
  });

  test('lowering: proposed after 5 quiet days with 2 × the highest p95; not after 2 days', async () => {
    // required_ram_gb 4, use 0.5-0.7 GiB: 2 × 0.7 = 1.4 → 2.
    const quiet = (i: number) => (i % 2 ? 0.7 : 0.5);
    const long = await setup(quiet, 5, 40);
    const high = demoText(long.store).replace('"required_ram_gb": 1', '"required_ram_gb": 4');
    const v1 = await long.profiles.require('demo-web');
    await long.profiles.put(
      'demo-web',
      high,
      { token: v1.token },
      { author: 'x', at: new Date().toISOString() },
    );
    const r = await runInProcess(['profile', 'tune', 'demo-web', '--dry-run', '--json'], { env: long.env });
    const data = JSON.parse(r.stdout);
    expect(data.proposals).toEqual([
      expect.objectContaining({ path: 'required_ram_gb', from: 4, to: 2, direction: 'lower' }),
    ]);
    expect(data.proposals[0].to).toBeGreaterThanOrEqual(2 * data.proposals[0].numbers.p95_highest_host);

    const short = await setup(quiet, 2, 40);
    const s1 = await short.profiles.require('demo-web');
    await short.profiles.put(
      'demo-web',
      high,
      { token: s1.token },
      { author: 'x', at: new Date().toISOString() },
    );
    const s = JSON.parse(
      (await runInProcess(['profile', 'tune', 'demo-web', '--dry-run', '--json'], { env: short.env })).stdout,
    );
    expect(s.proposals).toEqual([]);
    expect(s.notes.join('\n')).toMatch(/not lowered: the observations span 2 days, not 3 days/);
    expect(s.diff).toBe('');
  });

  test('too little evidence (one host): exit 0, nothing proposed or written, and why', async () => {
    const store = copyOfProfiles();
    const env = { PERSONA_STORE: `file:${store}`, PERSONA_STATE_DIR: tempDir() };
    await seedObservations(
      store,
      memoryHistory(30, () => 3, { hosts: ['web-1'] }),
    );
    const r = await runInProcess(['profile', 'tune', 'demo-web', '--yes'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('every observation is from one host (web-1)');
    expect(r.stdout).toContain('nothing to propose');
    expect(readFileSync(join(store, 'demo-web.json'), 'utf8')).not.toContain('"required_ram_gb": 4');
  });

  test('--since narrows the window: older observations are not read', async () => {
    const { env } = await setup();
    const r = await runInProcess(['profile', 'tune', 'demo-web', '--since', '1d', '--dry-run', '--json'], {
      env,
    });
    const data = JSON.parse(r.stdout);
    expect(data.observations).toBeGreaterThan(5);
    expect(data.observations).toBeLessThan(15);
  });

  test('bad input: a bad --since exits 2, an unknown profile exits 4', async () => {
    const { env } = await setup();
    const since = await runInProcess(['profile', 'tune', 'demo-web', '--since', 'last week', '--json'], {
      env,
    });
    expect(since.code).toBe(2);
    expect(JSON.parse(since.stdout).error.message).toContain('--since "last week": not a duration');
    const missing = await runInProcess(['profile', 'tune', 'nope', '--dry-run'], { env });
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain('profile "nope" not found');
  });
});
