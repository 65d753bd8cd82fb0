/**
 * How traffic reaches an application, per the profile's `traffic.method`: take the failed host out of rotation
 * (fence), put the new host in (switch), and prove that requests now reach the new host (verify).
 */
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import type { Profile } from '../profile/schema.js';
import { localEnv } from '../runbook/local-env.js';
import type { ConsulApi } from '../stores/consul-api.js';
import { endedAs, execaLocal, type LocalRunner } from '../util/local-process.js';
import { type NodeAgent, nodeAgent } from './consul-agent.js';
import { ConsulRouter } from './consul-router.js';
import { DnsRouter } from './dns-router.js';
import { HaproxyRuntime, inMaintenance, readStateFile } from './haproxy.js';

export type Evidence = Record<string, unknown>;

/** Sentences a router puts in `caveats` of its evidence for the step to log (a DNS TTL, say). */
export function caveatsOf(evidence: Evidence): string[] {
  return Array.isArray(evidence.caveats)
    ? evidence.caveats.filter((c): c is string => typeof c === 'string')
    : [];
}

export interface TrafficRouter {
  readonly method: string;
  describeFence(failed: InventoryHost): string;
  describeSwitch(target: InventoryHost, failed: InventoryHost): string;
  /** Takes the failed host out of rotation. */
  fence(failed: InventoryHost, signal: AbortSignal): Promise<Evidence>;
  isFenced(failed: InventoryHost, signal: AbortSignal): Promise<boolean>;
  /** Whether the router can take a host out of rotation at all (false: only stopping the app fences it). */
  readonly canFence: boolean;
  /**
   * Whether isFenced/isSwitched report the real state (HAProxy, Consul). A command router cannot look: its fence
   * and switch commands run once per run, and their exit status is the evidence.
   */
  readonly canObserve: boolean;
  switchTo(target: InventoryHost, failed: InventoryHost, signal: AbortSignal): Promise<Evidence>;
  isSwitched(target: InventoryHost, failed: InventoryHost, signal: AbortSignal): Promise<boolean>;
  /** Requests through the router reach the target; resolves with what was seen, throws otherwise. */
  verify(target: InventoryHost, names: readonly string[], signal: AbortSignal): Promise<Evidence>;
}

type Placeholders = { host: string; address: string; app: string; failed: string };

export function substitute(argv: readonly string[], values: Placeholders): string[] {
  return argv.map((a) =>
    a.replace(/\{(host|address|app|failed)\}/g, (_, k: keyof Placeholders) => values[k]),
  );
}

export interface RouterDeps {
  /** The Consul agent (the store's when it is Consul, else CONSUL_HTTP_ADDR's), for the `consul` method. */
  consul?: () => Promise<ConsulApi>;
  /** persona's environment; local commands get only its minimal part (localEnv). */
  env?: NodeJS.ProcessEnv;
  /** A host's Consul agent by URL (its token from CONSUL_HTTP_TOKEN), for the `consul` method. */
  consulAgent?: (url: string) => NodeAgent;
  /**
   * Runs before every change the router makes (HAProxy state, a traffic command, Consul): throws when the run's
   * lock can no longer be trusted, so a stale holder moves no traffic.
   */
  guard?: () => void;
  /** Runs the `command` method's commands on this machine (default: execa). */
  local?: LocalRunner;
  /**
   * Resolves a secret reference (the `dns` method's TSIG key), registering the value with the redactor before
   * it is used.
   */
  secret?: (ref: string, where: string) => Promise<string>;
}

/** Fence and switch check the guard first (for routers without a finer one). */
function guardedRouter(router: TrafficRouter, guard: () => void): TrafficRouter {
  const wrapped = Object.create(router) as TrafficRouter;
  return Object.assign(wrapped, {
    fence: async (failed: InventoryHost, signal: AbortSignal) => {
      guard();
      return await router.fence(failed, signal);
    },
    switchTo: async (target: InventoryHost, failed: InventoryHost, signal: AbortSignal) => {
      guard();
      return await router.switchTo(target, failed, signal);
    },
  });
}

