/**
 * data.migration snapshot for real: two loop-backed btrfs filesystems, each mounted at the same path inside the
 * mount namespace of its own sshd (127.0.0.2 is the failed host, 127.0.0.3 the target), and a third sshd whose
 * path is on tmpfs (127.0.0.4). The migrate step runs through the real engine and the real SSH transport: a dry run
 * changes nothing, the run snapshots, sends through this machine and installs, the copy has the source's contents,
 * owners and modes (sha256 manifests), a second plan is empty, different data already on the target is moved aside,
 * `send -p` moves only the difference, and a tmpfs target is refused by name. The hosts: test/helpers/btrfs-hosts.ts
 * (afterAll checks that no loop device is left).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import type { SshTransport } from '../../src/hosts/ssh.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import { manifestIfPresent, remoteManifest } from '../../src/runbook/remote.js';
import type { StepContext } from '../../src/runbook/types.js';
import { migrateStep } from '../../src/steps/migrate.js';
import { SNAPSHOT_DIR, sendSnapshot } from '../../src/steps/snapshot.js';
import { Redactor } from '../../src/ui/redact.js';
import { type BtrfsHosts, startBtrfsHosts } from '../helpers/btrfs-hosts.js';
import { testJournal } from '../helpers/journal.js';
import { runSteps } from '../helpers/run-step.js';

/** The machine may be busy: a run is some tens of ssh commands and two sha256 manifests per plan. */
const SLOW = 180_000;

let lab: BtrfsHosts;
let root: string;
/** Where each namespace mounts its filesystem; in this test's own namespace, an empty directory. */
let mnt: string;
let data: string;
let ssh: SshTransport;
let hosts: BtrfsHosts['hosts'];

beforeAll(async () => {
  lab = await startBtrfsHosts('persona-btrfs-');
  ({ root, mnt, ssh, hosts } = lab);
  data = join(mnt, 'data', 'app');
  // The source: a subvolume with owners known and unknown by name, modes, a nested directory, a name with spaces.
  const setup = [
    'set -e',
    'mkdir -p -- "$(dirname -- "$1")"',
    'btrfs subvolume create -- "$1" >/dev/null',
    'cd -- "$1"',
    'echo alpha > a.txt',
    'mkdir -p "nested dir/deeper"',
    'echo "with spaces" > "nested dir/file with spaces.txt"',
    'head -c 2097152 /dev/urandom > "nested dir/deeper/random.bin"',
    'ln -s a.txt link',
    'chown 65534:65534 "nested dir"',
    'chmod 0750 "nested dir"',
    'chown 4242:4243 "nested dir/file with spaces.txt"',
    'chmod 0600 "nested dir/file with spaces.txt"',
    'chmod 0751 .',
  ].join('\n');
  await ssh.run(hosts.src, ['sh', '-c', setup, 'persona-setup', data]);
  // The target and the tmpfs host have the parent directory, not the path.
  await ssh.run(hosts.dst, ['mkdir', '-p', '--', join(mnt, 'data')]);
  await ssh.run(hosts.tmp, ['mkdir', '-p', '--', join(mnt, 'data')]);
}, 120_000);

afterAll(async () => {
  expect(await lab?.stop()).toEqual([]);
}, 60_000);

function context(target: InventoryHost): Partial<StepContext> {
  const profile = validateProfileValue(
    'btrfs-test.json',
    {
      id: 'btrfs-test',
      required_cores: 1,
      required_ram_gb: 0.1,
      required_storage_gb: 0,
      deploy: { start: ['true'], stop: ['true'] },
      data: { paths: [data], migration: 'snapshot' },
    },
    'btrfs-test',
  );
  return {
    profile,
    failed: hosts.src,
    target,
    ssh,
    backend: { get: async () => undefined, describe: 'test store' } as never,
    redactor: new Redactor(),
    stateDir: join(root, 'state'),
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    reporter: { info() {}, warn() {}, event() {}, task: () => ({}) } as never,
    findHost: (name: string) => Object.values(hosts).find((h) => h.name === name)!,
  };
}

