/**
 * Recoveries with a shared store (etcd, Consul): another machine (another state directory) resumes a run whose
 * driver was killed; ten recoveries of one application at once, exactly one drives it; Consul's catalog as the
 * inventory and the `consul` traffic method.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { type ConsulServer, startConsulServer } from '../fakes/consul-server.js';
import { repoRoot } from '../helpers/cli.js';
import { fail, type LabState, releaseLab, sshExec } from '../lab/lab.js';
import {
  failpointReached,
  freshLab,
  persona,
  personaChild,
  scratchDir,
  waitFor,
  workspace,
} from './lab-helpers.js';

afterAll(() => releaseLab());

const demo = readFileSync(join(repoRoot, 'profiles', 'demo-web.json'), 'utf8');

async function seed(ws: ReturnType<typeof workspace>, text = demo): Promise<void> {
  const file = join(scratchDir('persona-seed-'), 'demo-web.json');
  writeFileSync(file, text);
  const r = await persona(['profile', 'set', 'demo-web', '--file', file, '--expect-version', '0'], ws);
  expect(r.code, r.stderr).toBe(0);
}

async function dataOn(host: string): Promise<string> {
  const r = await sshExec(host, [
    'sh',
    '-c',
    'cd /srv/demo-web/data && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum | sha256sum | cut -d" " -f1',
  ]);
  return r.stdout.trim();
}

describe('shared stores (lab)', () => {
  test('etcd: a run killed on one machine is resumed from another machine with identical data', async () => {
    const lab: LabState = await freshLab();
    const store = `etcd://${lab.etcd.endpoint.replace(/^https?:\/\//, '')}/e2e-${process.pid}-${Date.now()}`;
    const first = workspace(lab, { PERSONA_STORE: store, PERSONA_AUTHOR: 'alice@laptop' });
    const second = workspace(lab, { PERSONA_STORE: store, PERSONA_AUTHOR: 'bob@ci-runner' });
    await seed(first);
    await fail('lab-1', 'app');
    const child = personaChild(['recover', 'lab-1', '--yes'], first, {
      PERSONA_FAILPOINT: 'migrate:after-pull',
    });
    await failpointReached(first, child);
    child.kill('SIGKILL');
    await child;

    // The other machine sees the run through the store, and its lock (until the lease lapses).
    const list = await persona(['runs', 'list', '--json'], second);
    const runs = JSON.parse(list.stdout).runs as Array<{
      run_id: string;
      status: string;
      next_step: string;
      who: string;
    }>;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: 'running', next_step: 'migrate', who: 'alice@laptop' });
    const started = Date.now();
    const resumed = await persona(['runs', 'resume', runs[0]!.run_id, '--yes'], second);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/last driven by pid \d+ on/);
    expect(Date.now() - started).toBeLessThan(120_000);
    expect(await dataOn('lab-2')).toBe(lab.apps['demo-web']!.data_checksum);
    expect((await fetch(`${lab.haproxy.frontend_url}/whoami`).then((r) => r.text())).trim()).toBe('lab-2');
    const shown = JSON.parse((await persona(['runs', 'show', runs[0]!.run_id, '--json'], first)).stdout);
    expect(shown.status).toBe('succeeded');
  });

  test('etcd: ten recoveries of one application at once: exactly one drives it, nine get the lock error', async () => {
    const lab: LabState = await freshLab();
    const store = `etcd://${lab.etcd.endpoint.replace(/^https?:\/\//, '')}/e2e-ten-${process.pid}-${Date.now()}`;
    const ws = workspace(lab, { PERSONA_STORE: store });
    await seed(ws);
    await fail('lab-1', 'app');
    const children = Array.from({ length: 10 }, (_, i) =>
      personaChild(['recover', 'lab-1', '--yes'], ws, {
        PERSONA_FAILPOINT: 'configure:after-packages',
        PERSONA_AUTHOR: `engineer-${i}`,
      }),
    );
    await failpointReached(ws);
    const exitedCount = () => children.filter((c) => c.exitCode !== null).length;
    await waitFor('nine to give up', () => (exitedCount() >= 9 ? true : undefined), 120_000);
    const exited = await Promise.all(children.filter((c) => c.exitCode !== null));
    expect(exited).toHaveLength(9);
    for (const r of exited) {
      expect(r.exitCode).toBe(4);
      expect(String(r.stderr)).toMatch(/app-demo-web is locked by engineer-\d+ \(pid \d+ on \S+, run \S+/);
    }
    const driver = children.find((c) => c.exitCode === null)!;
    driver.kill('SIGINT');
    expect((await driver).exitCode).toBe(130);
    const runs = JSON.parse((await persona(['runs', 'list', '--json'], ws)).stdout).runs;
    expect(runs).toHaveLength(1);
    const done = await persona(['recover', '--resume', runs[0].run_id, '--yes'], ws);
    expect(done.code, done.stderr).toBe(0);
  });

  test('Consul: hosts from the catalog, the profile in KV, traffic moved by re-registering the service', async () => {
    const lab: LabState = await freshLab();
    const consul: ConsulServer = await startConsulServer();
    try {
      const agent = `127.0.0.1:${consul.port}`;
      for (const [name, host] of Object.entries(lab.hosts)) {
        const body = {
          Node: name,
          Address: host.address,
          NodeMeta: { ssh_user: 'root', ...host.labels },
          ...(host.apps.includes('demo-web')
            ? { Service: { ID: 'demo-web', Service: 'demo-web', Port: 8080, Address: host.address } }
            : {}),
        };
        const r = await fetch(`http://${agent}/v1/catalog/register`, {
          method: 'PUT',
          body: JSON.stringify(body),
        });
        expect(r.status).toBe(200);
      }
      const ws = workspace(lab, {
        PERSONA_STORE: `consul://${agent}/persona`,
        PERSONA_INVENTORY: `consul://${agent}`,
      });
      const profile = JSON.parse(demo);
      profile.traffic = { method: 'consul', service: 'demo-web', tags: ['recovered'] };
      await seed(ws, JSON.stringify(profile, null, 2));
      await fail('lab-1', 'app');
      const r = await persona(['recover', 'lab-1', '--yes', '--ssh-config', lab.ssh.config], ws);
      expect(r.code, r.stderr).toBe(0);
      const nodes = (await (await fetch(`http://${agent}/v1/catalog/service/demo-web`)).json()) as Array<{
        Node: string;
        ServiceTags: string[];
      }>;
      expect(nodes.map((n) => n.Node)).toEqual(['lab-2']);
      expect(nodes[0]!.ServiceTags).toEqual(['recovered']);
      expect(await dataOn('lab-2')).toBe(lab.apps['demo-web']!.data_checksum);
      const assignment = (await (
        await fetch(`http://${agent}/v1/kv/persona/assignments/demo-web?raw`)
      ).json()) as { host: string };
      expect(assignment.host).toBe('lab-2');
    } finally {
      await consul.close();
    }
  });
});