export function routerFor(profile: Profile, deps: RouterDeps = {}): TrafficRouter {
  const traffic = profile.traffic;
  const guard = deps.guard ?? (() => {});
  switch (traffic.method) {
    case 'haproxy':
      return guardedRouter(new HaproxyRouter(profile.id, traffic, guard), guard);
    case 'command':
      return guardedRouter(
        new CommandRouter(profile.id, traffic, localEnv(deps.env ?? {}), deps.local ?? execaLocal),
        guard,
      );
    case 'none':
      return new NoRouter();
    case 'consul':
      if (!deps.consul) {
        throw new PersonaError('E_USAGE', `traffic method "consul" of ${profile.id} needs a Consul agent`);
      }
      return guardedRouter(
        new ConsulRouter(
          traffic,
          profile.deploy.port,
          deps.consul,
          deps.consulAgent ?? ((url) => nodeAgent(url)),
        ),
        guard,
      );
    case 'dns':
      if (!deps.secret) {
        throw new PersonaError(
          'E_USAGE',
          `traffic method "dns" of ${profile.id} needs its TSIG key resolved`,
        );
      }
      return guardedRouter(new DnsRouter(profile.id, traffic, { secret: deps.secret, guard }), guard);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** GETs the URL until the response names one of the target's names, or the deadline passes. */
export async function verifyUrl(
  url: string,
  names: readonly string[],
  signal: AbortSignal,
  deadlineMs = 15_000,
): Promise<Evidence> {
  const started = Date.now();
  let last = '';
  let hits = 0;
  for (let attempt = 1; Date.now() - started < deadlineMs; attempt++) {
    if (signal.aborted) throw signal.reason;
    try {
      const response = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(3000)]) });
      const body = (await response.text()).trim();
      const servedBy = response.headers.get('x-served-by') ?? '';
      last = `HTTP ${response.status} from ${servedBy || '?'}: ${body.slice(0, 80)}`;
      if (response.ok && names.some((n) => n === servedBy || n === body)) {
        // Three answers in a row from the new host: not a lucky one.
        if (++hits >= 3)
          return {
            url,
            attempts: attempt,
            served_by: servedBy || body,
            status: response.status,
            ms: Date.now() - started,
          };
        continue;
      }
      hits = 0;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      last = (error as Error).message;
      hits = 0;
    }
    await sleep(250);
  }
  throw new PersonaError(
    'E_STEP_FAILED',
    `traffic through ${url} does not reach ${names[0]} after ${deadlineMs / 1000}s (last answer: ${last})`,
  );
}

class HaproxyRouter implements TrafficRouter {
  readonly method = 'haproxy';
  readonly canFence = true;
  readonly canObserve = true;
  private readonly api: HaproxyRuntime;

  constructor(
    private readonly app: string,
    private readonly cfg: Extract<Profile['traffic'], { method: 'haproxy' }>,
    guard: () => void,
  ) {
    this.api = new HaproxyRuntime(cfg.admin_socket, guard);
  }

  private server(host: InventoryHost): string {
    return this.cfg.server.replaceAll('{host}', host.name).replaceAll('{app}', this.app);
  }

  private persisted(): string {
    return this.cfg.state_file
      ? `, saved to ${this.cfg.state_file} so a reload keeps it`
      : ' (runtime only: no state_file, a reload of HAProxy undoes it)';
  }

  describeFence(failed: InventoryHost): string {
    return `HAProxy ${this.cfg.admin_socket}: set server ${this.cfg.backend}/${this.server(failed)} state maint${this.persisted()}`;
  }

  describeSwitch(target: InventoryHost): string {
    return `HAProxy ${this.cfg.admin_socket}: set server ${this.cfg.backend}/${this.server(target)} state ready${this.persisted()}${this.cfg.verify_url ? `; verify through ${this.cfg.verify_url}` : ''}`;
  }

  /** Saves the runtime state to the state file; what the evidence says about surviving a reload. */
  private async save(signal: AbortSignal): Promise<Evidence> {
    if (!this.cfg.state_file) return { survives_reload: false };
    await this.api.saveState(this.cfg.state_file, signal);
    return { survives_reload: true, state_file: this.cfg.state_file };
  }

  /** The server's state in the state file agrees (no state file configured: nothing to agree with). */
  private async fileAgrees(server: string, out: boolean): Promise<boolean> {
    if (!this.cfg.state_file) return true;
    const saved = (await readStateFile(this.cfg.state_file))?.find(
      (s) => s.backend === this.cfg.backend && s.server === server,
    );
    return saved !== undefined && inMaintenance(saved) === out;
  }

  async fence(failed: InventoryHost, signal: AbortSignal): Promise<Evidence> {
    await this.api.setState(this.cfg.backend, this.server(failed), 'maint', signal);
    const state = await this.api.server(this.cfg.backend, this.server(failed), signal);
    if (!state || !inMaintenance(state))
      throw new PersonaError('E_STEP_FAILED', `HAProxy still has ${this.server(failed)} in rotation`);
    return {
      haproxy: {
        backend: this.cfg.backend,
        server: this.server(failed),
        admin_state: state.adminState,
        ...(await this.save(signal)),
      },
    };
  }

  async isFenced(failed: InventoryHost, signal: AbortSignal): Promise<boolean> {
    const state = await this.api.server(this.cfg.backend, this.server(failed), signal);
    return state !== undefined && inMaintenance(state) && (await this.fileAgrees(this.server(failed), true));
  }