const journal = (runId: string) =>
  testJournal({
    run_id: runId,
    app: 'btrfs-test',
    steps: [{ kind: 'migrate', title: 'migrate', mutates: true, status: 'pending', attempts: 0, log: [] }],
  });

const exists = async (host: InventoryHost, path: string) =>
  (await ssh.exec(host, ['test', '-e', path])).exitCode === 0;

describe('data.migration snapshot between two btrfs hosts', () => {
  test(
    'a dry run plans snapshot, send and install, and changes nothing',
    async () => {
      const run = await runSteps([migrateStep], context(hosts.dst), {
        journal: journal('20261127T000000Z-btrfs-dry'),
        engine: { dryRun: true },
      });
      expect(run.error).toBeUndefined();
      const lines = run.engine.simulation[0]!.lines.join('\n');
      expect(lines).toContain(`would take a read-only snapshot of btrfs-src:${data}`);
      expect(lines).toMatch(
        /would send \S+ from btrfs-src to btrfs-dst:\S+ \(in full, 2\.0 MiB in 3 files\)/,
      );
      expect(lines).toContain(`would make btrfs-dst:${data} a writable snapshot of the received`);
      expect(lines).toContain("then would delete persona's snapshots");
      expect(await exists(hosts.src, join(mnt, 'data', SNAPSHOT_DIR))).toBe(false);
      expect(await exists(hosts.dst, data)).toBe(false);
    },
    SLOW,
  );

  test(
    'the run leaves the same contents, owners and modes on the target, as a subvolume; snapshots deleted',
    async () => {
      const run = await runSteps([migrateStep], context(hosts.dst), {
        journal: journal('20261127T000100Z-btrfs-one'),
      });
      expect(run.error).toBeUndefined();
      const record = run.record('migrate');
      expect(record.status).toBe('succeeded');
      const source = await remoteManifest(ssh, hosts.src, data);
      const target = await manifestIfPresent(ssh, hosts.dst, data);
      expect(source.files).toBe(3);
      expect(target).toEqual(source);
      expect(record.outputs).toMatchObject({
        method: 'snapshot',
        source: { kind: 'failed-host', host: 'btrfs-src' },
        verified: [{ path: data, digest: source.digest, meta: source.meta }],
        recovery_points: [{ path: data, taken_at: expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/) }],
      });
      const transfers = record.outputs!.transfers as Array<{ transferred_bytes: number }>;
      expect(transfers[0]!.transferred_bytes).toBeGreaterThan(2 * 1024 * 1024);
      const ro = await ssh.run(hosts.dst, ['btrfs', 'property', 'get', '-ts', data, 'ro']);
      expect(ro.stdout.trim()).toBe('ro=false');
      for (const h of [hosts.src, hosts.dst])
        expect(await exists(h, join(mnt, 'data', SNAPSHOT_DIR))).toBe(false);
      expect(await exists(hosts.src, data)).toBe(true);
    },
    SLOW,
  );

  test(
    'a second plan is empty: nothing to change, nothing to clean up',
    async () => {
      const run = await runSteps([migrateStep], context(hosts.dst), {
        journal: journal('20261127T000200Z-btrfs-two'),
        engine: { dryRun: true },
      });
      expect(run.error).toBeUndefined();
      const lines = run.engine.simulation[0]!.lines;
      expect(lines.filter((l) => l.startsWith('would') || l.startsWith('then would'))).toEqual([]);
      expect(lines).toContain('nothing to change');
      expect(lines.join('\n')).toContain('the same contents, owners and modes on btrfs-dst');
    },
    SLOW,
  );

  test(
    'different data on the target is moved aside, not deleted, and replaced by the snapshot',
    async () => {
      await ssh.run(hosts.dst, ['sh', '-c', 'echo local > "$1/only-here.txt"', 'x', data]);
      const runId = '20261127T000300Z-btrfs-three';
      const run = await runSteps([migrateStep], context(hosts.dst), { journal: journal(runId) });
      expect(run.error).toBeUndefined();
      const aside = `${data}.persona-previous-${runId}`;
      expect((await ssh.run(hosts.dst, ['cat', '--', join(aside, 'only-here.txt')])).stdout).toBe('local\n');
      expect(await exists(hosts.dst, join(data, 'only-here.txt'))).toBe(false);
      expect(await manifestIfPresent(ssh, hosts.dst, data)).toEqual(
        await remoteManifest(ssh, hosts.src, data),
      );
    },
    SLOW,
  );

  test(
    'send -p moves only the difference from a parent both hosts hold',
    async () => {
      const dir = join(mnt, 'data', SNAPSHOT_DIR);
      const ctx = { ssh, signal: new AbortController().signal };
      await ssh.run(hosts.src, ['mkdir', '-p', '--', dir]);
      await ssh.run(hosts.dst, ['mkdir', '-p', '--', dir]);
      await ssh.run(hosts.src, ['btrfs', 'subvolume', 'snapshot', '-r', '--', data, join(dir, 'app@p1')]);
      const full = await sendSnapshot(ctx, { from: hosts.src, to: hosts.dst, dir, name: 'app@p1' });
      await ssh.run(hosts.src, ['sh', '-c', 'echo delta > "$1/delta.txt"', 'x', data]);
      await ssh.run(hosts.src, ['btrfs', 'subvolume', 'snapshot', '-r', '--', data, join(dir, 'app@p2')]);
      const delta = await sendSnapshot(ctx, {
        from: hosts.src,
        to: hosts.dst,
        dir,
        name: 'app@p2',
        parent: 'app@p1',
      });
      expect(full.bytes).toBeGreaterThan(2 * 1024 * 1024);
      expect(delta.bytes).toBeLessThan(64 * 1024);
      expect(await remoteManifest(ssh, hosts.dst, join(dir, 'app@p2'))).toEqual(
        await remoteManifest(ssh, hosts.src, join(dir, 'app@p2')),
      );
      // A parent the target lacks: the error names both hosts and the btrfs commands.
      await ssh.run(hosts.dst, [
        'btrfs',
        'subvolume',
        'delete',
        '--',
        join(dir, 'app@p1'),
        join(dir, 'app@p2'),
      ]);
      await ssh.run(hosts.src, ['btrfs', 'subvolume', 'snapshot', '-r', '--', data, join(dir, 'app@p3')]);
      await expect(
        sendSnapshot(ctx, { from: hosts.src, to: hosts.dst, dir, name: 'app@p3', parent: 'app@p2' }),
      ).rejects.toThrow(
        /sending \S+app@p3 from btrfs-src to btrfs-dst failed .*btrfs-dst: `btrfs receive -- \S+` exited with code 1/,
      );
      // The migrate step cleans up what is left (persona's snapshots of the path), and converges again.
      const run = await runSteps([migrateStep], context(hosts.dst), {
        journal: journal('20261127T000400Z-btrfs-four'),
      });
      expect(run.error).toBeUndefined();
      for (const h of [hosts.src, hosts.dst]) expect(await exists(h, dir)).toBe(false);
      expect(await manifestIfPresent(ssh, hosts.dst, data)).toEqual(
        await remoteManifest(ssh, hosts.src, data),
      );
    },
    SLOW,
  );

  test(
    'a target whose path is on tmpfs is refused, naming the host, the path and the filesystem',
    async () => {
      const run = await runSteps([migrateStep], context(hosts.tmp), {
        journal: journal('20261127T000500Z-btrfs-five'),
      });
      expect(String((run.error as Error).message)).toContain(
        `tmpfs-host:${data} is on tmpfs (its parent ${join(mnt, 'data')} is), not btrfs`,
      );
      expect(await exists(hosts.tmp, data)).toBe(false);
      expect(await exists(hosts.src, join(mnt, 'data', SNAPSHOT_DIR))).toBe(false);
    },
    SLOW,
  );
});
