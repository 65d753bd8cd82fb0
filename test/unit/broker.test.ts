import { describe, expect, test } from 'vitest';
import {
  type Requirements,
  rankHosts,
  scoreHost,
  softwareFit,
  strategies,
  weightsFor,
} from '../../src/broker/broker.js';
import { historyByHost } from '../../src/broker/history.js';
import type { Observation } from '../../src/feedback/observations.js';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import type { HostFacts, PackageFact } from '../../src/hosts/parse-probe.js';
import type { ProbeResult } from '../../src/hosts/probe.js';

const GiB = 1024 ** 3;
const req: Requirements = {
  app: 'demo-web',
  cores: 1,
  ramBytes: 1 * GiB,
  storageBytes: 1 * GiB,
  dataPath: '/srv/demo-web/data',
  dataMigration: 'rsync',
  packages: ['socat=1.7.4.4-2', 'rsync'],
  hostLabels: {},
};

function host(name: string, labels: Record<string, string> = {}, apps: string[] = []): InventoryHost {
  return { name, address: `10.0.0.${name.length}`, labels, apps };
}

function facts(o: {
  cores?: number;
  ramGiB?: number;
  freeGiB?: number;
  load?: number;
  packages?: PackageFact[];
  aptLists?: number;
}): HostFacts {
  return {
    hostname: 'h',
    kernel: '6.1',
    arch: 'x86_64',
    os: { id: 'debian', version: '12', pretty: 'Debian GNU/Linux 12 (bookworm)' },
    cores: { online: o.cores ?? 2, usable: o.cores ?? 2 },
    memory: {
      totalBytes: 64 * GiB,
      availableBytes: (o.ramGiB ?? 4) * GiB,
      limitBytes: (o.ramGiB ?? 4) * GiB,
      usableBytes: (o.ramGiB ?? 4) * GiB,
    },
    cgroup: '1',
    storage: {
      path: '/srv/demo-web/data',
      checked: '/srv',
      mount: '/srv',
      totalBytes: 10 * GiB,
      freeBytes: (o.freeGiB ?? 5) * GiB,
    },
    load1: o.load ?? 0,
    packages: {
      manager: 'dpkg',
      installedCount: 100,
      aptLists: o.aptLists ?? 3,
      requested: o.packages ?? [
        { name: 'socat', wanted: '1.7.4.4-2', installed: '1.7.4.4-2' },
        { name: 'rsync', installed: '3.2.7' },
      ],
    },
  };
}

const ok = (h: InventoryHost, f: HostFacts): ProbeResult => ({ host: h, ok: true, facts: f, durationMs: 10 });
const missing: PackageFact[] = [
  { name: 'socat', wanted: '1.7.4.4-2', wantedAvailable: true },
  { name: 'rsync', candidate: '3.2.7' },
];

