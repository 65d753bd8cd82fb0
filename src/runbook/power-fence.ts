/**
 * The power fence (STONITH): the profile's `fencing.power` commands, run on this machine the way Pacemaker runs a
 * fence agent. `off` powers the failed host off; `status` reports its power: exit 0 = on, exit 2 = off, anything
 * else (another exit code, a timeout, a signal, a program that cannot start) = unknown, which never counts as off.
 *
 * The commands get a minimal environment (localEnv, extendEnv false) plus the variables of `fencing.power.env`,
 * each resolved from its secret reference (and registered with the redactor before the command starts); secrets
 * never go into the argument list. What the commands print is stripped of terminal controls and redacted before
 * it is returned, so it can go to logs, the journal and --json as it is.
 *
 * Nothing here decides whether the host is fenced: `fenceVerdict` (fencing.ts) does, from `powerFacts`.
 */
import type { InventoryHost } from '../hosts/inventory.js';
import type { PowerFence, Profile } from '../profile/schema.js';
import type { KvBackend } from '../stores/kv.js';
import { substitute } from '../traffic/router.js';
import type { Redactor } from '../ui/redact.js';
import { execaLocal } from '../util/local-process.js';
import { stripTerminalControls } from '../util/sanitize.js';
import { sleep } from '../util/sleep.js';
import type { FenceFacts } from './fencing.js';
import { localEnv } from './local-env.js';
import { resolveSecret } from './secrets.js';

/** What a fence agent's status reports: on, off, or unknown (with why). */
export type PowerState = 'off' | 'on' | { unknown: string };

/** The exit codes of a fence agent's status, as Pacemaker defines them. */
export const POWER_ON_EXIT = 0;
export const POWER_OFF_EXIT = 2;

/** What the power commands need from a run; a StepContext has all of it. */
export interface PowerContext {
  readonly profile: Pick<Profile, 'id'>;
  readonly failed: Pick<InventoryHost, 'name' | 'address'>;
  /** persona's environment: the commands get localEnv(env), and env: secrets are read from it. */
  readonly env: NodeJS.ProcessEnv;
  /** For store: secrets. */
  readonly backend: KvBackend;
  readonly redactor: Redactor;
  /** The allowed_sources patterns for env: and file: secrets; absent: the default. */
  readonly allowedSources?: readonly string[];
  readonly signal: AbortSignal;
}

/** How one command ended, and what it printed (stdout and stderr interleaved, raw). */
export interface CommandOutcome {
  exitCode?: number;
  signal?: string;
  timedOut: boolean;
  output: string;
  /** Why it did not run or did not finish (spawn error, …), when it has no exit code. */
  error?: string;
}

export type CommandRunner = (
  argv: readonly string[],
  opts: { env: Record<string, string>; timeoutMs: number; signal: AbortSignal },
) => Promise<CommandOutcome>;

export interface PowerOptions {
  /** Runs one command; default: execa on this machine. Tests pass their own. */
  run?: CommandRunner;
  /** Pause between status checks while waiting for off; default 1000 ms. */
  pollMs?: number;
  /** Milliseconds on a monotonic clock; default performance.now. */
  now?: () => number;
}

/** The profile's power fence, if it has one. */
export function powerFenceOf(profile: Pick<Profile, 'fencing'>): PowerFence | undefined {
  return profile.fencing?.power;
}

/** A power command's argv for the failed host: {failed} and {host} are its name, {address} its address. */
export function powerArgv(
  argv: readonly string[],
  failed: Pick<InventoryHost, 'name' | 'address'>,
  app: string,
): string[] {
  return substitute(argv, { host: failed.name, failed: failed.name, address: failed.address, app });
}

/** One line for a plan: "power off lab-1 (fence agent: test/lab/lab fence off lab-1)". */
export function describePowerOff(power: PowerFence, ctx: Pick<PowerContext, 'profile' | 'failed'>): string {
  return `power off ${ctx.failed.name} (fence agent: ${powerArgv(power.off, ctx.failed, ctx.profile.id).join(' ')}; then \`${powerArgv(power.status, ctx.failed, ctx.profile.id).join(' ')}\` must exit ${POWER_OFF_EXIT})`;
}

const OUTPUT_TAIL = 500;

/** Command output fit for logs, journals and --json: no terminal controls, no secret, the last 500 characters. */
export function cleanOutput(text: string, redactor: Pick<Redactor, 'redact'>, max = OUTPUT_TAIL): string {
  // Strip first (a control sequence inside a secret must not hide it from the redactor), cut last (a cut
  // through a secret would leave a piece the redactor does not know).
  const clean = redactor.redact(stripTerminalControls(text)).trim();
  return clean.length > max ? `…${clean.slice(-(max - 1))}` : clean;
}

/** How a command ended, in words: "exit 1", "timed out after 5000 ms", "killed by SIGKILL", "spawn x ENOENT". */
export function endedHow(o: CommandOutcome, timeoutMs: number): string {
  if (o.timedOut) return `timed out after ${timeoutMs} ms`;
  if (o.exitCode !== undefined) return `exit ${o.exitCode}`;
  if (o.signal) return `killed by ${o.signal}`;
  return o.error ?? 'did not run';
}

/** The fence-agent convention, pure: exit 0 = on, exit 2 = off, anything else = unknown (with why). */
export function powerStateOf(o: CommandOutcome, timeoutMs: number, output: string): PowerState {
  if (!o.timedOut && o.exitCode === POWER_ON_EXIT) return 'on';
  if (!o.timedOut && o.exitCode === POWER_OFF_EXIT) return 'off';
  return {
    unknown: `status ${endedHow(o, timeoutMs)} (0 = on, 2 = off, anything else = unknown)${output ? `: ${output}` : ''}`,
  };
}

