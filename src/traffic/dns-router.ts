/**
 * The `dns` traffic method: the name clients look up has one A/AAAA record per serving host, changed on the zone's
 * primary with RFC 2136 dynamic updates signed with TSIG. The fence deletes the failed host's record; the switch
 * adds the new host's and deletes the failed one's in one update, so no client ever sees neither.
 *
 * Each update carries the RRsets persona saw a moment before as its prerequisite (RFC 2136 §2.4.2, "exists, value
 * dependent"): it applies to exactly that state or not at all, and what it removed (with the TTL it was served
 * with) is known exactly. When someone else changed the records in between, persona looks again and retries.
 * Every observation is a real, unsigned query to the same server, which must answer authoritatively.
 *
 * A record removed from DNS is not forgotten at once: resolvers keep the answer they cached for up to its TTL, and
 * the evidence says so ("clients may keep the old address for up to N s").
 */
import { PersonaError } from '../errors.js';
import type { InventoryHost } from '../hosts/inventory.js';
import type { Profile } from '../profile/schema.js';
import { type DnsServer, type Exchange, exchange, newId, parseServer } from './dns-client.js';
import {
  addressData,
  addressText,
  DnsWireError,
  decodeMessage,
  encodeMessage,
  fqdn,
  queryMessage,
  type Rr,
  rcodeName,
  rr,
  signRequest,
  soaNegativeTtl,
  type TsigKey,
  TYPE,
  updateMessage,
  verifyResponse,
} from './dns-wire.js';
import type { Evidence, TrafficRouter } from './router.js';

type DnsTraffic = Extract<Profile['traffic'], { method: 'dns' }>;

export interface DnsRouterDeps {
  /** Resolves a secret reference (and registers the value with the redactor). */
  secret: (ref: string, where: string) => Promise<string>;
  /** Runs before every update: a run that lost its lock changes nothing. */
  guard: () => void;
  exchange?: Exchange;
  /** Seconds since the epoch, for TSIG. */
  now?: () => number;
}

/** One address record as the server serves it. */
export interface Served {
  type: 'A' | 'AAAA';
  address: string;
  ttl: number;
}

interface Look {
  records: Served[];
  /** The raw data per type, for prerequisites. */
  sets: Map<number, Rr[]>;
  /** How long a resolver may cache "no such record" (SOA minimum), when the server said so. */
  negativeTtl?: number;
}

interface HostAddress {
  type: number;
  data: Buffer;
  text: string;
}

const typeName = (type: number): 'A' | 'AAAA' => (type === TYPE.AAAA ? 'AAAA' : 'A');
const ATTEMPTS = 3;

/** Hints for the rcodes an update can get, the TSIG errors first. */
function refusalHint(code: string, cfg: DnsTraffic): string {
  switch (code) {
    case 'BADSIG':
      return `The server has a key named ${cfg.key.name} with another secret or algorithm: check traffic.key.secret and traffic.key.algorithm against the server's key.`;
    case 'BADKEY':
      return `The server knows no key named ${cfg.key.name} (${cfg.key.algorithm}): check traffic.key.name, or add the key to the server.`;
    case 'BADTIME':
      return 'The clocks of this machine and the DNS server differ by more than 300 s: fix the clock (NTP), then resume.';
    case 'REFUSED':
      return `The server's policy does not let key ${cfg.key.name} update this name (BIND: allow-update/update-policy; Knot: an acl with action update).`;
    case 'NOTZONE':
      return `The name is not inside zone ${cfg.zone}: check traffic.name and traffic.zone.`;
    case 'NOTAUTH':
      return `The server is not authoritative for ${cfg.zone}, or it is a secondary: point traffic.server at the zone's primary.`;
    default:
      return 'See the DNS server’s log for why it refused the update.';
  }
}

export class DnsRouter implements TrafficRouter {
  readonly method = 'dns';
  readonly canFence = true;
  readonly canObserve = true;
  private readonly server: DnsServer;
  private readonly owner: string;
  private readonly send: Exchange;
  private key: Promise<TsigKey> | undefined;

  constructor(
    app: string,
    private readonly cfg: DnsTraffic,
    private readonly deps: DnsRouterDeps,
  ) {
    this.server = parseServer(cfg.server);
    this.send = deps.exchange ?? exchange;
    const zone = fqdn(cfg.zone);
    const name = cfg.name.replaceAll('{app}', app);
    this.owner = name === '@' ? zone : name.endsWith('.') ? fqdn(name) : fqdn(`${name}.${zone}`);
    if (this.owner !== zone && !this.owner.endsWith(`.${zone}`))
      throw new PersonaError('E_USAGE', `traffic.name ${this.owner} is not inside traffic.zone ${zone}`);
  }