describe('hard filters: every rejection names its numbers and a fix', () => {
  test.each([
    [
      'memory',
      facts({ ramGiB: 0.5 }),
      'RAM 0.5 GiB (cgroup limit) < 1 GiB required',
      'needs 0.5 GiB more usable memory',
    ],
    [
      'cores',
      { ...facts({}), cores: { online: 4, quota: 0.5, usable: 0 } },
      'cores 0 < 1 required (CPU quota 0.50)',
      'needs 1 more core',
    ],
    [
      'storage',
      facts({ freeGiB: 0.25 }),
      'free storage on /srv 0.25 GiB < 1 GiB required',
      'free 0.75 GiB more on /srv',
    ],
  ])('%s', (_code, f, message, fix) => {
    const [ranked] = rankHosts(req, [ok(host('a'), f as HostFacts)]);
    expect(ranked).toMatchObject({ verdict: 'rejected', reasons: [{ message, fix }] });
  });

  test('software not offered by the host sources rejects; missing but installable does not', () => {
    const unavailable = facts({
      packages: [
        { name: 'socat', wanted: '1.7.4.4-2', installed: '1.7.4.3-1', wantedAvailable: false },
        { name: 'rsync', installed: '3' },
      ],
    });
    const installable = facts({ packages: missing });
    const ranked = rankHosts(req, [ok(host('bad'), unavailable), ok(host('good'), installable)]);
    expect(ranked.map((r) => [r.host, r.verdict])).toEqual([
      ['good', 'eligible'],
      ['bad', 'rejected'],
    ]);
    expect(ranked[1]!.reasons[0]!.message).toBe(
      "not available from the host's package sources: socat=1.7.4.4-2",
    );
    expect(ranked[0]!.software).toEqual({
      present: [],
      toInstall: ['socat=1.7.4.4-2', 'rsync'],
      unknown: [],
      unavailable: [],
    });
  });

  test('a host without package lists yet is not rejected for missing packages (unknown until apt-get update)', () => {
    const fit = softwareFit([{ name: 'socat' }], facts({ aptLists: 0 }));
    expect(fit.unknown).toEqual(['socat']);
  });

  test('the failed host, excluded hosts, unreachable hosts and label mismatches are rejected with reasons', () => {
    const results: ProbeResult[] = [
      ok(host('failed'), facts({})),
      ok(host('skip'), facts({})),
      {
        host: host('gone'),
        ok: false,
        failure: { kind: 'refused', message: 'gone (10.0.0.4): connection refused' },
        durationMs: 3,
      },
      ok(host('zone-b', { zone: 'b' }), facts({})),
      ok(host('zone-a', { zone: 'a' }), facts({})),
    ];
    const ranked = rankHosts({ ...req, hostLabels: { zone: 'a' } }, results, {
      failedHost: 'failed',
      exclude: ['skip'],
    });
    expect(ranked.map((r) => [r.host, r.verdict, r.reasons.map((x) => x.code)])).toEqual([
      ['zone-a', 'eligible', []],
      ['failed', 'rejected', ['failed-host', 'labels']],
      ['gone', 'rejected', ['unreachable']],
      ['skip', 'rejected', ['excluded', 'labels']],
      ['zone-b', 'rejected', ['labels']],
    ]);
    expect(ranked.find((r) => r.host === 'zone-b')!.reasons[0]).toEqual({
      code: 'labels',
      message: 'label zone=b, needs zone=a',
      fix: 'label the host zone=a, or drop host_labels.zone from the profile',
    });
  });

  test('all failing requirements are listed, not only the first', () => {
    const [ranked] = rankHosts(req, [ok(host('tiny'), facts({ ramGiB: 0.5, freeGiB: 0.4, cores: 0 }))]);
    expect(ranked!.reasons.map((r) => r.code)).toEqual(['cores', 'memory', 'storage']);
  });
});

describe('data.migration snapshot: the data path must be on btrfs on the target', () => {
  const snap = { ...req, dataMigration: 'snapshot' as const };
  const on = (fsType?: string): HostFacts => {
    const f = facts({});
    return { ...f, storage: { ...f.storage, ...(fsType ? { fsType } : {}) } };
  };

  test('a data path on ext4 is rejected by name, path and filesystem, with the fix', () => {
    const [ranked] = rankHosts(snap, [ok(host('lab-3'), on('ext2/ext3'))]);
    expect(ranked).toMatchObject({
      verdict: 'rejected',
      reasons: [
        {
          code: 'filesystem',
          message:
            'lab-3:/srv/demo-web/data is on ext2/ext3 (its parent /srv is), not btrfs: data.migration snapshot receives btrfs snapshots there',
          fix: 'put /srv/demo-web/data on a btrfs subvolume on lab-3, or use data.migration rsync',
        },
      ],
    });
  });

  test('btrfs passes; rsync does not look at the filesystem', () => {
    expect(rankHosts(snap, [ok(host('lab-2'), on('btrfs'))])[0]).toMatchObject({
      verdict: 'eligible',
      reasons: [],
    });
    const [rsync] = rankHosts(req, [ok(host('lab-3'), on('ext2/ext3'))]);
    expect(rsync).toMatchObject({ verdict: 'eligible', reasons: [] });
    expect(rsync!.notes).toBeUndefined();
  });

  test('an older probe that did not say is not rejected, with a note', () => {
    const [ranked] = rankHosts(snap, [ok(host('old'), on(undefined))]);
    expect(ranked).toMatchObject({
      verdict: 'eligible',
      notes: ['the probe did not say which filesystem /srv/demo-web/data is on: btrfs is checked at migrate'],
    });
  });
});

