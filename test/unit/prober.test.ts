import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { findGaps, startProber } from '../../src/traffic/prober.js';

describe('findGaps (pure)', () => {
  const s = (at: number, ok: boolean) => ({ at, ok, said: ok ? '200 x' : 'ECONNREFUSED' });

  test('a gap runs from the last good answer before it to the first good one after it', () => {
    const gaps = findGaps(
      [s(0, true), s(50, true), s(100, false), s(150, false), s(200, true), s(250, true)],
      260,
    );
    expect(gaps).toEqual([{ lastGood: 50, firstGood: 200, ms: 150, bad: 2 }]);
  });

  test('bad from the start, and still bad at the end: measured from 0 and to the stop', () => {
    expect(findGaps([s(0, false), s(50, true), s(100, false)], 140)).toEqual([
      { firstGood: 50, ms: 50, bad: 1 },
      { lastGood: 50, ms: 90, bad: 1 },
    ]);
  });

  test('all good: no gap', () => {
    expect(findGaps([s(0, true), s(50, true)], 60)).toEqual([]);
  });
});

describe('startProber against a real HTTP server on loopback', () => {
  let server: Server | undefined;
  afterEach(() => {
    server?.close();
    server = undefined;
  });

  test('20 Hz: a 600 ms outage is found as one gap of about that length, and the first answer of the new server', async () => {
    let up = true;
    let who = 'old';
    server = createServer((_req, res) => {
      if (!up) {
        res.statusCode = 503;
        res.end('down');
        return;
      }
      res.end(who);
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const prober = startProber(`http://127.0.0.1:${port}/`, { hz: 20 });
    const newOne = prober.firstGood((said) => said === '200 new');
    await new Promise((r) => setTimeout(r, 300));
    up = false;
    await new Promise((r) => setTimeout(r, 600));
    who = 'new';
    up = true;
    await new Promise((r) => setTimeout(r, 300));
    const report = await prober.stop();
    expect(report.hz).toBe(20);
    expect(report.gaps).toHaveLength(1);
    // The gap's edges are requests about 50 ms apart: it is the outage, give or take a few periods (bounds wide
    // enough for a loaded machine; the point is that the gap is found and measured from the good answers).
    expect(report.longest!.ms).toBeGreaterThanOrEqual(500);
    expect(report.longest!.ms).toBeLessThan(1500);
    expect(report.longest!.bad).toBeGreaterThanOrEqual(4);
    expect(report.mean_interval_ms).toBeLessThan(200);
    const at = await newOne;
    expect(at).toBe(report.longest!.firstGood);
  });

  test('a refused connection counts as bad, and a waiter that never matched gets undefined at the stop', async () => {
    server = createServer((_req, res) => res.end('x'));
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    server.close();
    const prober = startProber(`http://127.0.0.1:${port}/`, { hz: 50, timeoutMs: 200 });
    const never = prober.firstGood(() => true);
    await new Promise((r) => setTimeout(r, 200));
    const report = await prober.stop();
    expect(report.good).toBe(0);
    expect(report.bad).toBeGreaterThan(3);
    expect(prober.samples[0]!.said).toBe('ECONNREFUSED');
    expect(await never).toBeUndefined();
  });
});
