/**
 * The reporters and the typed run events: the human one renders results on stdout and progress on stderr, the
 * JSON one writes every event as it is, with its type.
 */
import { describe, expect, test } from 'vitest';
import type { Mode, Streams } from '../../src/cli/mode.js';
import { Redactor } from '../../src/ui/redact.js';
import { HumanReporter, JsonReporter } from '../../src/ui/reporter.js';

function streams() {
  const out: string[] = [];
  const err: string[] = [];
  const s = {
    stdin: {},
    stdout: { write: (t: string) => out.push(t) },
    stderr: { write: (t: string) => err.push(t) },
  } as unknown as Streams;
  return { s, stdout: () => out.join(''), stderr: () => err.join('') };
}

const mode: Mode = {
  interactive: false,
  yes: true,
  json: false,
  ci: true,
  colorOut: false,
  colorErr: false,
  spinners: false,
};

async function human(redactor = new Redactor()) {
  const io = streams();
  return { ...io, reporter: await HumanReporter.create(io.s, mode, redactor) };
}

describe('the human reporter', () => {
  test("the run's plan goes to stdout: steps, read-only ones marked, hooks, secret references", async () => {
    const { reporter, stdout, stderr } = await human();
    reporter.event('plan', {
      run_id: 'r1',
      app: 'demo-web',
      failed_host: 'h1',
      target_host: 'h2',
      profile_version: 3,
      steps: [
        { kind: 'fence', mutates: true, lines: ['take h1 out of rotation'] },
        { kind: 'validate', mutates: false, lines: ['health checks on h2'] },
      ],
      hooks: [{ phase: 'post_switch', on: 'local', run: ['notify', 'moved'] }],
      secrets: [
        { where: 'security_profile key session', ref: 'env:SESSION_KEY', source: 'environment variable' },
      ],
    });
    expect(stdout()).toBe(
      [
        'Plan: recover demo-web (profile version 3) from h1 onto h2',
        '  1. fence',
        '     take h1 out of rotation',
        '  2. validate (read-only)',
        '     health checks on h2',
        '  hooks:',
        '     post_switch on local: notify moved',
        '  secrets (references; values are never shown):',
        '     security_profile key session: env:SESSION_KEY (environment variable)',
        '',
      ].join('\n'),
    );
    expect(stderr()).toBe('');
  });

  test("a step's plan is progress on stderr: its notes, its actions, what blocks it", async () => {
    const { reporter, stdout, stderr } = await human();
    reporter.event('step-plan', {
      run_id: 'r1',
      step: 'fence',
      notes: ['h1 answers over SSH'],
      actions: [
        { id: 'traffic:out', title: 'take h1 out of rotation', touches: 'load balancer', mutates: true },
        { id: 'probe', title: 'read the server state', touches: 'load balancer', mutates: false },
      ],
      blocked: 'no fence method can take h1 out',
    });
    expect(stdout()).toBe('');
    expect(stderr()).toBe(
      [
        'fence: blocked',
        '  h1 answers over SSH',
        '  - take h1 out of rotation (load balancer)',
        '  - read the server state (load balancer, read-only)',
        '  blocked: no fence method can take h1 out',
        '',
      ].join('\n'),
    );
  });

  test('actions: done, failed with the error, skipped; running is left to the spinner', async () => {
    const { reporter, stderr } = await human();
    const action = { id: 'a', title: 'stop demo-web on h1', touches: 'h1', mutates: true };
    reporter.event('action', { run_id: 'r1', step: 'fence', action, status: 'running' });
    reporter.event('action', { run_id: 'r1', step: 'fence', action, status: 'done' });
    reporter.event('action', {
      run_id: 'r1',
      step: 'fence',
      action,
      status: 'failed',
      error: { code: 'E_STEP_FAILED', message: 'exit 1' },
    });
    reporter.event('action', { run_id: 'r1', step: 'fence', action, status: 'skipped' });
    expect(stderr().split('\n')).toEqual([
      '  ✔ stop demo-web on h1 (h1)',
      '  ✖ stop demo-web on h1 (h1): exit 1',
      '  - stop demo-web on h1 (h1) skipped',
      '',
    ]);
  });

  test('a dry run: one heading per run, then what each step would do, on stdout', async () => {
    const { reporter, stdout } = await human();
    reporter.event('simulate', { run_id: 'r1', step: 'fence', lines: ['would take h1 out'] });
    reporter.event('simulate', {
      run_id: 'r1',
      step: 'validate',
      lines: ['cannot simulate: after configure'],
    });
    reporter.event('simulate', { run_id: 'r2', step: 'fence', lines: ['would take h3 out'] });
    expect(stdout().split('\n')).toEqual([
      'Dry run: nothing was changed. What each step would do:',
      '  fence:',
      '     would take h1 out',
      '  validate:',
      '     cannot simulate: after configure',
      'Dry run: nothing was changed. What each step would do:',
      '  fence:',
      '     would take h3 out',
      '',
    ]);
  });

  test('answers given without asking, step verdicts and logs go to stderr, redacted', async () => {
    const redactor = new Redactor();
    redactor.add('s3cr3t-value');
    const { reporter, stdout, stderr } = await human(redactor);
    reporter.event('confirm', { question: 'Run these 7 steps?', answer: true, by: '--yes' });
    reporter.event('select', { question: 'target for demo-web', answer: 'h2', by: 'top of the ranking' });
    reporter.event('step', { run_id: 'r1', step: 'fence', status: 'verified' });
    reporter.event('step', { run_id: 'r1', step: 'migrate', status: 'running', attempt: 1 });
    reporter.event('log', { run_id: 'r1', step: 'fence', message: 'printed s3cr3t-value' });
    reporter.event('probe', { host: 'h2', ok: true, duration_ms: 12 });
    expect(stdout()).toBe('');
    expect(stderr().split('\n')).toEqual([
      '? Run these 7 steps? yes (--yes)',
      '? target for demo-web h2 (top of the ranking)',
      '✔ fence: its end state was already there (verified after the interruption)',
      'printed [redacted]',
      '',
    ]);
  });

  test('the ranking is a table on stdout, under what the application needs', async () => {
    const { reporter, stdout } = await human();
    reporter.event('ranking', {
      app: 'demo-web',
      hosts: [
        { host: 'h2', address: '10.0.0.2', verdict: 'eligible', rank: 1, reasons: [] },
        {
          host: 'h3',
          address: '10.0.0.3',
          verdict: 'rejected',
          reasons: [{ code: 'memory', message: 'needs 1 GiB more', fix: 'free memory' }],
        },
      ],
      requirements: {
        app: 'demo-web',
        cores: 1,
        ramBytes: 1024 ** 3,
        storageBytes: 2 * 1024 ** 3,
        dataPath: '/srv/demo-web',
        packages: [],
      } as never,
    });
    const text = stdout();
    expect(text).toContain('demo-web needs 1 core(s), 1 GiB RAM, 2 GiB free on /srv/demo-web');
    expect(text).toMatch(/│ 1 +│ h2 +│/);
    expect(text).toContain('needs 1 GiB more');
    expect(text).toContain('→ free memory');
  });

  test('only the events people need are rendered: probe, task and run say nothing', async () => {
    const { reporter, stdout, stderr } = await human();
    reporter.event('run', { run_id: 'r1', journal: '/state/runs/r1.json' });
    reporter.event('task', { label: 'probing', status: 'started' });
    reporter.event('probe', { host: 'h3', ok: false, failure: { kind: 'timeout', message: 'timed out' } });
    expect(stdout() + stderr()).toBe('');
  });
});