/** A power state in words, for reasons and logs: "off", "on", "unknown (status exit 1 …)". */
export function powerStateText(state: PowerState): string {
  return typeof state === 'string' ? state : `unknown (${state.unknown})`;
}

/**
 * The fence facts of a power fence, for `fenceVerdict`. `state` is what status reported after the off command
 * (or before planning one); undefined: the profile has no power fence.
 */
export function powerFacts(
  state: PowerState | undefined,
): Pick<FenceFacts, 'powerConfigured' | 'poweredOff' | 'powerStatus'> {
  if (state === undefined) return { powerConfigured: false };
  return { powerConfigured: true, poweredOff: state === 'off', powerStatus: powerStateText(state) };
}

/** A secret from a file usually ends with the newline its editor added: an environment value does not. */
const withoutFinalNewline = (value: string) => value.replace(/\r?\n$/, '');

/** The commands' environment: localEnv plus each `env` variable from its secret (registered with the redactor). */
export async function powerEnv(power: PowerFence, ctx: PowerContext): Promise<Record<string, string>> {
  const env = localEnv(ctx.env);
  for (const [name, ref] of Object.entries(power.env ?? {})) {
    const value = await resolveSecret(ref, `fencing.power env ${name}`, {
      env: ctx.env,
      backend: ctx.backend,
      redactor: ctx.redactor,
      ...(ctx.allowedSources ? { allowed: ctx.allowedSources } : {}),
    });
    env[name] = withoutFinalNewline(value);
  }
  return env;
}

/** Runs a command on this machine (the LocalRunner port): no shell, only the environment given, stdin closed. */
export const execaRunner: CommandRunner = async (argv, opts) => {
  const { exitCode, signal, timedOut, output, error } = await execaLocal(argv, opts);
  return {
    ...(exitCode !== undefined ? { exitCode } : {}),
    ...(signal ? { signal } : {}),
    timedOut,
    output,
    ...(error ? { error } : {}),
  };
};

interface Ran {
  outcome: CommandOutcome;
  output: string;
}

async function runOnce(
  argv: readonly string[],
  env: Record<string, string>,
  timeoutMs: number,
  ctx: PowerContext,
  run: CommandRunner,
): Promise<Ran> {
  if (ctx.signal.aborted) throw ctx.signal.reason;
  const outcome = await run(argv, { env, timeoutMs, signal: ctx.signal });
  if (ctx.signal.aborted) throw ctx.signal.reason;
  return {
    outcome,
    output: cleanOutput(`${outcome.output}${outcome.error ? `\n${outcome.error}` : ''}`, ctx.redactor),
  };
}

/** The failed host's power as its status command reports it. Never throws for what the command does; aborts throw. */
export async function powerStatus(
  power: PowerFence,
  ctx: PowerContext,
  opts: PowerOptions = {},
): Promise<PowerState> {
  const env = await powerEnv(power, ctx);
  return await statusOnce(power, ctx, env, power.timeout_ms, opts.run ?? execaRunner);
}

async function statusOnce(
  power: PowerFence,
  ctx: PowerContext,
  env: Record<string, string>,
  timeoutMs: number,
  run: CommandRunner,
): Promise<PowerState> {
  const argv = powerArgv(power.status, ctx.failed, ctx.profile.id);
  const { outcome, output } = await runOnce(argv, env, timeoutMs, ctx, run);
  return powerStateOf(outcome, timeoutMs, output);
}

/** What powerOff did: facts for the journal (argv has only validated placeholders; output is redacted). */
export interface PowerOffResult {
  /** What status reported last: only 'off' is fence evidence. */
  state: PowerState;
  off: { command: string[]; ended: string; exitCode: number | null; output: string };
  /** Status checks after the off command. */
  checks: number;
  ms: number;
}

/** Shortest time a status check gets, even when the off command used up the deadline. */
const MIN_STATUS_MS = 5000;

/**
 * Runs the off command, then checks status until it reports off or `timeout_ms` (off included) has passed. When
 * the off command fails, status is checked once (an agent may fail to power off a host that is off already) and
 * not waited on. Never throws for what the commands do: the verdict comes from `state`; aborts throw.
 */
export async function powerOff(
  power: PowerFence,
  ctx: PowerContext,
  opts: PowerOptions = {},
): Promise<PowerOffResult> {
  const run = opts.run ?? execaRunner;
  const now = opts.now ?? (() => performance.now());
  const pollMs = opts.pollMs ?? 1000;
  const started = now();
  const deadline = started + power.timeout_ms;
  const env = await powerEnv(power, ctx);
  const command = powerArgv(power.off, ctx.failed, ctx.profile.id);
  const off = await runOnce(command, env, power.timeout_ms, ctx, run);
  const offOk = !off.outcome.timedOut && off.outcome.exitCode === 0;
  const statusTimeout = () =>
    Math.min(power.timeout_ms, Math.max(MIN_STATUS_MS, Math.round(deadline - now())));
  let state = await statusOnce(power, ctx, env, statusTimeout(), run);
  let checks = 1;
  while (offOk && state !== 'off' && now() + pollMs < deadline) {
    await sleep(pollMs, ctx.signal);
    if (ctx.signal.aborted) throw ctx.signal.reason;
    state = await statusOnce(power, ctx, env, statusTimeout(), run);
    checks++;
  }
  return {
    state,
    off: {
      command,
      ended: endedHow(off.outcome, power.timeout_ms),
      exitCode: off.outcome.timedOut ? null : (off.outcome.exitCode ?? null),
      output: off.output,
    },
    checks,
    ms: Math.round(now() - started),
  };
}
