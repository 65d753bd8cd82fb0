/**
 * The HAProxy fence and switch against a real HAProxy on loopback, across a real reload (`-sf`: a new process
 * reads the configuration and the server-state-file, the old one leaves). Runtime API changes alone do not survive
 * that; persona's state file does.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import { HaproxyRuntime, inMaintenance } from '../../src/traffic/haproxy.js';
import { routerFor } from '../../src/traffic/router.js';
import { requireBinaries } from '../helpers/binaries.js';
import { repoRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const [haproxyBin] = requireBinaries('haproxy');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

const started: number[] = [];
afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
});

const host = (name: string): InventoryHost => ({ name, address: '127.0.0.1', labels: {}, apps: [] });
const signal = new AbortController().signal;

/** An HAProxy with backend app: web-1 serving, web-2 disabled; the server-state-file as the lab uses it. */
async function startHaproxy() {
  const dir = tempDir('persona-haproxy-');
  const sock = join(dir, 'admin.sock');
  const pidFile = join(dir, 'haproxy.pid');
  const stateFile = join(dir, 'server-state');
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    `global
  daemon
  pidfile ${pidFile}
  stats socket ${sock} mode 600 level admin
  server-state-file ${stateFile}

defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
  load-server-state-from-file global

frontend app
  bind 127.0.0.1:${await freePort()}
  default_backend app

backend app
  server web-1 127.0.0.1:${await freePort()}
  server web-2 127.0.0.1:${await freePort()} disabled
`,
  );
  const pid = async () => Number(readFileSync(pidFile, 'utf8').trim());
  const api = new HaproxyRuntime(sock);
  const waitFor = async (wanted: number) => {
    for (let i = 0; i < 100; i++) {
      const info = await api.command('show info').catch(() => '');
      if (new RegExp(`^Pid: ${wanted}$`, 'm').test(info)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`HAProxy pid ${wanted} does not answer on ${sock}`);
  };
  await execa(haproxyBin!, ['-f', cfg]);
  started.push(await pid());
  await waitFor(await pid());
  return {
    api,
    stateFile,
    /** A reload as `systemctl reload` without a state dump would do it: a new process, the old one told to go. */
    async reload() {
      const old = await pid();
      await execa(haproxyBin!, ['-f', cfg, '-sf', String(old)]);
      const now = await pid();
      expect(now).not.toBe(old);
      started.push(now);
      await waitFor(now);
    },
    async maint(server: string) {
      const s = await api.server('app', server);
      if (!s) throw new Error(`no server ${server}`);
      return inMaintenance(s);
    },
  };
}

function router(socket: string, stateFile?: string) {
  const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
  raw.traffic = {
    method: 'haproxy',
    admin_socket: socket,
    backend: 'app',
    ...(stateFile ? { state_file: stateFile } : {}),
  };
  return routerFor(validateProfileValue('demo-web.json', raw, 'demo-web'));
}

describe('HAProxy fence and switch across a real reload', () => {
  test('control: a runtime-only maint is undone by a reload (why the state file is needed)', async () => {
    const h = await startHaproxy();
    await h.api.setState('app', 'web-1', 'maint');
    expect(await h.maint('web-1')).toBe(true);
    await h.reload();
    expect(await h.maint('web-1')).toBe(false);
  });

  test('the fence survives a reload', async () => {
    const h = await startHaproxy();
    const r = router(h.api.address, h.stateFile);
    const evidence = await r.fence(host('web-1'), signal);
    expect(evidence).toMatchObject({ haproxy: { survives_reload: true, state_file: h.stateFile } });
    await h.reload();
    expect(await h.maint('web-1')).toBe(true);
    expect(await r.isFenced(host('web-1'), signal)).toBe(true);
  });

  test('the switch survives a reload: the disabled new server stays in, the failed one stays out', async () => {
    const h = await startHaproxy();
    const r = router(h.api.address, h.stateFile);
    await r.fence(host('web-1'), signal);
    await r.switchTo(host('web-2'), host('web-1'), signal);
    await h.reload();
    expect(await h.maint('web-2')).toBe(false);
    expect(await h.maint('web-1')).toBe(true);
    expect(await r.isSwitched(host('web-2'), host('web-1'), signal)).toBe(true);
  });

  test('a fence whose state file was not written is not done: isFenced says so, so resume fences again', async () => {
    const h = await startHaproxy();
    const r = router(h.api.address, h.stateFile);
    await h.api.setState('app', 'web-1', 'maint');
    expect(await r.isFenced(host('web-1'), signal)).toBe(false);
    await r.fence(host('web-1'), signal);
    expect(await r.isFenced(host('web-1'), signal)).toBe(true);
  });

  test('without state_file the evidence and the plan say the fence is runtime only', async () => {
    const h = await startHaproxy();
    const r = router(h.api.address);
    expect(r.describeFence(host('web-1'))).toMatch(/runtime only/);
    expect(await r.fence(host('web-1'), signal)).toMatchObject({ haproxy: { survives_reload: false } });
  });
});
