/**
 * configure with `configure.driver: ansible` for real: ansible-playbook (ansible-core) against a real sshd on
 * 127.0.0.1, through the real engine. The profile is harmless: it writes files, a key and a marker under a
 * temporary directory and nothing else (no packages, users or firewall on this machine). Check mode reports the
 * changes without making them, the run makes them, the engine's new plan is converged, a dry run changes nothing,
 * and secrets appear in no argument, no environment and nothing left on disk.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { SshTransport } from '../../src/hosts/ssh.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import type { StepContext } from '../../src/runbook/types.js';
import { configureStep } from '../../src/steps/configure.js';
import { Redactor } from '../../src/ui/redact.js';
import { execaLocal, type LocalRunner } from '../../src/util/local-process.js';
import { requireBinaries } from '../helpers/binaries.js';
import { runSteps } from '../helpers/run-step.js';
import { startSshd, type TestSshd } from '../helpers/sshd.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'persona-test-secret-3f9a1c';

let sshd: TestSshd;
let ssh: SshTransport;
beforeAll(async () => {
  requireBinaries('ansible-playbook');
  sshd = await startSshd();
  ssh = new SshTransport({ configFile: sshd.configFile, connectTimeoutSec: 5 });
});
afterAll(async () => {
  await ssh?.close();
  await sshd?.stop();
});

const target = (): InventoryHost => ({
  name: 'test-host',
  address: '127.0.0.1',
  port: sshd.port,
  labels: {},
  apps: [],
});

function harmlessProfile(dir: string, extra: Record<string, unknown> = {}) {
  return validateProfileValue(
    'ansible-test.json',
    {
      id: 'ansible-test',
      required_cores: 1,
      required_ram_gb: 0.1,
      required_storage_gb: 0,
      configure: { driver: 'ansible' },
      security_profile: {
        encryption_keys: [
          {
            name: 'session',
            secret: 'env:ANSIBLE_TEST_KEY',
            path: join(dir, 'keys', 'session.key'),
            mode: '0600',
          },
        ],
      },
      deploy: {
        files: [
          { path: join(dir, 'etc', 'app.conf'), mode: '0640', content: 'listen {{ port }} # not Jinja\n' },
          { path: join(dir, 'etc', 'motd'), content: "it's $(id) `id`\n" },
        ],
        install: [['sh', '-c', 'echo ran >> "$1"', 'install', join(dir, 'install.log')]],
        start: ['true'],
        stop: ['true'],
      },
      ...extra,
    },
    'ansible-test',
  );
}

interface Recorded {
  argv: string[];
  env: Record<string, string>;
  files: Record<string, string>;
}

/** The real runner, recording each ansible-playbook call and the private directory's files while it runs. */
function recordingRunner(calls: Recorded[]): LocalRunner {
  return async (argv, options) => {
    const files: Record<string, string> = {};
    if (argv[0] === 'ansible-playbook') {
      const inventory = argv[argv.indexOf('-i') + 1]!;
      const dir = inventory.slice(0, inventory.lastIndexOf('/'));
      const walk = (d: string) => {
        for (const name of readdirSync(d)) {
          const p = join(d, name);
          if (statSync(p).isDirectory()) walk(p);
          else
            files[p.slice(dir.length + 1)] =
              `${(statSync(p).mode & 0o777).toString(8)} ${readFileSync(p, 'utf8')}`;
        }
      };
      walk(dir);
      expect((statSync(dir).mode & 0o777).toString(8)).toBe('700');
      calls.push({ argv: [...argv], env: { ...options.env }, files });
    }
    return await execaLocal(argv, options);
  };
}

function context(dir: string, calls: Recorded[], extra: Record<string, unknown> = {}): Partial<StepContext> {
  const redactor = new Redactor();
  return {
    profile: harmlessProfile(dir, extra),
    failed: { name: 'failed-host', address: '127.0.0.9', labels: {}, apps: [] },
    target: target(),
    ssh,
    backend: { get: async () => undefined, describe: 'test store' } as never,
    redactor,
    stateDir: tempDir('persona-state-'),
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ANSIBLE_TEST_KEY: SECRET,
      CONSUL_HTTP_TOKEN: 'consul-token-must-not-pass',
    },
    local: recordingRunner(calls),
    reporter: { info() {}, warn() {}, event() {}, task: () => ({}) } as never,
    findHost: () => target(),
  };
}

const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

