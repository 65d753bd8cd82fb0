/**
 * Health checks and performance samples, shared by validate and monitor.
 */
import { readFile } from 'node:fs/promises';
import { connect, isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { HealthCheck, Profile } from '../profile/schema.js';
import { privileged } from '../runbook/remote.js';
import type { StepContext } from '../runbook/types.js';

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/** What a single check needs: the host, the transport, the abort signal (watch calls it outside a run). */
export type CheckContext = Pick<StepContext, 'target' | 'ssh' | 'signal'>;

export const label = (c: HealthCheck, i: number) => c.name ?? `${c.type}#${i + 1}`;

async function tcpOpen(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return await new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (error?: string) => {
      socket.destroy();
      resolve(error);
    };
    socket.setTimeout(timeoutMs, () => done(`no connection within ${timeoutMs} ms`));
    socket.once('connect', () => done());
    socket.once('error', (e) => done(e.message));
  });
}

type HttpCheck = Extract<HealthCheck, { type: 'http' }>;

/**
 * GET on the target's address: http, or https with the certificate checked against the system's CAs or the
 * check's ca_file, for the name in host_header (also sent as the Host header and as the TLS server name).
 */
export async function httpGet(
  address: string,
  check: HttpCheck,
  signal: AbortSignal,
  /** Keep the answer's body (its first 64 KiB): watch reads a status endpoint's JSON. */
  keepBody = false,
): Promise<{ status: number; url: string; body?: string }> {
  const hostPart = address.includes(':') ? `[${address}]` : address;
  const url = `${check.scheme}://${hostPart}:${check.port}${check.path}`;
  const serverName = check.host_header?.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const ca = check.ca_file ? await readFile(check.ca_file, 'utf8') : undefined;
  const { request } = check.scheme === 'https' ? await import('node:https') : await import('node:http');
  const all = AbortSignal.any([signal, AbortSignal.timeout(check.timeout_ms)]);
  return await new Promise((resolve, reject) => {
    const req = request(
      {
        host: address,
        port: check.port,
        path: check.path,
        method: 'GET',
        signal: all,
        headers: check.host_header ? { host: check.host_header } : {},
        ...(check.scheme === 'https'
          ? {
              ...(ca ? { ca } : {}),
              ...(serverName && !isIP(serverName) ? { servername: serverName } : {}),
              // The certificate names the service, not the address persona connects to.
              ...(serverName
                ? {
                    checkServerIdentity: (_: string, cert: PeerCertificate) =>
                      checkServerIdentity(serverName, cert),
                  }
                : {}),
            }
          : {}),
      },
      (res) => {
        let body = '';
        if (keepBody) {
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            if (body.length < 65_536) body += d.slice(0, 65_536 - body.length);
          });
        } else res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, url, ...(keepBody ? { body } : {}) }));
        res.on('error', reject);
      },
    );
    req.on('error', (e) =>
      reject(all.aborted && !signal.aborted ? new Error(`no answer within ${check.timeout_ms} ms`) : e),
    );
    req.end();
  });
}

export async function runHealthCheck(
  ctx: CheckContext,
  check: HealthCheck,
  index: number,
): Promise<CheckResult> {
  const name = label(check, index);
  const host = ctx.target.address;
  try {
    if (check.type === 'http') {
      const r = await httpGet(host, check, ctx.signal);
      return {
        name,
        ok: r.status === check.expect_status,
        detail: `GET ${r.url}${check.host_header ? ` (Host: ${check.host_header})` : ''} → ${r.status}${r.status === check.expect_status ? '' : ` (expected ${check.expect_status})`}`,
      };
    }
    if (check.type === 'tcp') {
      const error = await tcpOpen(host, check.port, check.timeout_ms);
      return { name, ok: !error, detail: `tcp ${host}:${check.port} ${error ? `→ ${error}` : 'open'}` };
    }
    const r = await ctx.ssh.exec(ctx.target, privileged(ctx.target, check.command), {
      timeoutMs: check.timeout_ms,
      signal: ctx.signal,
    });
    return {
      name,
      ok: r.exitCode === 0,
      detail: `\`${check.command.join(' ')}\` → exit ${r.exitCode}${r.exitCode ? `: ${r.stderr.trim().slice(-120)}` : ''}`,
    };
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    return { name, ok: false, detail: (error as Error).message };
  }
}

