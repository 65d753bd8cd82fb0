/**
 * The watch loop's one round, over every assignment in the store: read the profile, the ack and the inventory
 * host; look from persona and from a peer; hand each look over as an observation; weigh the round (verdict.ts);
 * emit what it says; and, where the profile opts in and --auto-recover was given, start a recovery. Side effects
 * come in through WatchDeps, so tests drive rounds with fakes and a clock.
 */
import type { Inventory, InventoryHost } from '../hosts/inventory.js';
import type { Profile } from '../profile/schema.js';
import { type Assignment, readAssignment } from '../steps/record.js';
import type { KvBackend } from '../stores/kv.js';
import { readAck } from './acks.js';
import type { Observation, Round, VantageResult, WatchEvent } from './types.js';
import { type AppWatchState, freshState, stepVerdict, type Verdict, type VerdictPolicy } from './verdict.js';

export interface Looks {
  persona(host: InventoryHost, profile: Profile, withSample: boolean): Promise<VantageResult>;
  peer(host: InventoryHost, profile: Profile, peer: InventoryHost): Promise<VantageResult>;
}

/** Starts `persona recover HOST --app APP --yes`; resolves with its run ids; throws its error (E_LOCK_HELD, ...). */
export type RecoverLauncher = (req: { app: string; host: string }) => Promise<string[]>;

export interface WatchDeps {
  backend: KvBackend;
  inventory: Inventory;
  loadProfile(app: string): Promise<{ profile: Profile; version: number }>;
  looks: Looks;
  now(): Date;
  emit(event: WatchEvent): Promise<void>;
  onObservation(o: Observation): void;
  /** Present only under --auto-recover. */
  recover?: RecoverLauncher;
}

export interface WatchOptions {
  /** Only these applications (empty: every assignment). */
  apps: readonly string[];
  /** The defaults; a profile's `watch` fields override them for its application. */
  policy: VerdictPolicy;
  /** A CPU/memory sample every this many rounds (the first round included). */
  sampleEvery: number;
}

export interface AppStatus {
  app: string;
  host: string;
  state: 'healthy' | 'failing' | 'acked' | 'unknown';
}

export class Watcher {
  private readonly states = new Map<string, AppWatchState & { host: string }>();
  private readonly peerTurn = new Map<string, number>();
  private readonly recovering = new Map<string, Promise<void>>();
  /** Problems already said once (a missing profile, host), so a long run does not repeat them each round. */
  private readonly said = new Set<string>();
  private roundNo = 0;

  constructor(
    private readonly deps: WatchDeps,
    private readonly options: WatchOptions,
  ) {}

  /** One application's policy: the defaults, with its profile's `watch` fields over them. */
  policyFor(profile: Profile | undefined): VerdictPolicy {
    const w = profile?.watch;
    return {
      ...this.options.policy,
      ...(w?.failures !== undefined ? { failures: w.failures } : {}),
      ...(w?.rounds !== undefined ? { rounds: w.rounds } : {}),
      ...(w?.grace_seconds !== undefined ? { graceMs: w.grace_seconds * 1000 } : {}),
    };
  }

  async assignments(): Promise<Assignment[]> {
    const entries = await this.deps.backend.list('assignments/');
    const all = entries.flatMap((e) => {
      try {
        return [JSON.parse(e.value) as Assignment];
      } catch {
        return [];
      }
    });
    return all.filter((a) => this.options.apps.length === 0 || this.options.apps.includes(a.app));
  }

  /** One round over every watched application; what each one's state is afterwards. */
  async round(): Promise<AppStatus[]> {
    const withSample = this.roundNo % Math.max(1, this.options.sampleEvery) === 0;
    this.roundNo++;
    const assignments = await this.assignments();
    return await Promise.all(assignments.map((a) => this.watchApp(a, withSample)));
  }

  /** Waits for the recoveries this watcher started. */
  async settle(): Promise<void> {
    await Promise.all([...this.recovering.values()]);
  }

