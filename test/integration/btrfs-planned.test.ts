/**
 * A planned move with data.migration snapshot for real (root): the btrfs hosts of btrfs-hosts.ts, and the planned
 * steps through the real engine and the real SSH transport: precopy, a stand-in fence that stops the writer, and
 * the final copy. While a writer appends to the data path on the source, precopy snapshots it and sends the
 * snapshot in full; after the stop, the final copy sends only the difference (`send -p`), installs it, and the
 * target holds exactly what the source holds; persona's snapshots are gone. A tmpfs target is refused before
 * anything runs.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import { manifestIfPresent, remoteManifest } from '../../src/runbook/remote.js';
import type { Step, StepContext } from '../../src/runbook/types.js';
import { finalCopyStep, precopyStep } from '../../src/steps/planned.js';
import { SNAPSHOT_DIR } from '../../src/steps/snapshot.js';
import { Redactor } from '../../src/ui/redact.js';
import { type BtrfsHosts, startBtrfsHosts } from '../helpers/btrfs-hosts.js';
import { testJournal } from '../helpers/journal.js';
import { runSteps } from '../helpers/run-step.js';

/** The machine may be busy: a move is some tens of ssh commands and four manifests. */
const SLOW = 180_000;
const MiB = 1024 ** 2;

let lab: BtrfsHosts;
let data: string;
let snapshots: string;

beforeAll(async () => {
  lab = await startBtrfsHosts('persona-btrfs-planned-');
  data = join(lab.mnt, 'data', 'app');
  snapshots = join(lab.mnt, 'data', SNAPSHOT_DIR);
  // The source: a subvolume of 8 MiB in a few files, owners and modes; the target has the parent directory only.
  const setup = [
    'set -e',
    'mkdir -p -- "$(dirname -- "$1")"',
    'btrfs subvolume create -- "$1" >/dev/null',
    'cd -- "$1"',
    'mkdir -p "nested dir"',
    'for i in 1 2 3 4; do head -c 2097152 /dev/urandom > "nested dir/blob-$i.bin"; done',
    'chown 4242:4243 "nested dir/blob-1.bin"',
    'chmod 0640 "nested dir/blob-1.bin"',
    ': > log.txt',
  ].join('\n');
  await lab.ssh.run(lab.hosts.src, ['sh', '-c', setup, 'persona-setup', data]);
  await lab.ssh.run(lab.hosts.dst, ['mkdir', '-p', '--', join(lab.mnt, 'data')]);
  await lab.ssh.run(lab.hosts.tmp, ['mkdir', '-p', '--', join(lab.mnt, 'data')]);
}, 120_000);

afterAll(async () => {
  expect(await lab?.stop()).toEqual([]);
}, 60_000);

function context(target: InventoryHost): Partial<StepContext> {
  const profile = validateProfileValue(
    'btrfs-move.json',
    {
      id: 'btrfs-move',
      required_cores: 1,
      required_ram_gb: 0.1,
      required_storage_gb: 0,
      deploy: { start: ['true'], stop: ['true'] },
      data: { paths: [data], migration: 'snapshot' },
    },
    'btrfs-move',
  );
  return {
    profile,
    failed: lab.hosts.src,
    target,
    ssh: lab.ssh,
    backend: { get: async () => undefined, describe: 'test store' } as never,
    redactor: new Redactor(),
    stateDir: join(lab.root, 'state'),
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    reporter: { info() {}, warn() {}, event() {}, task: () => ({}) } as never,
    findHost: (name: string) => Object.values(lab.hosts).find((h) => h.name === name)!,
  };
}

/** Appends a numbered line and rewrites a small file every 20 ms, until DIR/stop exists; prints its count. */
const WRITER = [
  'i=0',
  'while [ ! -e "$2" ]; do',
  '  i=$((i + 1))',
  '  echo "$i" >> "$1/log.txt"',
  '  head -c 4096 /dev/urandom > "$1/hot.bin"',
  '  sleep 0.02',
  'done',
  'echo "$i"',
].join('\n');

const lines = async (host: InventoryHost, file: string) =>
  Number((await lab.ssh.run(host, ['sh', '-c', 'wc -l < "$1"', 'x', file])).stdout.trim());

const exists = async (host: InventoryHost, path: string) =>
  (await lab.ssh.exec(host, ['test', '-e', path])).exitCode === 0;

const journal = (runId: string, steps: Step[]) =>
  testJournal({
    run_id: runId,
    kind: 'migrate',
    app: 'btrfs-move',
    steps: steps.map((s) => ({
      kind: s.kind,
      title: s.title,
      mutates: s.mutates,
      status: 'pending' as const,
      attempts: 0,
      log: [],
    })),
  });

/** precopy without configure before it (there is nothing to configure here). */
const precopy: Step = { ...precopyStep, dependsOn: [] };

