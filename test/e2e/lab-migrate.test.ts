/**
 * `persona migrate` end to end in the lab: a planned move of demo-web from lab-1 (healthy, serving, its data
 * written to while the move runs) to lab-2 with the built CLI, real SSH, rsync and HAProxy. A dry run changes
 * nothing; the move copies while serving, stops lab-1 with fence evidence, copies the final changes, starts on lab-2
 * and switches; the data on lab-2 equals lab-1's after the stop (every write kept), HAProxy serves lab-2, the store
 * records lab-2, and the downtime a client saw through HAProxy is in the summary and the journal.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { jsonLines } from '../helpers/cli.js';
import { httpGet, releaseLab, sshExec } from '../lab/lab.js';
import {
  demoWriter,
  freshLab,
  haproxyAdminStates,
  journal,
  persona,
  treeChecksum,
  workspace,
} from './lab-helpers.js';

afterAll(() => releaseLab());

const DATA = '/srv/demo-web/data';
const CHECKSUM = treeChecksum(DATA);
/** On lab-1: a line into DATA/writes.log every 50 ms for as long as demo-web runs there. */
const WRITER = demoWriter(DATA);

describe('migrate (built CLI, lab)', () => {
  test('a dry run changes nothing; the move keeps every write, switches HAProxy, and reports its downtime', async () => {
    const lab = await freshLab();
    const ws = workspace(lab);
    const before = await haproxyAdminStates(lab);

    const dry = await persona(['migrate', 'demo-web', '--to', 'lab-2', '--dry-run'], ws);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout + dry.stderr).toMatch(/precopy/);
    expect((await sshExec('lab-2', ['test', '-e', DATA])).exitCode).not.toBe(0);
    expect(await haproxyAdminStates(lab)).toEqual(before);
    expect((await httpGet(`${lab.haproxy.frontend_url}/whoami`)).body.trim()).toBe('lab-1');

    expect((await sshExec('lab-1', ['sh', '-c', WRITER])).exitCode).toBe(0);
    const r = await persona(['migrate', 'demo-web', '--to', 'lab-2', '--yes', '--json'], ws);
    expect(r.code, r.stderr).toBe(0);
    const events = jsonLines(r.stdout);
    const result = events.at(-1)!;
    expect(result).toMatchObject({
      type: 'result',
      ok: true,
      runs: [
        { app: 'demo-web', kind: 'migrate', status: 'succeeded', failed_host: 'lab-1', target_host: 'lab-2' },
      ],
    });
    expect(events.filter((e) => e.type === 'step' && e.status === 'succeeded').map((e) => e.step)).toEqual([
      'configure',
      'precopy',
      'fence',
      'migrate',
      'validate',
      'switch',
      'monitor',
      'record',
    ]);
    const run = (result.runs as Array<{ run_id: string; downtime_ms?: number }>)[0]!;
    expect(run.downtime_ms).toBeGreaterThan(0);
    expect(run.downtime_ms).toBeLessThan(10_000);

    const j = journal(ws, run.run_id) as unknown as {
      kind: string;
      steps: Array<{ kind: string; outputs?: Record<string, unknown> }>;
    };
    expect(j.kind).toBe('migrate');
    const out = (kind: string) => j.steps.find((s) => s.kind === kind)!.outputs!;
    expect((out('precopy').passes as unknown[]).length).toBeGreaterThanOrEqual(1);
    expect(out('fence').evidence).toMatchObject({ fenced: true, reachable: true });
    expect(out('migrate')).toMatchObject({ verify: 'metadata', source: { host: 'lab-1' } });
    expect(out('monitor').downtime).toMatchObject({ hz: 20, longest_ms: run.downtime_ms });

    // lab-1 stopped, and its writer with it; lab-2 holds exactly lab-1's data, writes made during the move too.
    expect((await sshExec('lab-1', ['sh', '-c', 'exec 3<>/dev/tcp/127.0.0.1/8080'])).exitCode).not.toBe(0);
    const [src, dst] = await Promise.all([
      sshExec('lab-1', ['sh', '-c', CHECKSUM]),
      sshExec('lab-2', ['sh', '-c', CHECKSUM]),
    ]);
    expect(dst.stdout.trim()).toBe(src.stdout.trim());
    const lines = await sshExec('lab-2', ['wc', '-l', `${DATA}/writes.log`]);
    expect(Number(lines.stdout.trim().split(/\s+/)[0])).toBeGreaterThan(10);

    for (let i = 0; i < 3; i++)
      expect((await httpGet(`${lab.haproxy.frontend_url}/whoami`)).body.trim()).toBe('lab-2');
    const states = await haproxyAdminStates(lab);
    expect(states['lab-1']! & 0x01).toBe(1);
    expect(states['lab-2']! & 0x23).toBe(0);

    // The staged copy on this machine (the application's data) is gone.
    const staging = join(ws.state, 'staging');
    expect(existsSync(staging) ? readdirSync(staging) : []).toEqual([]);

    // The record moved: a second move finds demo-web on lab-2 by itself.
    const again = await persona(['migrate', 'demo-web', '--to', 'lab-3', '--dry-run', '--json'], ws);
    expect(again.code, again.stderr).toBe(0);
    expect(jsonLines(again.stdout).at(-1)).toMatchObject({
      runs: [{ failed_host: 'lab-2', target_host: 'lab-3' }],
    });
  });
});
