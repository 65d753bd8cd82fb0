import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { resolveSettings, type Settings } from '../../src/cli/settings.js';
import type { Check, DoctorInput, DoctorPorts, LocalRun } from '../../src/doctor/check.js';
import { runDoctor, sharedFor } from '../../src/doctor/doctor.js';
import { checkInventory } from '../../src/doctor/inventory.js';
import { localPorts } from '../../src/doctor/local-ports.js';
import { checkStateDir } from '../../src/doctor/state-dir.js';
import { checkLockTtl, checkStore, lockTtlVerdict, renewalShape } from '../../src/doctor/store.js';
import { checkOpenSsh, checkProvision, checkRsync, checkSshConfig } from '../../src/doctor/tools.js';
import { PersonaError } from '../../src/errors.js';
import { loadInventory } from '../../src/hosts/inventory.js';
import type { KvBackend } from '../../src/stores/kv.js';
import { openBackend } from '../../src/stores/open.js';
import { tempDir } from '../helpers/tmp.js';

const unexpected = (what: string) => () => {
  throw new Error(`unexpected ${what}`);
};

/** Ports that fail the test on any side effect it did not script. */
function ports(over: Partial<DoctorPorts> = {}): DoctorPorts {
  return {
    exec: unexpected('exec'),
    openStore: unexpected('openStore'),
    loadInventory: unexpected('loadInventory'),
    readText: unexpected('readText'),
    exists: unexpected('exists'),
    stat: unexpected('stat'),
    tryWrite: unexpected('tryWrite'),
    uid: 1000,
    hostname: 'ws-1',
    pid: 42,
    ...over,
  };
}

function input(over: Partial<Settings> = {}, env: NodeJS.ProcessEnv = {}): DoctorInput {
  return {
    settings: { ...resolveSettings({}, env, '/work', undefined), ...over },
    configFile: undefined,
    configCandidates: ['/work/persona.yaml'],
    env,
    cwd: '/work',
    acceptNewHostKeys: false,
  };
}

const run = (check: Check, i: DoctorInput, p: DoctorPorts) => check(i, p, sharedFor(i, p));
const ran = (r: Partial<LocalRun>): LocalRun => ({ exitCode: 0, stdout: '', stderr: '', ...r });
const set = <T>(value: T) => ({ value, source: { from: 'flag' as const, name: '--x' } });

describe('openssh and rsync', () => {
  test('OpenSSH present: ok with the version read from ssh -V (stderr)', async () => {
    const exec = async () => ran({ stderr: 'OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.22 25 Aug 2026\n' });
    expect(await run(checkOpenSsh, input(), ports({ exec }))).toMatchObject({
      status: 'ok',
      summary: 'OpenSSH 9.2p1',
    });
  });
  test('an old OpenSSH warns, a missing ssh fails with how to install it', async () => {
    const old = async () => ran({ stderr: 'OpenSSH_7.4p1, OpenSSL 1.0.2k-fips\n' });
    expect((await run(checkOpenSsh, input(), ports({ exec: old }))).status).toBe('warn');
    const missing = await run(checkOpenSsh, input(), ports({ exec: async () => undefined }));
    expect(missing).toMatchObject({ status: 'fail', summary: 'ssh is not on PATH' });
    expect(missing.fix).toMatch(/apt-get install openssh-client/);
  });
  test('rsync: ok with its version; missing fails', async () => {
    const exec = async () => ran({ stdout: 'rsync  version 3.2.7  protocol version 31\n' });
    expect((await run(checkRsync, input(), ports({ exec }))).summary).toBe('rsync 3.2.7');
    expect((await run(checkRsync, input(), ports({ exec: async () => undefined }))).status).toBe('fail');
  });
});

describe('ssh config', () => {
  const noInventory = { loadInventory: async () => Promise.reject(new Error('none')) };
  test('a named file that ssh -G reads: ok', async () => {
    const calls: string[][] = [];
    const exec = async (_f: string, args: readonly string[]) => {
      calls.push([...args]);
      return ran({ stdout: 'hostname x\n' });
    };
    const i = input({ ssh_config: set('/cfg/ssh') });
    const r = await run(checkSshConfig, i, ports({ exec, exists: async () => true, ...noInventory }));
    expect(r.status).toBe('ok');
    expect(calls).toEqual([['-F', '/cfg/ssh', '-G', '--', 'persona-doctor.invalid']]);
  });
  test('ssh -G refusing the file: fail with the line ssh names', async () => {
    const exec = async () =>
      ran({ exitCode: 255, stderr: '/cfg/ssh: line 3: Bad configuration option: bogus\n' });
    const i = input({ ssh_config: set('/cfg/ssh') });
    const r = await run(checkSshConfig, i, ports({ exec, exists: async () => true, ...noInventory }));
    expect(r).toMatchObject({ status: 'fail' });
    expect(r.summary).toContain('line 3: Bad configuration option: bogus');
  });
  test('a named file that does not exist: fail before running ssh', async () => {
    const i = input({ ssh_config: set('/cfg/nope') });
    const r = await run(checkSshConfig, i, ports({ exists: async () => false, ...noInventory }));
    expect(r).toMatchObject({ status: 'fail', summary: '/cfg/nope does not exist (the ssh_config setting)' });
  });
});

