/**
 * profile tune's proposal logic on synthetic observations: percentiles, raising, lowering only with the margin,
 * too little evidence, and the figures that are explained but never proposed.
 */
import { describe, expect, test } from 'vitest';
import { ALL, describeSpan, percentile } from '../../src/tune/evidence.js';
import { type ProposeInput, propose, RULES } from '../../src/tune/propose.js';
import type { Observation } from '../../src/tune/types.js';

const GiB = 1024 ** 3;
const HOUR = 3_600_000;
const START = Date.parse('2026-11-20T00:00:00Z');

type Metrics = NonNullable<Observation['metrics']>;

/** n observations spread evenly over `days`, alternating between the hosts. */
function series(
  n: number,
  metrics: (i: number, host: string) => Metrics,
  options: { hosts?: string[]; days?: number; missed?: (i: number) => string[] | undefined } = {},
): Observation[] {
  const hosts = options.hosts ?? ['web-1', 'web-2'];
  const step = n > 1 ? ((options.days ?? 3) * 24 * HOUR) / (n - 1) : 0;
  return Array.from({ length: n }, (_, i) => {
    const host = hosts[i % hosts.length]!;
    const missed = options.missed?.(i);
    return {
      at: new Date(START + i * step).toISOString(),
      app: 'demo-web',
      host,
      source: 'monitor',
      ok: !missed?.length,
      ...(missed ? { missed } : {}),
      metrics: metrics(i, host),
    };
  });
}

function profile(
  over: Partial<ProposeInput['profile']> & { memoryPct?: number; cpuPct?: number; minWrite?: number } = {},
): ProposeInput['profile'] {
  return {
    required_cores: over.required_cores ?? 1,
    required_ram_gb: over.required_ram_gb ?? 4,
    performance_metrics: {
      window_seconds: 10,
      monitor_seconds: 30,
      ...(over.memoryPct ? { memory_usage_pct: { max: over.memoryPct } } : {}),
      ...(over.cpuPct ? { cpu_utilization_pct: { max: over.cpuPct } } : {}),
      ...(over.minWrite ? { disk_io: { min_write_mbps: over.minWrite } } : {}),
    },
  };
}

describe('percentile (nearest rank)', () => {
  test.each([
    [[...Array(100).keys()].map((i) => i + 1), 50, 50],
    [[...Array(100).keys()].map((i) => i + 1), 95, 95],
    [[3, 1, 2], 50, 2],
    [[3, 1, 2], 95, 3],
    [[7], 95, 7],
    [[10, 20], 50, 10],
  ])('%j p%d = %d', (values, p, expected) => {
    expect(percentile(values, p)).toBe(expected);
  });

  test('no values is NaN, and the input is not reordered', () => {
    expect(percentile([], 95)).toBeNaN();
    const values = [3, 1, 2];
    percentile(values, 50);
    expect(values).toEqual([3, 1, 2]);
  });
});

