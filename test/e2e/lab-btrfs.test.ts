/**
 * `data.migration: snapshot` end to end in the lab: the built CLI moves demo-web's data from lab-1 to lab-2
 * through btrfs snapshots (a read-only snapshot on lab-1, `btrfs send | btrfs receive` through this machine, a
 * writable snapshot as the data path on lab-2), against the lab of spec/btrfs.json, where lab-1 and lab-2 keep /srv
 * on btrfs with the data path a subvolume, and lab-3 and lab-4 keep ext4. Data identity and traffic are checked as
 * in lab-recover.test.ts: /checksum through the real HAProxy equals lab-1's original data, and HAProxy serves lab-2.
 * A planned move (`persona migrate`) of demo-web from lab-1 to lab-2 while a writer appends to its data sends a
 * snapshot in full while it serves and only the difference after the stop (`send -p`); lab-2 ends with lab-1's data.
 * A target whose /srv is ext4 is rejected by the ranking (the probe reports the data path's filesystem), by name,
 * before anything runs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { requireBinaries } from '../helpers/binaries.js';
import { jsonLines } from '../helpers/cli.js';
import { BTRFS_SPEC, fail, httpGet, type LabState, labDown, labUp, releaseLab, sshExec } from '../lab/lab.js';
import {
  demoWriter,
  expectEveryStepSucceeded,
  expectRecoveredOnto,
  haproxyAdminStates,
  journal,
  persona,
  runIdIn,
  treeChecksum,
  type Workspace,
  workspace,
} from './lab-helpers.js';

const spec = { spec: BTRFS_SPEC };
const DATA = '/srv/demo-web/data';
const SNAPSHOTS = '/srv/demo-web/.persona-snapshots';

interface MigrateOutputs {
  source: { kind: string; host?: string };
  method: string;
  transfers: Array<{ path: string; snapshot: string; transferred_bytes: number; parent?: string }>;
  recovery_points: Array<{ path: string; snapshot: string; taken_at: string }>;
  verified: Array<{ path: string; files: number; bytes: number; digest: string }>;
}
interface StepRecord {
  kind: string;
  status: string;
  error?: { code: string; message: string; hint?: string };
  outputs?: MigrateOutputs;
  actions?: Array<{ id: string; status: string }>;
}

beforeAll(() => {
  // The lab makes the btrfs images on this machine; the hosts get btrfs-progs through their packages.
  requireBinaries('mkfs.btrfs', 'btrfs');
});

afterAll(async () => {
  // The next test file's labUp() brings up the default lab: it must find none up.
  await labDown(spec);
  releaseLab();
});

/** Every test starts from the btrfs lab as `up` leaves it: demo-web on lab-1, its data path a subvolume. */
async function freshBtrfsLab(): Promise<LabState> {
  await labDown();
  return await labUp(spec);
}

/** demo-web with data.migration snapshot, and btrfs-progs in its software_stack (configure installs it). */
function snapshotWorkspace(lab: LabState): Workspace {
  const ws = workspace(lab);
  const file = join(ws.store, 'demo-web.json');
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  profile.data.migration = 'snapshot';
  profile.software_stack = [...profile.software_stack, 'btrfs-progs'];
  writeFileSync(file, JSON.stringify(profile, null, 2));
  return ws;
}

const sh = (host: string, script: string) => sshExec(host, ['sh', '-c', script]);

