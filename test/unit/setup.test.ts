/**
 * A fresh machine: `npm run setup` finds missing Debian packages with one dpkg-query and says exactly what to run;
 * a test that needs a program fails at once, naming the program and its package.
 */
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { packageFor, requireBinaries } from '../helpers/binaries.js';
import { repoRoot } from '../helpers/cli.js';

const run = promisify(execFile);
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A copy of scripts/setup.sh beside a package list of our own. */
function setupWith(list: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'persona-setup-'));
  dirs.push(dir);
  chmodSync(dir, 0o755); // readable by the unprivileged user of the no-root case
  copyFileSync(join(repoRoot, 'scripts/setup.sh'), join(dir, 'setup.sh'));
  writeFileSync(join(dir, 'debian-packages.txt'), list);
  return join(dir, 'setup.sh');
}

async function setup(script: string, opts: { asNobody?: boolean; env?: NodeJS.ProcessEnv } = {}) {
  const argv = opts.asNobody
    ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'bash', script]
    : ['bash', script];
  const started = Date.now();
  const r = await run(argv[0]!, argv.slice(1), { env: { ...process.env, ...opts.env } }).then(
    (ok) => ({ code: 0, stderr: ok.stderr }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
  return { ...r, ms: Date.now() - started };
}

describe('npm run setup', () => {
  test('with every package installed: exit 0, one line, no apt-get', async () => {
    const r = await setup(setupWith('# comment\n\nbash   bash\ncoreutils ls\n'));
    expect(r).toMatchObject({ code: 0 });
    expect(r.stderr).toBe('setup: all 2 Debian packages are installed\n');
  });

  test('without root: names the missing packages, prints the exact apt-get line, exits 2', async () => {
    const r = await setup(setupWith('bash bash\npersona-no-such-package-a\npersona-no-such-package-b x\n'), {
      asNobody: true,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'missing Debian packages: persona-no-such-package-a persona-no-such-package-b',
    );
    expect(r.stderr).toContain(
      'sudo apt-get update && sudo apt-get install -y --no-install-recommends persona-no-such-package-a persona-no-such-package-b',
    );
  });

  test('PERSONA_SETUP=skip skips the check', async () => {
    const r = await setup(setupWith('persona-no-such-package\n'), { env: { PERSONA_SETUP: 'skip' } });
    expect(r).toMatchObject({ code: 0, stderr: 'setup: skipped (PERSONA_SETUP=skip)\n' });
  });

  test("the project's list names every command the tests start", () => {
    expect(packageFor('etcd')).toBe('etcd-server');
    expect(packageFor('/usr/sbin/sshd')).toBe('openssh-server');
    expect(packageFor('haproxy')).toBe('haproxy');
    expect(packageFor('ansible-inventory')).toBe('ansible-core');
    expect(packageFor('tmux')).toBe('tmux');
  });
});

describe('a test that needs a program', () => {
  test('fails at once naming the program and its package', () => {
    expect(() => requireBinaries('bash', '/nonexistent/etcd', 'persona-no-such-command')).toThrow(
      'missing /nonexistent/etcd (Debian package etcd-server), persona-no-such-command (not in scripts/debian-packages.txt): run `npm run setup`',
    );
  });

  test.each([
    ['etcd', 'test/stores/etcd-store.test.ts', { PERSONA_ETCD_BIN: '/nonexistent/etcd' }, 'etcd-server'],
    [
      'sshd',
      'test/integration/ssh-transport.test.ts',
      { PERSONA_SSHD_BIN: '/nonexistent/sshd' },
      'openssh-server',
    ],
  ])(
    'a suite whose %s is missing fails within seconds, naming it, with no uncaught error',
    async (name, file, env, pkg) => {
      const started = Date.now();
      const r = await run('npx', ['vitest', 'run', '--project', 'unit', file], {
        cwd: repoRoot,
        env: { ...process.env, ...env, CI: 'true', NO_COLOR: '1' },
      }).then(
        (ok) => ({ code: 0, out: ok.stdout + ok.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
      );
      expect(r.code).not.toBe(0);
      expect(r.out).toContain(`missing /nonexistent/${name} (Debian package ${pkg})`);
      expect(r.out).not.toMatch(/Unhandled|ENOENT/);
      expect(Date.now() - started).toBeLessThan(25_000);
    },
    40_000,
  );
});
