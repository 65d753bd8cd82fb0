// The lab self-test: real hosts, real sshd with host key checking, real HAProxy; every fault and its heal.
// Needs root (CI runs as root). The teardown check is in teardown.test.ts, scheduled last.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FaultMode,
  fail,
  heal,
  httpGet,
  LAB_SCRIPT,
  type LabState,
  labDown,
  labHost,
  labState,
  labUp,
  releaseLab,
  type SshResult,
  specOf,
  sshExec,
} from './lab.js';

const HOSTS = ['lab-1', 'lab-2', 'lab-3', 'lab-4'];
const MiB = 2 ** 20;

// One ssh round trip: the facts a probe would gather.
const PROBE = `
echo "hostname=$(hostname)"
echo "nproc=$(nproc)"
if [ -f /sys/fs/cgroup/memory.max ]; then echo "memory=$(cat /sys/fs/cgroup/memory.max)"
else echo "memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"; fi
echo "srv=$(df -B1 --output=size /srv | tail -n 1 | tr -d ' ')"
dpkg-query -W -f='\${Status}' socat 2>/dev/null | grep -q 'ok installed' && echo socat=yes || echo socat=no
`;

async function probe(host: string): Promise<Record<string, string>> {
  const r = await sshExec(host, ['sh', '-c', PROBE]);
  expect(r.exitCode, r.stderr).toBe(0);
  return Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('=', 2) as [string, string]),
  );
}

const checksumOf = async (dir: string): Promise<string> =>
  (
    await execa('bash', [
      '-c',
      'cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum | sha256sum | cut -d" " -f1',
      '_',
      dir,
    ])
  ).stdout.trim();

async function expectSshWorks(host: string): Promise<void> {
  const r = await sshExec(host, ['hostname']);
  expect(r.exitCode, r.stderr).toBe(0);
  expect(r.stdout.trim()).toBe(host);
}

async function expectSshFails(host: string, stderr: RegExp): Promise<SshResult> {
  const r = await sshExec(host, ['hostname'], { connectTimeoutS: 2, timeoutMs: 15_000 });
  expect(r.exitCode, `ssh ${host}: ${r.stderr}`).toBe(255);
  expect(r.stderr).toMatch(stderr);
  return r;
}

async function withFault(host: string, mode: FaultMode, check: () => Promise<void>): Promise<void> {
  await fail(host, mode);
  try {
    expect(labHost(labState(), host).fault).toBe(mode);
    await check();
  } finally {
    await heal(host);
  }
  expect(labHost(labState(), host).fault).toBeNull();
}