describe('data.migration snapshot (built CLI, btrfs lab)', () => {
  test('lab-1 → lab-2: snapshot, send and receive through this machine; the same data served through HAProxy from lab-2', async () => {
    const lab = await freshBtrfsLab();
    expect(lab.hosts['lab-1']!.srv_fs).toBe('btrfs');
    expect(lab.hosts['lab-2']!.srv_fs).toBe('btrfs');
    // The lab made the data path a subvolume on lab-1.
    expect((await sshExec('lab-1', ['btrfs', 'subvolume', 'show', DATA])).exitCode).toBe(0);
    const ws = snapshotWorkspace(lab);
    await fail('lab-1', 'app');
    const started = Date.now();
    const r = await persona(['recover', 'lab-1', '--target', 'lab-2', '--yes', '--json'], ws);
    expect(r.code, r.stderr).toBe(0);
    const events = jsonLines(r.stdout);
    expect(events.at(-1)).toMatchObject({
      type: 'result',
      ok: true,
      exit_code: 0,
      runs: [{ app: 'demo-web', status: 'succeeded', target_host: 'lab-2' }],
    });
    expectEveryStepSucceeded(events);
    // Traffic and data identity: HAProxy serves lab-2, /checksum equals lab-1's original data, lab-1 is out.
    await expectRecoveredOnto(lab, ws, 'lab-2');

    const runId = runIdIn(r.stdout);
    const steps = (journal(ws, runId) as unknown as { steps: StepRecord[] }).steps;
    const migrate = steps.find((s) => s.kind === 'migrate')!;
    const snapshot = `${SNAPSHOTS}/data@${runId}`;
    expect(migrate.outputs).toMatchObject({
      source: { kind: 'failed-host', host: 'lab-1' },
      method: 'snapshot',
      transfers: [{ path: DATA, snapshot }],
      recovery_points: [{ path: DATA, snapshot }],
      verified: [{ path: DATA, files: 5 }],
    });
    const out = migrate.outputs!;
    // A full send: at least the ~18 MB of seeded data went through the stream.
    expect(out.transfers[0]!.parent).toBeUndefined();
    expect(out.transfers[0]!.transferred_bytes).toBeGreaterThan(18 * 10 ** 6);
    // The recovery point is the snapshot's time, taken during this run (btrfs prints local time to the second).
    const takenAt = Date.parse(out.recovery_points[0]!.taken_at);
    expect(takenAt).toBeGreaterThanOrEqual(Math.floor(started / 1000) * 1000 - 1000);
    expect(takenAt).toBeLessThanOrEqual(Date.now());
    expect(migrate.actions!.map((a) => [a.id, a.status])).toEqual([
      [`snapshot:${DATA}`, 'done'],
      [`send:${DATA}`, 'done'],
      [`install:${DATA}`, 'done'],
      [`cleanup:${DATA}`, 'done'],
    ]);

    // On lab-2 the data path is a writable btrfs subvolume, a snapshot of what was received.
    const show = await sshExec('lab-2', ['btrfs', 'subvolume', 'show', DATA]);
    expect(show.exitCode, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/^\s*Parent UUID:\s+[0-9a-f-]{36}$/m);
    expect((await sshExec('lab-2', ['btrfs', 'property', 'get', '-ts', DATA, 'ro'])).stdout.trim()).toBe(
      'ro=false',
    );
    // Owners travelled by name (the profile creates its user demo on lab-2 with its own ids).
    const owners = async (host: string) =>
      (await sh(host, `cd ${DATA} && find . -printf '%m %u:%g %p\\n' | LC_ALL=C sort`)).stdout;
    expect(await owners('lab-2')).toBe(await owners('lab-1'));
    // persona's snapshots are gone from both hosts; lab-1's data is as it was.
    for (const host of ['lab-1', 'lab-2'])
      expect((await sshExec(host, ['test', '-e', SNAPSHOTS])).exitCode, host).not.toBe(0);
    const onLab1 = await sh(
      'lab-1',
      `cd ${DATA} && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum | sha256sum | cut -d" " -f1`,
    );
    expect(onLab1.stdout.trim()).toBe(lab.apps['demo-web']!.data_checksum);
  });

  test('a target whose /srv is ext4 (lab-3) is rejected by the ranking, naming the host, the path and the filesystem; nothing runs (exit 4)', async () => {
    const lab = await freshBtrfsLab();
    expect(lab.hosts['lab-3']!.srv_fs).toBe('ext4');
    const ws = snapshotWorkspace(lab);
    const before = (await sshExec('lab-3', ['ls', '-la', '/srv'])).stdout;
    expect((await sshExec('lab-3', ['test', '-e', DATA])).exitCode).not.toBe(0);
    const refusal =
      /^lab-3:\/srv\/demo-web\/data is on ext2\/ext3 \(its parent \/srv(\/demo-web)? is\), not btrfs: data\.migration snapshot receives btrfs snapshots there$/;
    const fix = 'put /srv/demo-web/data on a btrfs subvolume on lab-3, or use data.migration rsync';

    // hosts rank: lab-3 (and lab-4, also ext4) rejected with the filesystem's reason; lab-2 eligible.
    const ranked = await persona(
      ['hosts', 'rank', '--profile', 'demo-web', '--failed', 'lab-1', '--json'],
      ws,
    );
    const hosts = (
      jsonLines(ranked.stdout)[0] as {
        hosts: Array<{
          host: string;
          verdict: string;
          reasons: Array<{ code: string; message: string; fix?: string }>;
        }>;
      }
    ).hosts;
    expect(hosts.find((h) => h.host === 'lab-2')).toMatchObject({ verdict: 'eligible' });
    expect(hosts.find((h) => h.host === 'lab-3')).toMatchObject({
      verdict: 'rejected',
      reasons: [{ code: 'filesystem', message: expect.stringMatching(refusal), fix }],
    });

    await fail('lab-1', 'app');
    const r = await persona(['recover', 'lab-1', '--target', 'lab-3', '--yes', '--json'], ws);
    // README's exit codes: 4, a precondition failed and nothing changed.
    expect(r.code, r.stderr).toBe(ExitCode.precondition);
    const events = jsonLines(r.stdout);
    expect(events.at(-1)).toMatchObject({
      type: 'result',
      ok: false,
      exit_code: 4,
      error: {
        code: 'E_NO_CANDIDATE',
        message: expect.stringContaining(
          '--target lab-3 cannot take demo-web: lab-3:/srv/demo-web/data is on ext2/ext3',
        ),
        hint: expect.stringContaining(fix),
      },
    });
    // Before any step: lab-1 was not fenced (no step ran), lab-3 was not configured or touched, no snapshot taken.
    expect(events.some((e) => (e as { type?: string }).type === 'step')).toBe(false);
    expect((await sshExec('lab-3', ['test', '-e', DATA])).exitCode).not.toBe(0);
    expect((await sshExec('lab-3', ['ls', '-la', '/srv'])).stdout).toBe(before);
    expect((await sshExec('lab-1', ['test', '-e', SNAPSHOTS])).exitCode).not.toBe(0);
  });

  test('persona migrate lab-1 → lab-2 while a writer appends: a full snapshot sent while serving, only the difference after the stop; every write on lab-2, HAProxy serves lab-2, the downtime reported', async () => {
    const lab = await freshBtrfsLab();
    const ws = snapshotWorkspace(lab);
    expect((await sshExec('lab-1', ['sh', '-c', demoWriter(DATA)])).exitCode).toBe(0);
    const r = await persona(['migrate', 'demo-web', '--to', 'lab-2', '--yes', '--json'], ws);
    expect(r.code, r.stderr).toBe(0);
    const events = jsonLines(r.stdout);
    const result = events.at(-1)!;
    expect(result).toMatchObject({
      type: 'result',
      ok: true,
      runs: [
        { app: 'demo-web', kind: 'migrate', status: 'succeeded', failed_host: 'lab-1', target_host: 'lab-2' },
      ],
    });
    const run = (result.runs as Array<{ run_id: string; downtime_ms?: number }>)[0]!;
    expect(run.downtime_ms).toBeGreaterThan(0);
    expect(run.downtime_ms).toBeLessThan(30_000);

    const steps = (
      journal(ws, run.run_id) as unknown as {
        steps: Array<StepRecord & { outputs?: Record<string, unknown> }>;
      }
    ).steps;
    const out = (kind: string) => steps.find((s) => s.kind === kind)!.outputs as Record<string, unknown>;
    type Sent = { snapshot: string; parent?: string; transferred_bytes: number };
    // precopy: a read-only snapshot of the live path, sent in full (at least the ~18 MB of seeded data).
    expect(out('precopy')).toMatchObject({
      method: 'snapshot',
      transfers: [{ snapshot: `${SNAPSHOTS}/data@${run.run_id}.pre` }],
    });
    const full = (out('precopy').transfers as Sent[])[0]!;
    expect(full.parent).toBeUndefined();
    expect(full.transferred_bytes).toBeGreaterThan(18 * 10 ** 6);
    // The final copy: a second snapshot after the stop, only the difference from the first (send -p).
    expect(out('fence').evidence).toMatchObject({ fenced: true, reachable: true });
    expect(out('migrate')).toMatchObject({
      method: 'snapshot',
      verify: 'metadata',
      source: { host: 'lab-1' },
      transfers: [{ snapshot: `${SNAPSHOTS}/data@${run.run_id}.final`, parent: `data@${run.run_id}.pre` }],
      verified: [{ path: DATA }],
    });
    const delta = (out('migrate').transfers as Sent[])[0]!;
    expect(delta.transferred_bytes).toBeLessThan(full.transferred_bytes / 20);
    expect(out('monitor').downtime).toMatchObject({ hz: 20, longest_ms: run.downtime_ms });

    // lab-2 holds exactly lab-1's data after the stop, the writes made during the move too.
    const [src, dst] = await Promise.all([sh('lab-1', treeChecksum(DATA)), sh('lab-2', treeChecksum(DATA))]);
    expect(dst.stdout.trim()).toBe(src.stdout.trim());
    const lines = await sshExec('lab-2', ['wc', '-l', `${DATA}/writes.log`]);
    expect(Number(lines.stdout.trim().split(/\s+/)[0])).toBeGreaterThan(10);
    // A writable subvolume on lab-2; persona's snapshots gone from both hosts.
    expect((await sshExec('lab-2', ['btrfs', 'property', 'get', '-ts', DATA, 'ro'])).stdout.trim()).toBe(
      'ro=false',
    );
    for (const host of ['lab-1', 'lab-2'])
      expect((await sshExec(host, ['test', '-e', SNAPSHOTS])).exitCode, host).not.toBe(0);

    for (let i = 0; i < 3; i++)
      expect((await httpGet(`${lab.haproxy.frontend_url}/whoami`)).body.trim()).toBe('lab-2');
    const states = await haproxyAdminStates(lab);
    expect(states['lab-1']! & 0x01).toBe(1);
    expect(states['lab-2']! & 0x23).toBe(0);
  });
});
