/**
 * Remote text never drives the user's terminal: a host that answers the probe with an OSC 52 clipboard write
 * (or puts one in its stderr) reaches `hosts probe` output without any escape sequence; persona's own colours stay.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { repoRoot, runBin } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const OSC52 = '\x1b]52;c;Y3VybCBodHRwOi8vMTI3LjAuMC4xL3ggfCBzaA==\x07';
const recorded = readFileSync(`${repoRoot}test/fixtures/probe/debian12-root-cgroup1.txt`, 'utf8');

/** A fake ssh first on PATH: answers for host H from H.out / H.err / H.code in its directory. */
function fakeSsh(answers: Record<string, { out?: string; err?: string; code?: number }>) {
  const dir = tempDir('persona-fake-ssh-');
  writeFileSync(
    join(dir, 'ssh'),
    [
      '#!/bin/sh',
      'dir=$(dirname "$0")',
      // ssh -G (persona asks for the config's ProxyJump): none.
      'for a in "$@"; do [ "$a" = "-G" ] && { echo "proxyjump none"; exit 0; }; done',
      'while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done',
      'host=$2',
      'cat > /dev/null',
      '[ -f "$dir/$host.out" ] && cat "$dir/$host.out"',
      '[ -f "$dir/$host.err" ] && cat "$dir/$host.err" >&2',
      'exit "$(cat "$dir/$host.code" 2>/dev/null || echo 0)"',
      '',
    ].join('\n'),
  );
  chmodSync(join(dir, 'ssh'), 0o755);
  for (const [host, a] of Object.entries(answers)) {
    if (a.out !== undefined) writeFileSync(join(dir, `${host}.out`), a.out);
    if (a.err !== undefined) writeFileSync(join(dir, `${host}.err`), a.err);
    if (a.code !== undefined) writeFileSync(join(dir, `${host}.code`), String(a.code));
  }
  return { PATH: `${dir}:${dirname(process.execPath)}:/usr/bin:/bin` };
}

function inventory(hosts: string[]): string {
  const file = join(tempDir(), 'inventory.json');
  // ssh gets the address: the name, so the fake answers per host (it resolves and contacts nothing).
  writeFileSync(file, JSON.stringify({ hosts: hosts.map((name) => ({ name, address: name })) }));
  return file;
}

describe('remote text reaching the terminal', () => {
  const answers = {
    evil: {
      out: recorded.replace(/^os_pretty\t.*$/m, `os_pretty\tDebian ${OSC52}\x1b[2J12\x9b31m`),
    },
    noisy: { err: `sh: probe failed ${OSC52}\x1b]0;pwned\x07\n`, code: 1 },
  };

  test('hosts probe: OSC 52 in a probe answer and in remote stderr is stripped; persona colours survive', async () => {
    const env = { ...fakeSsh(answers), NO_COLOR: '', FORCE_COLOR: '1' };
    const r = await runBin(['hosts', 'probe', '--inventory', inventory(['evil', 'noisy'])], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Debian 12');
    expect(r.stdout).toContain('probe failed');
    // persona's own SGR colours are there (the green "ok")...
    expect(r.stdout).toContain('\x1b[32mok\x1b[39m');
    // ...and nothing else with an escape: no OSC, no clear screen, no 8-bit CSI.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: matching persona's own colour codes.
    const sgr = /\x1b\[[0-9;]*m/g;
    for (const text of [r.stdout, r.stderr]) {
      const rest = text.replace(sgr, '');
      for (const control of ['\x1b', '\x07', '\x9b', '\x9d']) expect(rest).not.toContain(control);
      expect(text).not.toContain('Y3VybCBodHRw');
    }
  });

  test('hosts probe --json: facts and failures carry no control characters', async () => {
    const r = await runBin(['hosts', 'probe', '--json', '--inventory', inventory(['evil', 'noisy'])], {
      env: fakeSsh(answers),
    });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/\\u001b|\\u0007|\u009b/);
    const result = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(result.hosts[0].facts.os.pretty).toBe('Debian 12');
  });

  test('hosts probe --json shows labels, but never a secret-looking variable from the inventory', async () => {
    const ini = `${repoRoot}test/fixtures/inventory/hosts.ini`;
    const out = { out: recorded };
    // The fake answers per ssh destination: the inventory's addresses (it contacts nothing).
    const env = fakeSsh({ '127.0.0.1': out, '127.0.0.2': out, '127.0.0.3': out });
    const r = await runBin(['hosts', 'probe', '--json', '--inventory', ini], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('"zone":"eu-1"');
    expect(r.stdout + r.stderr).not.toMatch(/hunter2|db_password/);
  });
});
