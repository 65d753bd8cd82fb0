/**
 * `configure.driver: ansible` in the lab: both drivers configure the demo profile on two fresh hosts (native on
 * lab-2, ansible-playbook on lab-3), and the hosts end in the same state: the packages of software_stack at the
 * same versions, the users with their groups and shells, the files and keys (content, mode, owner), and the
 * nftables table. Each driver's plan on the other driver's host is empty. Then a whole recovery with the Ansible
 * driver, through the built CLI: data and traffic end on the new host.
 *
 * The lab's hosts have no python3, which Ansible needs on a host: the test installs python3 and python3-apt (the
 * apt module's binding) on both hosts first, through the lab's apt proxy, so that the two start alike.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { findHost, type Inventory, loadInventory } from '../../src/hosts/inventory.js';
import { SshTransport } from '../../src/hosts/ssh.js';
import type { Profile } from '../../src/profile/schema.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import type { StepContext } from '../../src/runbook/types.js';
import { configureStep } from '../../src/steps/configure.js';
import { nftTableName } from '../../src/steps/firewall.js';
import { Redactor } from '../../src/ui/redact.js';
import { requireBinaries } from '../helpers/binaries.js';
import { jsonLines, repoRoot } from '../helpers/cli.js';
import { runSteps } from '../helpers/run-step.js';
import { fail, type LabState, releaseLab, sshExec } from '../lab/lab.js';
import { demoSecret, expectRecoveredOnto, freshLab, persona, workspace } from './lab-helpers.js';

afterAll(() => releaseLab());

const demo = (driver: 'native' | 'ansible'): Profile => {
  const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles', 'demo-web.json'), 'utf8'));
  return validateProfileValue('demo-web.json', { ...raw, configure: { driver } }, 'demo-web');
};

let lab: LabState;
let inventory: Inventory;
let ssh: SshTransport;

beforeAll(async () => {
  requireBinaries('ansible-playbook');
  lab = await freshLab();
  inventory = await loadInventory(lab.inventory);
  ssh = new SshTransport({ ...(inventory.sshConfig ? { configFile: inventory.sshConfig } : {}) });
  await installAnsibleNeeds();
}, 600_000);

afterAll(async () => {
  await ssh?.close();
});

function context(profile: Profile, target: string): Partial<StepContext> {
  return {
    profile,
    failed: findHost(inventory, 'lab-1'),
    target: findHost(inventory, target),
    ssh,
    backend: { get: async () => undefined, describe: 'test store' } as never,
    redactor: new Redactor(),
    stateDir: '/tmp',
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    reporter: { info() {}, warn() {}, event() {}, task: () => ({}) } as never,
    findHost: (name) => findHost(inventory, name),
  };
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format syntax
const DPKG_FORMAT = '-f=${db:Status-Abbrev} ${Version}';

/** The state both drivers are responsible for, read from the host the same way for both. */
async function hostState(host: string, profile: Profile): Promise<Record<string, string>> {
  const names = profile.software_stack.map((s) => s.split(/[=>]/)[0]!);
  const files = [
    ...profile.deploy.files.map((f) => f.path),
    ...profile.security_profile.encryption_keys.map((k) => k.path),
    `/etc/persona/nftables/${profile.id}.nft`,
  ];
  const state: Record<string, string> = {};
  const run = async (key: string, argv: string[]) => {
    const r = await sshExec(host, argv);
    state[key] = `${r.exitCode} ${r.stdout.trim()}`;
  };
  for (const n of names) await run(`package ${n}`, ['dpkg-query', '-W', DPKG_FORMAT, n]);
  for (const u of profile.security_profile.users) {
    await run(`user ${u.name} groups`, ['id', '-nG', u.name]);
    await run(`user ${u.name} primary group`, ['id', '-gn', u.name]);
    await run(`user ${u.name} passwd`, ['sh', '-c', 'getent passwd "$1" | cut -d: -f1,6,7', 'x', u.name]);
  }
  for (const g of profile.security_profile.groups) await run(`group ${g}`, ['getent', 'group', g]);
  for (const f of files) {
    await run(`file ${f}`, [
      'sh',
      '-c',
      'sha256sum -- "$1" | cut -d" " -f1; stat -c "%a %U %G" -- "$1"',
      'x',
      f,
    ]);
    await run(`dir of ${f}`, ['sh', '-c', 'stat -c "%a %U %G" -- "$(dirname -- "$1")"', 'x', f]);
  }
  await run('nft table', ['nft', 'list', 'table', 'inet', nftTableName(profile.id)]);
  return state;
}