describe('configure.driver ansible against a real sshd', () => {
  test('a dry run plans with ansible-playbook --check and changes nothing', async () => {
    const dir = tempDir('persona-ansible-dry-');
    const calls: Recorded[] = [];
    const run = await runSteps([configureStep], context(dir, calls), { engine: { dryRun: true } });
    expect(run.error).toBeUndefined();
    const lines = run.engine.simulation[0]!.lines.join('\n');
    expect(lines).toMatch(/ansible-playbook --check on test-host: \d+ task results, \d+ task\(s\) to change/);
    expect(lines).toContain(`file ${join(dir, 'etc', 'app.conf')}`);
    expect(lines).toContain('key session');
    expect(lines).toMatch(/would run on test-host \(ansible-playbook\): sh -c/);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.argv).toContain('--check');
    // Nothing was made: not the files, not the key, not the directories, not the install command's log.
    expect(readdirSync(dir)).toEqual([]);
  }, 120_000);

  test('the run applies, the new plan is converged, the playbook hook runs, and a file changed later is planned again', async () => {
    const dir = tempDir('persona-ansible-run-');
    const calls: Recorded[] = [];
    const hook = join(dir, 'hook.yml');
    writeFileSync(
      hook,
      [
        '- hosts: all',
        '  gather_facts: false',
        '  tasks:',
        '    - ansible.builtin.copy:',
        `        dest: ${join(dir, 'hook.out')}`,
        '        content: "{{ persona_app }} on {{ persona_host }}\\n"',
        '',
      ].join('\n'),
    );
    const run = await runSteps(
      [configureStep],
      context(dir, calls, { hooks: { post_configure: [{ playbook: hook }] } }),
    );
    expect(run.error).toBeUndefined();
    const record = run.record('configure');
    expect(record.status).toBe('succeeded');
    // check, apply, install command, check again (converged), the hook's playbook.
    expect(calls.map((c) => c.argv.includes('--check'))).toEqual([true, false, false, true, false]);
    expect(calls[4]!.argv.at(-1)).toBe(hook);
    expect(readFileSync(join(dir, 'etc', 'app.conf'), 'utf8')).toBe('listen {{ port }} # not Jinja\n');
    expect(mode(join(dir, 'etc', 'app.conf'))).toBe('640');
    expect(readFileSync(join(dir, 'etc', 'motd'), 'utf8')).toBe("it's $(id) `id`\n");
    expect(readFileSync(join(dir, 'keys', 'session.key'), 'utf8')).toBe(SECRET);
    expect(mode(join(dir, 'keys', 'session.key'))).toBe('600');
    // Directories made as the native driver makes them (0755, as install -D does).
    expect(mode(join(dir, 'keys'))).toBe('755');
    expect(readFileSync(join(dir, 'install.log'), 'utf8')).toBe('ran\n');
    const actions = record.actions!.map((a) => [a.id, a.status]);
    expect(actions).toEqual([
      ['ansible:configure', 'done'],
      ['install:0', 'done'],
      ['hook:post_configure:0', 'done'],
    ]);
    expect(record.outputs).toMatchObject({ driver: 'ansible' });
    const changed = (record.actions![0]!.outputs as { changed: string[] }).changed;
    expect(changed).toContain(`file ${join(dir, 'etc', 'app.conf')} (mode 0640)`);
    expect(changed).toContain(`key session → ${join(dir, 'keys', 'session.key')} (mode 0600)`);

    // Secrets: in no argument, no environment, no file persona left for Ansible but the key's own.
    for (const c of calls) {
      expect(JSON.stringify(c.argv)).not.toContain(SECRET);
      expect(JSON.stringify(c.env)).not.toContain(SECRET);
      expect(Object.keys(c.env).sort()).toEqual(
        expect.arrayContaining(['ANSIBLE_CONFIG', 'ANSIBLE_STDOUT_CALLBACK', 'HOME', 'PATH']),
      );
      expect(Object.keys(c.env).filter((k) => !k.startsWith('ANSIBLE_'))).toEqual(
        expect.not.arrayContaining(['CONSUL_HTTP_TOKEN', 'ANSIBLE_TEST_KEY']),
      );
      for (const [name, content] of Object.entries(c.files)) {
        if (name === 'secrets/key-0') expect(content).toBe(`600 ${SECRET}`);
        else expect(content, name).not.toContain(SECRET);
      }
    }
    expect(JSON.stringify(run.journal)).not.toContain(SECRET);
    // The private directories are gone.
    for (const c of calls) {
      const inventory = c.argv[c.argv.indexOf('-i') + 1]!;
      expect(existsSync(inventory.slice(0, inventory.lastIndexOf('/')))).toBe(false);
    }

    // The hook's playbook ran against the target alone, with persona's extra vars.
    expect(readFileSync(join(dir, 'hook.out'), 'utf8')).toBe('ansible-test on test-host\n');

    // A file changed behind persona: the next plan (a dry run) finds it, and only it, and changes nothing.
    writeFileSync(join(dir, 'etc', 'motd'), 'edited\n');
    const dry = await runSteps([configureStep], context(dir, []), { engine: { dryRun: true } });
    const lines = dry.engine.simulation[0]!.lines.join('\n');
    expect(lines).toMatch(/1 task\(s\) to change/);
    expect(lines).toMatch(/would ansible-playbook on test-host: file [^;]*motd \(mode 0644\) \[test-host\]/);
    expect(readFileSync(join(dir, 'etc', 'motd'), 'utf8')).toBe('edited\n');
  }, 240_000);

  test('a failed task names the task, the host and Ansible message', async () => {
    const dir = tempDir('persona-ansible-fail-');
    const ctx = context(dir, [], {});
    // A file owned by a user that does not exist: check mode lets it through, the run fails on it.
    const profile = ctx.profile!;
    profile.deploy.files[0]!.owner = 'persona-no-such-user';
    const run = await runSteps([configureStep], ctx);
    expect(String((run.error as Error).message)).toMatch(
      /configure: task "file [^"]*app\.conf \(mode 0640\)" failed on test-host: .*persona-no-such-user.*\(ansible-playbook exit 2: a task failed on the host\)/,
    );
  }, 240_000);

  test('an unreachable host is named with its address', async () => {
    const dir = tempDir('persona-ansible-down-');
    const ctx = context(dir, []);
    const run = await runSteps([configureStep], { ...ctx, target: { ...target(), port: 1 } });
    expect(String((run.error as Error).message)).toMatch(
      /^step configure failed: configure \(check mode\): ansible-playbook could not reach test-host \(127\.0\.0\.1:1\) at task "[^"]+": .*Connection refused.*\(ansible-playbook exit 4: /,
    );
    expect(readdirSync(dir)).toEqual([]);
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith(`persona-ansible-${process.pid}-`))).toEqual([]);
  }, 120_000);
});