describe('raising', () => {
  test('memory: p95 use above the target share of required_ram_gb raises it to p95 / target, whole GiB', () => {
    // 40 observations on 2 hosts over 3 days: 36 use 3 GiB (75% of a 4 GiB host), 4 use 5.1 GiB (missed).
    const obs = series(40, (i) =>
      i % 10 === 9
        ? { memory_used_bytes: 5.1 * GiB, memory_pct: 95 }
        : { memory_used_bytes: 3 * GiB, memory_pct: 75 },
    );
    const report = propose({ profile: profile({ required_ram_gb: 4, memoryPct: 70 }), observations: obs });
    expect(report.proposals).toHaveLength(1);
    const [p] = report.proposals;
    // p95 of 36 × 3 GiB and 4 × 5.1 GiB is 5.1 GiB (rank 38 of 40); 5.1 / 0.7 = 7.29 → 8.
    expect(p).toMatchObject({ path: 'required_ram_gb', from: 4, to: 8, direction: 'raise' });
    expect(p!.evidence).toBe(
      'required_ram_gb 4 → 8: p95 use 5.1 GiB over 3 days on 2 hosts; target memory 70% missed 100% of the time',
    );
    expect(p!.numbers).toMatchObject({ p95: 5.1, p50: 3, missed_pct: 100, observations: 40, hosts: 2 });
  });

  test('memory: the target missed share counts each observation against the target by its memory_pct', () => {
    const obs = series(20, (i) => ({
      memory_used_bytes: (i < 15 ? 2 : 3.5) * GiB,
      memory_pct: i < 15 ? 50 : 88,
    }));
    const report = propose({ profile: profile({ required_ram_gb: 4, memoryPct: 80 }), observations: obs });
    expect(report.proposals[0]).toMatchObject({ path: 'required_ram_gb', from: 4, to: 5 }); // 3.5 / 0.8 = 4.4
    expect(report.proposals[0]!.evidence).toContain('target memory 80% missed 25% of the time');
    const all = report.evidence.find((r) => r.metric === 'memory_pct' && r.host === ALL)!;
    expect(all).toMatchObject({ n: 20, p50: 50, p95: 88, missed_pct: 25, target: '≤ 80%' });
  });

  test('memory: without a target in the profile the default target is used and said to be the default', () => {
    const obs = series(20, () => ({ memory_used_bytes: 3.6 * GiB }));
    const report = propose({ profile: profile({ required_ram_gb: 4 }), observations: obs });
    expect(report.proposals[0]).toMatchObject({ to: 5 }); // 3.6 / 0.8 = 4.5
    expect(report.proposals[0]!.evidence).toContain(`target memory ${RULES.defaultTargetPct}% (default)`);
  });

  test('memory: memory_pct becomes bytes through the host memory when no bytes were observed', () => {
    const obs = series(20, () => ({ memory_pct: 90 }));
    const withRam = propose({
      profile: profile({ required_ram_gb: 4, memoryPct: 70 }),
      observations: obs,
      hostMemoryBytes: { 'web-1': 8 * GiB, 'web-2': 8 * GiB },
    });
    expect(withRam.proposals[0]).toMatchObject({ path: 'required_ram_gb', to: 11 }); // 7.2 / 0.7 = 10.3
    const without = propose({ profile: profile({ required_ram_gb: 4, memoryPct: 70 }), observations: obs });
    expect(without.proposals).toEqual([]);
    expect(without.notes.join('\n')).toContain('0 observation(s) of memory use');
  });

  test('a target missed often while p95 use fits the requirement is explained, not proposed', () => {
    // The hosts ran with a memory limit below the requirement: 90% of 2 GiB used against 4 GiB required.
    const obs = series(20, () => ({ memory_used_bytes: 1.8 * GiB, memory_pct: 90 }));
    const report = propose({ profile: profile({ required_ram_gb: 4, memoryPct: 70 }), observations: obs });
    expect(report.proposals).toEqual([]);
    expect(report.notes.join('\n')).toMatch(
      /required_ram_gb: target memory 70% missed 100% .*yet p95 use 1\.8 GiB fits/,
    );
  });

  test('CPU: without host core counts the host counts as required_cores, so p95 97% of 1 core → 2 cores', () => {
    const obs = series(30, (i) => ({ cpu_pct: i % 3 === 0 ? 97 : 60 }));
    const report = propose({ profile: profile({ required_cores: 1, cpuPct: 90 }), observations: obs });
    expect(report.proposals).toEqual([
      expect.objectContaining({ path: 'required_cores', from: 1, to: 2, direction: 'raise' }),
    ]);
    expect(report.proposals[0]!.evidence).toBe(
      'required_cores 1 → 2: p95 use 0.97 cores over 3 days on 2 hosts; target CPU 90% missed 33.3% of the time',
    );
  });

  test('CPU: known host core counts turn CPU % into cores used', () => {
    const obs = series(30, () => ({ cpu_pct: 60 }));
    const report = propose({
      profile: profile({ required_cores: 1, cpuPct: 90 }),
      observations: obs,
      hostCores: { 'web-1': 4, 'web-2': 4 },
    });
    expect(report.proposals[0]).toMatchObject({ path: 'required_cores', to: 3 }); // 2.4 / 0.9 = 2.67
  });

  test('memory and CPU both short: two proposals, memory first', () => {
    const obs = series(20, () => ({ cpu_pct: 99, memory_used_bytes: 1.5 * GiB }));
    const report = propose({
      profile: profile({ required_cores: 2, required_ram_gb: 1, cpuPct: 80, memoryPct: 80 }),
      observations: obs,
    });
    expect(report.proposals.map((p) => [p.path, p.from, p.to])).toEqual([
      ['required_ram_gb', 1, 2],
      ['required_cores', 2, 3],
    ]);
  });

  test('use within the targets proposes nothing', () => {
    const obs = series(20, () => ({ cpu_pct: 50, memory_used_bytes: 2.5 * GiB }));
    const report = propose({ profile: profile({ required_ram_gb: 4, memoryPct: 80 }), observations: obs });
    expect(report.proposals).toEqual([]);
  });
});