describe('store', () => {
  test('a writable file store: ok, and the scratch key is gone afterwards', async () => {
    const dir = tempDir('persona-store-');
    const backend = await openBackend(`file:${dir}`, {}, '/');
    const r = await run(checkStore, input(), ports({ openStore: async () => backend }));
    expect(r.status).toBe('ok');
    expect(await backend.list('doctor/')).toEqual([]);
  });

  const refusing = (txn: KvBackend['txn']): KvBackend =>
    ({ describe: 'fake://store', shared: true, get: async () => undefined, txn }) as unknown as KvBackend;

  test('a store that refuses the compare-and-set: fail', async () => {
    const backend = refusing(async () => ({ ok: false, failed: ['doctor/scratch-ws-1'] }));
    const r = await run(checkStore, input(), ports({ openStore: async () => backend }));
    expect(r).toMatchObject({ status: 'fail' });
    expect(r.summary).toMatch(/^fake:\/\/store: a compare-and-set on the scratch key .* was refused/);
  });
  test('a store that throws on writes (permission denied): fail with its message and hint', async () => {
    const backend = refusing(async () => {
      throw new PersonaError('E_STORE', 'permission denied: ACL', { hint: 'use a token with key write' });
    });
    const r = await run(checkStore, input(), ports({ openStore: async () => backend }));
    expect(r).toMatchObject({ status: 'fail', summary: 'fake://store: permission denied: ACL' });
    expect(r.fix).toBe('use a token with key write');
  });
  test('an unreachable store: fail naming it', async () => {
    const openStore = async () => {
      throw new PersonaError('E_STORE_UNAVAILABLE', 'no answer from etcd://127.0.0.1:1/p');
    };
    const r = await run(checkStore, input(), ports({ openStore }));
    expect(r.summary).toBe('cannot open file:./profiles: no answer from etcd://127.0.0.1:1/p');
  });
});

describe('lock TTL and store timeout', () => {
  test.each([
    ['file', 30, 'file:./profiles', 'ok'],
    ['etcd, defaults', 30, 'etcd://127.0.0.1:2379/p', 'ok'],
    ['etcd, tight', 12, 'etcd://127.0.0.1:2379/p', 'warn'],
    ['etcd, a slow renewal outlasts the TTL', 6, 'etcd://127.0.0.1:2379/p', 'fail'],
    ['etcd, long timeout', 30, 'etcd://127.0.0.1:2379/p?timeout=25s', 'fail'],
    ['consul, defaults', 30, 'consul://127.0.0.1:8500/p', 'ok'],
    ['consul, under its 10 s floor', 8, 'consul://127.0.0.1:8500/p?timeout=1s', 'warn'],
  ])('%s: TTL %i s with %s is %s', (_name, ttl, url, status) => {
    const shape = renewalShape(url, {})!;
    expect(lockTtlVerdict(ttl, shape, 'default').status).toBe(status);
  });
  test('the fix names the TTL that would fit', () => {
    const r = lockTtlVerdict(6, renewalShape('etcd://h:2379/p', {})!, 'env PERSONA_LOCK_TTL');
    expect(r.fix).toMatch(/raise lock_ttl \(PERSONA_LOCK_TTL\) to 15 s or more/);
    expect(r.summary).toMatch(/lock TTL 6 s \(env PERSONA_LOCK_TTL\)/);
  });
  test('the check reads the lock_ttl setting and the store setting', async () => {
    const i = input({}, { PERSONA_LOCK_TTL: '6', PERSONA_STORE: 'etcd://127.0.0.1:2379/p' });
    expect((await run(checkLockTtl, i, ports())).status).toBe('fail');
  });
});

describe('inventory', () => {
  const real = (dir: string, name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    const local = localPorts({});
    const i = input({ inventory: set(path) });
    return { i, p: ports({ ...local, loadInventory: () => loadInventory(path) }) };
  };
  test('the default inventory missing: warn; a named one missing: fail', async () => {
    const p = ports({ exists: async () => false });
    expect((await run(checkInventory, input(), p)).status).toBe('warn');
    expect((await run(checkInventory, input({ inventory: set('/x/hosts.json') }), p)).status).toBe('fail');
  });
  test('a persona inventory that parses: ok with its host count', async () => {
    const { i, p } = real(tempDir(), 'hosts.json', '{"hosts": [{"name": "a"}, {"name": "b"}]}');
    expect(await run(checkInventory, i, p)).toMatchObject({
      status: 'ok',
      summary: expect.stringMatching(/: 2 hosts$/),
    });
  });
  test('an invalid inventory: fail with the problem and its path', async () => {
    const { i, p } = real(tempDir(), 'hosts.json', '{"hosts": [{"name": "a", "adress": "x"}]}');
    const r = await run(checkInventory, i, p);
    expect(r.status).toBe('fail');
    expect(r.summary).toMatch(/\/hosts\/0/);
  });
  test('an Ansible inventory: warn for every variable the loader ignores (as hosts list shows), host_vars/ read', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'host_vars'));
    writeFileSync(join(dir, 'host_vars', 'web1.yml'), 'ansible_connection: winrm\n');
    const ini =
      '[web]\nweb1 ansible_host=10.0.0.1 ansible_ssh_private_key_file=~/k ansible_become=no db_password=hunter2\n';
    const { i, p } = real(dir, 'hosts.ini', ini);
    const r = await run(checkInventory, i, p);
    expect(r.status).toBe('warn');
    const ignored = r.details?.ignored as string[];
    expect(ignored).toHaveLength(3);
    expect(ignored[0]).toMatch(/hosts\.ini:2: ansible_become \(1 host\): /);
    expect(ignored[1]).toMatch(/hosts\.ini:2: db_password \(1 host\): looks like a secret/);
    expect(ignored[2]).toMatch(
      /host_vars\/web1\.yml:1: ansible_connection \(1 host\): persona reaches hosts over SSH only/,
    );
    expect(JSON.stringify(r)).not.toContain('hunter2');
  });
});

