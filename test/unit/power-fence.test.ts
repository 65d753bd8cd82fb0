/**
 * The power fence (STONITH, issue 10): the profile's `fencing.power`, the fence-agent convention of its status
 * (0 = on, 2 = off, anything else = unknown), how its commands run (minimal environment, secrets in the
 * environment only, output cleaned and redacted), and how the fence verdict weighs a power-off.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import type { PowerFence } from '../../src/profile/schema.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import { type FenceFacts, fenceVerdict } from '../../src/runbook/fencing.js';
import {
  type CommandOutcome,
  type CommandRunner,
  cleanOutput,
  describePowerOff,
  endedHow,
  type PowerContext,
  powerArgv,
  powerFacts,
  powerFenceOf,
  powerOff,
  powerStateOf,
  powerStateText,
  powerStatus,
} from '../../src/runbook/power-fence.js';
import { secretUses } from '../../src/runbook/secrets.js';
import type { KvBackend } from '../../src/stores/kv.js';
import { Redactor } from '../../src/ui/redact.js';
import { repoRoot } from '../helpers/cli.js';

const silent: FenceFacts = {
  method: 'haproxy',
  canTakeOut: true,
  takenOut: true,
  takenOutBy: 'test',
  reachable: false,
  unreachableReason: 'timeout',
};

describe('fenceVerdict with a power fence', () => {
  test.each<[string, Partial<FenceFacts>, boolean, RegExp]>([
    [
      'powered off and silent, traffic method none (cannot take it out): fenced by the power alone',
      { method: 'none', canTakeOut: false, takenOut: undefined, ...powerFacts('off') },
      true,
      /powered off: the power fence's status exits 2 \(off\) and the host does not answer \(timeout\)/,
    ],
    [
      'powered off and silent, command method without a fence command: fenced',
      { method: 'command', canTakeOut: false, takenOut: undefined, ...powerFacts('off') },
      true,
      /powered off/,
    ],
    [
      'powered off, HAProxy has not taken it out: fenced (it cannot serve)',
      { takenOut: false, ...powerFacts('off') },
      true,
      /powered off/,
    ],
    [
      'status on after the off command: not fenced, even out of rotation and silent',
      powerFacts('on'),
      false,
      /does not report the host off after the off command \(status: on\)/,
    ],
    [
      'status unknown: not fenced, and the reason says why',
      powerFacts({ unknown: 'status exit 1 (0 = on, 2 = off, anything else = unknown): ipmi timeout' }),
      false,
      /status: unknown \(status exit 1 .*ipmi timeout\)/,
    ],
    [
      'status on, host answers and deploy.stop/status prove the app stopped: still not fenced',
      { reachable: true, stopExitCode: 0, statusExitCode: 3, ...powerFacts('on') },
      false,
      /does not report the host off/,
    ],
    [
      'power fence configured but status not checked: not fenced',
      { powerConfigured: true },
      false,
      /has not reported the host off yet/,
    ],
    [
      'status off, yet the host answers over SSH: not fenced (the agent may act on another machine)',
      { reachable: true, stopExitCode: 0, ...powerFacts('off') },
      false,
      /reports the host off, yet it answers over SSH/,
    ],
    [
      'status off, silent host without an unreachable reason',
      { ...powerFacts('off'), unreachableReason: undefined },
      true,
      /does not answer \(no answer\)/,
    ],
  ])('%s', (_name, facts, fenced, reason) => {
    const verdict = fenceVerdict({ ...silent, ...facts });
    expect(verdict.fenced).toBe(fenced);
    expect(verdict.reason).toMatch(reason);
  });

  test('without a power fence the verdict is as before (powerConfigured false or absent)', () => {
    const none = { ...silent, method: 'none', canTakeOut: false, takenOut: undefined };
    expect(fenceVerdict({ ...none, ...powerFacts(undefined) })).toEqual(fenceVerdict(none));
    expect(fenceVerdict(none).fenced).toBe(false);
    expect(fenceVerdict({ ...silent, ...powerFacts(undefined) })).toEqual(fenceVerdict(silent));
    expect(fenceVerdict(silent).fenced).toBe(true);
  });

  test('powerFacts: configured, off only for status off, the status in words', () => {
    expect(powerFacts(undefined)).toEqual({ powerConfigured: false });
    expect(powerFacts('off')).toEqual({ powerConfigured: true, poweredOff: true, powerStatus: 'off' });
    expect(powerFacts('on')).toEqual({ powerConfigured: true, poweredOff: false, powerStatus: 'on' });
    expect(powerFacts({ unknown: 'x' })).toEqual({
      powerConfigured: true,
      poweredOff: false,
      powerStatus: 'unknown (x)',
    });
  });
});

const outcome = (o: Partial<CommandOutcome>): CommandOutcome => ({ timedOut: false, output: '', ...o });

describe('the fence-agent convention (pure)', () => {
  test.each<[string, Partial<CommandOutcome>, string]>([
    ['exit 0 is on', { exitCode: 0 }, 'on'],
    ['exit 2 is off', { exitCode: 2 }, 'off'],
    [
      'exit 1 is unknown',
      { exitCode: 1 },
      'unknown (status exit 1 (0 = on, 2 = off, anything else = unknown))',
    ],
    ['exit 3 is unknown', { exitCode: 3 }, 'unknown (status exit 3'],
    ['a timeout is unknown, whatever the code', { exitCode: 2, timedOut: true }, 'timed out after 5000 ms'],
    ['a signal is unknown', { signal: 'SIGKILL' }, 'status killed by SIGKILL'],
    ['a program that cannot start is unknown', { error: 'spawn fence_x ENOENT' }, 'spawn fence_x ENOENT'],
  ])('%s', (_name, o, text) => {
    expect(powerStateText(powerStateOf(outcome(o), 5000, ''))).toContain(text);
  });

  test('the output goes into the reason of an unknown status', () => {
    expect(powerStateOf(outcome({ exitCode: 1 }), 5000, 'Unable to connect')).toEqual({
      unknown: 'status exit 1 (0 = on, 2 = off, anything else = unknown): Unable to connect',
    });
  });

  test('endedHow names the end of a command', () => {
    expect(endedHow(outcome({ exitCode: 0 }), 1)).toBe('exit 0');
    expect(endedHow(outcome({ timedOut: true }), 1500)).toBe('timed out after 1500 ms');
    expect(endedHow(outcome({ signal: 'SIGTERM' }), 1)).toBe('killed by SIGTERM');
    expect(endedHow(outcome({}), 1)).toBe('did not run');
  });

  test('cleanOutput strips terminal controls, redacts, then keeps the tail', () => {
    const redactor = new Redactor();
    redactor.add('s3cret-pass');
    // A control sequence inside the secret must not hide it from the redactor.
    const text = `\x1b]52;c;aGk=\x07login ok\r\npassword s3cr\x1b[0met-pass\n\x1b[31mred\x1b[0m\n`;
    expect(cleanOutput(text, redactor)).toBe('login ok\npassword [redacted]\nred');
    const long = `${'x'.repeat(600)} s3cret-pass end`;
    const tail = cleanOutput(long, redactor, 30);
    expect(tail).toHaveLength(30);
    expect(tail.endsWith('[redacted] end')).toBe(true);
    // Cut after redaction: a secret that straddles the cut is not left half in clear.
    expect(cleanOutput(`s3cret-pass${'y'.repeat(5)}`, redactor, 12)).not.toMatch(/pass|s3c/);
  });

  test('placeholders: {failed} and {host} are the failed host, {address} its address, {app} the app', () => {
    const failed = { name: 'lab-1', address: '10.251.72.11' };
    expect(powerArgv(['fence', '{failed}', '{host}', '--ip={address}', '{app}'], failed, 'demo-web')).toEqual(
      ['fence', 'lab-1', 'lab-1', '--ip=10.251.72.11', 'demo-web'],
    );
  });

  test('describePowerOff: one line for the plan', () => {
    const power = fence({
      off: ['lab', 'fence', 'off', '{failed}'],
      status: ['lab', 'fence', 'status', '{failed}'],
    });
    expect(
      describePowerOff(power, {
        profile: { id: 'demo-web' },
        failed: { name: 'lab-1', address: '10.0.0.1' },
      }),
    ).toBe('power off lab-1 (fence agent: lab fence off lab-1; then `lab fence status lab-1` must exit 2)');
  });
});

function fence(p: Partial<PowerFence>): PowerFence {
  return { off: ['true'], status: ['true'], timeout_ms: 60_000, ...p };
}

const demo = JSON.parse(readFileSync(`${repoRoot}profiles/demo-web.json`, 'utf8'));

function withFencing(fencing: unknown): unknown {
  return { ...structuredClone(demo), fencing };
}

function problemsOf(value: unknown): string[] {
  try {
    validateProfileValue('t', value);
    return [];
  } catch (error) {
    if (error instanceof ValidationError) return error.problems.map((p) => `${p.path}: ${p.message}`);
    throw error;
  }
}

describe('the profile field fencing.power', () => {
  test('a power block with off, status and secrets in env parses, with a default timeout', () => {
    const profile = validateProfileValue(
      't',
      withFencing({
        power: {
          off: ['fence_ipmilan', '--ip={address}', '--username=admin', '--action=off'],
          status: ['fence_ipmilan', '--ip={address}', '--username=admin', '--action=status'],
          env: { IPMI_PASSWORD: 'env:IPMI_PASSWORD', API_TOKEN: 'store:fence/token' },
        },
      }),
    );
    expect(powerFenceOf(profile)).toMatchObject({
      timeout_ms: 60_000,
      env: { IPMI_PASSWORD: 'env:IPMI_PASSWORD' },
    });
    expect(secretUses(profile).filter((u) => u.where.startsWith('fencing'))).toEqual([
      { where: 'fencing.power env IPMI_PASSWORD', ref: 'env:IPMI_PASSWORD', source: 'environment variable' },
      { where: 'fencing.power env API_TOKEN', ref: 'store:fence/token', source: 'key in the profile store' },
    ]);
  });

  test('no fencing, or fencing without power: no power fence', () => {
    expect(powerFenceOf(validateProfileValue('t', demo))).toBeUndefined();
    expect(powerFenceOf(validateProfileValue('t', withFencing({})))).toBeUndefined();
  });

  test('a power block needs both off and status', () => {
    expect(problemsOf(withFencing({ power: { off: ['x'] } }))).toEqual([
      '/fencing/power/status: is required',
    ]);
    expect(problemsOf(withFencing({ power: { status: ['x'] } }))).toEqual([
      '/fencing/power/off: is required',
    ]);
    expect(problemsOf(withFencing({ power: {} }))).toHaveLength(2);
  });

  test.each<[string, unknown, RegExp]>([
    ['an empty command', { off: [], status: ['x'] }, /\/fencing\/power\/off: must not be empty/],
    [
      'a control character',
      { off: ['a\nb'], status: ['x'] },
      /\/fencing\/power\/off\/0: must not contain control/,
    ],
    [
      'a secret value instead of a reference',
      { off: ['x'], status: ['x'], env: { PW: 'hunter2' } },
      /\/fencing\/power\/env\/PW: must be a secret reference/,
    ],
    [
      'inline key material',
      { off: ['x'], status: ['x'], env: { KEY: '-----BEGIN OPENSSH PRIVATE KEY-----' } },
      /looks like inline key material/,
    ],
    [
      'a bad variable name',
      { off: ['x'], status: ['x'], env: { '1PW': 'env:PW' } },
      /\/fencing\/power\/env\/1PW: the name must be an environment variable name: .*, got "1PW"/,
    ],
    [
      'PATH from a secret',
      { off: ['x'], status: ['x'], env: { PATH: 'env:PW' } },
      /env\/PATH: the name must not be PATH/,
    ],
    [
      'a timeout under a second',
      { off: ['x'], status: ['x'], timeout_ms: 10 },
      /timeout_ms: must be an integer/,
    ],
    [
      'an unknown field',
      { off: ['x'], status: ['x'], reboot: ['x'] },
      /\/fencing\/power\/reboot: unknown field/,
    ],
  ])('refuses %s', (_name, power, message) => {
    expect(problemsOf(withFencing({ power })).join('\n')).toMatch(message);
  });
});

const backend = (values: Record<string, string> = {}): KvBackend =>
  ({
    describe: 'test store',
    shared: false,
    async get(key: string) {
      return key in values ? { key, value: values[key]!, version: '1' } : undefined;
    },
  }) as unknown as KvBackend;

function powerContext(env: NodeJS.ProcessEnv = {}, signal = new AbortController().signal) {
  const redactor = new Redactor();
  const ctx: PowerContext = {
    profile: { id: 'demo-web' },
    failed: { name: 'lab-1', address: '10.251.72.11' },
    env,
    backend: backend({ 'fence/token': 'tok-from-store' }),
    redactor,
    signal,
  };
  return { ctx, redactor };
}

/** A runner that answers from a script of outcomes, in order, and records what it was asked. */
function scripted(outcomes: Array<Partial<CommandOutcome>>) {
  const calls: Array<{ argv: string[]; env: Record<string, string>; timeoutMs: number }> = [];
  const run: CommandRunner = async (argv, { env, timeoutMs }) => {
    calls.push({ argv: [...argv], env, timeoutMs });
    const next = outcomes.shift();
    if (!next) throw new Error(`no outcome scripted for ${argv.join(' ')}`);
    return outcome(next);
  };
  return { run, calls };
}

