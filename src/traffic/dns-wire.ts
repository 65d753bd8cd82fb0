/**
 * The DNS wire format, as much as the `dns` traffic method needs: queries, RFC 2136 UPDATE messages and their
 * answers, and TSIG (RFC 8945, HMAC-SHA256/512) signing of a request and verification of the response. Pure: bytes
 * in, bytes out; the clock is a parameter. Names are written uncompressed; names read may be compressed.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';

export const TYPE = { A: 1, SOA: 6, AAAA: 28, TSIG: 250, ANY: 255 } as const;
export const CLASS = { IN: 1, NONE: 254, ANY: 255 } as const;
export const OPCODE = { QUERY: 0, UPDATE: 5 } as const;

/** RCODEs (RFC 1035, 2136) and TSIG errors (RFC 8945) by number. */
export const RCODE: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  6: 'YXDOMAIN',
  7: 'YXRRSET',
  8: 'NXRRSET',
  9: 'NOTAUTH',
  10: 'NOTZONE',
  16: 'BADSIG',
  17: 'BADKEY',
  18: 'BADTIME',
  22: 'BADTRUNC',
};
export const rcodeName = (code: number) => RCODE[code] ?? `RCODE ${code}`;

export interface Question {
  name: string;
  type: number;
  class: number;
}

export interface Rr {
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: Buffer;
}

/** A message. In an UPDATE the sections are zone (questions), prerequisites (answers) and updates (authority). */
export interface Message {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  rcode: number;
  questions: Question[];
  answers: Rr[];
  authority: Rr[];
  additional: Rr[];
}

export class DnsWireError extends Error {}

/** "example.test" and "example.test." alike: absolute, lower case, with the final dot. */
export function fqdn(name: string): string {
  const n = name.toLowerCase();
  return n === '.' || n.endsWith('.') ? n : `${n}.`;
}

