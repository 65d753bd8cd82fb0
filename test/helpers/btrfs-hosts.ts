/**
 * Hosts for the btrfs tests (root): two loop-backed btrfs filesystems, each mounted at the same path inside the
 * mount namespace of its own sshd (127.0.0.2 the source, 127.0.0.3 the target), and a third sshd whose path is on
 * tmpfs (127.0.0.4). The namespaces end with their sshd: the loop devices (autoclear) go with them, and `stop`
 * checks that none is left.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { SshTransport } from '../../src/hosts/ssh.js';
import { requireBinaries } from './binaries.js';
import { startSshd, type TestSshd } from './sshd.js';

export interface BtrfsHosts {
  root: string;
  /** Where each namespace mounts its filesystem; in the test's own namespace, an empty directory. */
  mnt: string;
  ssh: SshTransport;
  hosts: Record<'src' | 'dst' | 'tmp', InventoryHost>;
  /** Stops the sshds, waits for the loop devices to go, removes the images; the loop devices still attached. */
  stop(): Promise<string[]>;
}

/** An sshd in a mount namespace of its own, with `mount` (a shell line: $1 the image, $2 the mountpoint) done first. */
async function namespacedSshd(address: string, mount: string, image: string, mnt: string): Promise<TestSshd> {
  return await startSshd({
    address,
    wrap: [
      'unshare',
      '--mount',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      `set -e; ${mount}; shift 2; exec "$@"`,
      'persona-btrfs-ns',
      image,
      mnt,
    ],
  });
}

export async function startBtrfsHosts(prefix: string, size = '256M'): Promise<BtrfsHosts> {
  requireBinaries('mkfs.btrfs', 'btrfs', 'unshare', 'mount', 'losetup');
  const root = mkdtempSync(join(tmpdir(), prefix));
  const mnt = join(root, 'mnt');
  mkdirSync(mnt);
  const images: string[] = [];
  for (const name of ['src', 'dst']) {
    const image = join(root, `${name}.img`);
    execFileSync('truncate', ['-s', size, image]);
    execFileSync('mkfs.btrfs', ['-q', image]);
    images.push(image);
  }
  const loop = 'mount -o loop -- "$1" "$2"';
  const sshds = [
    await namespacedSshd('127.0.0.2', loop, images[0]!, mnt),
    await namespacedSshd('127.0.0.3', loop, images[1]!, mnt),
    await namespacedSshd('127.0.0.4', 'mount -t tmpfs -o size=16m tmpfs "$2"', 'none', mnt),
  ];
  const config = join(root, 'ssh_config');
  writeFileSync(
    config,
    sshds.map((s) => execFileSync('cat', [s.configFile], { encoding: 'utf8' })).join('\n'),
  );
  const ssh = new SshTransport({ configFile: config, connectTimeoutSec: 5 });
  const host = (name: string, s: TestSshd): InventoryHost => ({
    name,
    address: s.address,
    port: s.port,
    labels: {},
    apps: [],
  });
  const stop = async () => {
    await ssh.close();
    for (const s of sshds) await s.stop();
    // The namespaces die with their last process: the mounts go, and autoclear detaches the loop devices.
    const left = () =>
      images.flatMap((image) =>
        execFileSync('losetup', ['-j', image], { encoding: 'utf8' })
          .split('\n')
          .filter(Boolean)
          .map((line) => line.split(':')[0]!),
      );
    const deadline = Date.now() + 15_000;
    while (left().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const stuck = left();
    for (const device of stuck) execFileSync('losetup', ['-d', device]);
    rmSync(root, { recursive: true, force: true });
    return stuck;
  };
  return {
    root,
    mnt,
    ssh,
    hosts: {
      src: host('btrfs-src', sshds[0]!),
      dst: host('btrfs-dst', sshds[1]!),
      tmp: host('tmpfs-host', sshds[2]!),
    },
    stop,
  };
}