/** A monotonic clock that moves `step` ms every time it is read. */
function ticking(step: number) {
  let t = 0;
  return () => {
    t += step;
    return t;
  };
}

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe('powerStatus and powerOff', () => {
  const power = fence({
    off: ['agent', 'off', '{failed}'],
    status: ['agent', 'status', '{failed}', '{address}'],
    timeout_ms: 10_000,
    env: { AGENT_PASSWORD: 'env:FENCE_PW', AGENT_TOKEN: 'store:fence/token' },
  });

  test('status: the argv substituted, an environment of localEnv plus the resolved secrets, nothing else', async () => {
    const { ctx, redactor } = powerContext({
      PATH: '/usr/bin:/bin',
      HOME: '/root',
      FENCE_PW: 'pw-from-env',
      CONSUL_HTTP_TOKEN: 'consul-token',
      PERSONA_STORE_TOKEN: 'store-token',
    });
    const { run, calls } = scripted([{ exitCode: 2 }]);
    expect(await powerStatus(power, ctx, { run })).toBe('off');
    expect(calls).toEqual([
      {
        argv: ['agent', 'status', 'lab-1', '10.251.72.11'],
        env: {
          PATH: '/usr/bin:/bin',
          HOME: '/root',
          AGENT_PASSWORD: 'pw-from-env',
          AGENT_TOKEN: 'tok-from-store',
        },
        timeoutMs: 10_000,
      },
    ]);
    // Resolved secrets are registered with the redactor before the command runs.
    expect(redactor.redact('pw-from-env tok-from-store')).toBe('[redacted] [redacted]');
  });

  test('status: on, and unknown with the redacted, cleaned output in the reason', async () => {
    const { ctx } = powerContext({ FENCE_PW: 'pw-from-env' });
    const on = scripted([{ exitCode: 0 }]);
    expect(await powerStatus(power, ctx, { run: on.run })).toBe('on');
    const bad = scripted([{ exitCode: 1, output: '\x1b[31mlogin failed for pw-from-env\x1b[0m\n' }]);
    expect(await powerStatus(power, ctx, { run: bad.run })).toEqual({
      unknown: 'status exit 1 (0 = on, 2 = off, anything else = unknown): login failed for [redacted]',
    });
  });

  test('a file: secret loses the final newline its editor added', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'persona-power-'));
    scratch.push(dir);
    writeFileSync(join(dir, 'pw'), 'from-file\n');
    const { ctx } = powerContext();
    const { run, calls } = scripted([{ exitCode: 0 }]);
    await powerStatus(fence({ env: { PW: `file:${join(dir, 'pw')}` } }), ctx, { run });
    expect(calls[0]?.env.PW).toBe('from-file');
  });

  test('a secret that cannot be resolved stops before any command runs', async () => {
    const { ctx } = powerContext({});
    const { run, calls } = scripted([]);
    await expect(powerStatus(power, ctx, { run })).rejects.toMatchObject({
      code: 'E_SECRET',
      message: expect.stringMatching(/env:FENCE_PW \(fencing.power env AGENT_PASSWORD\)/),
    });
    expect(calls).toEqual([]);
  });

  test('off: runs off, then polls status until it reports off', async () => {
    const { ctx } = powerContext({ FENCE_PW: 'pw' });
    const { run, calls } = scripted([
      { exitCode: 0, output: 'Success: Powered OFF' },
      { exitCode: 0 },
      { exitCode: 1 },
      { exitCode: 2 },
    ]);
    const r = await powerOff(power, ctx, { run, pollMs: 1, now: ticking(10) });
    expect(r).toMatchObject({
      state: 'off',
      checks: 3,
      off: {
        command: ['agent', 'off', 'lab-1'],
        ended: 'exit 0',
        exitCode: 0,
        output: 'Success: Powered OFF',
      },
    });
    expect(calls.map((c) => c.argv[1])).toEqual(['off', 'status', 'status', 'status']);
  });

  test('off: status never reports off before the deadline: the last state, not off', async () => {
    const { ctx } = powerContext({ FENCE_PW: 'pw' });
    const { run, calls } = scripted([
      { exitCode: 0 },
      ...Array.from({ length: 50 }, () => ({ exitCode: 0 })),
    ]);
    // Each read of the clock moves it 1 s: the 10 s deadline passes after a few checks.
    const r = await powerOff(power, ctx, { run, pollMs: 1, now: ticking(1000) });
    expect(r.state).toBe('on');
    expect(r.checks).toBeGreaterThan(1);
    expect(r.checks).toBeLessThan(10);
    expect(calls.length).toBe(r.checks + 1);
    // A status check is never given less than 5 s, even with the deadline near.
    expect(Math.min(...calls.slice(1).map((c) => c.timeoutMs))).toBeGreaterThanOrEqual(5000);
  });

  test('off: the off command fails: status is checked once, not waited on', async () => {
    const { ctx } = powerContext({ FENCE_PW: 'pw' });
    const failedOff = scripted([{ exitCode: 1, output: 'Connection timed out' }, { exitCode: 0 }]);
    const r = await powerOff(power, ctx, { run: failedOff.run, pollMs: 1, now: ticking(1) });
    expect(r).toMatchObject({ state: 'on', checks: 1, off: { exitCode: 1, output: 'Connection timed out' } });
    // An agent that fails on a host that is off already: status decides.
    const alreadyOff = scripted([{ exitCode: 1 }, { exitCode: 2 }]);
    expect((await powerOff(power, ctx, { run: alreadyOff.run, now: ticking(1) })).state).toBe('off');
    const timedOut = scripted([{ timedOut: true, signal: 'SIGTERM' }, { exitCode: 0 }]);
    expect((await powerOff(power, ctx, { run: timedOut.run, now: ticking(1) })).off).toMatchObject({
      ended: 'timed out after 10000 ms',
      exitCode: null,
    });
  });

  test('an abort stops it with the abort reason, before the next command', async () => {
    const controller = new AbortController();
    const { ctx } = powerContext({ FENCE_PW: 'pw' }, controller.signal);
    const run: CommandRunner = async () => {
      controller.abort(new Error('interrupted'));
      return outcome({ exitCode: 0 });
    };
    await expect(powerOff(power, ctx, { run, pollMs: 1 })).rejects.toThrow('interrupted');
    await expect(powerStatus(power, ctx, { run })).rejects.toThrow('interrupted');
  });
});