describe('too little evidence', () => {
  test('fewer than K observations: no proposal, and the reason names the count', () => {
    const obs = series(RULES.minObservations - 1, () => ({ memory_used_bytes: 9 * GiB }));
    const report = propose({ profile: profile({ required_ram_gb: 4 }), observations: obs });
    expect(report.proposals).toEqual([]);
    expect(report.notes[0]).toBe(
      `too little evidence: ${RULES.minObservations - 1} observation(s) in the window, at least ${RULES.minObservations} needed; nothing proposed`,
    );
    expect(report.evidence.length).toBeGreaterThan(0);
  });

  test('a single host: no proposal however many observations, and the reason names the host', () => {
    const obs = series(200, () => ({ memory_used_bytes: 9 * GiB }), { hosts: ['web-1'] });
    const report = propose({ profile: profile({ required_ram_gb: 4 }), observations: obs });
    expect(report.proposals).toEqual([]);
    expect(report.notes[0]).toContain('every observation is from one host (web-1)');
  });

  test('no observations at all', () => {
    const report = propose({ profile: profile(), observations: [] });
    expect(report).toMatchObject({ observations: 0, hosts: [], proposals: [], evidence: [] });
    expect(report.notes[0]).toContain('0 observation(s)');
  });

  test('enough observations but too few carrying memory: memory is not sized, CPU still is', () => {
    const obs = series(20, (i) => ({ cpu_pct: 99, ...(i < 4 ? { memory_used_bytes: 9 * GiB } : {}) }));
    const report = propose({ profile: profile({ required_ram_gb: 4 }), observations: obs });
    expect(report.proposals.map((p) => p.path)).toEqual(['required_cores']);
    expect(report.notes.join('\n')).toContain('required_ram_gb: 4 observation(s) of memory use on 2 host(s)');
  });
});

