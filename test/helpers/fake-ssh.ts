/**
 * A stand-in for the `ssh` executable, put first on PATH: what it does depends on the host name, so commands that
 * probe can be run in-process or as the built CLI without any sshd. Nothing is ever contacted: the inventory it
 * writes gives each host its own name as address, which ssh (this fake) receives and nothing resolves.
 *   ok-*       answers the probe with a recorded real probe output
 *   refused-*  fails as ssh does when nothing listens on the port
 *   slow-*     never answers (until killed); each start is logged, so a test knows the probe is under way
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './cli.js';
import { tempDir } from './tmp.js';

const script = `#!/bin/sh
# ssh -G (persona asks for the config's ProxyJump): no config, no jump host.
for a in "$@"; do [ "$a" = "-G" ] && { echo "proxyjump none"; exit 0; }; done
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
host=$2
cat >/dev/null
case "$host" in
  ok-*) cat "$PERSONA_FAKE_PROBE"; exit 0 ;;
  refused-*) echo "ssh: connect to host 127.0.0.1 port 9: Connection refused" >&2; exit 255 ;;
  slow-*) echo "$host" >>"$PERSONA_FAKE_SSH_LOG"; exec sleep 60 ;;
  *) echo "fake ssh: nothing scripted for $host" >&2; exit 255 ;;
esac
`;

export interface FakeSsh {
  /** The environment that puts the fake first on PATH. */
  env: Record<string, string>;
  /** An inventory file with these hosts, all on 127.0.0.1. */
  inventory(hosts: Array<string | { name: string; apps: string[]; labels?: Record<string, string> }>): string;
  /** The slow-* hosts whose probe has started. */
  started(): string[];
}

export function fakeSsh(): FakeSsh {
  const dir = tempDir('persona-fake-ssh-');
  const bin = join(dir, 'bin');
  const log = join(dir, 'started.log');
  mkdirSync(bin);
  writeFileSync(join(bin, 'ssh'), script);
  chmodSync(join(bin, 'ssh'), 0o755);
  return {
    env: {
      PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      PERSONA_FAKE_PROBE: `${repoRoot}test/fixtures/probe/debian12-root-cgroup1.txt`,
      PERSONA_FAKE_SSH_LOG: log,
    },
    inventory(hosts) {
      const file = join(dir, 'inventory.json');
      const entries = hosts.map((h) => (typeof h === 'string' ? { name: h, apps: [] } : h));
      writeFileSync(
        file,
        // ssh is given the address (as under Ansible): each host's address is its name, which only this fake ever
        // sees (it resolves and contacts nothing).
        JSON.stringify({ hosts: entries.map((h) => ({ ...h, address: h.name, port: 9 })) }),
      );
      return file;
    },
    started: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []),
  };
}
