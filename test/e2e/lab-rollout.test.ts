/**
 * `persona profile rollout` end to end in the lab of spec/rollout.json: demo-web runs on lab-1, lab-2 and lab-3
 * behind HAProxy (the inventory's apps list it on all three). The candidates add a `/version` route to demo-web's
 * handler (answering "v2"); the broken one also points its HTTP health check at a path the handler does not serve.
 * With the built CLI: the broken candidate is reverted (exit 4; lab-1 serves the old handler again, lab-2 and lab-3
 * never saw the new one, the profile is still version 1); the harmless one is promoted (exit 0; version 2 in the
 * store, all three hosts serve it). One lab for both: the revert leaves demo-web as `up` left it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { jsonLines, repoRoot } from '../helpers/cli.js';
import { httpGet, type LabState, labDown, labUp, releaseLab } from '../lab/lab.js';
import { journal, persona, scratchDir, workspace } from './lab-helpers.js';

const spec = { spec: join(repoRoot, 'test/lab/spec/rollout.json') };
const HOSTS = ['lab-1', 'lab-2', 'lab-3'];
let lab: LabState;

beforeAll(async () => {
  await labDown();
  lab = await labUp(spec);
}, 900_000);

afterAll(async () => {
  await labDown(spec);
  releaseLab();
}, 300_000);

/** demo-web's profile with the /version route, and (broken) a health check on a path it does not serve. */
function candidate(broken: boolean): string {
  const p = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
  const handler = p.deploy.files.find((f: { path: string }) => f.path === '/opt/demo-web/handler.sh');
  handler.content = handler.content.replace(
    "  'GET /whoami'|'GET /')",
    "  'GET /version') reply '200 OK'; echo v2 ;;\n  'GET /whoami'|'GET /')",
  );
  if (broken) p.health_checks[0].path = '/health-v2';
  const file = join(scratchDir('persona-candidate-'), `${broken ? 'broken' : 'harmless'}.json`);
  writeFileSync(file, `${JSON.stringify(p, null, 2)}\n`);
  return file;
}

const address = (host: string) => lab.hosts[host]!.address;
const version = async (host: string) => {
  const r = await httpGet(`http://${address(host)}:8080/version`);
  return r.status === 200 ? r.body.trim() : r.status;
};

describe('profile rollout in the lab (demo-web on three hosts behind HAProxy)', () => {
  test('a candidate that breaks the health check on the canary is reverted; the profile stays version 1', async () => {
    const ws = workspace(lab);
    const args = ['profile', 'rollout', 'demo-web', '--candidate', candidate(true)];
    const r = await persona([...args, '--window', '3', '--health-wait', '10', '--yes', '--json'], ws);
    expect(r.code, r.stderr).toBe(4);
    const run = jsonLines(r.stdout).at(-1)!.runs as Array<Record<string, unknown>>;
    const rollout = run[0]!.rollout as {
      decision: string;
      reasons: string[];
      table: Array<Record<string, unknown>>;
    };
    expect(rollout).toMatchObject({ decision: 'revert' });
    expect(rollout.table[0]).toMatchObject({ group: 'canary', hosts: ['lab-1'] });
    expect(rollout.reasons.join()).toMatch(/the canary failed \d+ health check/);
    // lab-1 had the new handler, and has the old one again; the control never had it.
    for (const h of HOSTS) expect(await version(h)).toBe(404);
    expect(
      journal(ws, run[0]!.run_id as string)
        .steps.find((s) => s.kind === 'canary')!
        .actions!.map((a) => a.id),
    ).toContain('lab-1:file:/opt/demo-web/handler.sh');
    const show = await persona(['profile', 'history', 'demo-web', '--json'], ws);
    expect(show.stdout).not.toMatch(/"version":2/);
    for (let i = 0; i < 3; i++)
      expect((await httpGet(`${lab.haproxy.frontend_url}/health`)).status).toBe(200);
  }, 600_000);

  test('a harmless candidate is promoted: version 2 in the store, all three hosts serve it', async () => {
    const ws = workspace(lab);
    const args = ['profile', 'rollout', 'demo-web', '--candidate', candidate(false), '--batch', '2'];
    const r = await persona([...args, '--window', '3', '--health-wait', '10', '--yes', '--json'], ws);
    expect(r.code, r.stderr).toBe(0);
    const run = jsonLines(r.stdout).at(-1)!.runs as Array<Record<string, unknown>>;
    expect(run[0]!.rollout).toMatchObject({ decision: 'promote', version: 2, canary: ['lab-1'] });
    for (const h of HOSTS) expect(await version(h)).toBe('v2');
    const stored = JSON.parse(readFileSync(join(ws.store, 'demo-web.json'), 'utf8'));
    expect(stored.deploy.files[0].content).toContain("'GET /version')");
    for (let i = 0; i < 3; i++)
      expect((await httpGet(`${lab.haproxy.frontend_url}/health`)).status).toBe(200);
  }, 600_000);
});