describe('lowering', () => {
  const quiet = (days: number, gib = 0.6) =>
    series(40, (i) => ({ memory_used_bytes: (i % 2 ? gib + 0.1 : gib) * GiB, memory_pct: 10 }), { days });

  test('far below over enough days: lowered to a value that keeps 2 × the highest host p95', () => {
    const report = propose({
      profile: profile({ required_ram_gb: 8, memoryPct: 70 }),
      observations: quiet(5),
    });
    expect(report.proposals).toHaveLength(1);
    const p = report.proposals[0]!;
    // web-2 has the odd indices at 0.7 GiB: 2 × 0.7 = 1.4 → 2 GiB.
    expect(p).toMatchObject({ path: 'required_ram_gb', from: 8, to: 2, direction: 'lower' });
    expect(p.numbers).toMatchObject({ p95_highest_host: 0.7, margin: RULES.lowerMargin });
    expect(p.to).toBeGreaterThanOrEqual(RULES.lowerMargin * p.numbers.p95_highest_host!);
    expect(p.evidence).toContain(
      'below 40% of 8; 2 keeps 2× the highest p95; target memory 70% never missed',
    );
  });

  test('never below 1', () => {
    const report = propose({
      profile: profile({ required_ram_gb: 8, memoryPct: 70 }),
      observations: quiet(5, 0.05),
    });
    expect(report.proposals[0]).toMatchObject({ to: 1 });
  });

  test('too short a history: not lowered, and the note says why', () => {
    const report = propose({
      profile: profile({ required_ram_gb: 8, memoryPct: 70 }),
      observations: quiet(2),
    });
    expect(report.proposals).toEqual([]);
    expect(report.notes.join('\n')).toMatch(
      /required_ram_gb: the highest host's p95 memory use 0\.7 GiB is below 40% of 8, but not lowered: the observations span 2 days, not 3 days/,
    );
  });

  test('a target missed even once: not lowered', () => {
    const obs = quiet(5);
    obs[3]!.metrics!.memory_pct = 99;
    const report = propose({ profile: profile({ required_ram_gb: 8, memoryPct: 70 }), observations: obs });
    expect(report.proposals).toEqual([]);
    expect(report.notes.join('\n')).toContain('not lowered: target memory 70% was missed 2.5% of the time');
  });

  test('not far enough below (p95 ≥ 40% of the requirement): nothing, no note', () => {
    const report = propose({
      profile: profile({ required_ram_gb: 2, memoryPct: 70 }),
      observations: quiet(5, 0.8),
    });
    expect(report.proposals).toEqual([]);
    expect(report.notes.filter((n) => n.startsWith('required_ram_gb'))).toEqual([]);
  });

  test('a lowering that would not be lower is not proposed', () => {
    // 2 GiB required, the highest host at 0.7 GiB: 2 × 0.7 → 2, which is not lower.
    const report = propose({
      profile: profile({ required_ram_gb: 2, memoryPct: 70 }),
      observations: quiet(5, 0.6),
    });
    expect(report.proposals).toEqual([]);
    expect(report.notes.join('\n')).toContain('a safe value (2) would not be lower');
  });

  test('a requirement already at the floor (1) is not looked at for lowering', () => {
    const report = propose({
      profile: profile({ required_ram_gb: 1, memoryPct: 70 }),
      observations: quiet(5, 0.05),
    });
    expect(report.proposals).toEqual([]);
    expect(report.notes.filter((n) => n.startsWith('required_ram_gb'))).toEqual([]);
  });

  test('CPU is never lowered without every host core count (CPU is a share of the host)', () => {
    const obs = series(40, () => ({ cpu_pct: 5 }), { days: 5 });
    const unknown = propose({ profile: profile({ required_cores: 8, cpuPct: 80 }), observations: obs });
    expect(unknown.proposals).toEqual([]);
    expect(unknown.notes.join('\n')).toContain('the core count of web-1, web-2 is unknown');
    const known = propose({
      profile: profile({ required_cores: 8, cpuPct: 80 }),
      observations: obs,
      hostCores: { 'web-1': 16, 'web-2': 16 },
    });
    // 5% of 16 cores = 0.8 cores; 2 × 0.8 = 1.6 → 2.
    expect(known.proposals[0]).toMatchObject({ path: 'required_cores', from: 8, to: 2, direction: 'lower' });
  });

  test('every proposal, over many synthetic histories, keeps its side of the rules', () => {
    let seed = 42;
    const rnd = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let lowered = 0;
    let raised = 0;
    for (let k = 0; k < 300; k++) {
      const required = 1 + Math.floor(rnd() * 16);
      const scale = rnd() * required * 1.5;
      const obs = series(10 + Math.floor(rnd() * 60), () => ({ memory_used_bytes: rnd() * scale * GiB }), {
        days: rnd() * 8,
        hosts: ['a', 'b', 'c'].slice(0, 1 + Math.floor(rnd() * 3)),
      });
      const report = propose({
        profile: profile({ required_ram_gb: required, memoryPct: 80 }),
        observations: obs,
      });
      for (const p of report.proposals) {
        if (p.direction === 'raise') {
          raised++;
          expect(p.to).toBeGreaterThan(p.from);
          expect(p.to * 0.8).toBeGreaterThanOrEqual(p.numbers.p95! - 0.01);
        } else {
          lowered++;
          expect(p.to).toBeLessThan(p.from);
          expect(p.to).toBeGreaterThanOrEqual(1);
          expect(p.to).toBeGreaterThanOrEqual(RULES.lowerMargin * p.numbers.p95_highest_host! - 0.01);
          expect(p.numbers.span_days).toBeGreaterThanOrEqual(RULES.lowerMinDays);
          expect(p.numbers.hosts).toBeGreaterThanOrEqual(RULES.minHosts);
          expect(p.numbers.p95_highest_host).toBeLessThan(RULES.lowerBelow * p.from);
        }
      }
    }
    expect(raised).toBeGreaterThan(0);
    expect(lowered).toBeGreaterThan(0);
  });
});