  private where(): string {
    return `DNS ${this.server.label}, zone ${fqdn(this.cfg.zone)}`;
  }

  private address(host: InventoryHost): HostAddress {
    const a = addressData(host.address);
    if (!a)
      throw new PersonaError(
        'E_USAGE',
        `traffic method dns needs ${host.name}'s IP address, and its inventory address is ${host.address}`,
        { hint: `Give ${host.name} an IPv4 or IPv6 address in the inventory.` },
      );
    return { ...a, text: addressText(a.type, a.data) };
  }

  private async tsigKey(): Promise<TsigKey> {
    this.key ??= (async () => {
      const where = `traffic.key ${this.cfg.key.name}`;
      const value = (await this.deps.secret(this.cfg.key.secret, where)).trim();
      if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(value) || value === '')
        throw new PersonaError(
          'E_SECRET',
          `secret ${this.cfg.key.secret} (${where}): not a base64 TSIG secret`,
          {
            hint: 'The secret is the base64 string of the key, as in a BIND or Knot key file.',
          },
        );
      return {
        name: this.cfg.key.name,
        algorithm: this.cfg.key.algorithm,
        secret: Buffer.from(value, 'base64'),
      };
    })();
    return await this.key;
  }

  private decode(wire: Buffer, what: string) {
    try {
      return decodeMessage(wire);
    } catch (error) {
      if (!(error instanceof DnsWireError)) throw error;
      throw new PersonaError(
        'E_STEP_FAILED',
        `${this.where()}: unreadable answer to ${what}: ${error.message}`,
      );
    }
  }

  /** The name's A and AAAA records, asked of the server itself (not through a resolver). */
  private async look(signal: AbortSignal): Promise<Look> {
    const look: Look = { records: [], sets: new Map() };
    for (const type of [TYPE.A, TYPE.AAAA]) {
      const what = `the query ${this.owner} ${typeName(type)}`;
      const answer = this.decode(
        await this.send(this.server, encodeMessage(queryMessage(newId(), this.owner, type)), {
          timeoutMs: this.cfg.timeout_ms,
          signal,
        }),
        what,
      );
      if (answer.rcode !== 0 && answer.rcode !== 3)
        throw new PersonaError('E_STEP_FAILED', `${this.where()}: ${what} got ${rcodeName(answer.rcode)}`);
      if (!answer.aa)
        throw new PersonaError(
          'E_STEP_FAILED',
          `${this.where()}: the answer to ${what} is not authoritative`,
          { hint: refusalHint('NOTAUTH', this.cfg) },
        );
      const set = answer.answers.filter((r) => r.type === type && fqdn(r.name) === this.owner);
      look.sets.set(type, set);
      for (const r of set)
        look.records.push({ type: typeName(type), address: addressText(type, r.data), ttl: r.ttl });
      const soa = answer.authority.find((r) => r.type === TYPE.SOA);
      if (set.length === 0 && soa) look.negativeTtl = soaNegativeTtl(soa);
    }
    return look;
  }

  private static has(look: Look, a: HostAddress): Rr | undefined {
    return look.sets.get(a.type)?.find((r) => r.data.equals(a.data));
  }

  /** The RRsets as seen, as prerequisites: the update applies to exactly that state. */
  private asSeen(look: Look, types: Set<number>): Rr[] {
    return [...types].flatMap((type) => {
      const set = look.sets.get(type) ?? [];
      return set.length ? set.map((r) => rr.exists(this.owner, type, r.data)) : [rr.absent(this.owner, type)];
    });
  }

  /** Sends a signed update; 'changed' when a prerequisite failed (the records changed since they were seen). */
  private async update(prerequisites: Rr[], updates: Rr[], signal: AbortSignal): Promise<'done' | 'changed'> {
    const key = await this.tsigKey();
    this.deps.guard();
    const now = this.deps.now ?? (() => Math.floor(Date.now() / 1000));
    const request = encodeMessage(updateMessage(newId(), this.cfg.zone, prerequisites, updates));
    const signed = signRequest(request, key, now());
    const wire = await this.send(this.server, signed.wire, { timeoutMs: this.cfg.timeout_ms, signal });
    const answer = this.decode(wire, 'the update');
    const tsig = verifyResponse(wire, signed.mac, key, now());
    const rcode = rcodeName(answer.rcode);
    if (!tsig.ok && tsig.serverError) {
      throw new PersonaError(
        'E_STEP_FAILED',
        `${this.where()} refused the update of ${this.owner}: ${rcode}, TSIG error ${tsig.serverError} (key ${this.cfg.key.name}, ${this.cfg.key.algorithm})`,
        { hint: refusalHint(tsig.serverError, this.cfg) },
      );
    }
    if (answer.rcode === 7 || answer.rcode === 8) return 'changed';
    if (answer.rcode !== 0)
      throw new PersonaError(
        'E_STEP_FAILED',
        `${this.where()} refused the update of ${this.owner}: ${rcode}`,
        {
          hint: refusalHint(rcode, this.cfg),
        },
      );
    if (!tsig.ok)
      throw new PersonaError(
        'E_STEP_FAILED',
        `${this.where()} answered the update with NOERROR, but ${tsig.why}: the answer cannot be trusted`,
        { hint: 'persona looks at the records again before it changes anything; resume to retry.' },
      );
    return 'done';
  }

  /** The evidence: what was changed and is served now; `caveats` are sentences the step logs as they are. */
  private evidence(look: Look, extra: Evidence, caveats: string[] = []): Evidence {
    return {
      dns: {
        server: this.server.label,
        zone: fqdn(this.cfg.zone),
        name: this.owner,
        ...extra,
        served: look.records,
      },
      ...(caveats.length ? { caveats } : {}),
    };
  }

  describeFence(failed: InventoryHost): string {
    return `DNS ${this.server.label}: delete ${this.owner} ${typeName(this.address(failed).type)} ${this.address(failed).text} in zone ${fqdn(this.cfg.zone)} (RFC 2136 update, TSIG key ${this.cfg.key.name}); clients may keep the old address for up to its TTL`;
  }

  describeSwitch(target: InventoryHost, failed: InventoryHost): string {
    const t = this.address(target);
    const f = this.address(failed);
    return `DNS ${this.server.label}: in one update, add ${this.owner} ${this.cfg.ttl} ${typeName(t.type)} ${t.text}${f.text === t.text ? '' : ` and delete ${typeName(f.type)} ${f.text}`} (zone ${fqdn(this.cfg.zone)}, TSIG key ${this.cfg.key.name})`;
  }

  /**
   * Applies `change` to the records as seen, until an update goes through unchanged or nothing is left to do;
   * then checks with a fresh query that `done` holds.
   */
  private async converge(
    signal: AbortSignal,
    change: (look: Look) => { prerequisites: Rr[]; updates: Rr[]; removed: Served[] } | undefined,
    done: (look: Look) => string | undefined,
  ): Promise<{ before: Look; after: Look; removed: Served[]; updated: boolean }> {
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const before = await this.look(signal);
      const plan = change(before);
      if (!plan) return { before, after: before, removed: [], updated: false };
      if ((await this.update(plan.prerequisites, plan.updates, signal)) === 'changed') continue;
      const after = await this.look(signal);
      const wrong = done(after);
      if (wrong) throw new PersonaError('E_STEP_FAILED', `${this.where()}: after the update, ${wrong}`);
      return { before, after, removed: plan.removed, updated: true };
    }
    throw new PersonaError(
      'E_STEP_FAILED',
      `${this.where()}: the records of ${this.owner} changed under persona ${ATTEMPTS} times in a row`,
      { hint: 'Something else updates this name; stop it, then resume.' },
    );
  }

  private removed(look: Look, a: HostAddress): Served[] {
    const r = DnsRouter.has(look, a);
    return r ? [{ type: typeName(a.type), address: a.text, ttl: r.ttl }] : [];
  }

  /** The longest TTL the removed records were served with: how long a resolver may keep one. */
  private static oldTtl(removed: Served[]): number | undefined {
    return removed.length ? Math.max(...removed.map((r) => r.ttl)) : undefined;
  }

  private static oldAddress(ttl: number | undefined): string[] {
    return ttl === undefined ? [] : [`clients may keep the old address for up to ${ttl} s`];
  }

  async fence(failed: InventoryHost, signal: AbortSignal): Promise<Evidence> {
    const f = this.address(failed);
    const r = await this.converge(
      signal,
      (look) =>
        DnsRouter.has(look, f)
          ? {
              prerequisites: this.asSeen(look, new Set([f.type])),
              updates: [rr.delete(this.owner, f.type, f.data)],
              removed: this.removed(look, f),
            }
          : undefined,
      (look) => (DnsRouter.has(look, f) ? `it still serves ${f.text}` : undefined),
    );
    const ttl = DnsRouter.oldTtl(r.removed);
    const negative = r.after.records.length === 0 ? r.after.negativeTtl : undefined;
    return this.evidence(
      r.after,
      {
        removed: r.removed,
        ...(r.updated ? {} : { note: `${f.text} was not served already` }),
        ...(ttl !== undefined ? { old_ttl: ttl } : {}),
        ...(negative !== undefined ? { negative_ttl: negative } : {}),
      },
      [
        ...DnsRouter.oldAddress(ttl),
        ...(negative !== undefined
          ? [
              `${this.owner} has no address until the switch; resolvers may cache that answer for up to ${negative} s (SOA minimum)`,
            ]
          : []),
      ],
    );
  }

  async isFenced(failed: InventoryHost, signal: AbortSignal): Promise<boolean> {
    return !DnsRouter.has(await this.look(signal), this.address(failed));
  }

  async switchTo(target: InventoryHost, failed: InventoryHost, signal: AbortSignal): Promise<Evidence> {
    const t = this.address(target);
    const f = this.address(failed);
    const same = t.data.equals(f.data);
    const r = await this.converge(
      signal,
      (look) => {
        const add = !DnsRouter.has(look, t);
        const remove = !same && DnsRouter.has(look, f) !== undefined;
        if (!add && !remove) return undefined;
        return {
          prerequisites: this.asSeen(look, new Set([t.type, ...(remove ? [f.type] : [])])),
          updates: [
            ...(add ? [rr.add(this.owner, t.type, this.cfg.ttl, t.data)] : []),
            ...(remove ? [rr.delete(this.owner, f.type, f.data)] : []),
          ],
          removed: remove ? this.removed(look, f) : [],
        };
      },
      (look) =>
        !DnsRouter.has(look, t)
          ? `it does not serve ${t.text}`
          : !same && DnsRouter.has(look, f)
            ? `it still serves ${f.text}`
            : undefined,
    );
    const ttl = DnsRouter.oldTtl(r.removed);
    const wasEmpty = r.updated && (r.before.sets.get(t.type) ?? []).length === 0;
    const negative = wasEmpty ? r.before.negativeTtl : undefined;
    return this.evidence(
      r.after,
      {
        added: DnsRouter.has(r.before, t)
          ? []
          : [{ type: typeName(t.type), address: t.text, ttl: this.cfg.ttl }],
        removed: r.removed,
        ...(r.updated ? {} : { note: `${t.text} was served and ${f.text} was not, already` }),
        ...(ttl !== undefined ? { old_ttl: ttl } : {}),
        ...(negative !== undefined ? { negative_ttl: negative } : {}),
      },
      [
        ...DnsRouter.oldAddress(ttl),
        ...(negative !== undefined
          ? [
              `resolvers that asked while ${this.owner} had no ${typeName(t.type)} record may keep that answer for up to ${negative} s (SOA minimum)`,
            ]
          : []),
      ],
    );
  }

  async isSwitched(target: InventoryHost, failed: InventoryHost, signal: AbortSignal): Promise<boolean> {
    const look = await this.look(signal);
    const t = this.address(target);
    const f = this.address(failed);
    return DnsRouter.has(look, t) !== undefined && (t.data.equals(f.data) || !DnsRouter.has(look, f));
  }

  async verify(target: InventoryHost, _names: readonly string[], signal: AbortSignal): Promise<Evidence> {
    const look = await this.look(signal);
    const t = this.address(target);
    const served = DnsRouter.has(look, t);
    if (!served)
      throw new PersonaError(
        'E_STEP_FAILED',
        `${this.where()} answers ${this.owner} with ${look.records.map((r) => `${r.type} ${r.address}`).join(', ') || 'no address'}, not ${t.text} (${target.name})`,
      );
    return this.evidence(look, {
      verified: true,
      answer: `${this.owner} ${served.ttl} ${typeName(t.type)} ${t.text}`,
      ttl: served.ttl,
    });
  }
}
