/**
 * A real Knot DNS server (knotd from Debian's knot) on 127.0.0.1 and a free port, in a temporary directory: one
 * zone from the text given, updatable by the TSIG key given (acl action update). Stop it with stop().
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exchange, newId, parseServer } from '../../src/traffic/dns-client.js';
import { decodeMessage, encodeMessage, queryMessage, TYPE } from '../../src/traffic/dns-wire.js';
import { requireBinaries } from './binaries.js';

export interface Knot {
  /** "127.0.0.1:PORT" */
  server: string;
  port: number;
  zone: string;
  key: { name: string; algorithm: 'hmac-sha256' | 'hmac-sha512'; secret: string };
  /** What knotd printed (its log goes to stderr). */
  log(): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

export async function startKnot(
  zone: string,
  records: string,
  key: { name: string; algorithm?: 'hmac-sha256' | 'hmac-sha512' } = { name: 'persona-key' },
): Promise<Knot> {
  const [knotd] = requireBinaries('knotd');
  const dir = mkdtempSync(join(tmpdir(), 'persona-knot-'));
  const port = await freePort();
  // The journal (under database storage) must exist, or every update fails with SERVFAIL ("not exists").
  mkdirSync(join(dir, 'db'));
  const algorithm = key.algorithm ?? 'hmac-sha256';
  const secret = randomBytes(32).toString('base64');
  writeFileSync(
    join(dir, 'knot.conf'),
    `server:
    rundir: "${dir}"
    listen: 127.0.0.1@${port}
    pidfile: "${dir}/knot.pid"
log:
  - target: stderr
    any: info
database:
    storage: "${dir}/db"
control:
    listen: "${dir}/knot.sock"
key:
  - id: ${key.name}
    algorithm: ${algorithm}
    secret: ${secret}
acl:
  - id: update
    key: ${key.name}
    action: update
zone:
  - domain: ${zone}
    storage: "${dir}"
    file: "zone"
    acl: update
`,
  );
  writeFileSync(
    join(dir, 'zone'),
    `$ORIGIN ${zone}.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 30\n@ NS ns1\nns1 A 127.0.0.1\n${records}\n`,
  );
  let log = '';
  const child: ChildProcess = spawn(knotd!, ['-c', join(dir, 'knot.conf')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => {
    log += d;
  });
  child.stderr!.on('data', (d) => {
    log += d;
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready when it answers the zone's SOA authoritatively.
  const server = parseServer(`127.0.0.1:${port}`);
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`knotd exited ${child.exitCode}:\n${log}`);
    }
    try {
      const wire = await exchange(server, encodeMessage(queryMessage(newId(), zone, TYPE.SOA)), {
        timeoutMs: 500,
        signal: AbortSignal.timeout(1000),
      });
      if (decodeMessage(wire).aa) break;
    } catch {}
    if (Date.now() - started > 10_000) {
      await stop();
      throw new Error(`knotd does not answer on 127.0.0.1:${port} after 10 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    server: server.label,
    port,
    zone,
    key: { name: key.name, algorithm, secret },
    log: () => log,
    stop,
  };
}
