/**
 * The fence's run and its verify after a crash decide through one function, so they cannot disagree (issue 10).
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { SshError } from '../../src/hosts/ssh.js';
import { parseProfileText } from '../../src/profile/validate.js';
import { type FenceFacts, fenceVerdict } from '../../src/runbook/fencing.js';
import type { StepContext } from '../../src/runbook/types.js';
import { fenceStep } from '../../src/steps/fence.js';
import { Redactor } from '../../src/ui/redact.js';
import { repoRoot } from '../helpers/cli.js';
import { runSteps } from '../helpers/run-step.js';
import { tempDir } from '../helpers/tmp.js';

const base: FenceFacts = {
  method: 'haproxy',
  canTakeOut: true,
  takenOut: true,
  takenOutBy: 'test',
  reachable: false,
  unreachableReason: 'refused',
};

describe('fenceVerdict', () => {
  test.each<[string, Partial<FenceFacts>, boolean]>([
    ['out of rotation, host silent', {}, true],
    ['not out of rotation', { takenOut: false }, false],
    [
      '(a) method none, host silent: may still serve',
      { method: 'none', canTakeOut: false, takenOut: undefined },
      false,
    ],
    [
      '(a) command without fence, host silent',
      { method: 'command', canTakeOut: false, takenOut: undefined },
      false,
    ],
    ['(b) out, host answers, no deploy.status, stop not run', { reachable: true }, false],
    ['(b) out, host answers, stop exited 0', { reachable: true, stopExitCode: 0 }, true],
    ['out, host answers, stop failed', { reachable: true, stopExitCode: 1 }, false],
    ['out, host answers, status says stopped', { reachable: true, statusExitCode: 3 }, true],
    [
      'out, host answers, status says running',
      { reachable: true, stopExitCode: 0, statusExitCode: 0 },
      false,
    ],
    [
      'method none, host answers, status says stopped',
      { method: 'none', canTakeOut: false, takenOut: undefined, reachable: true, statusExitCode: 3 },
      true,
    ],
  ])('%s', (_name, facts, fenced) => {
    expect(fenceVerdict({ ...base, ...facts }).fenced).toBe(fenced);
  });
});

function profileWith(traffic: unknown, status?: string[]) {
  const text = JSON.parse(readFileSync(`${repoRoot}profiles/demo-web.json`, 'utf8'));
  text.traffic = traffic;
  if (status) text.deploy.status = status;
  else delete text.deploy.status;
  return parseProfileText('demo-web', JSON.stringify(text)).profile;
}

/** A fence context whose failed host answers (exit codes by command) or does not. */
function fenceContext(profile: ReturnType<typeof profileWith>, answers: boolean) {
  const ran: string[] = [];
  const ctx = {
    profile,
    failed: { name: 'h1', address: '127.0.0.1', labels: {}, apps: [] },
    target: { name: 'h2', address: '127.0.0.1', labels: {}, apps: [] },
    signal: new AbortController().signal,
    env: {},
    hooks: [],
    journal: { options: { force_no_fence: false } },
    backend: {},
    ssh: {
      async exec(_host: unknown, argv: string[]) {
        if (!answers) throw new SshError('refused', 'h1', 'ssh: connect to host h1: Connection refused');
        ran.push(argv.join(' '));
        // A deploy.status of `false`: the application is not running.
        return { exitCode: argv.includes('false') ? 3 : 0, stdout: '', stderr: '' };
      },
    },
    log: () => {},
    redactor: new Redactor(),
    now: () => new Date('2026-11-27T00:00:00Z'),
    checkpoint: async () => {},
  } as unknown as StepContext;
  return { ctx, ran };
}

