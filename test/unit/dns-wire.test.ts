/**
 * The DNS codec: an UPDATE checked byte by byte against RFC 2136's layout, the TSIG MAC against the RFC 8945
 * variables laid out by hand, and the answers of a real Knot DNS 3.2.6 (recorded in test/fixtures/dns) parsed and
 * verified: NOERROR, NXRRSET, BADSIG, BADTIME, and an NXDOMAIN with a compressed SOA.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  addressData,
  addressText,
  DnsWireError,
  decodeMessage,
  decodeTsig,
  encodeMessage,
  queryMessage,
  rcodeName,
  rr,
  signRequest,
  soaNegativeTtl,
  type TsigKey,
  TYPE,
  updateMessage,
  verifyResponse,
} from '../../src/traffic/dns-wire.js';
import { repoRoot } from '../helpers/cli.js';

interface Exchange {
  time: number;
  request: string;
  response: string;
  received_at: number;
}
const rec = JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/dns/knot-3.2.6.json'), 'utf8')) as Record<
  'badsig' | 'badtime' | 'nxrrset' | 'noerror',
  Exchange
> & { query_nodata: { response: string }; key: { secret: string } };
const key: TsigKey = {
  name: 'persona-key',
  algorithm: 'hmac-sha256',
  secret: Buffer.from(rec.key.secret, 'base64'),
};
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const a1 = Buffer.from([10, 0, 0, 1]);

/** delete web.example.test. A 10.0.0.1, if web.example.test. A is exactly {10.0.0.1}; id 0x1234. */
const update = () =>
  encodeMessage(
    updateMessage(
      0x1234,
      'example.test',
      [rr.exists('web.example.test', TYPE.A, a1)],
      [rr.delete('web.example.test', TYPE.A, a1)],
    ),
  );

describe('UPDATE (RFC 2136)', () => {
  test('the message has the layout of RFC 2136 §2', () => {
    expect(update().toString('hex')).toBe(
      hex(`
        1234 2800 0001 0001 0001 0000
        076578616d706c65 0474657374 00 0006 0001
        03776562 076578616d706c65 0474657374 00 0001 0001 00000000 0004 0a000001
        03776562 076578616d706c65 0474657374 00 0001 00fe 00000000 0004 0a000001
      `).toString('hex'),
    );
  });

  test('an RRset that must be absent, and an add with its TTL', () => {
    const m = encodeMessage(
      updateMessage(1, 'a.b', [rr.absent('x.a.b.', TYPE.AAAA)], [rr.add('x.a.b', TYPE.A, 60, a1)]),
    );
    expect(m.subarray(12 + 9).toString('hex')).toBe(
      hex(`
        01780161016200 001c 00fe 00000000 0000
        01780161016200 0001 0001 0000003c 0004 0a000001
      `).toString('hex'),
    );
  });

  test('signing appends the TSIG record of RFC 8945 §4.3 and gives the request Knot accepted', () => {
    const signed = signRequest(update(), key, rec.noerror.time);
    expect(signed.wire.toString('hex')).toBe(rec.noerror.request);
    expect(signed.wire.readUInt16BE(10)).toBe(1);
    // The MAC covers the message and the TSIG variables (§4.3.3), names in canonical form.
    const variables = hex(`
      0b706572736f6e612d6b657900 00ff 00000000
      0b686d61632d73686132353600 ${rec.noerror.time.toString(16).padStart(12, '0')} 012c 0000 0000
    `);
    const mac = createHmac('sha256', key.secret).update(update()).update(variables).digest();
    expect(signed.mac.equals(mac)).toBe(true);
    const tsig = decodeTsig(decodeMessage(signed.wire).additional[0]!.data);
    expect(tsig).toMatchObject({ algorithm: 'hmac-sha256.', fudge: 300, originalId: 0x1234, error: 0 });
    expect(tsig.mac.equals(mac)).toBe(true);
  });

  test('an hmac-sha512 key gives a 64-byte MAC', () => {
    const signed = signRequest(update(), { ...key, algorithm: 'hmac-sha512' }, 1);
    expect(signed.mac).toHaveLength(64);
  });
});

