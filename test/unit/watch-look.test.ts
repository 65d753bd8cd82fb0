/**
 * A round's looks (src/watch/look.ts, peer.ts): the peer's probe script run for real with sh against loopback
 * listeners, its output parsed, the status endpoint judged, and both vantages through a fake transport that
 * records what it was asked to run.
 */
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { type Profile, profileSchema } from '../../src/profile/schema.js';
import { judgeStatus, lookFromPersona, missedCodes } from '../../src/watch/look.js';
import { lookFromPeer, PEER_SCRIPT, parsePeerOutput, peerChecks } from '../../src/watch/peer.js';
import { WatchTransport } from '../helpers/watch-transport.js';

let http: Server;
let port = 0;
let closedPort = 0;
beforeAll(async () => {
  http = createServer((req, res) => {
    if (req.url === '/status') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ error_rate: 0.25 }));
    } else {
      res.statusCode = req.url === '/health' ? 200 : 503;
      res.end('x');
    }
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  port = (http.address() as { port: number }).port;
  // A port that was just free: nothing listens there now.
  const tmp = createTcpServer();
  await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
  closedPort = (tmp.address() as { port: number }).port;
  await new Promise((r) => tmp.close(r));
});
afterAll(() => new Promise((r) => http.close(r)));

const host: InventoryHost = { name: 'app-1', address: '127.0.0.1', labels: {}, apps: ['web'] };
const peer: InventoryHost = { name: 'peer-1', address: '127.0.0.2', labels: {}, apps: [] };

function profile(extra: Record<string, unknown> = {}): Profile {
  return profileSchema.parse({
    id: 'web',
    required_cores: 1,
    required_ram_gb: 1,
    required_storage_gb: 0,
    deploy: { start: ['true'], stop: ['true'] },
    health_checks: [
      { name: 'health', type: 'http', port, path: '/health' },
      { name: 'port', type: 'tcp', port },
    ],
    ...extra,
  });
}

/** Runs the peer script here, as the peer's sh would (arguments quoted by nobody: argv straight to sh). */
async function runPeerScript(args: string[]): Promise<string> {
  const r = await execa('sh', ['-s', '--', ...args], { input: PEER_SCRIPT, reject: false });
  return String(r.stdout);
}

describe('the peer probe script, run for real', () => {
  test('http and tcp checks against a loopback server', async () => {
    const checks = peerChecks(profile(), host);
    const out = await runPeerScript(checks.flatMap((c) => c.args));
    const parsed = parsePeerOutput(checks, out)!;
    expect(parsed.map((c) => [c.name, c.ok])).toEqual([
      ['health', true],
      ['port', true],
    ]);
    expect(parsed[0]!.detail).toBe(`GET http://127.0.0.1:${port}/health → 200`);
  });

  test('a wrong status and a closed port fail, each with its detail', async () => {
    const p = profile({
      health_checks: [
        { name: 'health', type: 'http', port, path: '/nope' },
        { name: 'port', type: 'tcp', port: closedPort },
      ],
    });
    const checks = peerChecks(p, host);
    const parsed = parsePeerOutput(checks, await runPeerScript(checks.flatMap((c) => c.args)))!;
    expect(parsed.map((c) => c.ok)).toEqual([false, false]);
    expect(parsed[0]!.detail).toMatch(/→ 503 \(expected 200\)$/);
    expect(parsed[1]!.detail).toMatch(new RegExp(`tcp 127.0.0.1:${closedPort} → `));
  });

  test('a path with shell text stays one argument: no command runs', async () => {
    const p = profile({ health_checks: [{ type: 'http', port, path: '/$(touch$IFS/tmp/pwned-watch)' }] });
    const checks = peerChecks(p, host);
    expect(checks[0]!.args).toContain('/$(touch$IFS/tmp/pwned-watch)');
    const parsed = parsePeerOutput(checks, await runPeerScript(checks.flatMap((c) => c.args)))!;
    expect(parsed[0]!.ok).toBe(false);
    const { existsSync } = await import('node:fs');
    expect(existsSync('/tmp/pwned-watch')).toBe(false);
  });
});