describe('fence: one plan for the first run and for the resume after a crash', () => {
  test('(a) traffic method none, host silent: nothing to do, and the conclusion refuses (it may still serve)', async () => {
    const { ctx } = fenceContext(profileWith({ method: 'none' }), false);
    const run = await runSteps([fenceStep], ctx);
    expect(run.error).toMatchObject({ code: 'E_STEP_FAILED' });
    expect(String((run.error as Error).message)).toMatch(
      /cannot take it out of rotation: it may still serve/,
    );
    expect(run.record('fence').status).toBe('failed');
  });

  test('(b) host answers, no deploy.status: a crash before the stop leaves it to do, so the resume stops it', async () => {
    const { ctx, ran } = fenceContext(profileWith({ method: 'none' }), true);
    // The journal of a run that crashed inside fence, before the stop ran.
    const first = await runSteps([fenceStep], ctx, { engine: { dryRun: true } });
    first.journal.steps[0]!.status = 'running';
    const run = await runSteps([fenceStep], ctx, { journal: first.journal });
    expect(run.error).toBeUndefined();
    const outputs = run.record('fence').outputs as { evidence: { fenced: boolean; stopExitCode: number } };
    expect(outputs.evidence).toMatchObject({ fenced: true, stopExitCode: 0, reachable: true });
    expect(ran.some((c) => c.includes('stop'))).toBe(true);
  });

  test('(b) without deploy.status the stop runs once per run: a resume after it ran does not run it again', async () => {
    const { ctx, ran } = fenceContext(profileWith({ method: 'none' }), true);
    const first = await runSteps([fenceStep], ctx);
    expect(first.error).toBeUndefined();
    const stops = ran.filter((c) => c.includes('stop')).length;
    first.journal.steps[0]!.status = 'running';
    const again = await runSteps([fenceStep], ctx, { journal: first.journal });
    expect(again.error).toBeUndefined();
    expect(ran.filter((c) => c.includes('stop')).length).toBe(stops);
    expect(again.record('fence').outputs).toMatchObject({ evidence: { fenced: true, stopExitCode: 0 } });
  });

  test('with deploy.status saying stopped, the plan is empty and the evidence is recorded', async () => {
    const { ctx, ran } = fenceContext(profileWith({ method: 'none' }, ['false']), true);
    const run = await runSteps([fenceStep], ctx);
    expect(run.record('fence').outputs).toMatchObject({ fenced: true, evidence: { fenced: true } });
    expect(run.record('fence').actions ?? []).toEqual([]);
    expect(ran.some((c) => c.includes('stop'))).toBe(false);
  });

  test('a dry run plans the stop but never runs it', async () => {
    const { ctx, ran } = fenceContext(profileWith({ method: 'none' }), true);
    const run = await runSteps([fenceStep], ctx, { engine: { dryRun: true } });
    expect(run.engine.simulation[0]!.lines.join('\n')).toMatch(/would stop demo-web on h1/);
    expect(ran.some((c) => c.includes('stop'))).toBe(false);
  });
});

describe('fence with a power fence (STONITH)', () => {
  /** A fence agent on this machine: `off` writes "off" to a file, `status` exits 2 once it says off, else 0. */
  function agent() {
    const dir = tempDir();
    const state = join(dir, 'power');
    writeFileSync(state, 'on');
    const script = join(dir, 'agent');
    writeFileSync(
      script,
      `#!/bin/sh\ncase "$1" in\n  off) echo off > "${state}" ;;\n  status) grep -q off "${state}" && exit 2; exit 0 ;;\nesac\n`,
    );
    chmodSync(script, 0o755);
    return {
      state,
      off: () => readFileSync(state, 'utf8').trim() === 'off',
      power: { off: [script, 'off', '{failed}'], status: [script, 'status', '{failed}'] },
    };
  }

  function powered(traffic: unknown) {
    const a = agent();
    const profile = profileWith(traffic);
    (profile as { fencing?: unknown }).fencing = { power: { ...a.power, timeout_ms: 5000 } };
    const ran: string[] = [];
    // The failed host answers until it is powered off.
    const { ctx } = fenceContext(profile, true);
    (ctx as { ssh: unknown }).ssh = {
      async exec(_h: unknown, argv: string[]) {
        if (a.off()) throw new SshError('timeout', 'h1', 'ssh: connect to host h1: Connection timed out');
        ran.push(argv.join(' '));
        return { exitCode: 0, stdout: '', stderr: '' };
      },
    };
    return { ctx, ran, a };
  }

  test('the host is powered off and that alone is the evidence, even where the traffic method cannot take it out', async () => {
    const { ctx, ran, a } = powered({ method: 'none' });
    const run = await runSteps([fenceStep], ctx);
    expect(run.error).toBeUndefined();
    expect(a.off()).toBe(true);
    expect(run.record('fence').outputs).toMatchObject({
      fenced: true,
      evidence: { powerConfigured: true, poweredOff: true, reachable: false, answeredBeforePowerOff: true },
    });
    // Powered off, not stopped: deploy.stop never ran.
    expect(ran.some((c) => c.includes('stop'))).toBe(false);
    expect(run.record('fence').actions!.map((x) => [x.id, x.status])).toEqual([['power:off', 'done']]);
  });

  test('an agent whose status never says off: not fenced, and switch cannot run', async () => {
    const { ctx, a } = powered({ method: 'none' });
    (ctx.profile as { fencing: { power: { off: string[] } } }).fencing.power.off = ['true'];
    const run = await runSteps([fenceStep], ctx);
    expect(a.off()).toBe(false);
    expect(run.error).toMatchObject({ code: 'E_STEP_FAILED' });
    expect(String((run.error as Error).message)).toMatch(/power off h1/);
    expect(run.record('fence').status).toBe('failed');
  });

  test('a dry run asks the agent for status only, never to power off', async () => {
    const { ctx, a } = powered({ method: 'none' });
    const run = await runSteps([fenceStep], ctx, { engine: { dryRun: true } });
    expect(a.off()).toBe(false);
    expect(run.engine.simulation[0]!.lines.join('\n')).toMatch(
      /h1 power \(fence agent status\): on[\s\S]*would power off h1/,
    );
  });
});