describe('the commands for real (execa on this machine)', () => {
  const sh = (script: string) => ['sh', '-c', script];

  test('exit codes 0, 2 and 1 read as on, off and unknown', async () => {
    const { ctx } = powerContext({ PATH: process.env.PATH });
    expect(await powerStatus(fence({ status: sh('exit 0') }), ctx)).toBe('on');
    expect(await powerStatus(fence({ status: sh('exit 2') }), ctx)).toBe('off');
    expect(await powerStatus(fence({ status: sh('echo nope >&2; exit 1') }), ctx)).toEqual({
      unknown: 'status exit 1 (0 = on, 2 = off, anything else = unknown): nope',
    });
  });

  test('only the minimal environment and the secrets reach the command; its output is cleaned', async () => {
    const { ctx } = powerContext({
      PATH: process.env.PATH,
      CONSUL_HTTP_TOKEN: 'consul-token',
      FENCE_PW: 'pw-from-env',
    });
    const status = sh(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
      'printf "\\033]52;c;aGk=\\007pw=%s consul=%s\\n" "$AGENT_PASSWORD" "${CONSUL_HTTP_TOKEN:-none}"; exit 1',
    );
    const state = await powerStatus(fence({ status, env: { AGENT_PASSWORD: 'env:FENCE_PW' } }), ctx);
    expect(state).toEqual({
      unknown: 'status exit 1 (0 = on, 2 = off, anything else = unknown): pw=[redacted] consul=none',
    });
  });

  test('a program that does not exist, and a status that hangs, are unknown', async () => {
    const { ctx } = powerContext({ PATH: process.env.PATH });
    const missing = await powerStatus(fence({ status: ['/nonexistent/fence_agent'] }), ctx);
    expect(powerStateText(missing)).toMatch(/unknown \(status .*ENOENT/);
    const hung = await powerStatus(fence({ status: sh('exec sleep 10'), timeout_ms: 1000 }), ctx);
    expect(powerStateText(hung)).toMatch(/unknown \(status timed out after 1000 ms/);
  });

  test('powerOff with a real agent that takes a moment to power off', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'persona-power-'));
    scratch.push(dir);
    const flag = join(dir, 'off');
    const { ctx } = powerContext({ PATH: process.env.PATH });
    const power = fence({
      off: sh(`(sleep 0.3; touch '${flag}') >/dev/null 2>&1 & echo powering off {failed}`),
      status: sh(`test -e '${flag}' && exit 2; exit 0`),
      timeout_ms: 10_000,
    });
    const r = await powerOff(power, ctx, { pollMs: 100 });
    expect(r).toMatchObject({ state: 'off', off: { exitCode: 0, output: 'powering off lab-1' } });
    expect(r.checks).toBeGreaterThan(1);
  });
});
