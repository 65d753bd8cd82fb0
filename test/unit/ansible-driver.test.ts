/**
 * The Ansible configure driver's pure parts: the playbook generated from a profile, the inventory and ssh options
 * (quoted once, never templated), the command line and environment of ansible-playbook, and the callback's events.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import { checkVerdict, failureText, parseEvent, parseEvents } from '../../src/steps/ansible/events.js';
import { configurePlaybook, installPlaybook, packageArgument } from '../../src/steps/ansible/playbook.js';
import { ansibleArgv, ansibleEnv, inventoryYaml, playbookFailure } from '../../src/steps/ansible/runner.js';
import { toAnsibleYaml } from '../../src/steps/ansible/yaml.js';
import { pendingTasks } from '../../src/steps/configure-ansible.js';
import { requireBinaries } from '../helpers/binaries.js';

const profile = (extra: Record<string, unknown> = {}) =>
  validateProfileValue(
    'p.json',
    {
      id: 'billing',
      required_cores: 1,
      required_ram_gb: 1,
      required_storage_gb: 0,
      configure: { driver: 'ansible' },
      software_stack: ['nginx=1.22.1-9', 'socat=1.7.*', 'redis-server>=5:7.0', 'rsync', 'nftables'],
      network_configuration: {
        firewall_rules: [
          { port: 22, protocol: 'tcp', source: 'any', action: 'accept' },
          {
            port: 8080,
            protocol: 'tcp',
            source: '10.0.0.0/8',
            action: 'accept',
            comment: '{{ lookup("pipe","id") }}',
          },
        ],
      },
      security_profile: {
        groups: ['ops'],
        users: [
          {
            name: 'app',
            groups: ['ops'],
            shell: '/bin/bash',
            authorized_keys: ['ssh-ed25519 AAAAC3Nza {{ x }}'],
          },
        ],
        encryption_keys: [
          { name: 'k1', secret: 'env:BILLING_KEY', path: '/etc/billing/k1.key', mode: '0600' },
        ],
      },
      deploy: {
        files: [{ path: '/etc/billing/app.conf', content: "{{ lookup('pipe', 'touch /tmp/pwned') }}\n" }],
        install: [['sh', '-c', 'echo {{ x }} "$1"', 'x', '$(id)']],
        start: ['true'],
        stop: ['true'],
      },
      ...extra,
    },
    'billing',
  );

const unsafeTag = { tag: '!unsafe', resolve: (s: string) => `UNSAFE:${s}` };
type Task = Record<string, unknown> & { name: string; vars: { persona_id: string } };
const tasksOf = (yamlText: string) =>
  (parse(yamlText, { customTags: [unsafeTag] }) as Array<{ tasks: Task[] }>)[0]!.tasks.map(
    (t): Task => ({ ...t, vars: { persona_id: t.vars.persona_id.replace(/^UNSAFE:/, '') } }),
  );

describe('the generated playbook', () => {
  const text = toAnsibleYaml(configurePlaybook(profile(), 'deploy'));
  const tasks = tasksOf(text);
  const ids = tasks.map((t) => t.vars.persona_id);

  test("the native driver's order: packages, firewall, groups and users, keys, files", () => {
    expect(ids).toEqual([
      'packages',
      'packages',
      'packages',
      'dir:/etc/persona/nftables',
      'firewall',
      'firewall-state',
      'firewall',
      'group:ops',
      'group:app',
      'user:app',
      'home:app',
      'authorized_keys:app',
      'authorized_keys:app',
      'dir:/etc/billing',
      'key:k1',
      'dir:/etc/billing',
      'file:/etc/billing/app.conf',
    ]);
  });

  test('only ansible.builtin modules (ansible-core has no collections)', () => {
    const modules = tasks.map((t) => Object.keys(t).find((k) => k.includes('.'))!);
    for (const m of modules) expect(m).toMatch(/^ansible\.builtin\.[a-z_]+$/);
  });

  test('packages at their pinned versions, as apt and dnf take them', () => {
    expect(tasks[0]!['ansible.builtin.apt']).toMatchObject({
      name: [
        'UNSAFE:nginx=1.22.1-9',
        'UNSAFE:socat=1.7.*',
        'UNSAFE:redis-server>=5:7.0',
        'UNSAFE:rsync',
        'UNSAFE:nftables',
      ],
      allow_downgrade: true,
      install_recommends: false,
    });
    expect(packageArgument('redis-server>=5:7.0', 'dnf')).toBe('redis-server >= 5:7.0');
    expect(packageArgument('nginx=1.22.1-9', 'dnf')).toBe('nginx-1.22.1-9');
    expect(packageArgument('libc6:amd64', 'apt')).toBe('libc6:amd64');
  });

  test('every value from the profile is !unsafe: Ansible never templates it', () => {
    const conf = tasks.find((t) => t.vars.persona_id === 'file:/etc/billing/app.conf')!;
    expect((conf['ansible.builtin.copy'] as { content: string }).content).toBe(
      "UNSAFE:{{ lookup('pipe', 'touch /tmp/pwned') }}\n",
    );
    expect(text).not.toMatch(/^\s+content: "?\{\{/m);
    const keys = tasks.filter((t) => t.vars.persona_id === 'authorized_keys:app')[1]!;
    expect((keys['ansible.builtin.copy'] as { content: string }).content).toMatch(/^UNSAFE:ssh-ed25519/);
    // Every string not tagged !unsafe is persona's own: a constant, or one of its expressions.
    const plain: string[] = [];
    const walk = (v: unknown): void => {
      if (typeof v === 'string') {
        if (!v.startsWith('UNSAFE:')) plain.push(v);
      } else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(parse(text, { customTags: [unsafeTag] }));
    for (const v of plain.filter((x) => x.includes('{')))
      expect(v).toMatch(
        /^[^{]*\{\{ (ansible_check_mode|ansible_facts\.getent_passwd\['app'\]\[[24]\]) \}\}[^{]*$/,
      );
    expect(plain.filter((x) => x.includes('{')).length).toBeGreaterThan(0);
  });

  test('a key is copied from a file of the private directory, with no_log and no diff: its value is never in the playbook', () => {
    const key = tasks.find((t) => t.vars.persona_id === 'key:k1')!;
    expect(key).toMatchObject({ no_log: true, diff: false });
    expect(key['ansible.builtin.copy']).toEqual({
      src: 'UNSAFE:secrets/key-0',
      dest: 'UNSAFE:/etc/billing/k1.key',
      mode: 'UNSAFE:0600',
      owner: 'UNSAFE:root',
    });
  });

  test('a non-root user becomes root with sudo; root does not', () => {
    const play = (user?: string) =>
      (
        parse(toAnsibleYaml(configurePlaybook(profile(), user)), { customTags: [unsafeTag] }) as Array<
          Record<string, unknown>
        >
      )[0]!;
    expect(play('deploy')).toMatchObject({ become: true, become_method: 'UNSAFE:sudo' });
    expect(play('root')).toMatchObject({ become: false });
    expect(play(undefined)).toMatchObject({ become: false });
  });

  test('the firewall is loaded when the ruleset changed or the live table is not what persona loaded', () => {
    const load = tasks.filter((t) => t.vars.persona_id === 'firewall')[1]!;
    expect(load.when).toBe("persona_ruleset is changed or persona_nft.stdout != 'same'");
    const state = tasks.find((t) => t.vars.persona_id === 'firewall-state')!;
    expect(state).toMatchObject({ check_mode: false, changed_when: false });
  });

  test('install commands are argv, one per playbook, never through a shell of persona', () => {
    const install = tasksOf(toAnsibleYaml(installPlaybook(profile(), 'root', 0)));
    expect(install).toHaveLength(1);
    expect(install[0]!['ansible.builtin.command']).toEqual({
      argv: ['UNSAFE:sh', 'UNSAFE:-c', 'UNSAFE:echo {{ x }} "$1"', 'UNSAFE:x', 'UNSAFE:$(id)'],
    });
  });

  test('ansible-playbook accepts the generated playbook (--syntax-check)', () => {
    const [bin] = requireBinaries('ansible-playbook');
    const dir = execFileSync('mktemp', ['-d']).toString().trim();
    execFileSync('sh', ['-c', 'cat > "$1"', 'x', `${dir}/p.yml`], { input: text });
    const out = execFileSync(bin!, ['-i', 'localhost,', '--syntax-check', `${dir}/p.yml`], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ANSIBLE_NOCOLOR: '1' },
    }).toString();
    expect(out).toContain('playbook: ');
    execFileSync('rm', ['-rf', dir]);
  }, 60_000);
});

describe('the inventory, arguments and environment', () => {
  const host: InventoryHost = {
    name: 'web-7',
    address: '10.0.0.7',
    port: 2222,
    user: 'deploy',
    keyFile: '/home/ann/keys/id {{ x }}',
    labels: {},
    apps: [],
  };
  const ssh = {
    options: [
      '-F',
      "/etc/ssh/persona's config",
      '-o',
      'BatchMode=yes',
      '-o',
      "ProxyCommand=ssh '-o' 'BatchMode=yes' -W '[%h]:%p' -- bastion",
    ],
    connectTimeoutSec: 10,
    shell: '/bin/sh',
  };

  test('one host with its address, port, user, key, become and persona ssh options; strings are !unsafe', () => {
    const text = inventoryYaml(host, ssh);
    const inv = parse(text, { customTags: [unsafeTag] }) as {
      all: { hosts: Record<string, Record<string, unknown>> };
    };
    expect(Object.keys(inv.all.hosts)).toEqual(['web-7']);
    expect(inv.all.hosts['web-7']).toMatchObject({
      ansible_host: 'UNSAFE:10.0.0.7',
      ansible_port: 2222,
      ansible_user: 'UNSAFE:deploy',
      ansible_ssh_private_key_file: 'UNSAFE:/home/ann/keys/id {{ x }}',
      ansible_ssh_timeout: 10,
      ansible_become: true,
    });
  });

  test('ssh_common_args splits back into exactly persona options (Python shlex, as Ansible splits them)', () => {
    const text = inventoryYaml(host, ssh);
    const inv = parse(text, { customTags: [{ tag: '!unsafe', resolve: (s: string) => s }] }) as {
      all: { hosts: Record<string, { ansible_ssh_common_args: string }> };
    };
    const args = inv.all.hosts['web-7']!.ansible_ssh_common_args;
    const [python] = requireBinaries('python3');
    const split = JSON.parse(
      execFileSync(
        python!,
        ['-c', 'import json,shlex,sys; print(json.dumps(shlex.split(sys.stdin.read())))'],
        {
          input: args,
        },
      ).toString(),
    );
    expect(split).toEqual(ssh.options);
  });

  test("a local host (connection: local) is Ansible's local connection: no address, no ssh options", () => {
    const here: InventoryHost = { ...host, connection: 'local' };
    const inv = parse(inventoryYaml(here, undefined), { customTags: [unsafeTag] }) as {
      all: { hosts: Record<string, Record<string, unknown>> };
    };
    const vars = inv.all.hosts['web-7']!;
    expect(vars.ansible_connection).toBe('UNSAFE:local');
    expect(Object.keys(vars).filter((k) => k.startsWith('ansible_ssh') || k === 'ansible_host')).toEqual([]);
    // become follows the user persona runs as, not the inventory's user.
    expect(vars.ansible_become === true).toBe(process.getuid?.() !== 0);
  });

  test('the command line has paths and the host name only; --check for a plan', () => {
    const argv = ansibleArgv(
      { playbook: '/tmp/d/playbook.yml', inventory: '/tmp/d/inventory.yml', extraVars: '/tmp/d/x.yml' },
      'web-7',
      true,
    );
    expect(argv).toEqual([
      'ansible-playbook',
      '-i',
      '/tmp/d/inventory.yml',
      '--limit',
      'web-7',
      '--extra-vars',
      '@/tmp/d/x.yml',
      '--check',
      '--',
      '/tmp/d/playbook.yml',
    ]);
    expect(ansibleArgv({ playbook: 'p', inventory: 'i' }, 'h', false)).not.toContain('--check');
  });

  test('the environment: the minimal one, the agent, and persona settings; never persona credentials', () => {
    const env = ansibleEnv(
      {
        PATH: '/usr/bin',
        HOME: '/root',
        SSH_AUTH_SOCK: '/run/agent',
        CONSUL_HTTP_TOKEN: 't',
        ETCDCTL_PASSWORD: 'p',
        PERSONA_STORE_TOKEN: 's',
        ANSIBLE_HOST_KEY_CHECKING: 'False',
        ANSIBLE_SSH_ARGS: '-o StrictHostKeyChecking=no',
      },
      '/tmp/d',
      ssh,
    );
    expect(env).toMatchObject({
      PATH: '/usr/bin',
      HOME: '/root',
      SSH_AUTH_SOCK: '/run/agent',
      SHELL: '/bin/sh',
      ANSIBLE_CONFIG: '/tmp/d/ansible.cfg',
      ANSIBLE_STDOUT_CALLBACK: 'persona_ndjson',
      ANSIBLE_CALLBACK_PLUGINS: '/tmp/d/callback_plugins',
      ANSIBLE_HOST_KEY_CHECKING: 'True',
      ANSIBLE_SSH_ARGS: '-o ControlMaster=auto -o ControlPersist=60s',
      ANSIBLE_SSH_CONTROL_PATH_DIR: '/tmp/d/cp',
    });
    expect(
      Object.keys(env)
        .filter((k) => !k.startsWith('ANSIBLE_'))
        .sort(),
    ).toEqual(['HOME', 'PATH', 'SHELL', 'SSH_AUTH_SOCK']);
  });
});

describe('the callback events', () => {
  const lines = [
    '{"event": "play", "name": "persona configure x", "check": true}',
    '{"event": "task", "task": "file /etc/a", "id": "file:/etc/a"}',
    '{"action": "ansible.builtin.copy", "changed": true, "event": "result", "host": "web-7", "id": "file:/etc/a", "status": "changed", "task": "file /etc/a"}',
    '{"event": "result", "status": "skipped", "host": "web-7", "task": "load", "id": "firewall", "msg": "Command would have run if not in check mode"}',
    '{"event": "result", "status": "skipped", "host": "web-7", "task": "dnf", "id": "packages", "skip_reason": "Conditional result was False"}',
    '{"event": "result", "status": "failed", "ignored": true, "host": "web-7", "task": "user app", "id": "user:app", "msg": "Group ops does not exist"}',
    '{"event": "result", "status": "ok", "host": "web-7", "task": "group ops", "id": null}',
    '[WARNING]: something Ansible printed',
    '{"event": "stats", "hosts": {"web-7": {"ok": 3, "changed": 1}}}',
  ];

  test('lines are parsed; anything that is not an event is left out', () => {
    const events = parseEvents(lines.join('\n'));
    expect(events.map((e) => e.event)).toEqual([
      'play',
      'task',
      'result',
      'result',
      'result',
      'result',
      'result',
      'stats',
    ]);
    expect(parseEvent('{"event": "evil"}')).toBeUndefined();
    expect(parseEvent('{not json')).toBeUndefined();
  });

  test('check mode verdicts: changed, would run, cannot tell yet, as wanted', () => {
    const results = parseEvents(lines.join('\n')).filter((e) => e.event === 'result') as never[];
    expect(results.map(checkVerdict)).toEqual([
      'would change',
      'would run',
      'converged',
      'unknown',
      'converged',
    ]);
    expect(pendingTasks(results)).toEqual([
      { name: 'file /etc/a', why: 'would change' },
      { name: 'load', why: 'would run' },
      { name: 'user app', why: 'unknown' },
    ]);
  });

  test('a failure message: Ansible text without terminal controls; hidden for no_log', () => {
    expect(
      failureText({
        status: 'failed',
        host: 'h',
        task: 't',
        msg: 'bad \u001b]52;c;aGk=\u0007thing',
        stderr: 'line1\nline2',
      }),
    ).toBe('bad thing: line1 ⏎ line2');
    expect(failureText({ status: 'failed', host: 'h', task: 't', hidden: true })).toMatch(/hidden/);
  });

  test('a failed task is named with its host and the exit code; an ignored check-mode failure is not a failure', () => {
    const host: InventoryHost = { name: 'web-7', address: '10.0.0.7', labels: {}, apps: [] };
    const failed = playbookFailure(
      { what: 'configure', check: false, host },
      [{ status: 'failed', host: 'web-7', task: 'user app', msg: 'useradd: bad' }],
      [],
      2,
      '',
    );
    expect(failed?.message).toBe(
      'configure: task "user app" failed on web-7: useradd: bad (ansible-playbook exit 2: a task failed on the host)',
    );
    expect(
      playbookFailure(
        { what: 'configure', check: true, host },
        [{ status: 'failed', ignored: true, host: 'web-7', task: 'x' }],
        [],
        0,
        '',
      ),
    ).toBeUndefined();
    expect(
      playbookFailure(
        { what: 'hook', check: false, host },
        [],
        [],
        4,
        'ERROR! \u001b[31mSyntax Error while loading YAML.\u001b[0m',
      )?.message,
    ).toBe(
      'hook: ansible-playbook exit 4: the host was unreachable, or the playbook could not be parsed: ERROR! Syntax Error while loading YAML.',
    );
  });
});

describe('the profile', () => {
  test('configure.driver defaults to native; hooks take exactly one of run, playbook, role', () => {
    expect(profile({ configure: undefined }).configure.driver).toBe('native');
    const bad = (hook: unknown) => () => profile({ hooks: { pre_configure: [hook] } });
    expect(bad({ run: ['true'], playbook: '/x.yml' })).toThrow(/only one of "run", "playbook" or "role"/);
    expect(bad({ on: 'target' })).toThrow(/must have one of "run", "playbook" or "role"/);
    expect(bad({ playbook: '/x.yml', on: 'local' })).toThrow(/runs on "target" or "failed"/);
    expect(
      profile({ hooks: { pre_configure: [{ role: '/srv/roles/app' }] } }).hooks?.pre_configure?.[0],
    ).toMatchObject({
      role: '/srv/roles/app',
      on: 'target',
    });
    expect(() => profile({ configure: { driver: 'chef' } })).toThrow(/must be "native" or "ansible"/);
  });
});

describe('running ansible-playbook', () => {
  test('a missing ansible-playbook fails at once, naming it and its Debian package', async () => {
    const { runPlaybook } = await import('../../src/steps/ansible/runner.js');
    const { execaLocal } = await import('../../src/util/local-process.js');
    const ctx = {
      ssh: { sshSettings: async () => ({ options: [], connectTimeoutSec: 5 }) },
      env: { PATH: '/nonexistent', HOME: '/root' },
      signal: new AbortController().signal,
      local: execaLocal,
    };
    const started = Date.now();
    const error = await runPlaybook(ctx as never, {
      host: { name: 'h', address: '127.0.0.1', labels: {}, apps: [] },
      what: 'configure',
      playbook: { plays: [] },
      check: true,
      timeoutMs: 10_000,
    }).catch((e: Error) => e);
    expect((error as Error).message).toBe(
      'ansible-playbook is not installed on this machine (not on PATH): the Ansible driver needs it',
    );
    expect((error as { hint?: string }).hint).toMatch(/Debian package ansible-core/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
