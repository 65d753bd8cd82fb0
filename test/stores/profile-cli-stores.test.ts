/**
 * The built CLI against the shared stores: `profile edit` (with a colleague's concurrent change) and 50 concurrent
 * `profile set` from the same read version, on a real etcd and on the Consul API server.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type ConsulServer, startConsulServer } from '../fakes/consul-server.js';
import { bin, repoRoot, runBin } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { type EtcdServer, startEtcd } from './etcd-server.js';

const demo = readFileSync(join(repoRoot, 'profiles', 'demo-web.json'), 'utf8');
let etcd: EtcdServer;
let consul: ConsulServer;

beforeAll(async () => {
  [etcd, consul] = await Promise.all([startEtcd(), startConsulServer()]);
});
afterAll(async () => {
  await Promise.all([etcd?.close(), consul?.close()]);
});

let n = 0;
// 50 persona processes at once on a small CI machine, beside other test files: requests may wait far longer
// than the 5 s default before the store answers, so these URLs allow 60 s.
const stores: Array<[string, () => string]> = [
  ['etcd', () => `etcd://127.0.0.1:${etcd.port}/cli-${process.pid}-${++n}?timeout=60s`],
  ['consul', () => `consul://127.0.0.1:${consul.port}/cli-${process.pid}-${++n}?timeout=60s`],
];

/** The demo profile, created in the store (version 0 expected: it must not exist yet). */
async function seed(dir: string, env: Record<string, string>): Promise<void> {
  writeFileSync(join(dir, 'demo.json'), demo);
  const r = await runBin(
    ['profile', 'set', 'demo-web', '--file', join(dir, 'demo.json'), '--expect-version', '0'],
    { env },
  );
  expect(r.code, r.stderr).toBe(0);
}

describe.each(stores)('profile commands on %s', (_name, url) => {
  test('edit writes a new version; a concurrent change is shown, not overwritten, and the edit is kept', async () => {
    const dir = tempDir();
    const env = { PERSONA_STORE: url(), PERSONA_STATE_DIR: join(dir, 'state') };
    await seed(dir, env);
    const editor = join(dir, 'editor.sh');
    writeFileSync(editor, `#!/bin/sh\nsed -i 's/"required_cores": 1/"required_cores": 2/' "$1"\n`, {
      mode: 0o755,
    });
    const edit = await runBin(['profile', 'edit', 'demo-web'], { env: { ...env, EDITOR: editor } });
    expect(edit.code, edit.stderr).toBe(0);
    const shown = JSON.parse((await runBin(['profile', 'show', 'demo-web', '--json'], { env })).stdout);
    expect(shown.profile.required_cores).toBe(2);

    writeFileSync(
      join(dir, 'theirs.json'),
      JSON.stringify({ ...shown.profile, required_ram_gb: 3 }, null, 2),
    );
    const racing = join(dir, 'racing.sh');
    writeFileSync(
      racing,
      `#!/bin/sh\nPERSONA_AUTHOR=bob "${bin}" profile set demo-web --file "${join(dir, 'theirs.json')}" >/dev/null || exit 9\nsed -i 's/"required_cores": 2/"required_cores": 4/' "$1"\n`,
      { mode: 0o755 },
    );
    const conflict = await runBin(['profile', 'edit', 'demo-web'], { env: { ...env, EDITOR: racing } });
    expect(conflict.code, conflict.stderr).toBe(4);
    expect(conflict.stderr).toMatch(/changed since you opened it: version \d+ → \d+ by bob/);
    expect(conflict.stderr).toContain('"required_ram_gb": 3');
    const saved = /saved in (\S+)\./.exec(conflict.stderr)![1]!;
    expect(readFileSync(saved, 'utf8')).toContain('"required_cores": 4');
    const now = JSON.parse((await runBin(['profile', 'show', 'demo-web', '--json'], { env })).stdout);
    expect(now.profile).toMatchObject({ required_cores: 2, required_ram_gb: 3 });
    const history = JSON.parse((await runBin(['profile', 'history', 'demo-web', '--json'], { env })).stdout);
    expect(history.versions).toHaveLength(3);
  }, 120_000);

  test('50 concurrent profile set from the same read version: one lands, 49 conflicts, nothing lost', async () => {
    const dir = tempDir();
    const env = { PERSONA_STORE: url() };
    await seed(dir, env);
    const version = JSON.parse((await runBin(['profile', 'show', 'demo-web', '--json'], { env })).stdout)
      .version as number;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => {
        const file = join(dir, `w${i}.json`);
        writeFileSync(file, demo.replace('"required_storage_gb": 1', `"required_storage_gb": ${i + 10}`));
        return runBin(['profile', 'set', 'demo-web', '--file', file, '--expect-version', String(version)], {
          env,
        });
      }),
    );
    const codes = results.map((r) => r.code);
    expect(codes.filter((c) => c === 0)).toHaveLength(1);
    expect(codes.filter((c) => c === 4)).toHaveLength(49);
    for (const r of results.filter((x) => x.code === 4))
      expect(r.stderr).toMatch(/changed in \S+ since it was read/);
    const winner = codes.indexOf(0);
    const now = JSON.parse((await runBin(['profile', 'show', 'demo-web', '--json'], { env })).stdout);
    expect(now.profile.required_storage_gb).toBe(winner + 10);
    const history = JSON.parse((await runBin(['profile', 'history', 'demo-web', '--json'], { env })).stdout);
    expect(history.versions.map((v: { version: number }) => v.version)).toContain(version);
  }, 180_000);
});
