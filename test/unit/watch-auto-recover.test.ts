/**
 * --auto-recover is single-flight (src/watch/watcher.ts): two watchers that see the same failure start one
 * recovery. Two Watchers on the same file store (two backends, as two processes would have), the real application
 * lock, and a stub launcher that takes that lock as recover does, records the move, and counts its launches.
 */
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { type Profile, profileSchema } from '../../src/profile/schema.js';
import { lockName } from '../../src/recover/lock.js';
import type { KvBackend } from '../../src/stores/kv.js';
import { openBackend } from '../../src/stores/open.js';
import type { WatchEvent } from '../../src/watch/types.js';
import { defaultPolicy } from '../../src/watch/verdict.js';
import { type RecoverLauncher, Watcher } from '../../src/watch/watcher.js';
import { repoRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const hosts = ['h1', 'h2', 'h3'].map((name, i) => ({
  name,
  address: `10.9.0.${i + 1}`,
  labels: {},
  apps: [],
}));

function profile(autoRecover: boolean): Profile {
  return profileSchema.parse({
    id: 'web',
    required_cores: 1,
    required_ram_gb: 1,
    required_storage_gb: 0,
    deploy: { start: ['true'], stop: ['true'] },
    health_checks: [{ type: 'tcp', port: 80 }],
    watch: { auto_recover: autoRecover },
  });
}

/** Both vantage points see it down, every round. */
const down = {
  persona: async () => ({ vantage: 'persona', status: 'failed' as const, checks: [] }),
  peer: async (_h: unknown, _p: unknown, peer: { name: string }) => ({
    vantage: peer.name,
    status: 'failed' as const,
    checks: [],
  }),
};

async function store(): Promise<string> {
  const dir = tempDir('persona-watch-store-');
  const backend = await openBackend(`file:${dir}`, {}, repoRoot);
  const at = new Date(Date.now() - 3_600_000).toISOString();
  await backend.txn({
    puts: [{ key: 'assignments/web', value: JSON.stringify({ app: 'web', host: 'h1', at }) }],
  });
  await backend.close();
  writeFileSync(join(dir, '.keep'), '');
  return dir;
}

function watcher(
  backend: KvBackend,
  events: WatchEvent[],
  launch: RecoverLauncher | undefined,
  auto = true,
  looks: typeof down = down,
) {
  return new Watcher(
    {
      backend,
      inventory: { source: 'test', hosts, warnings: [] },
      loadProfile: async () => ({ profile: profile(auto), version: 1 }),
      looks,
      now: () => new Date(),
      emit: async (e) => {
        events.push(e);
      },
      onObservation: () => {},
      ...(launch ? { recover: launch } : {}),
    },
    { apps: [], policy: { ...defaultPolicy, failures: 1, rounds: 1, graceMs: 0 }, sampleEvery: 1 },
  );
}

/** recover's part as the lock sees it: take the application's lock, wait for `gate`, record the move, release. */
function stubRecover(backend: KvBackend, gate: Promise<void>) {
  const launched: string[] = [];
  const launch: RecoverLauncher = async ({ app, host }) => {
    const info = {
      holder: 'watch@test',
      host: hostname(),
      pid: process.pid,
      started_at: new Date().toISOString(),
    };
    const lock = await backend.acquireLock(lockName(app), info, { ttlMs: 10_000 });
    launched.push(`${app} from ${host}`);
    try {
      await gate;
      const at = new Date().toISOString();
      await backend.txn({
        puts: [
          {
            key: `assignments/${app}`,
            value: JSON.stringify({ app, host: 'h2', previous: host, at, run_id: 'r1' }),
          },
        ],
      });
      return ['r1'];
    } finally {
      await lock.release();
    }
  };
  return { launch, launched };
}

const outcomes = (events: WatchEvent[]) =>
  events.filter((e) => e.kind === 'auto-recover').map((e) => e.outcome);

describe('two watchers, one recovery', () => {
  test('at the same time: the second learns the lock is held and says "already being recovered"', async () => {
    const dir = await store();
    const [a, b] = [
      await openBackend(`file:${dir}`, {}, repoRoot),
      await openBackend(`file:${dir}`, {}, repoRoot),
    ];
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const stubA = stubRecover(a, gate);
    const stubB = stubRecover(b, gate);
    const eventsA: WatchEvent[] = [];
    const eventsB: WatchEvent[] = [];
    const wa = watcher(a, eventsA, stubA.launch);
    const wb = watcher(b, eventsB, stubB.launch);
    await wa.round();
    // A's recovery holds the lock (waiting at the gate) while B sees the same failure.
    await expect.poll(() => stubA.launched.length).toBe(1);
    await wb.round();
    await wb.settle();
    open();
    await wa.settle();
    expect([...stubA.launched, ...stubB.launched]).toEqual(['web from h1']);
    expect(outcomes(eventsA)).toEqual(['started', 'succeeded']);
    expect(outcomes(eventsB)).toEqual(['started', 'already-recovering']);
    expect(eventsB.find((e) => e.outcome === 'already-recovering')!.reason).toMatch(
      /^already being recovered: /,
    );
    await Promise.all([a.close(), b.close()]);
  });

  test('one after the other: the second finds the application moved and starts nothing', async () => {
    const dir = await store();
    const [a, b] = [
      await openBackend(`file:${dir}`, {}, repoRoot),
      await openBackend(`file:${dir}`, {}, repoRoot),
    ];
    const stubA = stubRecover(a, Promise.resolve());
    const stubB = stubRecover(b, Promise.resolve());
    const eventsA: WatchEvent[] = [];
    const eventsB: WatchEvent[] = [];
    // B's looks are slow: B read the assignment (h1) and sees the failure only after A recovered it.
    let look!: () => void;
    const slow = new Promise<void>((r) => {
      look = r;
    });
    const slowDown = { ...down, persona: async () => (await slow, down.persona()) };
    const wa = watcher(a, eventsA, stubA.launch);
    const wb = watcher(b, eventsB, stubB.launch, true, slowDown);
    const roundB = wb.round();
    await wa.round();
    await wa.settle();
    look();
    await roundB;
    await wb.settle();
    expect(stubA.launched).toEqual(['web from h1']);
    expect(stubB.launched).toEqual([]);
    expect(outcomes(eventsA)).toEqual(['started', 'succeeded']);
    expect(outcomes(eventsB)).toEqual(['already-moved']);
    expect(eventsB.find((e) => e.kind === 'auto-recover')!.reason).toMatch(/now recorded on h2 \(run r1\)/);
    await Promise.all([a.close(), b.close()]);
  });

  test('one watcher starts one recovery per application, however many rounds fail meanwhile', async () => {
    const dir = await store();
    const backend = await openBackend(`file:${dir}`, {}, repoRoot);
    let open!: () => void;
    const stub = stubRecover(backend, new Promise<void>((r) => (open = r)));
    const events: WatchEvent[] = [];
    const w = watcher(backend, events, stub.launch);
    // The state stays failing while the recovery runs: one failure event, one launch.
    await w.round();
    await w.round();
    await w.round();
    open();
    await w.settle();
    expect(stub.launched).toEqual(['web from h1']);
    await backend.close();
  });

  test('a profile that does not opt in is never recovered, even under --auto-recover', async () => {
    const dir = await store();
    const backend = await openBackend(`file:${dir}`, {}, repoRoot);
    const stub = stubRecover(backend, Promise.resolve());
    const events: WatchEvent[] = [];
    await watcher(backend, events, stub.launch, false).round();
    expect(events.map((e) => e.kind)).toEqual(['failure']);
    expect(stub.launched).toEqual([]);
    await backend.close();
  });

  test('without --auto-recover (no launcher) an opted-in profile only gets the event', async () => {
    const dir = await store();
    const backend = await openBackend(`file:${dir}`, {}, repoRoot);
    const events: WatchEvent[] = [];
    await watcher(backend, events, undefined).round();
    expect(events.map((e) => e.kind)).toEqual(['failure']);
    await backend.close();
  });
});
