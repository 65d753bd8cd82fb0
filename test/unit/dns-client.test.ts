/**
 * The DNS sender: a truncated UDP answer (TC) is asked again over TCP, on a loopback server that answers UDP with
 * TC set and TCP in full; an answer with another id is ignored.
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { afterEach, expect, test } from 'vitest';
import { exchange, parseServer } from '../../src/traffic/dns-client.js';
import { decodeMessage, encodeMessage, queryMessage, TYPE } from '../../src/traffic/dns-wire.js';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

test('TC over UDP: the same question over TCP, whose answer is returned', async () => {
  const tcp = createServer((socket) => {
    socket.once('data', (d) => {
      const query = decodeMessage(d.subarray(2));
      const answer = encodeMessage({ ...query, qr: true, aa: true, rcode: 3 });
      const length = Buffer.alloc(2);
      length.writeUInt16BE(answer.length);
      socket.end(Buffer.concat([length, answer]));
    });
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const { port } = tcp.address() as { port: number };
  const udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(port, '127.0.0.1', r));
  const seen: string[] = [];
  udp.on('message', (msg, from) => {
    seen.push('udp');
    const query = decodeMessage(msg);
    // First an answer to another id (ignored), then the truncated one.
    udp.send(encodeMessage({ ...query, id: (query.id + 1) & 0xffff, qr: true }), from.port, from.address);
    udp.send(encodeMessage({ ...query, qr: true, tc: true }), from.port, from.address);
  });
  closers.push(
    () => tcp.close(),
    () => udp.close(),
  );
  const wire = await exchange(
    parseServer(`127.0.0.1:${port}`),
    encodeMessage(queryMessage(0x0102, 'a.example', TYPE.A)),
    { timeoutMs: 2000, signal: new AbortController().signal },
  );
  const m = decodeMessage(wire);
  expect(seen).toEqual(['udp']);
  expect({ id: m.id, tc: m.tc, rcode: m.rcode }).toEqual({ id: 0x0102, tc: false, rcode: 3 });
});

test('server text: host, host:port, [IPv6]:port; anything else is refused', () => {
  expect(parseServer('192.0.2.1')).toMatchObject({ host: '192.0.2.1', port: 53 });
  expect(parseServer('ns1.example:5353')).toMatchObject({ host: 'ns1.example', port: 5353 });
  expect(parseServer('[2001:db8::1]:53')).toMatchObject({ host: '2001:db8::1', port: 53 });
  expect(() => parseServer('ns1:99999')).toThrow(/is not host, host:port or \[IPv6\]:port/);
});