/** What Ansible needs on a host (python3, python3-apt), on lab-2 and lab-3 alike, through the lab's apt proxy. */
async function installAnsibleNeeds(): Promise<void> {
  for (const host of ['lab-2', 'lab-3']) {
    const r = await sshExec(
      host,
      [
        'sh',
        '-c',
        'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-apt',
      ],
      { timeoutMs: 300_000 },
    );
    expect(r.exitCode, `${host}: ${r.stderr}`).toBe(0);
  }
}

describe('configure: native and ansible drivers leave hosts alike (lab)', () => {
  test('native on lab-2, ansible on lab-3: same packages, users, files, keys and firewall table', async () => {
    const native = await runSteps([configureStep], context(demo('native'), 'lab-2'));
    expect(native.error).toBeUndefined();
    const ansible = await runSteps([configureStep], context(demo('ansible'), 'lab-3'));
    expect(ansible.error).toBeUndefined();
    expect(ansible.record('configure').actions!.map((a) => [a.id, a.status])).toEqual([
      ['ansible:configure', 'done'],
    ]);

    const a = await hostState('lab-2', demo('native'));
    const b = await hostState('lab-3', demo('native'));
    expect(b).toEqual(a);
    // And the state is the profile's, not an equal failure on both.
    // dpkg-query's db:Status-Abbrev is three characters ("ii "), then the format's own space.
    expect(a['package socat']).toMatch(/^0 ii +1\.7\.4\.4-2$/);
    expect(a['user demo groups']).toBe('0 demo');
    expect(a['file /etc/demo-web/session.key']).toMatch(/^0 [0-9a-f]{64}\n600 demo /);
    expect(a['nft table']).toMatch(/^0 table inet persona_demo_web/);
    expect(b['file /etc/demo-web/session.key']).not.toContain(demoSecret());

    // Each driver finds nothing to do on the other's host.
    const nativeOnAnsible = await runSteps([configureStep], context(demo('native'), 'lab-3'), {
      engine: { dryRun: true },
    });
    expect(nativeOnAnsible.engine.simulation[0]!.lines).toContain('nothing to change');
    const ansibleOnNative = await runSteps([configureStep], context(demo('ansible'), 'lab-2'), {
      engine: { dryRun: true },
    });
    expect(ansibleOnNative.engine.simulation[0]!.lines.join('\n')).toMatch(
      /0 task\(s\) to change[\s\S]*nothing to change/,
    );
  }, 900_000);

  test('persona recover with configure.driver ansible: data and traffic on the new host', async () => {
    const fresh = await freshLab();
    await installAnsibleNeeds();
    const ws = workspace(fresh);
    const path = join(ws.store, 'demo-web.json');
    writeFileSync(
      path,
      JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), configure: { driver: 'ansible' } }),
    );
    await fail('lab-1', 'app');
    const r = await persona(['recover', 'lab-1', '--yes', '--json'], ws);
    expect(r.code, r.stderr).toBe(0);
    const events = jsonLines(r.stdout);
    const result = events.at(-1)!;
    const target = (result.runs as Array<{ target_host: string }>)[0]!.target_host;
    const actions = events.filter(
      (e) => e.type === 'action' && e.step === 'configure' && e.status === 'done',
    );
    expect(actions.map((e) => (e.action as { id: string }).id)).toContain('ansible:configure');
    await expectRecoveredOnto(fresh, ws, target);
    expect(r.stdout + r.stderr).not.toContain(demoSecret());
  }, 900_000);
});
