/**
 * `persona recover` end to end in the lab: the built CLI, real hosts over SSH, real HAProxy, real rsync.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { jsonLines } from '../helpers/cli.js';
import { fail, httpGet, type LabState, releaseLab, sshExec } from '../lab/lab.js';
import {
  demoSecret,
  expectEveryStepSucceeded,
  expectRecoveredOnto,
  failpointReached,
  freshLab,
  haproxyAdminStates,
  hostHasPackage,
  journal,
  persona,
  personaChild,
  reloadHaproxy,
  runIdIn,
  scratchDir,
  workspace,
} from './lab-helpers.js';

afterAll(() => releaseLab());

describe('recover (built CLI, lab)', () => {
  test('application died, host reachable: data from lab-1, traffic to lab-2, lab-1 fenced, assignment moved', async () => {
    const lab = await freshLab();
    const ws = workspace(lab);
    await fail('lab-1', 'app');
    const r = await persona(['recover', 'lab-1', '--yes', '--json'], ws);
    expect(r.code, r.stderr).toBe(0);
    // NDJSON: events that each carry a type, then exactly one result line.
    const events = jsonLines(r.stdout);
    const result = events.at(-1)!;
    for (const e of events) expect(typeof e.type).toBe('string');
    expect(events.filter((e) => e.type === 'result')).toHaveLength(1);
    expect(result).toMatchObject({
      type: 'result',
      ok: true,
      exit_code: 0,
      runs: [{ app: 'demo-web', status: 'succeeded', target_host: 'lab-2' }],
    });
    expect(events.some((e) => e.type === 'ranking')).toBe(true);
    expectEveryStepSucceeded(events);
    await expectRecoveredOnto(lab, ws, 'lab-2');
    // Fenced: the application no longer answers on lab-1 itself.
    expect((await sshExec('lab-1', ['sh', '-c', 'exec 3<>/dev/tcp/127.0.0.1/8080'])).exitCode).not.toBe(0);
    const runId = (result.runs as Array<{ run_id: string }>)[0]!.run_id;
    const j = journal(ws, runId);
    expect(
      (j as unknown as { steps: Array<{ kind: string; outputs: { source?: { kind: string } } }> }).steps.find(
        (s) => s.kind === 'migrate',
      )!.outputs.source!.kind,
    ).toBe('failed-host');
    // The journal is private and holds no secret; neither does the JSON output.
    const file = join(ws.state, 'runs', `${runId}.json`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).not.toContain(demoSecret());
    expect(r.stdout + r.stderr).not.toContain(demoSecret());
    // The key itself arrived, with its mode and owner.
    const key = await sshExec('lab-2', ['stat', '-c', '%a %U', '/etc/demo-web/session.key']);
    expect(key.stdout.trim()).toBe('600 demo');
    expect((await sshExec('lab-2', ['cat', '/etc/demo-web/session.key'])).stdout.trim()).toBe(demoSecret());
  });

  test('fence and switch survive a reload of HAProxy (server-state-file written by persona)', async () => {
    const lab = await freshLab();
    const ws = workspace(lab);
    await fail('lab-1', 'app');
    const r = await persona(['recover', 'lab-1', '--yes'], ws);
    expect(r.code, r.stderr).toBe(0);
    await reloadHaproxy(lab);
    await expectRecoveredOnto(lab, ws, 'lab-2');
  });

  test('host powered off: data from the backup, same end state', async () => {
    const lab = await freshLab();
    const ws = workspace(lab);
    await fail('lab-1', 'poweroff');
    const r = await persona(['recover', 'lab-1', '--yes'], ws);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/data source: .*\/var\/lib\/persona-lab\/backups\/demo-web/);
    // The fence's evidence: HAProxy took lab-1 out, and lab-1 does not answer.
    expect(r.stderr).toMatch(
      /fenced: the host does not answer \(lab-1 .*\) and haproxy has it out of rotation/,
    );
    expect(r.stdout).toMatch(/demo-web: lab-1 → lab-2, run \S+: succeeded/);
    await expectRecoveredOnto(lab, ws, 'lab-2');
    // The steps overlapped: configure started with the fence.
    const j = journal(ws, readdirSync(join(ws.state, 'runs'))[0]!.replace(/\.json$/, ''));
    const step = (kind: string) => j.steps.find((x) => x.kind === kind)!;
    const end = (kind: string) => Date.parse(step(kind).started_at!) + step(kind).duration_ms!;
    expect(Date.parse(step('configure').started_at!)).toBeLessThan(end('fence'));
    expect(Date.parse(step('migrate').started_at!)).toBeGreaterThanOrEqual(end('fence'));
    // The early copy was moved into place: nothing is left in staging.
    expect((await sshExec('lab-2', ['test', '-e', '/srv/demo-web/.persona-staging'])).exitCode).not.toBe(0);
  });

  test('a fence slower than configure: migrate copies the backup early into staging, while the fence runs; after it, the copy is moved into place and nothing is left to copy', async () => {
    const lab = await freshLab();
    const ws = workspace(lab);
    // A pre_fence hook on this machine holds the fence for 8 s: configure (about 3 s) ends well before it.
    const file = join(ws.store, 'demo-web.json');
    const profile = JSON.parse(readFileSync(file, 'utf8'));
    profile.hooks = { ...profile.hooks, pre_fence: [{ on: 'local', run: ['sleep', '8'] }] };
    writeFileSync(file, JSON.stringify(profile, null, 2));
    await fail('lab-1', 'poweroff');
    const r = await persona(['recover', 'lab-1', '--yes'], ws);
    expect(r.code, r.stderr).toBe(0);
    await expectRecoveredOnto(lab, ws, 'lab-2');
    const j = journal(ws, readdirSync(join(ws.state, 'runs'))[0]!.replace(/\.json$/, ''));
    const step = (kind: string) => j.steps.find((x) => x.kind === kind)!;
    const end = (kind: string) => Date.parse(step(kind).started_at!) + step(kind).duration_ms!;
    // The copy into staging is migrate's early work (attempt 0: before the step's own first attempt), applied
    // before the fence ended; the step itself started after the fence, chose the backup as always, moved the staged
    // copy into place and copied nothing more (only owners and modes changed).
    const staged = step('migrate').actions!.find((a) => a.id === 'stage:/srv/demo-web/data')!;
    expect(staged).toMatchObject({ status: 'done', attempt: 0 });
    expect(Date.parse(staged.at)).toBeLessThan(end('fence'));
    expect(Date.parse(step('migrate').started_at!)).toBeGreaterThanOrEqual(end('fence'));
    const copy = step('migrate').actions!.find((a) => a.id === 'copy:/srv/demo-web/data')!;
    expect(copy).toMatchObject({
      status: 'done',
      attempt: 1,
      outputs: { transferred_bytes: 0, early_copy: `/srv/demo-web/.persona-staging/data@${j.run_id}: moved` },
    });
    const log = step('migrate').log.join('\n');
    expect(log).toMatch(/early copy: .*backups\/demo-web/);
    expect(log).toMatch(/data source: .*backups\/demo-web .*the fence found it down too/);
    expect(log).toMatch(/the early copy moved into place/);
    expect((await sshExec('lab-2', ['test', '-e', '/srv/demo-web/.persona-staging'])).exitCode).not.toBe(0);
  });

  test('lab-1 refuses persona (authentication): migrate does not restore the backup by itself; resuming with --data-from backup does', async () => {
    const lab = await freshLab();
    const ws = workspace(lab);
    await fail('lab-1', 'app');
    // The same lab, but no key is offered to lab-1: "Permission denied (publickey)". ssh_config blocks match the
    // address persona connects to (as under Ansible), not the inventory name.
    const config = join(scratchDir('persona-ssh-'), 'config');
    writeFileSync(
      config,
      `Host ${lab.hosts['lab-1']!.address}\n  PubkeyAuthentication no\n  PasswordAuthentication no\n  KbdInteractiveAuthentication no\n\n${readFileSync(lab.ssh.config, 'utf8')}`,
    );
    const ssh = { PERSONA_SSH_CONFIG: config };
    const r = await persona(['recover', 'lab-1', '--yes'], ws, ssh);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/not migrating demo-web's data: lab-1 does not let persona in \(auth/);
    expect(r.stderr).toContain('--data-from backup');
    // Nothing at the data path: the backup was copied early, but only into staging, root-only, kept for a resume.
    expect((await sshExec('lab-2', ['test', '-e', '/srv/demo-web/data'])).exitCode).not.toBe(0);
    const runId = runIdIn(r.stderr);
    const staging = `/srv/demo-web/.persona-staging/data@${runId}`;
    const modes = await sshExec('lab-2', ['stat', '-c', '%a %U', '/srv/demo-web/.persona-staging', staging]);
    expect(modes.stdout.trim().split('\n')).toEqual(['700 root', '700 root']);
    const resumed = await persona(['runs', 'resume', runId, '--yes', '--data-from', 'backup'], ws, ssh);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/data source: .*\/var\/lib\/persona-lab\/backups\/demo-web/);
    expect(journal(ws, runId)).toMatchObject({ options: { data_from: 'backup' } });
    expect(resumed.stderr).toMatch(/the early copy moved into place/);
    await expectRecoveredOnto(lab, ws, 'lab-2');
    expect((await sshExec('lab-2', ['test', '-e', '/srv/demo-web/.persona-staging'])).exitCode).not.toBe(0);
  });

  test('non-interactive without --yes refuses before changing anything (exit 3)', async () => {
    const lab = await freshLab();
    const ws = workspace(lab);
    await fail('lab-1', 'app');
    const before = await haproxyAdminStates(lab);
    const r = await persona(['recover', 'lab-1'], ws);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/confirmation required: Recover demo-web from lab-1 onto lab-2/);
    expect(r.stderr).toContain('--yes');
    expect(await haproxyAdminStates(lab)).toEqual(before);
    expect(await hostHasPackage('lab-2', 'nftables')).toBe(false);
    expect(existsSync(join(ws.state, 'runs'))).toBe(false);
  });

  test('--app on a host nothing records it on: refused without --yes; with --yes recorded, then recovered', async () => {
    const lab = await freshLab();
    // The same lab, but an inventory that names no application anywhere.
    const inventory = join(scratchDir('persona-e2e-inventory-'), 'inventory.json');
    const inv = JSON.parse(readFileSync(lab.inventory, 'utf8')) as { hosts: Array<{ apps: string[] }> };
    for (const h of inv.hosts) h.apps = [];
    writeFileSync(inventory, JSON.stringify(inv));
    const ws = workspace(lab, { PERSONA_INVENTORY: inventory });
    const assignment = join(ws.store, '.persona', 'data', 'assignments', 'demo-web');
    await fail('lab-1', 'app');

    const none = await persona(['recover', 'lab-1'], ws);
    expect(none.code, none.stderr).toBe(4);
    expect(none.stderr).toContain('no application is recorded on lab-1');
    expect(none.stderr).toMatch(/"apps": \[".+"\] on lab-1/);
    expect(none.stderr).toMatch(/persona recover lab-1 --app \S+/);

    const refused = await persona(['recover', 'lab-1', '--app', 'demo-web'], ws);
    expect(refused.code, refused.stderr).toBe(3);
    expect(refused.stderr).toContain('Record demo-web as running on lab-1?');
    expect(refused.stderr).toContain('--yes');
    expect(existsSync(assignment)).toBe(false);

    const dry = await persona(['recover', 'lab-1', '--app', 'demo-web', '--dry-run'], ws);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toContain('dry run: would record demo-web as running on lab-1');
    expect(existsSync(assignment)).toBe(false);

    const r = await persona(['recover', 'lab-1', '--app', 'demo-web', '--yes'], ws);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/Record demo-web as running on lab-1\? yes \(--yes\)/);
    expect(r.stderr).toContain('recorded demo-web as running on lab-1');
    expect(r.stdout).toMatch(/demo-web: lab-1 → lab-2, run \S+: succeeded/);
    await expectRecoveredOnto(lab, ws, 'lab-2');
  });

  test('--dry-run probes and plans for real, lists each step, and changes nothing', async () => {
    const lab = await freshLab();
    const ws = workspace(lab);
    await fail('lab-1', 'app');
    const before = await haproxyAdminStates(lab);
    const r = await persona(['recover', 'lab-1', '--dry-run'], ws);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Dry run: nothing was changed');
    expect(r.stdout).toMatch(/would install on lab-2: nftables/);
    // validate plans its start; what it checks (health, targets) it can only say.
    expect(r.stdout).toMatch(/validate:\n(?:\s+.*\n)*?\s+would start demo-web on lab-2/);
    expect(r.stdout).toMatch(/then check: 2 health check\(s\)/);
    expect(r.stdout).toMatch(/would copy from lab-1/);
    expect(await haproxyAdminStates(lab)).toEqual(before);
    expect(await hostHasPackage('lab-2', 'nftables')).toBe(false);
    expect((await sshExec('lab-2', ['test', '-e', '/srv/demo-web'])).exitCode).not.toBe(0);
    expect((await sshExec('lab-2', ['id', 'demo'])).exitCode).not.toBe(0);
    expect(existsSync(join(ws.state, 'runs'))).toBe(false);
    expect((await httpGet(`${lab.haproxy.frontend_url}/whoami`)).status).toBe(503);
  });

  test('two recoveries of one application at once: one runs, the other gets a lock error naming the holder; Ctrl-C saves the run', async () => {
    const lab = await freshLab();
    const ws = workspace(lab);
    await fail('lab-1', 'app');
    const first = personaChild(['recover', 'lab-1', '--yes'], ws, {
      PERSONA_FAILPOINT: 'configure:after-packages',
      PERSONA_AUTHOR: 'alice@laptop',
    });
    await failpointReached(ws, first);
    const second = await persona(['recover', 'lab-1', '--yes'], ws, { PERSONA_AUTHOR: 'bob@desk' });
    expect(second.code).toBe(4);
    expect(second.stderr).toMatch(
      /app-demo-web is locked by alice@laptop \(pid \d+ on \S+, run \S+demo-web\S+, since/,
    );
    first.kill('SIGINT');
    const interrupted = await first;
    expect(interrupted.exitCode).toBe(130);
    expect(String(interrupted.stderr)).toMatch(/hint: Resume with: persona recover --resume \S+/);
    const runId = runIdIn(String(interrupted.stderr));
    expect(journal(ws, runId)).toMatchObject({ status: 'interrupted' });
    const resumed = await persona(['recover', '--resume', runId, '--yes'], ws);
    expect(resumed.code, resumed.stderr).toBe(0);
    await expectRecoveredOnto(lab, ws, 'lab-2');
  });
});

/** Killing persona with SIGKILL in the middle of every step; --resume reaches the same end state. */
const crashPoints = [
  'fence:after-traffic',
  'configure:after-packages',
  'configure:after-security',
  'migrate:after-pull',
  'migrate:after-copy',
  'validate:after-start',
  'switch:after-switch',
  'monitor:after-first-round',
  'record:before-write',
];

describe('crash anywhere, resume to the same end state', () => {
  test.each(crashPoints)('SIGKILL at %s', async (point) => {
    const lab: LabState = await freshLab();
    const ws = workspace(lab);
    await fail('lab-1', 'app');
    const child = personaChild(['recover', 'lab-1', '--yes'], ws, { PERSONA_FAILPOINT: point });
    await failpointReached(ws, child);
    child.kill('SIGKILL');
    await child;
    const runs = readdirSync(join(ws.state, 'runs'));
    expect(runs).toHaveLength(1);
    const runId = runs[0]!.replace(/\.json$/, '');
    const before = journal(ws, runId);
    expect(before.status).toBe('running');
    expect(before.steps.find((s) => s.kind === point.split(':')[0])!.status).toBe('running');
    const resumed = await persona(['recover', '--resume', runId, '--yes'], ws);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`step ${point.split(':')[0]} was interrupted in an earlier attempt`);
    expect(journal(ws, runId).status).toBe('succeeded');
    await expectRecoveredOnto(lab, ws, 'lab-2');
  });
});
