/**
 * Hosts marked `connection: local` (Ansible's ansible_connection=local): commands run on this machine, without
 * ssh, with an ssh session's environment and none of persona's; rsync reaches them through the same -e slot.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { byConnection, LocalTransport, runsAsRoot, SESSION_PATH } from '../../src/hosts/local-transport.js';
import { type ExecResult, SshError, type SshTarget, type Transport } from '../../src/hosts/ssh.js';
import { tempDir } from '../helpers/tmp.js';

const here: SshTarget = { name: 'here', address: '10.9.9.9', user: 'nobody', connection: 'local' };
const local = new LocalTransport();

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('LocalTransport', () => {
  test('argv runs as given, without a shell', async () => {
    const r = await local.exec(here, ['printf', '%s|', '$HOME', 'a b', "it's", '`id`']);
    expect(r).toMatchObject({ exitCode: 0, stdout: "$HOME|a b|it's|`id`|" });
  });

  test("the session's environment, and nothing of persona's (no token, no secret)", async () => {
    vi.stubEnv('CONSUL_HTTP_TOKEN', 'tok-4821');
    vi.stubEnv('PERSONA_SECRET_X', 's3cr3t');
    const r = await local.exec(here, ['env']);
    const env = Object.fromEntries(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(/=(.*)/s).slice(0, 2)),
    );
    expect(Object.keys(env).sort()).toEqual(['HOME', 'LOGNAME', 'PATH', 'SHELL', 'USER']);
    expect(env.PATH).toBe(SESSION_PATH);
    expect(r.stdout).not.toMatch(/tok-4821|s3cr3t/);
  });

  test('exit codes read as over ssh: the command, 127 for a missing program, 128+N for a signal', async () => {
    expect((await local.exec(here, ['sh', '-c', 'exit 3'])).exitCode).toBe(3);
    const missing = await local.exec(here, ['persona-no-such-program']);
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).toMatch(/persona-no-such-program/);
    expect((await local.exec(here, ['sh', '-c', 'kill -TERM $$'])).exitCode).toBe(128 + 15);
  });

  test('script: on stdin, with its arguments as positional parameters', async () => {
    const r = await local.script(here, 'printf "%s," "$#" "$1" "$2"', ['x y', '$(id)']);
    expect(r.stdout).toBe('2,x y,$(id),');
  });

  test('run: a non-zero exit is an SshError of kind "command" naming the host and command', async () => {
    const e = await local.run(here, ['sh', '-c', 'echo boom >&2; exit 4']).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(SshError);
    expect(e).toMatchObject({ kind: 'command', host: 'here' });
    expect((e as Error).message).toMatch(/exited with code 4: boom/);
  });

  test('timeout and cancel are SshErrors, as over ssh', async () => {
    await expect(local.exec(here, ['sleep', '5'], { timeoutMs: 200 })).rejects.toMatchObject({
      kind: 'timeout',
    });
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    await expect(local.exec(here, ['sleep', '5'], { signal: abort.signal })).rejects.toMatchObject({
      kind: 'cancelled',
    });
  });

  test('remote text is stripped of terminal control characters', async () => {
    const r = await local.exec(here, ['sh', '-c', "printf 'a\\033]0;owned\\007b\\n' >&2"]);
    expect(r.stderr).not.toContain('\u001b');
  });

  test('rsync through rsyncShell: names with spaces and quotes, and a multi-word --rsync-path', async () => {
    const dir = tempDir('persona-local-rsync-');
    const from = join(dir, "src dir's");
    mkdirSync(join(from, 'sub'), { recursive: true });
    writeFileSync(join(from, 'sub', 'a "b" c.txt'), 'payload\n');
    const to = join(dir, 'dst $HOME');
    const { rsh, host } = await local.rsyncShell(here);
    // `--rsync-path 'env rsync'` stands for 'sudo -n rsync': several words, as a login shell would split them.
    execFileSync('rsync', ['-a', '-e', rsh, '--rsync-path', 'env rsync', `${from}/`, `${host}:${to}/`]);
    expect(readFileSync(join(to, 'sub', 'a "b" c.txt'), 'utf8')).toBe('payload\n');
    // And back (pull), as a host-to-host copy stages it.
    const back = join(dir, 'back');
    execFileSync('rsync', ['-a', '-e', rsh, `${host}:${to}/`, `${back}/`]);
    expect(readFileSync(join(back, 'sub', 'a "b" c.txt'), 'utf8')).toBe('payload\n');
  });

  test('root: for a local host, the user persona runs as, whatever the inventory user says', () => {
    const root = process.getuid?.() === 0;
    expect(runsAsRoot(here)).toBe(root);
    expect(runsAsRoot({ ...here, user: 'root' })).toBe(root);
    expect(runsAsRoot({ name: 'r', user: 'deploy' })).toBe(false);
    expect(runsAsRoot({ name: 'r', user: 'root' })).toBe(true);
    expect(runsAsRoot({ name: 'r' })).toBe(true);
  });
});

describe('byConnection', () => {
  test('local hosts run here; every other host goes to the ssh transport, which never sees a local one', async () => {
    const seen: string[] = [];
    const result: ExecResult = { exitCode: 0, stdout: 'remote', stderr: '', durationMs: 0 };
    const saw = <T>(what: string, value: T) => {
      seen.push(what);
      return value;
    };
    const remote: Transport = {
      exec: async (t) => saw(`exec ${t.name}`, result),
      script: async (t) => saw(`script ${t.name}`, result),
      run: async (t) => saw(`run ${t.name}`, result),
      rsyncShell: async (t) => saw(`rsync ${t.name}`, { rsh: 'ssh', host: t.name }),
      close: async () => saw('close', undefined),
    };
    const t = byConnection(remote);
    const far: SshTarget = { name: 'far', address: '10.0.0.1' };
    expect((await t.exec(here, ['echo', 'local'])).stdout).toBe('local\n');
    expect((await t.script(here, 'echo "$1"', ['s'])).stdout).toBe('s\n');
    expect((await t.exec(far, ['x'])).stdout).toBe('remote');
    await t.script(far, 'x');
    await t.run(far, ['x']);
    expect((await t.rsyncShell(here)).host).toBe('local');
    await t.rsyncShell(far);
    await t.close();
    expect(seen).toEqual(['exec far', 'script far', 'run far', 'rsync far', 'close']);
    // sshSettings (for programs that run ssh themselves) only when the ssh transport has it, never for a local host.
    expect(t.sshSettings).toBeUndefined();
    const settings = { options: ['-o', 'BatchMode=yes'], connectTimeoutSec: 5 };
    const withSettings = byConnection({ ...remote, sshSettings: async () => settings });
    expect(await withSettings.sshSettings!(far)).toEqual(settings);
    await expect(withSettings.sshSettings!(here)).rejects.toThrow(/this machine/);
  });
});
