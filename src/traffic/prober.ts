/**
 * A client's view of downtime: GET a URL at a fixed rate (20 Hz or more), as a user behind the balancer would,
 * and find the gaps between good answers. The downtime of a move is the longest gap: from the last good answer
 * before it to the first good answer after it (issue 12 §1). Requests do not overlap: one is sent every period, or
 * as soon as the one before ended when that took longer (a request that hangs counts until its own timeout).
 */
import { performance } from 'node:perf_hooks';

export interface ProberOptions {
  /** Requests per second; at least 1. Default 20. */
  hz?: number;
  /** How long one request may take before it counts as bad. Default 1000 ms. */
  timeoutMs?: number;
  /** Whether an answer is good; default: status 200. `body` is the answer's text. */
  good?: (status: number, body: string) => boolean;
}

export interface ProbeSample {
  /** When the request was sent, ms from the prober's start. */
  at: number;
  ok: boolean;
  /** "200 lab-2", "timeout", "ECONNREFUSED": what came back, for the report. */
  said: string;
}

export interface Gap {
  /** The last good answer before the gap (ms from start); undefined when the prober never had one before. */
  lastGood?: number;
  /** The first good answer after it; undefined when it never came back before the prober stopped. */
  firstGood?: number;
  /** firstGood - lastGood (or up to the stop, when it never came back). */
  ms: number;
  /** Bad answers in the gap. */
  bad: number;
}

export interface ProberReport {
  url: string;
  hz: number;
  requests: number;
  good: number;
  bad: number;
  /** The longest gap between good answers, if any answer was bad. */
  longest?: Gap;
  gaps: Gap[];
  /** Actual mean interval between requests, ms (above 1000/hz when requests were slow). */
  mean_interval_ms: number;
}

/** The gaps in a series of samples (pure). `endedAt`: when sampling stopped, for a gap still open then. */
export function findGaps(samples: readonly ProbeSample[], endedAt: number): Gap[] {
  const gaps: Gap[] = [];
  let lastGood: number | undefined;
  let open: Gap | undefined;
  for (const s of samples) {
    if (s.ok) {
      if (open) {
        open.firstGood = s.at;
        open.ms = s.at - (open.lastGood ?? 0);
        gaps.push(open);
        open = undefined;
      }
      lastGood = s.at;
    } else if (open) {
      open.bad++;
    } else {
      open = { ...(lastGood !== undefined ? { lastGood } : {}), ms: 0, bad: 1 };
    }
  }
  if (open) gaps.push({ ...open, ms: endedAt - (open.lastGood ?? 0) });
  return gaps;
}

export interface Prober {
  /** Stops sending and reports. */
  stop(): Promise<ProberReport>;
  /** The time (ms from start) of the first good answer whose text matches; undefined if none came before stop. */
  firstGood(match: (said: string) => boolean): Promise<number | undefined>;
  readonly samples: readonly ProbeSample[];
}

/** Starts probing `url` now. Only loopback or lab addresses belong here: the caller chooses. */
export function startProber(url: string, options: ProberOptions = {}): Prober {
  const hz = Math.max(1, options.hz ?? 20);
  const period = 1000 / hz;
  const timeoutMs = options.timeoutMs ?? 1000;
  const good = options.good ?? ((status: number) => status === 200);
  const t0 = performance.now();
  const samples: ProbeSample[] = [];
  const waiters: Array<{ match: (said: string) => boolean; resolve: (ms: number | undefined) => void }> = [];
  let stopped = false;

  const once = async (): Promise<void> => {
    const at = performance.now() - t0;
    let sample: ProbeSample;
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      const body = (await r.text()).trim();
      sample = { at, ok: good(r.status, body), said: `${r.status} ${body.slice(0, 60)}` };
    } catch (error) {
      const e = error as { name?: string; cause?: { code?: string } };
      sample = {
        at,
        ok: false,
        said: e.name === 'TimeoutError' ? 'timeout' : (e.cause?.code ?? String(error)),
      };
    }
    samples.push(sample);
    if (!sample.ok) return;
    for (let i = waiters.length - 1; i >= 0; i--)
      if (waiters[i]!.match(sample.said)) waiters.splice(i, 1)[0]!.resolve(sample.at);
  };

  const loop = (async () => {
    let next = 0;
    while (!stopped) {
      await once();
      next += period;
      const wait = next - (performance.now() - t0);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else next = performance.now() - t0;
    }
  })();

  return {
    samples,
    firstGood(match) {
      const found = samples.find((s) => s.ok && match(s.said));
      if (found) return Promise.resolve(found.at);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    async stop() {
      stopped = true;
      await loop;
      for (const w of waiters.splice(0)) w.resolve(undefined);
      const endedAt = performance.now() - t0;
      const gaps = findGaps(samples, endedAt);
      const longest = gaps.reduce<Gap | undefined>((a, g) => (!a || g.ms > a.ms ? g : a), undefined);
      const okCount = samples.filter((s) => s.ok).length;
      return {
        url,
        hz,
        requests: samples.length,
        good: okCount,
        bad: samples.length - okCount,
        ...(longest ? { longest } : {}),
        gaps,
        mean_interval_ms:
          samples.length > 1 ? (samples.at(-1)!.at - samples[0]!.at) / (samples.length - 1) : Number.NaN,
      };
    },
  };
}