describe('peerChecks and parsePeerOutput', () => {
  test('command checks are left to persona; with no network check, deploy.port, else the SSH port', () => {
    const p = profile({ health_checks: [{ type: 'command', command: ['true'] }] });
    expect(peerChecks(p, { ...host, port: 2222 })).toEqual([
      { name: 'ssh-port', args: ['tcp', '5', '127.0.0.1', '2222'], what: 'tcp 127.0.0.1:2222' },
    ]);
    const listening = profile({
      health_checks: [{ type: 'command', command: ['true'] }],
      deploy: { port: 8080, start: ['true'], stop: ['true'] },
    });
    expect(peerChecks(listening, host)).toEqual([
      { name: 'app-port', args: ['tcp', '5', '127.0.0.1', '8080'], what: 'tcp 127.0.0.1:8080' },
    ]);
  });

  test('https is checked as an open port (no TLS client on the peer)', () => {
    const p = profile({ health_checks: [{ type: 'http', scheme: 'https', port: 443 }] });
    expect(peerChecks(p, host)[0]!.args).toEqual(['tcp', '2', '127.0.0.1', '443']);
  });

  test('output that is not the script answer is undefined; control characters are stripped', () => {
    const checks = peerChecks(profile(), host);
    expect(parsePeerOutput(checks, 'nobash\n')).toBeUndefined();
    expect(parsePeerOutput(checks, 'check 0 ok HTTP/1.0 200 OK\n')).toBeUndefined();
    const parsed = parsePeerOutput(checks, 'check 0 fail \u001b[31mboom\u001b[0m\ncheck 1 ok \n')!;
    expect(parsed[0]!.detail).not.toContain('\u001b');
    expect(parsed.map((c) => c.ok)).toEqual([false, true]);
  });
});

describe('the status endpoint', () => {
  const status = { port: 1, path: '/status', timeout_ms: 2000, max_latency_ms: 100, max_error_rate: 0.1 };

  test('answer time and error rate against the targets', () => {
    const r = judgeStatus(status, 200, '{"error_rate": 0.2}', 150, 'http://h/status');
    expect(r.metrics).toEqual({ latency_ms: 150, error_rate: 0.2 });
    expect(r.missed.map((m) => m.code)).toEqual(['latency', 'error_rate']);
    expect(r.check.ok).toBe(true);
    expect(judgeStatus(status, 200, 'not json', 10, 'u').missed).toEqual([]);
    expect(judgeStatus(status, 500, '{}', 10, 'u').check.ok).toBe(false);
  });

  test('missedCodes maps missedTargets lines', () => {
    expect(missedCodes(['CPU 99% > 80% max', 'memory 95% > 90%', 'disk busy 99% > 50% max'])).toEqual([
      'cpu',
      'memory',
      'disk_io',
    ]);
  });
});

describe('the two vantages through a transport', () => {
  const signal = new AbortController().signal;

  test("persona: checks pass, ssh answers, status read; the status's targets make it degraded, not failed", async () => {
    const p = profile({ watch: { status: { port, path: '/status', max_error_rate: 0.1 } } });
    const ssh = new WatchTransport(new Set());
    const r = await lookFromPersona({ ssh, host, profile: p, signal }, false);
    expect(r.status).toBe('ok');
    expect(r.missed).toEqual(['error_rate']);
    expect(r.degraded).toEqual(['error rate 0.25 > 0.1 max']);
    expect(r.metrics?.error_rate).toBe(0.25);
    expect(ssh.calls).toEqual(['app-1: true']);
  });

  test('persona: with no health checks, an unreachable host is a failure', async () => {
    const p = profile({ health_checks: [] });
    const r = await lookFromPersona(
      { ssh: new WatchTransport(new Set(['app-1'])), host, profile: p, signal },
      false,
    );
    expect(r.status).toBe('failed');
    expect(r.missed).toEqual(['unreachable']);
  });

  test('persona: checks that pass outweigh an SSH that does not answer (the app serves)', async () => {
    const r = await lookFromPersona(
      { ssh: new WatchTransport(new Set(['app-1'])), host, profile: profile(), signal },
      true,
    );
    expect(r.status).toBe('ok');
    expect(r.missed).toEqual(['unreachable']);
  });

  test('peer: the script runs on the peer with the checks as arguments; its answer decides', async () => {
    const ssh = new WatchTransport(new Set(), () => 'check 0 ok HTTP/1.1 200 OK\ncheck 1 fail refused\n');
    const r = await lookFromPeer({ ssh, host, profile: profile(), signal }, peer);
    expect(ssh.calls).toEqual([
      `peer-1: script http 2 127.0.0.1 ${port} /health 127.0.0.1 tcp 2 127.0.0.1 ${port}`,
    ]);
    expect(r).toMatchObject({ vantage: 'peer-1', status: 'failed', missed: ['health'] });
  });

  test('peer: a peer that cannot be reached is unknown, not failed', async () => {
    const r = await lookFromPeer(
      { ssh: new WatchTransport(new Set(['peer-1'])), host, profile: profile(), signal },
      peer,
    );
    expect(r.status).toBe('unknown');
    expect(r.reason).toMatch(/peer peer-1: peer-1: refused/);
  });
});