describe('the lab', () => {
  let state: LabState;

  beforeAll(async () => {
    // From a lab as `up` makes it: whatever an earlier run left (an application moved, a host broken) goes.
    await labDown();
    state = await labUp();
  }, 20 * 60_000);

  afterAll(() => releaseLab());

  it('records the four hosts of the default spec, and an inventory persona can read', () => {
    expect(Object.keys(state.hosts)).toEqual(HOSTS);
    const inventory = JSON.parse(readFileSync(state.inventory, 'utf8'));
    expect(inventory.defaults).toEqual({ user: 'root', port: 22, ssh_config: state.ssh.config });
    expect(inventory.hosts[0]).toEqual({
      name: 'lab-1',
      address: '10.251.72.11',
      port: 22,
      labels: { zone: 'a' },
      apps: ['demo-web'],
    });
  });

  it('reaches every host over ssh with host key checking on', async () => {
    expect(readFileSync(state.ssh.config, 'utf8')).toMatch(/StrictHostKeyChecking yes/);
    await Promise.all(HOSTS.map(expectSshWorks));
  });

  it('refuses a host whose key does not match known_hosts', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-known-hosts-'));
    try {
      // lab-1's address with lab-2's real key: a man in the middle, as ssh sees it
      const lab2 = readFileSync(state.ssh.known_hosts, 'utf8')
        .split('\n')
        .find((l) => l.startsWith('lab-2,'));
      const wrong = path.join(dir, 'known_hosts');
      writeFileSync(wrong, `${lab2?.replace(/^lab-2,10\.251\.72\.12/, 'lab-1,10.251.72.11')}\n`);
      const r = await sshExec('lab-1', ['true'], { knownHostsFile: wrong });
      expect(r.exitCode).toBe(255);
      expect(r.stderr).toMatch(/IDENTIFICATION HAS CHANGED|Host key verification failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('measures facts that differ as declared: cpus, memory limit, /srv size, packages', async () => {
    const facts = Object.fromEntries(await Promise.all(HOSTS.map(async (h) => [h, await probe(h)] as const)));
    for (const h of HOSTS) {
      const expected = labHost(state, h).expected;
      const f = facts[h] ?? {};
      expect(f.hostname).toBe(h);
      expect(Number(f.nproc)).toBe(expected.cpus);
      expect(Number(f.memory)).toBe(expected.memory_bytes);
      // ext4 keeps a few percent of the image for its journal and tables
      expect(Number(f.srv)).toBeLessThanOrEqual(expected.srv_bytes);
      expect(Number(f.srv)).toBeGreaterThan(expected.srv_bytes * 0.9);
    }
    expect(HOSTS.map((h) => Number(facts[h]?.nproc))).toEqual([1, 2, 2, 1]);
    expect(HOSTS.map((h) => Number(facts[h]?.memory) / MiB)).toEqual([1536, 1024, 4096, 512]);
    expect(HOSTS.map((h) => facts[h]?.socat)).toEqual(['yes', 'yes', 'no', 'no']);
  });

  it('serves demo-web through HAProxy from lab-1, with the checksum of its data', async () => {
    const app = state.apps['demo-web'];
    expect(app?.host).toBe('lab-1');
    const whoami = await httpGet(`${state.haproxy.frontend_url}/whoami`);
    expect([whoami.status, whoami.body.trim()]).toEqual([200, 'lab-1']);
    const checksum = await httpGet(`${state.haproxy.frontend_url}/checksum`);
    expect(checksum.body.trim()).toMatch(/^[0-9a-f]{64}$/);
    expect(checksum.body.trim()).toBe(app?.data_checksum);
  });

  it('keeps a backup copy of the data with the same checksum, and the secret the profile names', async () => {
    const app = state.apps['demo-web'];
    expect(await checksumOf(app?.backup_path ?? '')).toBe(app?.data_checksum);
    expect(app?.secrets).toEqual([`${state.lab_dir}/secrets/demo-web-session.key`]);
    expect(readFileSync(app?.secrets[0] ?? '', 'utf8')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('moves traffic with the HAProxy runtime API', async () => {
    const admin = (cmd: string) =>
      execa('socat', ['-t', '2', '-', `UNIX-CONNECT:${state.haproxy.admin_socket}`], { input: `${cmd}\n` });
    await admin('set server demo_web/lab-1 state maint');
    try {
      expect((await httpGet(`${state.haproxy.frontend_url}/whoami`)).status).toBe(503);
    } finally {
      await admin('set server demo_web/lab-1 state ready');
    }
    await expect.poll(async () => (await httpGet(`${state.haproxy.frontend_url}/whoami`)).status).toBe(200);
  });

  it('runs etcd on loopback', async () => {
    const r = await httpGet(`${state.etcd.endpoint}/health`);
    expect(JSON.parse(r.body)).toMatchObject({ health: 'true' });
  });

  it('reuses the lab on a second up, and refuses a different spec while it is up', async () => {
    const pids = HOSTS.map((h) => labHost(state, h).init_pid);
    const again = await labUp();
    expect(HOSTS.map((h) => labHost(again, h).init_pid)).toEqual(pids);
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-spec-'));
    try {
      const other = JSON.parse(readFileSync(specOf(), 'utf8'));
      other.hosts[0].labels = { zone: 'c' };
      writeFileSync(path.join(dir, 'other.json'), JSON.stringify(other));
      const r = await execa(LAB_SCRIPT, ['up', '--spec', path.join(dir, 'other.json')], { reject: false });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/a different lab is up/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('refuses a user who is not root with one clear line', async () => {
    const r = await execa(
      'setpriv',
      ['--reuid=nobody', '--regid=nogroup', '--clear-groups', LAB_SCRIPT, 'up'],
      {
        reject: false,
        cwd: '/',
      },
    );
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/must run as root/)]);
  });

  describe('faults, each healed', () => {
    it('app: the application stops (503 through HAProxy, refused on :8080), the host stays up', async () => {
      await withFault('lab-1', 'app', async () => {
        expect((await httpGet(`${state.haproxy.frontend_url}/whoami`)).status).toBe(503);
        await expect(httpGet('http://10.251.72.11:8080/health')).rejects.toMatchObject({
          code: 'ECONNREFUSED',
        });
        await expectSshWorks('lab-1');
      });
      expect((await httpGet(`${state.haproxy.frontend_url}/whoami`)).body.trim()).toBe('lab-1');
      await expectSshWorks('lab-1');
    }, 60_000);

    it('sshd: connections are refused', async () => {
      await withFault('lab-2', 'sshd', async () => {
        await expectSshFails('lab-2', /Connection refused/);
      });
      await expectSshWorks('lab-2');
    }, 60_000);

    it('hang: connections hang until the client gives up', async () => {
      await withFault('lab-3', 'hang', async () => {
        const r = await expectSshFails('lab-3', /timed out/);
        expect(r.ms).toBeGreaterThanOrEqual(1900);
      });
      await expectSshWorks('lab-3');
    }, 60_000);

    it('partition: the host cannot be reached', async () => {
      await withFault('lab-4', 'partition', async () => {
        await expectSshFails('lab-4', /timed out|No route to host/);
      });
      await expectSshWorks('lab-4');
    }, 60_000);

    it('poweroff: every process stops, nothing answers; heal boots it again with its data', async () => {
      const marker = await sshExec('lab-1', ['sh', '-c', 'date +%s%N | tee /srv/poweroff-marker']);
      const before = labHost(labState(), 'lab-1').init_pid;
      await withFault('lab-1', 'poweroff', async () => {
        expect(labHost(labState(), 'lab-1').init_pid).toBe(before);
        expect(existsSync(`/proc/${before}`)).toBe(false);
        await expectSshFails('lab-1', /timed out|No route to host/);
        expect((await httpGet(`${state.haproxy.frontend_url}/whoami`)).status).toBe(503);
      });
      expect(labHost(labState(), 'lab-1').init_pid).not.toBe(before);
      const after = await sshExec('lab-1', ['cat', '/srv/poweroff-marker']);
      expect(after.stdout).toBe(marker.stdout);
      await sshExec('lab-1', ['rm', '/srv/poweroff-marker']);
      expect((await httpGet(`${state.haproxy.frontend_url}/checksum`)).body.trim()).toBe(
        state.apps['demo-web']?.data_checksum,
      );
    }, 90_000);
  });
});