describe('state directory', () => {
  const check = async (mode: number | 'missing' | 'file') => {
    const base = tempDir();
    const dir = join(base, 'state');
    if (mode === 'file') writeFileSync(dir, '');
    else if (mode !== 'missing') {
      mkdirSync(dir);
      chmodSync(dir, mode);
    }
    const local = localPorts({});
    return run(checkStateDir, input({ state_dir: set(dir) }), ports({ ...local, uid: process.getuid?.() }));
  };
  test('0700: ok', async () => expect((await check(0o700)).status).toBe('ok'));
  test('0755: warn, others can read journals; the fix is chmod 700', async () => {
    const r = await check(0o755);
    expect(r).toMatchObject({ status: 'warn', fix: expect.stringMatching(/^chmod 700 /) });
    expect(r.summary).toMatch(/mode 0755: other users can read/);
  });
  test('0777: fail, others can change journals', async () =>
    expect((await check(0o777)).status).toBe('fail'));
  test('missing under a writable parent: ok (created 0700 on first use)', async () =>
    expect((await check('missing')).summary).toMatch(/does not exist yet/));
  test('a file instead of a directory: fail', async () => expect((await check('file')).status).toBe('fail'));
  test('another owner: warn', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o700);
    const r = await run(
      checkStateDir,
      input({ state_dir: set(dir) }),
      ports({ ...localPorts({}), uid: 12345 }),
    );
    expect(r).toMatchObject({ status: 'warn', summary: expect.stringMatching(/not to this user/) });
  });
});

describe('the report', () => {
  const fixed =
    (status: 'ok' | 'warn' | 'fail'): Check =>
    async () => ({ id: status, status, summary: status });
  test('warnings alone are ok; any fail is not', async () => {
    expect((await runDoctor(input(), ports(), [fixed('ok'), fixed('warn')])).ok).toBe(true);
    const failed = await runDoctor(input(), ports(), [fixed('ok'), fixed('fail'), fixed('warn')]);
    expect(failed).toMatchObject({ ok: false, summary: { ok: 1, warn: 1, fail: 1, skip: 0 } });
  });
});

describe('the provision command', () => {
  const file = (mode: number) => ({ mode, uid: 0, isDirectory: false });

  test('none set: ok, saying what recover does without one', async () => {
    expect(await run(checkProvision, input(), ports())).toMatchObject({
      status: 'ok',
      summary: expect.stringMatching(/^no provision command set/),
    });
  });

  test('a bare name is looked for on PATH, in order; a relative path against the working directory', async () => {
    const seen: string[] = [];
    const stat = async (path: string) => {
      seen.push(path);
      return path === '/usr/local/bin/make-host' ? file(0o100755) : undefined;
    };
    const bare = input(
      { provision: set(JSON.stringify(['make-host', '--pool', 'web'])) },
      {
        PATH: '/usr/bin:/usr/local/bin',
      },
    );
    expect(await run(checkProvision, bare, ports({ stat }))).toMatchObject({
      status: 'ok',
      summary: 'provision command /usr/local/bin/make-host (from flag --x)',
    });
    expect(seen).toEqual(['/usr/bin/make-host', '/usr/local/bin/make-host']);
    seen.length = 0;
    const relative = input({ provision: set(JSON.stringify(['./bin/make-host'])) });
    expect((await run(checkProvision, relative, ports({ stat }))).status).toBe('warn');
    expect(seen).toEqual(['/work/bin/make-host']);
  });

  test('missing or not executable: a warning naming the program and where the setting comes from', async () => {
    const notExecutable = input({ provision: set(JSON.stringify(['/opt/make-host'])) });
    const r = await run(checkProvision, notExecutable, ports({ stat: async () => file(0o100644) }));
    expect(r).toMatchObject({
      status: 'warn',
      summary:
        "the provision command's program is not there or not executable: /opt/make-host (from flag --x)",
    });
    expect(r.fix).toMatch(/persona config/);
  });
});
