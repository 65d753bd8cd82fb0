/**
 * Issue 10, item 3, in the lab: a fence interrupted at `fence:after-traffic` (SIGINT) and resumed must not be
 * "verified" into a switch without a fence. The built CLI, real hosts over SSH, real HAProxy.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { fail, fenceAgent, type LabState, labPowerFence, releaseLab, sshExec } from '../lab/lab.js';
import {
  failpointReached,
  freshLab,
  journal,
  persona,
  personaChild,
  runIdIn,
  workspace,
} from './lab-helpers.js';

afterAll(() => releaseLab());

type Step = { kind: string; status: string; outputs?: Record<string, unknown> };

async function interruptAtFence(ws: ReturnType<typeof workspace>): Promise<string> {
  const child = personaChild(['recover', 'lab-1', '--yes'], ws, { PERSONA_FAILPOINT: 'fence:after-traffic' });
  await failpointReached(ws, child);
  child.kill('SIGINT');
  const interrupted = await child;
  expect(interrupted.exitCode).toBe(130);
  const runId = runIdIn(String(interrupted.stderr));
  expect(journal(ws, runId)).toMatchObject({ status: 'interrupted' });
  return runId;
}

describe('resuming an interrupted fence (lab)', () => {
  test('(b) HAProxy took lab-1 out, lab-1 still answers, no deploy.status: the resume runs deploy.stop and records the evidence', async () => {
    const lab: LabState = await freshLab();
    const ws = workspace(lab);
    // lab-1 healthy: the application still runs there until the fence stops it.
    const runId = await interruptAtFence(ws);
    const resumed = await persona(['recover', '--resume', runId, '--yes', '--json'], ws);
    expect(resumed.code, resumed.stderr).toBe(0);
    // The application no longer answers on lab-1 itself: the stop command ran on resume.
    expect((await sshExec('lab-1', ['sh', '-c', 'exec 3<>/dev/tcp/127.0.0.1/8080'])).exitCode).not.toBe(0);
    const steps = (journal(ws, runId) as unknown as { steps: Step[] }).steps;
    const fence = steps.find((s) => s.kind === 'fence')!;
    expect(fence.outputs).toMatchObject({
      fenced: true,
      evidence: { fenced: true, method: 'haproxy', takenOut: true, reachable: true, stopExitCode: 0 },
    });
    expect(steps.find((s) => s.kind === 'switch')!.outputs).toMatchObject({ forced_without_fence: false });
  });

  test('(a) traffic method none and lab-1 powered off: the resume refuses to fence, switch never runs (exit 5)', async () => {
    const lab: LabState = await freshLab();
    const ws = workspace(lab);
    const file = join(ws.store, 'demo-web.json');
    const profile = JSON.parse(readFileSync(file, 'utf8'));
    profile.traffic = { method: 'none' };
    writeFileSync(file, JSON.stringify(profile, null, 2));
    await fail('lab-1', 'poweroff');
    // Nothing can take lab-1 out and it does not answer: the fence refuses at once, and again on every resume.
    const first = await persona(['recover', 'lab-1', '--yes'], ws);
    expect(first.code, first.stderr).toBe(5);
    expect(first.stderr).toMatch(/cannot fence lab-1: .*cannot take it out of rotation/);
    const runId = runIdIn(first.stderr);
    const resumed = await persona(['recover', '--resume', runId, '--yes', '--json'], ws);
    expect(resumed.code, resumed.stderr).toBe(5);
    expect(resumed.stdout).toMatch(/cannot fence lab-1: .*cannot take it out of rotation/);
    const steps = (journal(ws, runId) as unknown as { steps: Step[] }).steps;
    expect(steps.find((s) => s.kind === 'fence')!.status).toBe('failed');
    expect(steps.find((s) => s.kind === 'switch')!.status).toBe('pending');
  });

  test('(c) a power fence (the lab fence agent): lab-1 still answers, the fence powers it off, and that is the evidence', async () => {
    const lab: LabState = await freshLab();
    const ws = workspace(lab);
    const file = join(ws.store, 'demo-web.json');
    const profile = JSON.parse(readFileSync(file, 'utf8'));
    // A traffic method that cannot take hosts out: only the power can fence.
    profile.traffic = { method: 'none' };
    profile.fencing = { power: labPowerFence() };
    writeFileSync(file, JSON.stringify(profile, null, 2));
    try {
      const r = await persona(['recover', 'lab-1', '--yes'], ws);
      // lab-1 answered, with its data, when the fence cut its power: its data may be newer than the backup, so
      // migrate does not fall back to it on its own.
      expect(r.code, r.stderr).toBe(5);
      expect(r.stderr).toMatch(/--data-from backup/);
      expect((await fenceAgent('status', 'lab-1')).exitCode).toBe(2);
      const runId = runIdIn(r.stderr);
      const resumed = await persona(
        ['recover', '--resume', runId, '--data-from', 'backup', '--yes', '--json'],
        ws,
      );
      expect(resumed.code, resumed.stderr).toBe(0);
      const steps = (
        journal(ws, runId) as unknown as { steps: Array<Step & { actions?: Array<{ id: string }> }> }
      ).steps;
      const fence = steps.find((s) => s.kind === 'fence')!;
      expect(fence.outputs).toMatchObject({
        fenced: true,
        evidence: {
          fenced: true,
          powerConfigured: true,
          poweredOff: true,
          reachable: false,
          answeredBeforePowerOff: true,
        },
      });
      expect(fence.actions!.map((a) => a.id)).toContain('power:off');
      expect(steps.find((s) => s.kind === 'switch')!.status).toBe('succeeded');
    } finally {
      await fenceAgent('on', 'lab-1');
    }
  });
});