export function encodeName(name: string): Buffer {
  const abs = fqdn(name);
  if (abs === '.') return Buffer.from([0]);
  const parts: Buffer[] = [];
  for (const label of abs.slice(0, -1).split('.')) {
    const bytes = Buffer.from(label, 'ascii');
    if (bytes.length === 0 || bytes.length > 63) throw new DnsWireError(`invalid DNS name ${name}`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  const wire = Buffer.concat(parts);
  if (wire.length > 255) throw new DnsWireError(`DNS name too long: ${name}`);
  return wire;
}

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
/** TSIG's 48-bit time. */
const u48 = (n: number) => {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
};

function encodeRr(rr: Rr): Buffer {
  return Buffer.concat([
    encodeName(rr.name),
    u16(rr.type),
    u16(rr.class),
    u32(rr.ttl),
    u16(rr.data.length),
    rr.data,
  ]);
}

export function encodeMessage(m: Message): Buffer {
  const flags =
    (m.qr ? 0x8000 : 0) |
    ((m.opcode & 0xf) << 11) |
    (m.aa ? 0x0400 : 0) |
    (m.tc ? 0x0200 : 0) |
    (m.rd ? 0x0100 : 0) |
    (m.rcode & 0xf);
  return Buffer.concat([
    u16(m.id),
    u16(flags),
    u16(m.questions.length),
    u16(m.answers.length),
    u16(m.authority.length),
    u16(m.additional.length),
    ...m.questions.map((q) => Buffer.concat([encodeName(q.name), u16(q.type), u16(q.class)])),
    ...[...m.answers, ...m.authority, ...m.additional].map(encodeRr),
  ]);
}

class Reader {
  constructor(
    readonly buf: Buffer,
    public pos = 0,
  ) {}
  need(n: number): void {
    if (this.pos + n > this.buf.length) throw new DnsWireError('truncated DNS message');
  }
  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.pos++);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u48(): number {
    this.need(6);
    const v = this.buf.readUIntBE(this.pos, 6);
    this.pos += 6;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return Buffer.from(v);
  }
  /** A name, following compression pointers (each pointing strictly backwards, so no loop). */
  name(): string {
    const labels: string[] = [];
    let pos = this.pos;
    let jumped = false;
    for (;;) {
      if (pos >= this.buf.length) throw new DnsWireError('truncated DNS name');
      const len = this.buf[pos]!;
      if (len === 0) {
        pos += 1;
        break;
      }
      if ((len & 0xc0) === 0xc0) {
        if (pos + 1 >= this.buf.length) throw new DnsWireError('truncated DNS name');
        const target = ((len & 0x3f) << 8) | this.buf[pos + 1]!;
        if (target >= pos) throw new DnsWireError('DNS name pointer does not point backwards');
        if (!jumped) this.pos = pos + 2;
        jumped = true;
        pos = target;
        continue;
      }
      if (len > 63) throw new DnsWireError('invalid DNS label length');
      if (pos + 1 + len > this.buf.length) throw new DnsWireError('truncated DNS name');
      labels.push(this.buf.toString('latin1', pos + 1, pos + 1 + len));
      pos += 1 + len;
    }
    if (!jumped) this.pos = pos;
    return labels.length ? `${labels.join('.')}.` : '.';
  }
}

/** A decoded message, and where its last additional record starts (TSIG verification needs the bytes before it). */
export interface Decoded extends Message {
  lastAdditionalOffset?: number;
}

export function decodeMessage(buf: Buffer): Decoded {
  const r = new Reader(buf);
  const id = r.u16();
  const flags = r.u16();
  const counts = [r.u16(), r.u16(), r.u16(), r.u16()] as const;
  const questions: Question[] = [];
  for (let i = 0; i < counts[0]; i++) questions.push({ name: r.name(), type: r.u16(), class: r.u16() });
  const section = (n: number, offsets?: number[]) => {
    const rrs: Rr[] = [];
    for (let i = 0; i < n; i++) {
      offsets?.push(r.pos);
      const name = r.name();
      const type = r.u16();
      const cls = r.u16();
      const ttl = r.u32();
      const len = r.u16();
      r.need(len);
      rrs.push({ name, type, class: cls, ttl, data: Buffer.from(buf.subarray(r.pos, r.pos + len)) });
      r.pos += len;
    }
    return rrs;
  };
  const answers = section(counts[1]);
  const authority = section(counts[2]);
  const offsets: number[] = [];
  const additional = section(counts[3], offsets);
  return {
    id,
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    rcode: flags & 0xf,
    questions,
    answers,
    authority,
    additional,
    ...(offsets.length ? { lastAdditionalOffset: offsets.at(-1)! } : {}),
  };
}

/** The SOA minimum (the negative-caching TTL, RFC 2308, with the SOA's own TTL): the last 4 bytes of its data. */
export function soaNegativeTtl(soa: Rr): number {
  if (soa.data.length < 22) throw new DnsWireError('truncated SOA record');
  return Math.min(soa.ttl, soa.data.readUInt32BE(soa.data.length - 4));
}

// ---- addresses ----

/** A or AAAA data of an IP address; undefined when the text is not an IP address. */
export function addressData(address: string): { type: number; data: Buffer } | undefined {
  if (isIPv4(address)) return { type: TYPE.A, data: Buffer.from(address.split('.').map(Number)) };
  if (!isIPv6(address)) return undefined;
  let text = address.replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = text.replace(
      v4[1]!,
      `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`,
    );
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const groups = (s: string | undefined) => (s ? s.split(':') : []);
  const left = groups(head);
  const right = groups(tail);
  const all =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const data = Buffer.alloc(16);
  all.forEach((g, i) => {
    data.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return { type: TYPE.AAAA, data };
}

/** The text of A or AAAA data: dotted quad, or RFC 5952 IPv6 (longest run of zero groups as "::"). */
export function addressText(type: number, data: Buffer): string {
  if (type === TYPE.A && data.length === 4) return [...data].join('.');
  if (type !== TYPE.AAAA || data.length !== 16) return data.toString('hex');
  const groups = Array.from({ length: 8 }, (_, i) => data.readUInt16BE(i * 2));
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len && j - i >= 2) best = { at: i, len: j - i };
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.at < 0) return hex.join(':');
  return `${hex.slice(0, best.at).join(':')}::${hex.slice(best.at + best.len).join(':')}`;
}

// ---- queries and updates ----

export function queryMessage(id: number, name: string, type: number): Message {
  return {
    id,
    qr: false,
    opcode: OPCODE.QUERY,
    aa: false,
    tc: false,
    rd: false,
    rcode: 0,
    questions: [{ name: fqdn(name), type, class: CLASS.IN }],
    answers: [],
    authority: [],
    additional: [],
  };
}

/** RFC 2136: zone section (the zone's SOA, class IN), prerequisites, updates. */
export function updateMessage(id: number, zone: string, prerequisites: Rr[], updates: Rr[]): Message {
  return {
    id,
    qr: false,
    opcode: OPCODE.UPDATE,
    aa: false,
    tc: false,
    rd: false,
    rcode: 0,
    questions: [{ name: fqdn(zone), type: TYPE.SOA, class: CLASS.IN }],
    answers: prerequisites,
    authority: updates,
    additional: [],
  };
}

const empty = Buffer.alloc(0);

/** Update and prerequisite records (RFC 2136 §2.4, §2.5). */
export const rr = {
  /** §2.5.1 Add to an RRset. */
  add: (name: string, type: number, ttl: number, data: Buffer): Rr => ({
    name: fqdn(name),
    type,
    class: CLASS.IN,
    ttl,
    data,
  }),
  /** §2.5.4 Delete an RR from an RRset. */
  delete: (name: string, type: number, data: Buffer): Rr => ({
    name: fqdn(name),
    type,
    class: CLASS.NONE,
    ttl: 0,
    data,
  }),
  /** §2.4.2 RRset exists (value dependent): one of these per RR; together they must be the whole RRset. */
  exists: (name: string, type: number, data: Buffer): Rr => ({
    name: fqdn(name),
    type,
    class: CLASS.IN,
    ttl: 0,
    data,
  }),
  /** §2.4.3 RRset does not exist. */
  absent: (name: string, type: number): Rr => ({
    name: fqdn(name),
    type,
    class: CLASS.NONE,
    ttl: 0,
    data: empty,
  }),
};

// ---- TSIG (RFC 8945) ----

export type TsigAlgorithm = 'hmac-sha256' | 'hmac-sha512';

export interface TsigKey {
  name: string;
  algorithm: TsigAlgorithm;
  secret: Buffer;
}

export interface Tsig {
  algorithm: string;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
}

const hash = (a: TsigAlgorithm) => (a === 'hmac-sha512' ? 'sha512' : 'sha256');

/** The TSIG variables of §4.3.3, with names in canonical (lower-case, uncompressed) form. */
function tsigVariables(keyName: string, t: Omit<Tsig, 'mac' | 'originalId'>): Buffer {
  return Buffer.concat([
    encodeName(keyName),
    u16(CLASS.ANY),
    u32(0),
    encodeName(t.algorithm),
    u48(t.timeSigned),
    u16(t.fudge),
    u16(t.error),
    u16(t.other.length),
    t.other,
  ]);
}

function tsigData(t: Tsig): Buffer {
  return Buffer.concat([
    encodeName(t.algorithm),
    u48(t.timeSigned),
    u16(t.fudge),
    u16(t.mac.length),
    t.mac,
    u16(t.originalId),
    u16(t.error),
    u16(t.other.length),
    t.other,
  ]);
}

export function decodeTsig(data: Buffer): Tsig {
  const r = new Reader(data);
  const algorithm = r.name();
  const timeSigned = r.u48();
  const fudge = r.u16();
  const mac = r.bytes(r.u16());
  const originalId = r.u16();
  const error = r.u16();
  const other = r.bytes(r.u16());
  return { algorithm, timeSigned, fudge, mac, originalId, error, other };
}

/** Signs a request: appends the TSIG record (§4.3) and counts it. Returns the message and its MAC. */
export function signRequest(
  wire: Buffer,
  key: TsigKey,
  timeSigned: number,
  fudge = 300,
): { wire: Buffer; mac: Buffer } {
  const fields = { algorithm: fqdn(key.algorithm), timeSigned, fudge, error: 0, other: empty };
  const mac = createHmac(hash(key.algorithm), key.secret)
    .update(wire)
    .update(tsigVariables(key.name, fields))
    .digest();
  const record = encodeRr({
    name: fqdn(key.name),
    type: TYPE.TSIG,
    class: CLASS.ANY,
    ttl: 0,
    data: tsigData({ ...fields, mac, originalId: wire.readUInt16BE(0) }),
  });
  const signed = Buffer.concat([wire, record]);
  signed.writeUInt16BE(wire.readUInt16BE(10) + 1, 10);
  return { wire: signed, mac };
}

/** What the TSIG of a response says: signed by the key (and in time), the server's TSIG error, or unsigned. */
export type TsigCheck =
  | { ok: true; tsig: Tsig }
  | { ok: false; why: string; tsig?: Tsig; serverError?: string };

/** Verifies a response's TSIG (§5.3) against the request's MAC, at `now` (seconds since the epoch). */
export function verifyResponse(wire: Buffer, requestMac: Buffer, key: TsigKey, now: number): TsigCheck {
  const m = decodeMessage(wire);
  const last = m.additional.at(-1);
  if (!last || last.type !== TYPE.TSIG || m.lastAdditionalOffset === undefined)
    return { ok: false, why: 'the response is not signed' };
  const tsig = decodeTsig(last.data);
  if (tsig.error !== 0) {
    const serverError = rcodeName(tsig.error);
    return { ok: false, why: `the server reports TSIG error ${serverError}`, tsig, serverError };
  }
  if (fqdn(last.name) !== fqdn(key.name) || fqdn(tsig.algorithm) !== fqdn(key.algorithm))
    return {
      ok: false,
      why: `the response is signed with another key (${last.name} ${tsig.algorithm})`,
      tsig,
    };
  const unsigned = Buffer.from(wire.subarray(0, m.lastAdditionalOffset));
  unsigned.writeUInt16BE(tsig.originalId, 0);
  unsigned.writeUInt16BE(m.additional.length - 1, 10);
  const expected = createHmac(hash(key.algorithm), key.secret)
    .update(u16(requestMac.length))
    .update(requestMac)
    .update(unsigned)
    .update(tsigVariables(last.name, tsig))
    .digest();
  if (tsig.mac.length !== expected.length || !timingSafeEqual(tsig.mac, expected))
    return { ok: false, why: "the response's TSIG MAC does not verify with the key", tsig };
  const skew = now - tsig.timeSigned;
  if (Math.abs(skew) > tsig.fudge)
    return {
      ok: false,
      why: `the response is signed with a time ${Math.abs(skew)} s ${skew > 0 ? 'behind' : 'ahead of'} this machine's clock (fudge ${tsig.fudge} s)`,
      tsig,
    };
  return { ok: true, tsig };
}
