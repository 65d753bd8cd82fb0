/**
 * No lab host can take the application (issue 12 §7): demo-web needs 5 GiB, more than lab-2, lab-3 and lab-4 have
 * (1, 4 and 0.5 GiB), so `persona recover lab-1 --yes` runs the profile's provision command, the lab's own
 * provisioner (`lab add-host --spec test/lab/spec/provisioned.json`: 6 GiB, 2 CPUs, a 2 GiB /srv), and recovers onto
 * the host it makes: the built CLI, a real new host (namespace, cgroups, sshd with a checked key), real HAProxy
 * (the new server added through its runtime API), real rsync. A dry run before it creates nothing.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { jsonLines } from '../helpers/cli.js';
import {
  fail,
  labDown,
  labProvisioner,
  labState,
  PROVISIONED_SPEC,
  releaseLab,
  sshExec,
} from '../lab/lab.js';
import {
  expectEveryStepSucceeded,
  expectRecoveredOnto,
  freshLab,
  haproxyServers,
  journal,
  persona,
  workspace,
} from './lab-helpers.js';

const SPEC = PROVISIONED_SPEC;

// The provisioned host stays in the lab until it goes down: the next file starts from a lab as `up` makes it.
afterAll(async () => {
  await labDown();
  releaseLab();
});

describe('recover provisions a host when none fits (built CLI, lab)', () => {
  test('lab-2..4 too small: a dry run only says it would provision; the real run makes lab-5 and recovers onto it', async () => {
    const lab = await freshLab();
    const ws = workspace(lab);
    const file = join(ws.store, 'demo-web.json');
    const profile = JSON.parse(readFileSync(file, 'utf8'));
    profile.required_ram_gb = 5;
    profile.provision = { command: labProvisioner(SPEC), timeout_ms: 180_000 };
    writeFileSync(file, `${JSON.stringify(profile, null, 2)}\n`);
    await fail('lab-1', 'app');

    const dry = await persona(['recover', 'lab-1', '--dry-run', '--json'], ws);
    expect(dry.code, dry.stderr).toBe(0);
    expect(jsonLines(dry.stdout).filter((e) => e.type === 'provision')).toEqual([
      expect.objectContaining({ status: 'would-run', command: labProvisioner(SPEC) }),
    ]);
    expect(Object.keys(labState().hosts)).toEqual(['lab-1', 'lab-2', 'lab-3', 'lab-4']);

    const r = await persona(['recover', 'lab-1', '--yes', '--json'], ws);
    expect(r.code, r.stderr).toBe(0);
    const events = jsonLines(r.stdout);
    // The provisioner ran with what demo-web needs, its stderr shown line by line, and printed lab-5's entry.
    const provision = events.filter((e) => e.type === 'provision');
    expect(provision[0]).toMatchObject({
      status: 'started',
      env: { PERSONA_APP: 'demo-web', PERSONA_FAILED_HOST: 'lab-1', PERSONA_RAM_GB: '5', PERSONA_CORES: '1' },
    });
    expect(provision.some((e) => e.status === 'output' && /adding lab-5/.test(String(e.line)))).toBe(true);
    expect(provision.at(-1)).toMatchObject({
      status: 'succeeded',
      entry: { name: 'lab-5', address: '10.251.72.15', port: 22, user: 'root', labels: { zone: 'c' } },
    });
    // Ranked before (nobody: each too small, with its numbers) and after (lab-5 passes the same requirements).
    const rankings = events.filter((e) => e.type === 'ranking') as Array<{
      hosts: Array<{ host: string; verdict: string; reasons: Array<{ code: string }> }>;
    }>;
    expect(rankings).toHaveLength(2);
    for (const h of rankings[0]!.hosts.filter((x) => x.host !== 'lab-1'))
      expect(h.reasons.map((x) => x.code)).toContain('memory');
    expect(rankings[1]!.hosts.find((h) => h.host === 'lab-5')).toMatchObject({
      verdict: 'eligible',
      rank: 1,
    });
    expect(events.find((e) => e.type === 'select')).toMatchObject({
      answer: 'lab-5',
      by: 'provisioned for this run',
    });
    expectEveryStepSucceeded(events);
    // Traffic through HAProxy reaches lab-5, with lab-1's data (checksums), and the store says it runs there.
    await expectRecoveredOnto(lab, ws, 'lab-5');
    expect(Object.keys(await haproxyServers(lab))).toContain('lab-5');
    // A real lab host with the spec's limits, in the lab's inventory and state.
    const state = labState();
    expect(state.hosts['lab-5']!.expected).toMatchObject({ cpus: 2, memory_bytes: 6 * 1024 ** 3 });
    expect(
      JSON.parse(readFileSync(state.inventory, 'utf8')).hosts.map((h: { name: string }) => h.name),
    ).toContain('lab-5');
    const limit =
      state.cgroup_mode === 'v2'
        ? '/sys/fs/cgroup/memory.max'
        : '/sys/fs/cgroup/memory/memory.limit_in_bytes';
    expect((await sshExec('lab-5', ['cat', limit])).stdout.trim()).toBe(String(6 * 1024 ** 3));
    // The journal records the entry, for a resume.
    const runId = (events.at(-1)!.runs as Array<{ run_id: string }>)[0]!.run_id;
    expect(journal(ws, runId)).toMatchObject({
      target_host: { name: 'lab-5' },
      provisioned: { entry: { name: 'lab-5', address: '10.251.72.15' }, command: labProvisioner(SPEC) },
    });
  });
});