  async switchTo(target: InventoryHost, failed: InventoryHost, signal: AbortSignal): Promise<Evidence> {
    const server = this.server(target);
    const before = await this.api.server(this.cfg.backend, server, signal);
    if (!before) {
      throw new PersonaError('E_STEP_FAILED', `HAProxy backend ${this.cfg.backend} has no server ${server}`, {
        hint: `Add \`server ${server} ${target.address}:PORT check disabled\` to the backend, reload HAProxy, then resume. persona enables it; set traffic.state_file (HAProxy's server-state-file) or the next reload disables it again.`,
      });
    }
    await this.api.setState(this.cfg.backend, server, 'ready', signal);
    // The failed host stays out, whatever happened to it since the fence.
    if (this.server(failed) !== server)
      await this.api.setState(this.cfg.backend, this.server(failed), 'maint', signal);
    const after = await this.api.server(this.cfg.backend, server, signal);
    return {
      haproxy: {
        backend: this.cfg.backend,
        server,
        admin_state: after?.adminState,
        op_state: after?.opState,
        ...(await this.save(signal)),
      },
    };
  }

  async isSwitched(target: InventoryHost, failed: InventoryHost, signal: AbortSignal): Promise<boolean> {
    const servers = await this.api.servers(this.cfg.backend, signal);
    const t = servers.find((s) => s.server === this.server(target));
    const f = servers.find((s) => s.server === this.server(failed));
    return (
      t !== undefined &&
      !inMaintenance(t) &&
      (f === undefined || inMaintenance(f)) &&
      (await this.fileAgrees(this.server(target), false)) &&
      (f === undefined || t === f || (await this.fileAgrees(this.server(failed), true)))
    );
  }

  async verify(target: InventoryHost, names: readonly string[], signal: AbortSignal): Promise<Evidence> {
    if (!this.cfg.verify_url)
      return { verified: false, note: 'no verify_url in the profile: traffic not checked end to end' };
    const url = this.cfg.verify_url.replaceAll('{host}', target.name).replaceAll('{address}', target.address);
    return await verifyUrl(url, names, signal);
  }
}

class CommandRouter implements TrafficRouter {
  readonly method = 'command';
  readonly canFence: boolean;
  readonly canObserve = false;

  constructor(
    private readonly app: string,
    private readonly cfg: Extract<Profile['traffic'], { method: 'command' }>,
    private readonly env: Record<string, string>,
    private readonly run: LocalRunner,
  ) {
    this.canFence = cfg.fence !== undefined;
  }

  private values(host: InventoryHost, failed: InventoryHost): Placeholders {
    return { host: host.name, address: host.address, app: this.app, failed: failed.name };
  }

  private async local(argv: string[], signal: AbortSignal): Promise<Evidence> {
    const r = await this.run(argv, { env: this.env, timeoutMs: 120_000, signal });
    if (r.exitCode !== 0) {
      throw new PersonaError(
        'E_STEP_FAILED',
        `\`${argv.join(' ')}\` ended with ${endedAs(r)}: ${r.stderr.trim().slice(-300)}`,
      );
    }
    return { command: argv, stdout: r.stdout.trim().slice(-500) };
  }

  describeFence(failed: InventoryHost): string {
    return this.cfg.fence
      ? `run locally: ${substitute(this.cfg.fence, this.values(failed, failed)).join(' ')}`
      : 'no fence command in the profile';
  }

  describeSwitch(target: InventoryHost, failed: InventoryHost): string {
    return `run locally: ${substitute(this.cfg.switch, this.values(target, failed)).join(' ')}`;
  }

  async fence(failed: InventoryHost, signal: AbortSignal): Promise<Evidence> {
    if (!this.cfg.fence) return { note: 'no fence command' };
    return await this.local(substitute(this.cfg.fence, this.values(failed, failed)), signal);
  }

  async isFenced(): Promise<boolean> {
    return false;
  }

  async switchTo(target: InventoryHost, failed: InventoryHost, signal: AbortSignal): Promise<Evidence> {
    return await this.local(substitute(this.cfg.switch, this.values(target, failed)), signal);
  }

  async isSwitched(): Promise<boolean> {
    return false;
  }

  async verify(target: InventoryHost, _names: readonly string[], signal: AbortSignal): Promise<Evidence> {
    if (!this.cfg.verify) return { verified: false, note: 'no verify command in the profile' };
    return await this.local(substitute(this.cfg.verify, this.values(target, target)), signal);
  }
}

class NoRouter implements TrafficRouter {
  readonly method = 'none';
  readonly canFence = false;
  readonly canObserve = true;
  describeFence(): string {
    return 'no load balancer: nothing to take out of rotation';
  }
  describeSwitch(): string {
    return 'no load balancer: nothing to switch';
  }
  async fence(): Promise<Evidence> {
    return { note: 'traffic method none' };
  }
  async isFenced(): Promise<boolean> {
    return true;
  }
  async switchTo(): Promise<Evidence> {
    return { note: 'traffic method none' };
  }
  async isSwitched(): Promise<boolean> {
    return true;
  }
  async verify(): Promise<Evidence> {
    return { verified: false, note: 'traffic method none' };
  }
}