export async function runHealthChecks(ctx: StepContext): Promise<CheckResult[]> {
  return await Promise.all(ctx.profile.health_checks.map((c, i) => runHealthCheck(ctx, c, i)));
}

/** Polls the checks until all pass or the deadline passes; returns the last results either way. */
/**
 * Asks the health checks until all pass or `deadlineMs` passed. The pauses between rounds start at 50 ms and double
 * up to `intervalMs`: an application that needs a moment to listen is seen as soon as it does, one that needs long
 * is not asked more than every `intervalMs`.
 */
export async function waitHealthy(
  ctx: StepContext,
  deadlineMs: number,
  intervalMs = 500,
): Promise<{ ok: boolean; results: CheckResult[]; waitedMs: number }> {
  const started = Date.now();
  let pause = Math.min(50, intervalMs);
  for (;;) {
    const results = await runHealthChecks(ctx);
    const ok = results.every((r) => r.ok);
    if (ok || Date.now() - started > deadlineMs) return { ok, results, waitedMs: Date.now() - started };
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(intervalMs, pause * 2);
  }
}

/** Samples CPU, memory and disk on the host: cgroup figures where the host has them, else the machine's. */
export const SAMPLE_SCRIPT = String.raw`
set -u
LC_ALL=C; export LC_ALL
window=$1; dir=$2; mb=$3
cpu_ns() {
  if [ -r /sys/fs/cgroup/cpu.stat ]; then awk '/^usage_usec/ {printf "%d\n", $2 * 1000}' /sys/fs/cgroup/cpu.stat; return; fi
  for f in /sys/fs/cgroup/cpuacct/cpuacct.usage /sys/fs/cgroup/cpu,cpuacct/cpuacct.usage; do
    [ -r "$f" ] && { cat "$f"; return; }
  done
  awk '/^cpu / {t = 0; for (i = 2; i <= 9; i++) if (i != 5 && i != 6) t += $i; printf "%d\n", t * 10000000}' /proc/stat
}
dev=$(awk -v d="$dir" 'index(d, $5) == 1 && length($5) >= max { max = length($5); dev = $3 } END { print dev }' /proc/self/mountinfo)
ticks() { [ -n "$dev" ] && [ -r "/sys/dev/block/$dev/stat" ] && awk '{print $10}' "/sys/dev/block/$dev/stat" || echo; }
c0=$(cpu_ns); d0=$(ticks); t0=$(date +%s%N)
sleep "$window"
c1=$(cpu_ns); d1=$(ticks); t1=$(date +%s%N)
echo "cores $(nproc)"
echo "cpu_ns $((c1 - c0)) wall_ns $((t1 - t0))"
[ -n "$d0" ] && [ -n "$d1" ] && echo "disk_busy_ms $((d1 - d0))"
if [ -r /sys/fs/cgroup/memory.max ]; then
  echo "mem $(cat /sys/fs/cgroup/memory.current) $(cat /sys/fs/cgroup/memory.max) $(awk '/^inactive_file/ {print $2}' /sys/fs/cgroup/memory.stat)"
elif [ -r /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
  echo "mem $(cat /sys/fs/cgroup/memory/memory.usage_in_bytes) $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) $(awk '/^total_inactive_file/ {print $2}' /sys/fs/cgroup/memory/memory.stat)"
fi
echo "meminfo $(awk '/^MemTotal/ {t=$2} /^MemAvailable/ {a=$2} END {print t * 1024, a * 1024}' /proc/meminfo)"
if [ "$mb" -gt 0 ] && [ -d "$dir" ]; then
  f="$dir/.persona-io-test.$$"
  out=$(dd if=/dev/zero of="$f" bs=1M count="$mb" conv=fdatasync 2>&1)
  rm -f "$f"
  echo "dd $(printf '%s' "$out" | sed -n 's/^\([0-9]*\) bytes.* copied, \([0-9.]*\) s.*/\1 \2/p')"
fi
`;

export interface Sample {
  cpu_pct: number;
  memory_pct: number;
  memory_used_bytes: number;
  memory_limit_bytes: number;
  disk_util_pct?: number;
  disk_write_mbps?: number;
  window_s: number;
}