describe('score: closest match, software present, low load; deterministic', () => {
  test('best-fit prefers the small host that fits over the big one', () => {
    const ranked = rankHosts(req, [
      ok(host('big'), facts({ cores: 16, ramGiB: 64, freeGiB: 500 })),
      ok(host('small'), facts({ cores: 1, ramGiB: 1.5, freeGiB: 2 })),
    ]);
    expect(ranked.map((r) => r.host)).toEqual(['small', 'big']);
  });

  test('most-free prefers the big one', () => {
    const ranked = rankHosts(
      req,
      [
        ok(host('big'), facts({ cores: 16, ramGiB: 64, freeGiB: 500 })),
        ok(host('small'), facts({ cores: 1, ramGiB: 1.5, freeGiB: 2 })),
      ],
      {
        strategy: 'most-free',
      },
    );
    expect(ranked.map((r) => r.host)).toEqual(['big', 'small']);
  });

  test('spread prefers the host running fewer applications', () => {
    const ranked = rankHosts(
      req,
      [ok(host('busy', {}, ['a', 'b', 'c']), facts({})), ok(host('idle'), facts({}))],
      { strategy: 'spread' },
    );
    expect(ranked.map((r) => r.host)).toEqual(['idle', 'busy']);
  });

  test('software already present outranks the same host without it', () => {
    const ranked = rankHosts(req, [
      ok(host('bare'), facts({ packages: missing })),
      ok(host('ready'), facts({})),
    ]);
    expect(ranked.map((r) => r.host)).toEqual(['ready', 'bare']);
    expect(ranked[0]!.score!.components.software).toBe(1);
    expect(ranked[1]!.score!.components.software).toBe(0);
  });

  test('lower load wins when all else is equal', () => {
    const ranked = rankHosts(req, [
      ok(host('loaded'), facts({ load: 2 })),
      ok(host('quiet'), facts({ load: 0.1 })),
    ]);
    expect(ranked.map((r) => r.host)).toEqual(['quiet', 'loaded']);
  });

  test('ties are broken by host name', () => {
    const ranked = rankHosts(req, [
      ok(host('b'), facts({})),
      ok(host('a'), facts({})),
      ok(host('c'), facts({})),
    ]);
    expect(ranked.map((r) => [r.host, r.rank])).toEqual([
      ['a', 1],
      ['b', 2],
      ['c', 3],
    ]);
  });

  test('the breakdown adds up to the total', () => {
    const score = scoreHost(
      req,
      facts({ cores: 2, ramGiB: 2, freeGiB: 4, load: 1 }),
      softwareFit(missing, facts({})),
      0,
      'best-fit',
    );
    const sum = Object.entries(score.weights).reduce((acc, [k, w]) => acc + w * score.components[k]!, 0);
    expect(score.total).toBeCloseTo(sum * 100, 0);
    expect(Object.keys(score.components)).toEqual(['fit', 'software', 'load', 'history']);
    // No history: nothing taken off.
    expect(score.components.history).toBe(1);
  });

  test.each(strategies)('%s weighs history, and its weights still add up to 1 (a total of 0..100)', (s) => {
    expect(weightsFor[s].history).toBeGreaterThan(0);
    expect(Object.values(weightsFor[s]).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
  });
});

describe('history: a failed validation lowers the host, and it recovers as the failure ages', () => {
  const failed: Observation = {
    at: '2026-11-20T00:00:00.000Z',
    app: 'demo-web',
    host: 'quiet',
    source: 'validate',
    run_id: 'r1',
    ok: false,
    missed: ['cpu'],
  };
  const hosts = [ok(host('busy'), facts({ load: 0.5 })), ok(host('quiet'), facts({ load: 0.1 }))];
  const rankAt = (days: number) =>
    rankHosts(req, hosts, {
      history: historyByHost([failed], new Date(Date.parse(failed.at) + days * 86_400_000)),
    });

  test('without history the quieter host ranks first', () => {
    expect(rankHosts(req, hosts).map((r) => r.host)).toEqual(['quiet', 'busy']);
  });

  test.each([
    [0, ['busy', 'quiet'], 'quiet −10: 1 failed validation in the last day'],
    [3, ['busy', 'quiet'], 'quiet −5: 1 failed validation in the last 3 days'],
    [6, ['quiet', 'busy'], 'quiet −2.5: 1 failed validation in the last 6 days'],
    [31, ['quiet', 'busy'], undefined],
  ])('%s days after the failed validation: %j', (days, order, line) => {
    const ranked = rankAt(days);
    expect(ranked.map((r) => r.host)).toEqual(order);
    const quiet = ranked.find((r) => r.host === 'quiet')!;
    expect(quiet.history).toBe(line);
    expect(ranked.find((r) => r.host === 'busy')!.history).toBeUndefined();
    // The line's points are what the total lost.
    const points = Number(/−([\d.]+):/.exec(line ?? '−0:')![1]);
    const clean = rankHosts(req, hosts).find((r) => r.host === 'quiet')!.score!.total;
    expect(clean - quiet.score!.total).toBeCloseTo(points, 0);
  });
});
