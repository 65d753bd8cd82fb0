// The lab's fence agent (STONITH): `lab fence off|on|status HOST`, the power fence a profile's fencing.power runs
// in the lab. Real hosts: off ends every process of the host and nothing answers; status follows Pacemaker's
// convention (0 = on, 2 = off, anything else = error); only hosts the lab created are touched.
// Needs root (CI runs as root).
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { powerOff, powerStatus } from '../../src/runbook/power-fence.js';
import type { KvBackend } from '../../src/stores/kv.js';
import { Redactor } from '../../src/ui/redact.js';
import {
  fenceAgent,
  LAB_SCRIPT,
  type LabState,
  labDown,
  labHost,
  labPowerFence,
  labState,
  labUp,
  releaseLab,
  sshExec,
} from './lab.js';

const HOSTS = ['lab-1', 'lab-2', 'lab-3', 'lab-4'];
// No application runs there: powering it off leaves HAProxy's demo-web alone.
const HOST = 'lab-2';

async function expectOn(host: string): Promise<void> {
  const r = await fenceAgent('status', host);
  expect([r.exitCode, r.stdout], `status ${host}: ${r.stderr}`).toEqual([0, 'on']);
}

async function expectOff(host: string): Promise<void> {
  const r = await fenceAgent('status', host);
  expect([r.exitCode, r.stdout], `status ${host}: ${r.stderr}`).toEqual([2, 'off']);
}

async function expectSshWorks(host: string): Promise<void> {
  const r = await sshExec(host, ['hostname']);
  expect(r.exitCode, r.stderr).toBe(0);
  expect(r.stdout.trim()).toBe(host);
}

/** Asks persona's power fence (src/runbook/power-fence.ts) to drive the lab's agent. */
function powerContext(host: string, state: LabState) {
  return {
    profile: { id: 'demo-web' },
    failed: { name: host, address: state.hosts[host]?.address ?? '10.0.0.1' },
    env: process.env,
    backend: {} as KvBackend,
    redactor: new Redactor(),
    signal: AbortSignal.timeout(180_000),
  };
}

describe('the lab fence agent', () => {
  let state: LabState;

  beforeAll(async () => {
    // From a lab as `up` makes it: whatever an earlier file left (an application moved, a host off) goes.
    await labDown();
    state = await labUp();
  }, 20 * 60_000);

  afterAll(async () => {
    // Whatever happened above, the host is on again for the files after this one.
    await fenceAgent('on', HOST);
    releaseLab();
  }, 120_000);

  it('reports every running host on: exit 0, "on"', async () => {
    for (const h of HOSTS) await expectOn(h);
  });

  it('off powers the host off for real: status exits 2, none of its processes is left, ssh gets no answer', async () => {
    const before = labHost(labState(), HOST).init_pid;
    expect(before).toBeGreaterThan(0);
    expect(existsSync(`/proc/${before}`)).toBe(true);
    await expectSshWorks(HOST);

    const off = await fenceAgent('off', HOST);
    expect(off.exitCode, off.stderr).toBe(0);
    await expectOff(HOST);
    // PID 1 is gone, and with it sshd and everything else in the host's namespaces.
    expect(existsSync(`/proc/${before}`)).toBe(false);
    expect(labHost(labState(), HOST).fault).toBe('poweroff');
    const ssh = await sshExec(HOST, ['hostname'], { connectTimeoutS: 2, timeoutMs: 15_000 });
    expect(ssh.exitCode, `ssh ${HOST}: ${ssh.stderr}`).toBe(255);
    expect(ssh.stderr).toMatch(/timed out|No route to host/);
    // The other hosts are untouched.
    for (const h of HOSTS.filter((x) => x !== HOST)) await expectOn(h);

    // Off again: a fence agent's off succeeds on a host that is off.
    const again = await fenceAgent('off', HOST);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/off already/);
    await expectOff(HOST);
  }, 120_000);

  it('on boots it again: status exits 0 and it answers over ssh', async () => {
    const on = await fenceAgent('on', HOST);
    expect(on.exitCode, on.stderr).toBe(0);
    await expectOn(HOST);
    await expectSshWorks(HOST);
    expect(labHost(labState(), HOST).fault).toBeNull();
    const again = await fenceAgent('on', HOST);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/on already/);
  }, 120_000);

  it('refuses any name that is not a host the lab created, with exit 1 (never 2, which means off)', async () => {
    for (const name of [
      'lab-9',
      'localhost',
      'LAB-1',
      '../lab-1',
      'lab-1 ',
      '',
      'plab0-lab-1',
      '10.251.72.12',
    ]) {
      for (const action of ['off', 'status', 'on']) {
        const r = await fenceAgent(action, name);
        expect(r.exitCode, `fence ${action} "${name}": ${r.stderr}`).toBe(1);
        expect(r.stderr).toMatch(/no host .* in this lab/);
      }
    }
    for (const h of HOSTS) await expectOn(h);
  }, 120_000);

  it('a usage error or a user who is not root exits 1, not 2', async () => {
    const unknownAction = await fenceAgent('reboot', HOST);
    expect(unknownAction.exitCode).toBe(1);
    expect(unknownAction.stderr).toMatch(/unknown fence action reboot/);
    const noHost = await execa(LAB_SCRIPT, ['fence', 'status'], { reject: false, stdin: 'ignore' });
    expect(noHost.exitCode).toBe(1);
    expect(noHost.stderr).toMatch(/usage: lab fence/);
    const notRoot = await execa(
      'setpriv',
      ['--reuid=nobody', '--regid=nogroup', '--clear-groups', LAB_SCRIPT, 'fence', 'status', HOST],
      { reject: false, cwd: '/' },
    );
    expect(notRoot.exitCode).toBe(1);
    expect(notRoot.stderr.trim().split('\n')).toEqual([expect.stringMatching(/must run as root/)]);
    await expectOn(HOST);
  });

  it("persona's power fence drives it: powerOff ends with status off, powerStatus reads on and off", async () => {
    const power = labPowerFence();
    const ctx = powerContext(HOST, state);
    expect(await powerStatus(power, ctx)).toBe('on');
    const r = await powerOff(power, ctx, { pollMs: 250 });
    expect(r).toMatchObject({ state: 'off', off: { exitCode: 0, ended: 'exit 0' } });
    expect(await powerStatus(power, ctx)).toBe('off');
    expect((await sshExec(HOST, ['hostname'], { connectTimeoutS: 2, timeoutMs: 15_000 })).exitCode).toBe(255);
    // A name the lab did not create is never reported off.
    const stranger = await powerStatus(power, powerContext('db-7', state));
    expect(stranger).toEqual({ unknown: expect.stringMatching(/^status exit 1 .*no host db-7 in this lab/) });
    const on = await fenceAgent('on', HOST);
    expect(on.exitCode, on.stderr).toBe(0);
    expect(await powerStatus(power, ctx)).toBe('on');
  }, 180_000);
});
