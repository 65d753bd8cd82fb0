import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import type { ExecResult, SshTarget } from '../../src/hosts/ssh.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import { localManifest, parseOwners } from '../../src/runbook/remote.js';
import type { StepContext } from '../../src/runbook/types.js';
import { migrateStep } from '../../src/steps/migrate.js';
import { repoRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

describe('the manifest covers owners and modes, not only contents', () => {
  function tree(): string {
    const dir = tempDir('persona-manifest-');
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'a.txt'), 'alpha\n');
    writeFileSync(join(dir, 'b.txt'), 'beta\n');
    return dir;
  }

  test('a changed mode changes the manifest; the content digest stays', async () => {
    const dir = tree();
    const before = await localManifest(dir);
    chmodSync(join(dir, 'b.txt'), 0o600);
    const after = await localManifest(dir);
    expect(after.digest).toBe(before.digest);
    expect(after).not.toEqual(before);
  });

  test.runIf(process.getuid?.() === 0)('a changed owner changes the manifest', async () => {
    const dir = tree();
    const before = await localManifest(dir);
    chownSync(join(dir, 'sub', 'a.txt'), 65534, 65534);
    expect(await localManifest(dir)).not.toEqual(before);
  });

  test('parseOwners groups paths by owner:group (NUL-separated, any byte in names)', () => {
    const text = 'root:root\0.\0app:app\0./a b\0app:app\0./x\ny\0';
    expect(Object.fromEntries(parseOwners(text))).toEqual({
      'root:root': ['.'],
      'app:app': ['./a b', './x\ny'],
    });
  });
});

const host = (name: string): InventoryHost => ({ name, address: name, labels: {}, apps: [] });
const ok = (stdout = ''): ExecResult => ({ exitCode: 0, stdout, stderr: '', durationMs: 1 });

/**
 * Host to host, the failed host answering with the data: `du` on the source says `sourceBytes`, the target has
 * a petabyte free; rsync's remote shell is `false`, so a copy that gets as far as rsync fails there.
 */
function hostToHost(sourceBytes: number): StepContext {
  const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
  const profile = validateProfileValue('demo-web.json', raw, 'demo-web');
  const run = async (_t: SshTarget, argv: readonly string[]) => {
    if (argv.includes('du')) return ok(`${sourceBytes}\t/srv/demo-web/data`);
    if (argv.includes('persona-df')) return ok('/dev/x 1 1 999999999999 1% /srv');
    return ok();
  };
  return {
    journal: { run_id: 'r1', options: { force_no_fence: false, strategy: 'best-fit' }, steps: [] } as never,
    profile,
    failed: host('web-1'),
    target: host('web-2'),
    ssh: {
      exec: async () => ok(),
      run,
      rsyncShell: async (t: SshTarget) => ({ rsh: 'false', host: t.name }),
    } as never,
    signal: new AbortController().signal,
    stateDir: tempDir('persona-state-'),
    env: process.env,
    findHost: host,
    previous: () => undefined,
    checkpoint: async () => {},
    log: () => {},
    now: () => new Date(),
  } as Partial<StepContext> as StepContext;
}

describe('host-to-host staging on this machine', () => {
  test('a copy larger than the staging area stops before pulling, naming the staging area', async () => {
    const ctx = hostToHost(500 * 1024 ** 4);
    await expect(migrateStep.run(ctx)).rejects.toThrow(/staging area .* GiB free; the copy needs/);
  });

  test('staging is removed after a failed copy', async () => {
    const ctx = hostToHost(1024);
    await expect(migrateStep.run(ctx)).rejects.toThrow(/rsync exited/);
    expect(existsSync(join(ctx.stateDir, 'staging', 'r1'))).toBe(false);
  });
});
