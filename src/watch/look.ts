/**
 * One round's look at an application from persona itself: the profile's health checks as validate runs them (http
 * and tcp straight to the host's address, command checks over SSH), `ssh HOST true`, the status endpoint, and every
 * few rounds a short CPU/memory/disk sample against performance_metrics. The peer's look is in peer.ts.
 */
import type { InventoryHost } from '../hosts/inventory.js';
import type { Transport } from '../hosts/ssh.js';
import type { Profile, WatchSettings } from '../profile/schema.js';
import { httpGet, missedTargets, runHealthCheck, type Sample, sample } from '../steps/checks.js';
import { askReach } from '../steps/reach.js';
import type { CheckOutcome, VantageResult } from './types.js';

export interface LookInput {
  ssh: Transport;
  host: InventoryHost;
  profile: Profile;
  signal: AbortSignal;
}

/** How long the CPU/memory sample of a round that takes one lasts (seconds); no disk write test. */
export const SAMPLE_WINDOW_S = 1;

export async function lookFromPersona(input: LookInput, withSample: boolean): Promise<VantageResult> {
  const { ssh, host, profile, signal } = input;
  const ctx = { target: host, ssh, signal, profile };
  const [reach, checks, status] = await Promise.all([
    askReach(ssh, host, signal),
    Promise.all(profile.health_checks.map((c, i) => runHealthCheck(ctx, c, i))),
    profile.watch?.status ? readStatus(host.address, profile.watch.status, signal) : undefined,
  ]);
  const missed: string[] = [];
  const all: CheckOutcome[] = [...checks];
  all.push({ name: 'ssh', ok: reach.ok, detail: reach.ok ? 'ssh true → ok' : reach.reason });
  if (!reach.ok) missed.push('unreachable');
  if (checks.some((c) => !c.ok)) missed.push('health');
  const degraded: string[] = [];
  const metrics: NonNullable<VantageResult['metrics']> = {};
  if (status) {
    all.push(status.check);
    Object.assign(metrics, status.metrics);
    degraded.push(...status.missed.map((m) => m.text));
    missed.push(...status.missed.map((m) => m.code));
  }
  if (withSample && reach.ok) {
    try {
      const s = await sample(ctx, SAMPLE_WINDOW_S, 0);
      Object.assign(metrics, sampleMetrics(s));
      const texts = missedTargets(profile.performance_metrics, s);
      degraded.push(...texts);
      missed.push(...missedCodes(texts));
    } catch (error) {
      if (signal.aborted) throw error;
      all.push({ name: 'sample', ok: false, detail: (error as Error).message });
    }
  }
  // The health checks decide; with none, whether the host answers over SSH does.
  const failed = profile.health_checks.length > 0 ? checks.some((c) => !c.ok) : !reach.ok;
  return {
    vantage: 'persona',
    status: failed ? 'failed' : 'ok',
    checks: all,
    ...(failed
      ? {
          reason: all
            .filter((c) => !c.ok)
            .map((c) => `${c.name}: ${c.detail}`)
            .join('; '),
        }
      : {}),
    ...(missed.length ? { missed: [...new Set(missed)] } : {}),
    ...(degraded.length ? { degraded } : {}),
    ...(Object.keys(metrics).length ? { metrics } : {}),
  };
}

function sampleMetrics(s: Sample): NonNullable<VantageResult['metrics']> {
  return {
    cpu_pct: s.cpu_pct,
    memory_pct: s.memory_pct,
    memory_used_bytes: s.memory_used_bytes,
    ...(s.disk_util_pct !== undefined ? { disk_util_pct: s.disk_util_pct } : {}),
    ...(s.disk_write_mbps !== undefined ? { disk_write_mbps: s.disk_write_mbps } : {}),
  };
}

/** The observation codes of missedTargets' lines. */
export function missedCodes(texts: readonly string[]): string[] {
  return texts.map((t) => (t.startsWith('CPU') ? 'cpu' : t.startsWith('memory') ? 'memory' : 'disk_io'));
}

type StatusSettings = NonNullable<WatchSettings['status']>;

/** GET on the status endpoint: its answer time, and the error rate its JSON reports. */
export async function readStatus(
  address: string,
  status: StatusSettings,
  signal: AbortSignal,
  clock: () => number = () => performance.now(),
): Promise<{
  check: CheckOutcome;
  metrics: { latency_ms?: number; error_rate?: number };
  missed: Array<{ code: string; text: string }>;
}> {
  const started = clock();
  const check = {
    type: 'http' as const,
    port: status.port,
    path: status.path,
    scheme: 'http' as const,
    expect_status: 200,
    timeout_ms: status.timeout_ms,
  };
  try {
    const r = await httpGet(address, check, signal, true);
    const latency = Math.round(clock() - started);
    return judgeStatus(status, r.status, r.body ?? '', latency, r.url);
  } catch (error) {
    if (signal.aborted) throw error;
    return {
      check: { name: 'status', ok: false, detail: (error as Error).message },
      metrics: {},
      missed: [{ code: 'latency', text: `status endpoint: ${(error as Error).message}` }],
    };
  }
}

/** Pure: what a status endpoint's answer says against the profile's targets. */
export function judgeStatus(
  status: StatusSettings,
  code: number,
  body: string,
  latencyMs: number,
  url: string,
): Awaited<ReturnType<typeof readStatus>> {
  const missed: Array<{ code: string; text: string }> = [];
  let errorRate: number | undefined;
  try {
    const parsed = JSON.parse(body) as { error_rate?: unknown };
    if (typeof parsed.error_rate === 'number' && Number.isFinite(parsed.error_rate))
      errorRate = parsed.error_rate;
  } catch {
    // Not JSON: only the answer time is known.
  }
  if (status.max_latency_ms !== undefined && latencyMs > status.max_latency_ms)
    missed.push({
      code: 'latency',
      text: `status answered in ${latencyMs} ms > ${status.max_latency_ms} ms max`,
    });
  if (status.max_error_rate !== undefined && errorRate !== undefined && errorRate > status.max_error_rate)
    missed.push({ code: 'error_rate', text: `error rate ${errorRate} > ${status.max_error_rate} max` });
  return {
    check: { name: 'status', ok: code === 200, detail: `GET ${url} → ${code} in ${latencyMs} ms` },
    metrics: { latency_ms: latencyMs, ...(errorRate !== undefined ? { error_rate: errorRate } : {}) },
    missed,
  };
}