describe('the JSON reporter', () => {
  test('writes each event as one line: its type, a timestamp, its fields as given, redacted as values', () => {
    const io = streams();
    const redactor = new Redactor();
    redactor.add('p"w');
    const reporter = new JsonReporter(io.s, redactor);
    reporter.event('step', {
      run_id: 'r1',
      step: 'fence',
      status: 'failed',
      error: { code: 'E_STEP_FAILED', message: 'said p"w' },
    });
    reporter.event('run', { run_id: 'r1', journal: '/state/runs/r1.json' });
    const lines = io
      .stdout()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      {
        type: 'step',
        ts: expect.any(String),
        run_id: 'r1',
        step: 'fence',
        status: 'failed',
        error: { code: 'E_STEP_FAILED', message: 'said [redacted]' },
      },
      { type: 'run', ts: expect.any(String), run_id: 'r1', journal: '/state/runs/r1.json' },
    ]);
    expect(io.stderr()).toBe('');
  });

  test('events are typed: a field of the wrong shape does not compile', () => {
    const reporter = new JsonReporter(streams().s, new Redactor());
    // @ts-expect-error: no such step status
    reporter.event('step', { run_id: 'r1', step: 'fence', status: 'exploded' });
    // @ts-expect-error: an action needs its action
    reporter.event('action', { run_id: 'r1', step: 'fence', status: 'done' });
    // @ts-expect-error: no such event
    reporter.event('nonsense', {});
    expect(true).toBe(true);
  });
});