describe('a planned move through btrfs snapshots', () => {
  test(
    'precopy sends a full snapshot while the source changes; after the stop the final send is incremental and the target holds exactly the source',
    async () => {
      const runId = '20261128T000000Z-btrfs-move';
      const stopFile = join(lab.root, 'stop-writer');
      const writer = lab.ssh.exec(lab.hosts.src, ['sh', '-c', WRITER, 'persona-writer', data, stopFile]);
      let during: { source: number; received: number } | undefined;
      // The fence's place: the application stops (the writer), after precopy and before the final copy.
      const fence: Step = {
        kind: 'fence',
        title: 'stop the writer',
        mutates: true,
        dependsOn: ['precopy'],
        describe: () => ['stop the writer'],
        async plan() {
          return {
            notes: [],
            actions: [
              {
                id: 'stop',
                title: 'stop the writer',
                touches: 'btrfs-src',
                mutates: true,
                observable: false,
                async apply() {
                  // Writes went on after the precopy's snapshot: the final copy has a difference to send.
                  during = {
                    source: await lines(lab.hosts.src, join(data, 'log.txt')),
                    received: await lines(lab.hosts.dst, join(snapshots, `app@${runId}.pre`, 'log.txt')),
                  };
                  await lab.ssh.run(lab.hosts.src, ['touch', '--', stopFile]);
                  await writer;
                  return {};
                },
              },
            ],
          };
        },
        conclude: async () => ({}),
      };
      // Some writes before the precopy's snapshot, too: wait for them (the writer's ssh may be slow to start).
      const deadline = Date.now() + 30_000;
      while ((await lines(lab.hosts.src, join(data, 'log.txt')).catch(() => 0)) < 5) {
        if (Date.now() > deadline) throw new Error('the writer wrote nothing in 30 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      const steps = [precopy, fence, finalCopyStep];
      const run = await runSteps(steps, context(lab.hosts.dst), { journal: journal(runId, steps) });
      expect(run.error).toBeUndefined();
      expect((await writer).exitCode).toBe(0);

      const pre = run.record('precopy').outputs as {
        method: string;
        transfers: Array<{ snapshot: string; parent?: string; transferred_bytes: number }>;
      };
      expect(pre.method).toBe('snapshot');
      expect(pre.transfers).toHaveLength(1);
      expect(pre.transfers[0]!.snapshot).toBe(join(snapshots, `app@${runId}.pre`));
      expect(pre.transfers[0]!.parent).toBeUndefined();
      const full = pre.transfers[0]!.transferred_bytes;
      expect(full).toBeGreaterThan(8 * MiB);
      expect(during!.received).toBeGreaterThan(0);
      expect(during!.source).toBeGreaterThan(during!.received);

      const final = run.record('migrate').outputs as {
        method: string;
        verify: string;
        transfers: Array<{ snapshot: string; parent?: string; transferred_bytes: number }>;
        verified: Array<{ path: string; files: number }>;
      };
      expect(final).toMatchObject({
        method: 'snapshot',
        verify: 'metadata',
        transfers: [{ snapshot: join(snapshots, `app@${runId}.final`), parent: `app@${runId}.pre` }],
        verified: [{ path: data, files: 6 }],
      });
      // The difference: the writes after the first snapshot, not the 8 MiB again.
      expect(final.transfers[0]!.transferred_bytes).toBeLessThan(full / 16);
      expect(run.record('migrate').actions!.map((a) => [a.id, a.status])).toEqual([
        [`snapshot:${data}`, 'done'],
        [`send:${data}`, 'done'],
        [`install:${data}`, 'done'],
        [`cleanup:${data}`, 'done'],
      ]);

      // Exactly the stopped source's data (sha256 of every file, owners and modes), every write kept.
      const source = await remoteManifest(lab.ssh, lab.hosts.src, data);
      expect(await manifestIfPresent(lab.ssh, lab.hosts.dst, data)).toEqual(source);
      expect(await lines(lab.hosts.dst, join(data, 'log.txt'))).toBe(
        await lines(lab.hosts.src, join(data, 'log.txt')),
      );
      // A writable subvolume on the target; persona's snapshots gone from both hosts.
      const ro = await lab.ssh.run(lab.hosts.dst, ['btrfs', 'property', 'get', '-ts', data, 'ro']);
      expect(ro.stdout.trim()).toBe('ro=false');
      for (const h of [lab.hosts.src, lab.hosts.dst]) expect(await exists(h, snapshots)).toBe(false);
    },
    SLOW,
  );

  test(
    'a target whose path is on tmpfs is refused before anything runs',
    async () => {
      const steps = [precopy];
      const run = await runSteps(steps, context(lab.hosts.tmp), {
        journal: journal('20261128T000100Z-btrfs-tmpfs', steps),
      });
      expect(String((run.error as Error).message)).toContain(
        `not moving ${data}: tmpfs-host:${data} is on tmpfs (its parent ${join(lab.mnt, 'data')} is), not btrfs`,
      );
      expect(run.record('precopy').actions ?? []).toEqual([]);
      expect(await exists(lab.hosts.src, snapshots)).toBe(false);
      expect(await exists(lab.hosts.tmp, data)).toBe(false);
    },
    SLOW,
  );
});
