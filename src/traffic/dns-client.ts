/**
 * Sends one DNS message to one server and returns the answer: over UDP, retransmitted each second until the
 * deadline, and again over TCP when the UDP answer is truncated (TC). Only the answer with the request's id from
 * the server's address is taken. Errors name the server.
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP, connect as tcpConnect } from 'node:net';
import { PersonaError } from '../errors.js';

export interface DnsServer {
  host: string;
  port: number;
  /** "host:port", as the profile names it: in every message. */
  label: string;
}

/** "192.0.2.1", "ns1.example:5353", "[2001:db8::1]:53": the host and the port (53 by default). */
export function parseServer(text: string): DnsServer {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text);
  const port = m?.[3] === undefined ? 53 : Number(m[3]);
  if (!m || port < 1 || port > 65535)
    throw new PersonaError('E_USAGE', `DNS server "${text}" is not host, host:port or [IPv6]:port`);
  return { host: m[1] ?? m[2]!, port, label: text };
}

export type Exchange = (
  server: DnsServer,
  wire: Buffer,
  opts: { timeoutMs: number; signal: AbortSignal },
) => Promise<Buffer>;

export const newId = () => randomInt(0, 0x10000);

const failure = (server: DnsServer, why: string) =>
  new PersonaError('E_STEP_FAILED', `DNS server ${server.label}: ${why}`, {
    hint: 'Check that the server in traffic.server runs and answers on that address and port.',
  });

async function address(server: DnsServer): Promise<{ address: string; family: 4 | 6 }> {
  const family = isIP(server.host);
  if (family === 4 || family === 6) return { address: server.host, family };
  try {
    const r = await lookup(server.host);
    return { address: r.address, family: r.family === 6 ? 6 : 4 };
  } catch (error) {
    throw failure(server, `cannot resolve ${server.host} (${(error as NodeJS.ErrnoException).code})`);
  }
}

const isTruncated = (answer: Buffer) => answer.length >= 4 && (answer.readUInt8(2) & 0x02) !== 0;

/** UDP first; TCP when the answer is truncated or larger than UDP can carry. */
export const exchange: Exchange = async (server, wire, opts) => {
  const to = await address(server);
  const deadline = Date.now() + opts.timeoutMs;
  if (wire.length <= 512) {
    const answer = await udp(server, to, wire, opts.timeoutMs, opts.signal);
    if (!isTruncated(answer)) return answer;
  }
  return await tcp(server, to, wire, Math.max(1000, deadline - Date.now()), opts.signal);
};

/**
 * The one way an exchange ends, whichever comes first: the answer or a failure (`finish`), the timeout, or the
 * abort signal (already aborted: at once). Then `cleanup` closes the socket, and nothing later counts.
 */
function settleOnce(
  server: DnsServer,
  protocol: 'UDP' | 'TCP',
  timeoutMs: number,
  signal: AbortSignal,
  resolve: (answer: Buffer) => void,
  reject: (error: Error) => void,
  cleanup: () => void,
): (error?: Error, answer?: Buffer) => void {
  let done = false;
  const finish = (error?: Error, answer?: Buffer) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    cleanup();
    if (error) reject(error);
    else resolve(answer!);
  };
  const timer = setTimeout(
    () => finish(failure(server, `no answer within ${timeoutMs / 1000} s (${protocol})`)),
    timeoutMs,
  );
  const onAbort = () => finish(signal.reason as Error);
  if (signal.aborted) finish(signal.reason as Error);
  else signal.addEventListener('abort', onAbort, { once: true });
  return finish;
}

function udp(
  server: DnsServer,
  to: { address: string; family: 4 | 6 },
  wire: Buffer,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(to.family === 6 ? 'udp6' : 'udp4');
    const id = wire.readUInt16BE(0);
    const send = () => socket.send(wire, server.port, to.address);
    const retry = setInterval(send, 1000);
    const finish = settleOnce(server, 'UDP', timeoutMs, signal, resolve, reject, () => {
      clearInterval(retry);
      socket.close();
    });
    if (signal.aborted) return;
    socket.on('error', (error) => finish(failure(server, error.message)));
    socket.on('message', (msg, from) => {
      if (from.address !== to.address || from.port !== server.port) return;
      if (msg.length >= 12 && msg.readUInt16BE(0) === id) finish(undefined, Buffer.from(msg));
    });
    send();
  });
}

function tcp(
  server: DnsServer,
  to: { address: string },
  wire: Buffer,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: to.address, port: server.port });
    let received = Buffer.alloc(0);
    const finish = settleOnce(server, 'TCP', timeoutMs, signal, resolve, reject, () => socket.destroy());
    if (signal.aborted) return;
    socket.on('error', (error) => finish(failure(server, `${error.message} (TCP)`)));
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(wire.length);
      socket.write(Buffer.concat([length, wire]));
    });
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0))
        finish(undefined, received.subarray(2, 2 + received.readUInt16BE(0)));
    });
    socket.on('close', () => finish(failure(server, 'closed the TCP connection without an answer')));
  });
}
