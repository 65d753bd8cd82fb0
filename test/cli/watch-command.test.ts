/**
 * persona watch and persona ack in-process: the real CLI, file store, verdict and sinks; the application is a
 * loopback HTTP server persona checks for real, SSH is a transport that answers `true`, the sample and the peer's
 * probe (from whether the server is up). Each test looks at what persona did: exit codes, the events file, the
 * store, what the webhook and the --on-failure command received.
 */
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listObservations } from '../../src/feedback/observations.js';
import { openBackend } from '../../src/stores/open.js';
import { jsonLines, repoRoot, runInProcess } from '../helpers/cli.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';
import { WatchTransport } from '../helpers/watch-transport.js';

let app: Server;
let port = 0;
/** Whether the application answers 200 on /health (503 otherwise). */
let up = true;
beforeAll(async () => {
  app = createServer((_req, res) => {
    res.statusCode = up ? 200 : 503;
    res.end();
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  port = (app.address() as { port: number }).port;
});
afterAll(() => new Promise((r) => app.close(r)));

interface World {
  env: Record<string, string>;
  store: string;
  dir: string;
  events: string;
  ssh: WatchTransport;
  /** The peer's probe says what the server's state says, unless told otherwise. */
  peerSeesUp?: boolean;
  watch(...args: string[]): ReturnType<typeof runInProcess>;
  persona(...args: string[]): ReturnType<typeof runInProcess>;
}

async function world(profileExtra: Record<string, unknown> = {}, hosts = ['h1', 'h2']): Promise<World> {
  const store = copyOfProfiles();
  const dir = tempDir('persona-watch-');
  const profile = {
    id: 'web',
    required_cores: 1,
    required_ram_gb: 1,
    required_storage_gb: 0,
    deploy: { port, start: ['true'], stop: ['true'] },
    health_checks: [{ name: 'health', type: 'http', port, path: '/health' }],
    ...profileExtra,
  };
  writeFileSync(join(store, 'web.json'), JSON.stringify(profile));
  const backend = await openBackend(`file:${store}`, {}, repoRoot);
  // Placed an hour ago: past any grace period.
  const at = new Date(Date.now() - 3_600_000).toISOString();
  await backend.txn({
    puts: [{ key: 'assignments/web', value: JSON.stringify({ app: 'web', host: 'h1', at }) }],
  });
  await backend.close();
  const inventory = join(dir, 'inventory.json');
  const addresses: Record<string, string> = { h1: '127.0.0.1', h2: '127.0.0.2' };
  writeFileSync(
    inventory,
    JSON.stringify({ hosts: hosts.map((name) => ({ name, address: addresses[name], apps: [] })) }),
  );
  const env = {
    PERSONA_STORE: `file:${store}`,
    PERSONA_INVENTORY: inventory,
    PERSONA_STATE_DIR: join(dir, 'state'),
    PERSONA_AUTHOR: 'alice@test',
    CI: 'true',
  };
  const w: World = {
    env,
    store,
    dir,
    events: join(dir, 'events.ndjson'),
    ssh: new WatchTransport(new Set(), () =>
      (w.peerSeesUp ?? up) ? 'check 0 ok HTTP/1.1 200 OK\n' : 'check 0 ok HTTP/1.1 503 Service Unavailable\n',
    ),
    watch: (...args) =>
      runInProcess(['watch', '--once', '--interval', '0', '--grace', '0', '--events', w.events, ...args], {
        env,
        transport: w.ssh,
      }),
    persona: (...args) => runInProcess(args, { env, transport: w.ssh }),
  };
  return w;
}

async function storedObservations(w: World) {
  const backend = await openBackend(`file:${w.store}`, w.env, repoRoot);
  try {
    return await listObservations(backend, { app: 'web' });
  } finally {
    await backend.close();
  }
}

const eventsOf = (w: World) =>
  existsSync(w.events) ? jsonLines(readFileSync(w.events, 'utf8')) : ([] as Array<Record<string, unknown>>);
const result = (stdout: string) => jsonLines(stdout).at(-1) as Record<string, unknown>;

describe('persona watch --once', () => {
  test('healthy from both vantage points: exit 0, no event, an observation per vantage per round', async () => {
    up = true;
    const w = await world();
    const r = await w.watch('--rounds', '2', '--failures', '2', '--json');
    expect(r.code, r.stderr).toBe(0);
    const res = result(r.stdout);
    expect(res.apps).toEqual([{ app: 'web', host: 'h1', state: 'healthy' }]);
    const obs = res.observations as Array<Record<string, unknown>>;
    expect(obs.map((o) => `${o.vantage}:${o.ok}`)).toEqual([
      'persona:true',
      'h2:true',
      'persona:true',
      'h2:true',
    ]);
    expect(obs[0]).toMatchObject({ app: 'web', host: 'h1', source: 'watch', profile_version: 1 });
    // The first round samples CPU and memory: an idle host.
    expect((obs[0]!.metrics as Record<string, number>).cpu_pct).toBe(5);
    expect(eventsOf(w)).toEqual([]);
    // The peer's probe ran on h2 against h1's address and port.
    expect(w.ssh.calls).toContain(`h2: script http 2 127.0.0.1 ${port} /health 127.0.0.1`);
    // The store keeps the first look of each vantage point, not every round (watch/record.ts).
    const stored = await storedObservations(w);
    expect(stored.map((o) => `${o.vantage}:${o.ok}`).sort()).toEqual(['h2:true', 'persona:true']);
  });

  test('down from both vantage points: exit 6, one failure event in the file and on stdout', async () => {
    up = false;
    const w = await world();
    const r = await w.watch('--rounds', '3', '--failures', '2', '--json');
    up = true;
    expect(r.code, r.stderr).toBe(6);
    const events = eventsOf(w);
    expect(events.map((e) => e.kind)).toEqual(['failure']);
    expect(events[0]).toMatchObject({ app: 'web', host: 'h1', vantages: ['persona', 'h2'] });
    expect(events[0]!.reason).toMatch(/failed in 2 of the last 2 rounds, seen from persona and h2/);
    const streamed = jsonLines(r.stdout).filter((l) => l.type === 'watch');
    expect(streamed.map((e) => e.kind)).toEqual(['failure']);
    expect(result(r.stdout).exit_code).toBe(6);
    // Stored for the ranking's history: the failure as each vantage point first saw it, once.
    const stored = await storedObservations(w);
    expect(stored.map((o) => `${o.vantage}:${o.ok}`).sort()).toEqual(['h2:false', 'persona:false']);
    expect(stored.every((o) => o.source === 'watch' && o.host === 'h1')).toBe(true);
  });

  test('down only as this machine sees it (the peer reaches it): no failure counts', async () => {
    up = false;
    const w = await world();
    w.peerSeesUp = true;
    const r = await w.watch('--rounds', '2', '--failures', '2');
    up = true;
    expect(r.code, r.stderr).toBe(0);
    expect(eventsOf(w)).toEqual([]);
  });

  test('no peer host in the inventory: this machine decides alone, and the event says so', async () => {
    up = false;
    const w = await world({}, ['h1']);
    const r = await w.watch('--rounds', '1', '--failures', '1');
    up = true;
    expect(r.code).toBe(6);
    expect(eventsOf(w)[0]).toMatchObject({ kind: 'failure', single_vantage: true, vantages: ['persona'] });
  });

  test('a profile sets its own N and M', async () => {
    up = false;
    const w = await world({ watch: { failures: 1, rounds: 1 } });
    const r = await w.watch('--rounds', '5', '--failures', '5');
    up = true;
    // 5 rounds run (the flags' window), but the profile's 1 of 1 decides.
    expect(r.code).toBe(6);
    expect(w.ssh.calls.filter((c) => c.startsWith('h2: script'))).toHaveLength(5);
  });

  test('the --on-failure command gets the event on stdin; the webhook gets every event', async () => {
    up = false;
    const w = await world();
    const got: string[] = [];
    const hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        got.push(body);
        res.end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const hookPort = (hook.address() as { port: number }).port;
    const out = join(w.dir, 'on-failure.json');
    const r = await w.watch(
      '--rounds',
      '1',
      '--failures',
      '1',
      '--on-failure',
      JSON.stringify(['sh', '-c', 'cat > "$0"; echo "$PERSONA_WATCH_KIND $PERSONA_WATCH_APP" >> "$0"', out]),
      '--webhook',
      `http://127.0.0.1:${hookPort}/hook`,
    );
    await new Promise((r) => hook.close(r));
    up = true;
    expect(r.code, r.stderr).toBe(6);
    const [json, vars] = readFileSync(out, 'utf8').trim().split('\n');
    expect(JSON.parse(json!)).toMatchObject({ kind: 'failure', app: 'web' });
    expect(vars).toBe('failure web');
    expect(got.map((b) => (JSON.parse(b) as { kind: string }).kind)).toEqual(['failure']);
  });

  test('a webhook off loopback, a bad --on-failure, a bad window: usage errors, nothing checked', async () => {
    const w = await world();
    const off = await w.watch('--webhook', 'http://10.0.0.1/hook');
    expect(off.code).toBe(2);
    expect(off.stderr).toMatch(/only http to a loopback address \(127\.0\.0\.0\/8\)/);
    const cmd = await w.watch('--on-failure', 'page me');
    expect(cmd.code).toBe(2);
    expect(cmd.stderr).toMatch(/--on-failure must be a command as a list of arguments/);
    const win = await w.watch('--rounds', '2', '--failures', '3');
    expect(win.code).toBe(2);
    expect(win.stderr).toMatch(/failures \(N\) must be an integer from 1 to rounds \(2\)/);
    expect(w.ssh.calls).toEqual([]);
  });

  test('--auto-recover without --yes is refused before anything is checked', async () => {
    const w = await world({ watch: { auto_recover: true } });
    const r = await w.watch('--auto-recover');
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--auto-recover starts recoveries unattended: it needs --yes too/);
    expect(w.ssh.calls).toEqual([]);
  });

  test('an assignment to a host the inventory lacks: one watch-error event, state unknown, nothing looked at', async () => {
    const w = await world({}, ['h2']);
    const r = await w.watch('--rounds', '2', '--failures', '1', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(result(r.stdout).apps).toEqual([{ app: 'web', host: 'h1', state: 'unknown' }]);
    const events = eventsOf(w);
    expect(events.map((e) => e.kind)).toEqual(['watch-error']);
    expect(events[0]!.reason).toMatch(/h1 \(where the store records web\) is not in the inventory/);
    expect(w.ssh.calls).toEqual([]);
  });

  test('an application with no assignment: exit 4 naming it', async () => {
    const w = await world();
    const r = await w.watch('--app', 'nope');
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/no assignment to watch in .* for nope/);
  });
});

describe('persona watch, long-running', () => {
  test('runs rounds until SIGTERM, then stops with 130 (the unit example counts it as a clean stop)', async () => {
    up = true;
    const w = await world();
    const signals = new EventEmitter();
    const rounds = () => w.ssh.calls.filter((c) => c.startsWith('h2: script')).length;
    const running = runInProcess(['watch', '--interval', '1', '--grace', '0'], {
      env: w.env,
      transport: w.ssh,
      signals,
    });
    await expect.poll(rounds, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    signals.emit('SIGTERM', 'SIGTERM');
    const r = await running;
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/interrupted by SIGTERM/);
    const after = rounds();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(rounds()).toBe(after);
  });
});

describe('persona ack', () => {
  test('silences watch: stored with who, when and until; one acked event; then cleared', async () => {
    const w = await world();
    const ack = await w.persona('ack', 'web', '--reason', 'kernel update', '--for', '1h', '--json');
    expect(ack.code, ack.stderr).toBe(0);
    const stored = (result(ack.stdout).ack as Record<string, string>)!;
    expect(stored).toMatchObject({ app: 'web', by: 'alice@test', reason: 'kernel update' });
    expect(Date.parse(stored.until!) - Date.parse(stored.at!)).toBe(3_600_000);
    const backend = await openBackend(`file:${w.store}`, {}, repoRoot);
    expect(JSON.parse((await backend.get('acks/web'))!.value)).toMatchObject({ by: 'alice@test' });
    await backend.close();

    up = false;
    const r = await w.watch('--rounds', '2', '--failures', '1');
    expect(r.code, r.stderr).toBe(0);
    expect(eventsOf(w).map((e) => e.kind)).toEqual(['acked']);
    // Silenced: not even looked at.
    expect(w.ssh.calls).toEqual([]);

    const list = await w.persona('ack', '--list', '--json');
    expect(
      (result(list.stdout).acks as Array<Record<string, unknown>>).map((a) => [a.app, a.active]),
    ).toEqual([['web', true]]);
    const cleared = await w.persona('ack', 'web', '--clear');
    expect(cleared.stdout).toMatch(/web: ack by alice@test cleared/);
    const after = await w.watch('--rounds', '1', '--failures', '1');
    up = true;
    expect(after.code).toBe(6);
  });

  test('bad input: no reason, an empty or multi-line one, a bad duration, an unknown app', async () => {
    const w = await world();
    const none = await w.persona('ack', 'web');
    expect([none.code, none.stderr]).toEqual([2, expect.stringMatching(/ack needs --reason TEXT/)]);
    const blank = await w.persona('ack', 'web', '--reason', '  ');
    expect(blank.code).toBe(2);
    const lines = await w.persona('ack', 'web', '--reason', 'a\nb');
    expect(lines.stderr).toMatch(/one line of text without control characters/);
    const dur = await w.persona('ack', 'web', '--reason', 'x', '--for', '2 hours');
    expect([dur.code, dur.stderr]).toEqual([2, expect.stringMatching(/--for "2 hours" is not a duration/)]);
    const unknown = await w.persona('ack', 'nope', '--reason', 'x');
    expect(unknown.code).toBe(4);
    const backend = await openBackend(`file:${w.store}`, {}, repoRoot);
    expect(await backend.list('acks/')).toEqual([]);
    await backend.close();
  });
});
