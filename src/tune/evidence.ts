/**
 * The evidence `profile tune` shows and reasons from: percentiles of each metric over the window, per host and
 * overall, beside the profile's target and requirement and how often the target was missed. Pure.
 */

/** One value of a metric, from one observation on one host. */
export interface Point {
  host: string;
  value: number;
}

/** Whether one observation missed a target (only observations that can tell are counted). */
export interface MissPoint {
  host: string;
  missed: boolean;
}

export interface EvidenceRow {
  metric: string;
  /** A host name, or ALL for every host together. */
  host: string;
  /** How many values the percentiles are taken over. */
  n: number;
  p50: number | null;
  p95: number | null;
  target: string | null;
  requirement: string | null;
  /** Share of the observations that could tell, in % (one decimal); null when none could. */
  missed_pct: number | null;
}

export const ALL = '(all)';

/**
 * The p-th percentile (0 < p ≤ 100) by nearest rank: the smallest value with at least p% of the values at or
 * below it, so it is always a value that was observed. NaN for no values.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

export const round1 = (n: number) => Math.round(n * 10) / 10;
export const round2 = (n: number) => Math.round(n * 100) / 100;

/** Share of missed among the points, in % (one decimal); null when there are none. */
export function missedPct(points: readonly MissPoint[]): number | null {
  if (points.length === 0) return null;
  return round1((points.filter((p) => p.missed).length / points.length) * 100);
}

export function hostsOf(points: ReadonlyArray<{ host: string }>): string[] {
  return [...new Set(points.map((p) => p.host))].sort();
}

/** The overall row first, then one per host (sorted by name). */
export function evidenceRows(
  metric: string,
  points: readonly Point[],
  misses: readonly MissPoint[],
  target: string | null,
  requirement: string | null,
  digits: (n: number) => number = round1,
): EvidenceRow[] {
  const row = (host: string, ps: readonly Point[], ms: readonly MissPoint[]): EvidenceRow => {
    const values = ps.map((p) => p.value);
    return {
      metric,
      host,
      n: values.length,
      p50: values.length ? digits(percentile(values, 50)) : null,
      p95: values.length ? digits(percentile(values, 95)) : null,
      target,
      requirement,
      missed_pct: missedPct(ms),
    };
  };
  const hosts = hostsOf([...points, ...misses]);
  return [
    row(ALL, points, misses),
    ...hosts.map((h) =>
      row(
        h,
        points.filter((p) => p.host === h),
        misses.filter((m) => m.host === h),
      ),
    ),
  ];
}

/** The highest per-host p95: what a lowering must still cover, whichever host the application lands on. */
export function worstHostP95(points: readonly Point[]): number {
  return Math.max(
    ...hostsOf(points).map((h) =>
      percentile(
        points.filter((p) => p.host === h).map((p) => p.value),
        95,
      ),
    ),
  );
}

const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;

/** "3.2 days", "1 hour" or "5 minutes": how long the observations span. */
export function describeSpan(ms: number): string {
  const days = ms / 86_400_000;
  const hours = ms / 3_600_000;
  if (days >= 1) return plural(round1(days), 'day');
  if (hours >= 1) return plural(round1(hours), 'hour');
  return plural(Math.max(0, Math.round(ms / 60_000)), 'minute');
}