export function parseSample(text: string): Sample {
  const line = (key: string) =>
    text
      .split('\n')
      .find((l) => l.startsWith(`${key} `))
      ?.slice(key.length + 1)
      .trim()
      .split(/\s+/)
      .map(Number) ?? [];
  const [cores = 1] = line('cores');
  const cpu = /cpu_ns (\d+) wall_ns (\d+)/.exec(text);
  const cpuNs = Number(cpu?.[1] ?? 0);
  const wallNs = Number(cpu?.[2] ?? 1);
  const [current, max, inactive = 0] = line('mem');
  const [total = 1, available = 0] = line('meminfo');
  const limited = current !== undefined && max !== undefined && Number.isFinite(max) && max < total;
  const used = limited ? Math.max(0, current - inactive) : total - available;
  const limit = limited ? max : total;
  const [busy] = line('disk_busy_ms');
  const [ddBytes, ddSeconds] = line('dd');
  return {
    cpu_pct: round((cpuNs / (wallNs * Math.max(1, cores))) * 100),
    memory_pct: round((used / limit) * 100),
    memory_used_bytes: used,
    memory_limit_bytes: limit,
    ...(busy !== undefined && Number.isFinite(busy)
      ? { disk_util_pct: round(Math.min(100, (busy / (wallNs / 1e6)) * 100)) }
      : {}),
    ...(ddBytes && ddSeconds ? { disk_write_mbps: round(ddBytes / ddSeconds / 1e6) } : {}),
    window_s: round(wallNs / 1e9),
  };
}

const round = (n: number) => Math.round(n * 10) / 10;

export async function sample(
  ctx: CheckContext & Pick<StepContext, 'profile'>,
  windowSeconds: number,
  writeTestMb: number,
): Promise<Sample> {
  const dir = ctx.profile.data.paths[0] ?? '/tmp';
  const r = await ctx.ssh.run(
    ctx.target,
    privileged(ctx.target, [
      'sh',
      '-c',
      SAMPLE_SCRIPT,
      'persona-sample',
      String(windowSeconds),
      dir,
      String(writeTestMb),
    ]),
    {
      signal: ctx.signal,
      timeoutMs: (windowSeconds + 120) * 1000,
    },
  );
  return parseSample(r.stdout);
}

/** A performance target the sample misses: its short code (as observations keep it) and the numbers. */
export interface TargetMiss {
  code: 'cpu' | 'memory' | 'disk_io';
  message: string;
}

/** Each performance target the sample misses, with the numbers. */
export function missedTargets(metrics: Profile['performance_metrics'], s: Sample): string[] {
  return targetMisses(metrics, s).map((m) => m.message);
}

/** Each performance target the sample misses, with its code. */
export function targetMisses(metrics: Profile['performance_metrics'], s: Sample): TargetMiss[] {
  const missed: TargetMiss[] = [];
  const miss = (code: TargetMiss['code'], message: string) => missed.push({ code, message });
  if (metrics.cpu_utilization_pct && s.cpu_pct > metrics.cpu_utilization_pct.max) {
    miss('cpu', `CPU ${s.cpu_pct}% > ${metrics.cpu_utilization_pct.max}% max over ${s.window_s} s`);
  }
  if (metrics.memory_usage_pct && s.memory_pct > metrics.memory_usage_pct.max) {
    miss(
      'memory',
      `memory ${s.memory_pct}% > ${metrics.memory_usage_pct.max}% max (${(s.memory_used_bytes / 1024 ** 2).toFixed(0)} of ${(s.memory_limit_bytes / 1024 ** 2).toFixed(0)} MiB)`,
    );
  }
  const io = metrics.disk_io;
  if (
    io?.min_write_mbps !== undefined &&
    s.disk_write_mbps !== undefined &&
    s.disk_write_mbps < io.min_write_mbps
  ) {
    miss('disk_io', `disk writes ${s.disk_write_mbps} MB/s < ${io.min_write_mbps} MB/s required`);
  }
  if (io?.max_util_pct !== undefined && s.disk_util_pct !== undefined && s.disk_util_pct > io.max_util_pct) {
    miss('disk_io', `disk busy ${s.disk_util_pct}% > ${io.max_util_pct}% max over ${s.window_s} s`);
  }
  return missed;
}