  private async watchApp(a: Assignment, withSample: boolean): Promise<AppStatus> {
    const { deps } = this;
    const status = (state: AppStatus['state']): AppStatus => ({ app: a.app, host: a.host, state });
    const host = deps.inventory.hosts.find((h) => h.name === a.host);
    if (!host) {
      await this.once(
        a,
        `no-host:${a.host}`,
        `${a.host} (where the store records ${a.app}) is not in the inventory ${deps.inventory.source}`,
      );
      return status('unknown');
    }
    let loaded: { profile: Profile; version: number };
    try {
      loaded = await deps.loadProfile(a.app);
    } catch (error) {
      await this.once(a, 'profile', `cannot read the profile of ${a.app}: ${(error as Error).message}`);
      return status('unknown');
    }
    const { profile, version } = loaded;
    const now = deps.now();
    const ack = await readAck(deps.backend, a.app);
    const acked = ack !== undefined && (ack.until === undefined || Date.parse(ack.until) > now.getTime());
    const results = acked ? [] : await this.look(host, profile, withSample);
    for (const r of results) if (r.status !== 'unknown') deps.onObservation(observation(a, version, r, now));

    let state = this.states.get(a.app);
    // Moved since the last round (a recovery, a migrate): a new window on the new host.
    if (!state || state.host !== a.host) state = { ...freshState(), host: a.host };
    const round: Round = { at: now, results };
    const next = stepVerdict(state, round, {
      now,
      policy: this.policyFor(profile),
      assignedAt: new Date(a.at),
      ...(ack ? { ack } : {}),
    });
    this.states.set(a.app, { ...next.state, host: a.host });
    for (const v of next.events) {
      await deps.emit(event(a, v, now));
      if (v.kind === 'failure' && deps.recover && profile.watch?.auto_recover)
        this.startRecovery(a, deps.recover);
    }
    return status(acked ? 'acked' : next.state.failing ? 'failing' : 'healthy');
  }

  private async look(host: InventoryHost, profile: Profile, withSample: boolean): Promise<VantageResult[]> {
    const { looks, inventory } = this.deps;
    // Peers: every other host persona reaches over SSH; one per round, the next one after a peer that could not look.
    const peers = inventory.hosts.filter((h) => h.name !== host.name && h.connection !== 'local');
    const turn = this.peerTurn.get(profile.id) ?? 0;
    const peer = peers.length > 0 ? peers[turn % peers.length] : undefined;
    const [mine, theirs] = await Promise.all([
      looks.persona(host, profile, withSample),
      peer ? looks.peer(host, profile, peer) : undefined,
    ]);
    if (theirs?.status === 'unknown') this.peerTurn.set(profile.id, turn + 1);
    return theirs ? [mine, theirs] : [mine];
  }

  private async once(a: Assignment, what: string, reason: string): Promise<void> {
    const key = `${a.app}:${what}`;
    if (this.said.has(key)) return;
    this.said.add(key);
    await this.deps.emit({
      at: this.deps.now().toISOString(),
      app: a.app,
      host: a.host,
      kind: 'watch-error',
      vantages: [],
      checks: [],
      reason,
    });
  }

  /**
   * Single-flight: one recovery per application from this watcher; across watchers, the application's lock
   * (taken by recover) lets one through and the others learn E_LOCK_HELD, and an assignment that moved since
   * the failure was seen means someone recovered it already.
   */
  private startRecovery(seen: Assignment, launch: RecoverLauncher): void {
    if (this.recovering.has(seen.app)) return;
    const say = (outcome: NonNullable<WatchEvent['outcome']>, reason: string, runIds?: string[]) =>
      this.deps.emit({
        at: this.deps.now().toISOString(),
        app: seen.app,
        host: seen.host,
        kind: 'auto-recover',
        vantages: [],
        checks: [],
        reason,
        outcome,
        ...(runIds ? { run_ids: runIds } : {}),
      });
    const attempt = (async () => {
      const current = await readAssignment(this.deps.backend, seen.app);
      if (!current || current.host !== seen.host || current.at !== seen.at) {
        await say(
          'already-moved',
          `${seen.app} is now recorded on ${current?.host ?? 'no host'}${current?.run_id ? ` (run ${current.run_id})` : ''}: already recovered, nothing started`,
        );
        return;
      }
      await say('started', `persona recover ${seen.host} --app ${seen.app} --yes`);
      try {
        const runs = await launch({ app: seen.app, host: seen.host });
        await say('succeeded', `recovery of ${seen.app} from ${seen.host} ended`, runs);
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code === 'E_LOCK_HELD')
          await say('already-recovering', `already being recovered: ${(error as Error).message}`);
        else await say('failed', `${code ?? 'error'}: ${(error as Error).message}`);
      }
    })().finally(() => this.recovering.delete(seen.app));
    this.recovering.set(seen.app, attempt);
  }
}

function event(a: Assignment, v: Verdict, now: Date): WatchEvent {
  return {
    at: now.toISOString(),
    app: a.app,
    host: a.host,
    kind: v.kind,
    vantages: v.vantages,
    checks: v.checks,
    reason: v.reason,
    ...(v.single_vantage ? { single_vantage: true } : {}),
    ...(v.ack ? { ack: v.ack } : {}),
  };
}

function observation(a: Assignment, version: number, r: VantageResult, now: Date): Observation {
  return {
    at: now.toISOString(),
    app: a.app,
    host: a.host,
    source: 'watch',
    ok: r.status === 'ok' && !r.missed?.length,
    ...(r.missed?.length ? { missed: r.missed } : {}),
    ...(r.metrics ? { metrics: r.metrics } : {}),
    profile_version: version,
    vantage: r.vantage,
  };
}
