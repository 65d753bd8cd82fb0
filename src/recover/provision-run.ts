/**
 * Provisioning a host, the half that acts: the confirmation, the command (no shell, a minimal environment, a time
 * limit, its stderr shown line by line without terminal controls), its entry read (provision.ts), then a probe
 * of the new host, repeated while it does not answer yet (booting) until the same time limit.
 */
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import { type ProbeResult, probeHost } from '../hosts/probe.js';
import type { SshFailureKind, Transport } from '../hosts/ssh.js';
import type { Provisioned } from '../runbook/journal-schema.js';
import { localEnv } from '../runbook/local-env.js';
import { confirmOrDecline, type Prompter } from '../ui/prompter.js';
import type { Reporter } from '../ui/reporter.js';
import { endedAs, execaLocal, type LocalRunner } from '../util/local-process.js';
import { stripTerminalControls } from '../util/sanitize.js';
import { commandText, type ProvisionCommand, parseProvisionOutput } from './provision.js';

export interface ProvisionDeps {
  reporter: Reporter;
  prompter: Prompter;
  ssh: Transport;
  /** persona's environment: the command gets only PATH, HOME, LANG, LC_ALL and TZ of it. */
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  /** Where a relative key_file of the entry is resolved (the working directory). */
  cwd: string;
  /** Throws when the run's lock can no longer be trusted. */
  assertHeld?: () => void;
  local?: LocalRunner;
  /** The profile's `provision.env`, resolved from its secret references (registered with the redactor). */
  secretEnv?: () => Promise<Record<string, string>>;
  now(): Date;
}

export interface ProvisionRequest {
  app: string;
  command: ProvisionCommand;
  /** The PERSONA_* variables (provisionEnv). */
  vars: Record<string, string>;
  inventory: { hosts: readonly InventoryHost[]; source: string };
  probe: { dataPath: string; packages: readonly string[] };
}

export interface ProvisionedHost {
  host: InventoryHost;
  probe: ProbeResult;
  /** For the journal. */
  record: Provisioned;
}

/** Failures a booting host shows until its sshd listens: worth another probe before the time limit. */
const NOT_UP_YET: readonly SshFailureKind[] = ['refused', 'timeout', 'unreachable'];

export async function provisionHost(deps: ProvisionDeps, req: ProvisionRequest): Promise<ProvisionedHost> {
  const { reporter } = deps;
  const { argv, timeoutMs, from } = req.command;
  await confirmOrDecline(
    deps.prompter,
    `No host can take ${req.app}. Create one with the provision command \`${commandText(argv)}\` (${from})?`,
  );
  deps.assertHeld?.();
  const started = Date.now();
  const at = deps.now().toISOString();
  reporter.event('provision', {
    app: req.app,
    status: 'started',
    command: argv,
    env: req.vars,
    timeout_ms: timeoutMs,
  });
  // The secrets go only into the command's environment: never into `req.vars`, which events report.
  const secrets = (await deps.secretEnv?.()) ?? {};
  const result = await (deps.local ?? execaLocal)(argv, {
    env: { ...localEnv(deps.env), ...secrets, ...req.vars },
    timeoutMs,
    signal: deps.signal,
    group: true,
    onStderrLine: (line) =>
      reporter.event('provision', {
        app: req.app,
        status: 'output',
        command: argv,
        line: stripTerminalControls(line),
      }),
  });
  if (deps.signal.aborted) throw deps.signal.reason;
  if (result.timedOut || result.exitCode !== 0) throw commandFailed(argv, result, timeoutMs);
  const { host, entry } = parseProvisionOutput(result.stdout, argv, req.inventory, deps.cwd);
  const probe = await probeUntilUp(deps, host, req.probe, started + timeoutMs);
  const duration = Date.now() - started;
  reporter.event('provision', {
    app: req.app,
    status: 'succeeded',
    command: argv,
    entry,
    duration_ms: duration,
  });
  return { host, probe, record: { entry, command: [...argv], at, duration_ms: duration } };
}

function commandFailed(
  argv: readonly string[],
  r: Awaited<ReturnType<LocalRunner>>,
  timeoutMs: number,
): PersonaError {
  const last = stripTerminalControls(r.stderr).trim().split('\n').at(-1) ?? '';
  const how = r.timedOut
    ? `did not finish within ${Math.round(timeoutMs / 1000)} s and was stopped`
    : `failed (${endedAs(r)})`;
  return new PersonaError(
    'E_PROVISION',
    `provision command \`${commandText(argv)}\` ${how}${last ? `: ${last}` : ''}`,
    {
      hint: r.timedOut
        ? "It may have made a host partly: check with your provider. Raise the limit with provision_timeout (or the profile's provision.timeout_ms). No step ran."
        : 'Its messages are above. No step ran; fix the cause and run the recovery again.',
      details: { command: [...argv], ended: endedAs(r) },
    },
  );
}

/** The new host's probe; while it does not answer yet (refused, timed out, no route), again until the deadline. */
async function probeUntilUp(
  deps: ProvisionDeps,
  host: InventoryHost,
  options: ProvisionRequest['probe'],
  deadline: number,
): Promise<ProbeResult> {
  for (;;) {
    const left = deadline - Date.now();
    const result = await probeHost(deps.ssh, host, {
      ...options,
      deadlineMs: Math.max(1000, Math.min(15_000, left)),
      signal: deps.signal,
    });
    if (deps.signal.aborted) throw deps.signal.reason;
    const retry = !result.ok && NOT_UP_YET.includes(result.failure.kind as SshFailureKind);
    if (!retry || Date.now() + 1000 > deadline) {
      deps.reporter.event(
        'probe',
        result.ok
          ? { host: host.name, ok: true, duration_ms: result.durationMs }
          : { host: host.name, ok: false, failure: result.failure },
      );
      return result;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
