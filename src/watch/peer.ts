/**
 * One round's look at an application from a peer host: over SSH on another inventory host, a small sh script opens
 * the application's ports with bash's /dev/tcp. A peer that could not look at all is `unknown`, never `failed`.
 */
import type { InventoryHost } from '../hosts/inventory.js';
import { SshError } from '../hosts/ssh.js';
import type { HealthCheck, Profile } from '../profile/schema.js';
import { label } from '../steps/checks.js';
import { stripTerminalControls } from '../util/sanitize.js';
import type { LookInput } from './look.js';
import type { CheckOutcome, VantageResult } from './types.js';

/**
 * The peer's probe: for each check, `tcp ADDRESS PORT` or `http ADDRESS PORT PATH HOST`, opened with bash's
 * /dev/tcp under `timeout`; one line per check: `check INDEX ok|fail DETAIL`. Every value is an argument ($@),
 * never script text.
 */
export const PEER_SCRIPT = String.raw`
set -u
command -v bash >/dev/null 2>&1 || { echo "nobash"; exit 3; }
i=0
while [ "$#" -ge 4 ]; do
  kind=$1; secs=$2; addr=$3; port=$4; shift 4
  if [ "$kind" = http ]; then
    path=$1; hosthdr=$2; shift 2
    line=$(timeout "$secs" bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1; printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" "$3" >&3; head -n 1 <&3' "$addr" "$port" "$path" "$hosthdr" 2>&1)
    rc=$?
  else
    line=$(timeout "$secs" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$addr" "$port" 2>&1)
    rc=$?
  fi
  if [ "$rc" -eq 0 ]; then r=ok; else r=fail; fi
  [ "$rc" -eq 124 ] && line="no answer within $secs s"
  echo "check $i $r $(printf '%s' "$line" | tr -d '\r' | head -c 200 | tr '\n' ' ')"
  i=$((i + 1))
done
`;

interface PeerCheck {
  name: string;
  args: string[];
  /** For http: the status expected in the answer's first line. */
  expect?: number;
  what: string;
}

/**
 * What the peer checks: the profile's http and tcp checks (https: the port only); with none, the port in
 * deploy.port; without one, the host's SSH port.
 */
export function peerChecks(profile: Profile, host: InventoryHost): PeerCheck[] {
  const secs = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)));
  const net = profile.health_checks
    .map((c, i) => ({ c, name: label(c, i) }))
    .filter(
      (x): x is { c: Exclude<HealthCheck, { type: 'command' }>; name: string } => x.c.type !== 'command',
    );
  const checks: PeerCheck[] = net.map(({ c, name }) =>
    c.type === 'http' && c.scheme === 'http'
      ? {
          name,
          args: [
            'http',
            secs(c.timeout_ms),
            host.address,
            String(c.port),
            c.path,
            c.host_header ?? host.address,
          ],
          expect: c.expect_status,
          what: `GET http://${host.address}:${c.port}${c.path}`,
        }
      : {
          name,
          args: ['tcp', secs(c.timeout_ms), host.address, String(c.port)],
          what: `tcp ${host.address}:${c.port}${c.type === 'http' ? ' (https: the port only)' : ''}`,
        },
  );
  if (checks.length > 0) return checks;
  // Only command checks: the port the application listens on, else whether the host's SSH port answers.
  if (profile.deploy.port !== undefined) {
    const port = String(profile.deploy.port);
    return [
      { name: 'app-port', args: ['tcp', '5', host.address, port], what: `tcp ${host.address}:${port}` },
    ];
  }
  const port = String(host.port ?? 22);
  return [{ name: 'ssh-port', args: ['tcp', '5', host.address, port], what: `tcp ${host.address}:${port}` }];
}

/** Pure: the peer script's output, check by check. Undefined when it is not the script's output. */
export function parsePeerOutput(checks: readonly PeerCheck[], stdout: string): CheckOutcome[] | undefined {
  const lines = new Map<number, { ok: boolean; text: string }>();
  for (const line of stdout.split('\n')) {
    const m = /^check (\d+) (ok|fail) ?(.*)$/.exec(line);
    if (m) lines.set(Number(m[1]), { ok: m[2] === 'ok', text: stripTerminalControls(m[3] ?? '').trim() });
  }
  if (lines.size !== checks.length) return undefined;
  return checks.map((c, i) => {
    const got = lines.get(i)!;
    if (c.expect === undefined)
      return {
        name: c.name,
        ok: got.ok,
        detail: `${c.what} ${got.ok ? 'open' : `→ ${got.text || 'refused'}`}`,
      };
    const code = Number(/^HTTP\/\S+ (\d{3})/.exec(got.text)?.[1] ?? 0);
    const ok = got.ok && code === c.expect;
    return {
      name: c.name,
      ok,
      detail: `${c.what} → ${code || got.text || 'no answer'}${ok || !code ? '' : ` (expected ${c.expect})`}`,
    };
  });
}

/** The application's host as a peer sees it. */
export async function lookFromPeer(input: LookInput, peer: InventoryHost): Promise<VantageResult> {
  const { ssh, host, profile, signal } = input;
  const checks = peerChecks(profile, host);
  const unknown = (reason: string): VantageResult => ({
    vantage: peer.name,
    status: 'unknown',
    checks: [],
    reason,
  });
  try {
    const r = await ssh.script(
      peer,
      PEER_SCRIPT,
      checks.flatMap((c) => c.args),
      { signal, timeoutMs: 30_000 },
    );
    const parsed = parsePeerOutput(checks, r.stdout);
    if (!parsed)
      return unknown(
        `the peer's probe gave no result (exit ${r.exitCode}${r.stdout.startsWith('nobash') ? ': no bash on the peer' : ''})`,
      );
    const failed = parsed.some((c) => !c.ok);
    return {
      vantage: peer.name,
      status: failed ? 'failed' : 'ok',
      checks: parsed,
      ...(failed
        ? {
            reason: parsed
              .filter((c) => !c.ok)
              .map((c) => `${c.name}: ${c.detail}`)
              .join('; '),
            missed: ['health'],
          }
        : {}),
    };
  } catch (error) {
    if (error instanceof SshError && error.kind !== 'cancelled')
      return unknown(`peer ${peer.name}: ${error.message}`);
    throw error;
  }
}