describe("Knot's answers", () => {
  const answer = (e: Exchange) => ({
    wire: hex(e.response),
    mac: decodeTsig(decodeMessage(hex(e.request)).additional[0]!.data).mac,
  });

  test('NOERROR: signed by the key, within the fudge', () => {
    const { wire, mac } = answer(rec.noerror);
    const m = decodeMessage(wire);
    expect({ id: m.id, qr: m.qr, opcode: m.opcode, rcode: rcodeName(m.rcode) }).toEqual({
      id: 0x1234,
      qr: true,
      opcode: 5,
      rcode: 'NOERROR',
    });
    expect(verifyResponse(wire, mac, key, rec.noerror.received_at)).toMatchObject({ ok: true });
  });

  test('a changed byte, another key, another request or a late clock fail the verification', () => {
    const { wire, mac } = answer(rec.noerror);
    const tampered = Buffer.from(wire);
    tampered.writeUInt8(tampered.readUInt8(3) ^ 0x08, 3); // NOERROR -> NXRRSET
    expect(verifyResponse(tampered, mac, key, rec.noerror.received_at)).toMatchObject({
      ok: false,
      why: expect.stringMatching(/MAC does not verify/),
    });
    expect(verifyResponse(wire, mac, { ...key, secret: Buffer.alloc(32) }, rec.noerror.received_at).ok).toBe(
      false,
    );
    expect(verifyResponse(wire, answer(rec.nxrrset).mac, key, rec.noerror.received_at).ok).toBe(false);
    expect(verifyResponse(wire, mac, key, rec.noerror.received_at + 301)).toMatchObject({
      ok: false,
      why: expect.stringMatching(/a time 301 s behind this machine's clock \(fudge 300 s\)/),
    });
    expect(() => verifyResponse(wire.subarray(0, wire.length - 5), mac, key, 0)).toThrow(DnsWireError);
  });

  test('NXRRSET (a prerequisite not met) is signed too', () => {
    const { wire, mac } = answer(rec.nxrrset);
    expect(rcodeName(decodeMessage(wire).rcode)).toBe('NXRRSET');
    expect(verifyResponse(wire, mac, key, rec.nxrrset.received_at).ok).toBe(true);
  });

  test('BADSIG: NOTAUTH, the TSIG error in an unsigned TSIG record', () => {
    const { wire, mac } = answer(rec.badsig);
    expect(rcodeName(decodeMessage(wire).rcode)).toBe('NOTAUTH');
    const check = verifyResponse(wire, mac, key, rec.badsig.received_at);
    expect(check).toMatchObject({ ok: false, serverError: 'BADSIG', tsig: { mac: Buffer.alloc(0) } });
  });

  test("BADTIME: NOTAUTH, and the server's time in the other data", () => {
    const { wire, mac } = answer(rec.badtime);
    const check = verifyResponse(wire, mac, key, rec.badtime.received_at);
    expect(check).toMatchObject({ ok: false, serverError: 'BADTIME' });
    expect(check.tsig!.other.readUIntBE(0, 6)).toBe(rec.badtime.received_at);
    expect(rec.badtime.received_at - rec.badtime.time).toBe(3600);
  });

  test('a query answered NXDOMAIN with a compressed SOA: its negative TTL', () => {
    const m = decodeMessage(hex(rec.query_nodata.response));
    expect({ aa: m.aa, rcode: rcodeName(m.rcode), answers: m.answers.length }).toEqual({
      aa: true,
      rcode: 'NXDOMAIN',
      answers: 0,
    });
    expect(m.questions).toEqual([{ name: 'web.example.test.', type: TYPE.A, class: 1 }]);
    expect(m.authority[0]).toMatchObject({ name: 'example.test.', type: TYPE.SOA, ttl: 30 });
    expect(soaNegativeTtl(m.authority[0]!)).toBe(30);
  });

  test('a query message', () => {
    expect(encodeMessage(queryMessage(0x4242, 'web.example.test', TYPE.AAAA)).toString('hex')).toBe(
      hex('4242 0000 0001 0000 0000 0000 03776562076578616d706c650474657374 00 001c 0001').toString('hex'),
    );
  });
});

describe('damaged messages', () => {
  test.each([
    ['truncated header', '1234a800'],
    ['truncated name', '1234a80000010000000000000377'],
    ['a pointer forwards', '1234a8000001000000000000c00e00010001'],
    ['a pointer to itself', '1234a8000001000000000000c00c'],
    ['rdata past the end', `1234a800000000010000000000 0001 0001 00000000 0010 0a000001`],
  ])('%s is an error, not a crash', (_, text) => {
    expect(() => decodeMessage(hex(text))).toThrow(DnsWireError);
  });
});

describe('addresses', () => {
  test.each([
    ['10.0.0.1', 'A', '0a000001', '10.0.0.1'],
    ['2001:db8:0:0::1', 'AAAA', '20010db8000000000000000000000001', '2001:db8::1'],
    ['::1', 'AAAA', '00000000000000000000000000000001', '::1'],
    ['fe80::', 'AAAA', 'fe800000000000000000000000000000', 'fe80::'],
    ['::ffff:10.0.0.1', 'AAAA', '00000000000000000000ffff0a000001', '::ffff:a00:1'],
    ['2001:db8:1:2:3:4:5:6', 'AAAA', '20010db8000100020003000400050006', '2001:db8:1:2:3:4:5:6'],
    ['2001:0:0:1:0:0:0:1', 'AAAA', '20010000000000010000000000000001', '2001:0:0:1::1'],
  ])('%s', (text, type, data, back) => {
    const a = addressData(text)!;
    expect([a.type === TYPE.A ? 'A' : 'AAAA', a.data.toString('hex'), addressText(a.type, a.data)]).toEqual([
      type,
      data,
      back,
    ]);
  });

  test('a name is not an address', () => {
    expect(addressData('web-1.example')).toBeUndefined();
  });
});