describe('explained, never proposed', () => {
  test('disk writes below the target often: a note about the hosts, no proposal for the requirements', () => {
    const obs = series(20, (i, host) => ({
      memory_used_bytes: 1 * GiB,
      disk_write_mbps: host === 'web-1' && i % 4 !== 0 ? 12 : 80,
    }));
    const report = propose({ profile: profile({ required_ram_gb: 4, minWrite: 20 }), observations: obs });
    expect(report.proposals.filter((p) => p.path !== 'required_ram_gb')).toEqual([]);
    const note = report.notes.find((n) => n.startsWith('disk I/O'))!;
    expect(note).toContain('writes below 20 MB/s in 25% of the observations (web-1 50%, web-2 0%)');
    expect(note).toContain("the host's property");
    expect(report.evidence.find((r) => r.metric === 'disk_write_mbps' && r.host === 'web-1')).toMatchObject({
      n: 10,
      p50: 12,
      missed_pct: 50,
      target: '≥ 20 MB/s',
    });
  });

  test('latency and error rate missed (by code): noted, the profile has no requirement for them', () => {
    const obs = series(20, (i) => ({ latency_ms: i % 2 ? 900 : 40, memory_used_bytes: 2 * GiB }), {
      missed: (i) => (i % 2 ? ['latency'] : []),
    });
    const report = propose({ profile: profile({ required_ram_gb: 4 }), observations: obs });
    expect(report.proposals).toEqual([]);
    expect(report.notes.join('\n')).toContain('latency: missed in 50% of the observations');
    expect(report.evidence.find((r) => r.metric === 'latency_ms' && r.host === ALL)).toMatchObject({
      p50: 40,
      p95: 900,
      missed_pct: 50,
    });
  });
});

describe('evidence table', () => {
  test.each([
    [60_000, '1 minute'],
    [30 * 60_000, '30 minutes'],
    [3_600_000, '1 hour'],
    [5.5 * 3_600_000, '5.5 hours'],
    [86_400_000, '1 day'],
    [3.21 * 86_400_000, '3.2 days'],
  ])('a span of %d ms reads "%s"', (ms, text) => {
    expect(describeSpan(ms)).toBe(text);
  });

  test('one overall row and one per host for each observed metric, with target and requirement', () => {
    const obs = series(20, (_, host) => ({ cpu_pct: host === 'web-1' ? 20 : 40 }));
    const report = propose({ profile: profile({ required_cores: 2, cpuPct: 90 }), observations: obs });
    const cpu = report.evidence.filter((r) => r.metric === 'cpu_pct');
    expect(cpu.map((r) => [r.host, r.n, r.p50, r.p95])).toEqual([
      [ALL, 20, 20, 40],
      ['web-1', 10, 20, 20],
      ['web-2', 10, 40, 40],
    ]);
    expect(cpu[0]).toMatchObject({ target: '≤ 90%', requirement: '2 cores', missed_pct: 0 });
    expect(report.evidence.some((r) => r.metric === 'memory_gib' && r.n > 0)).toBe(false);
  });
});
