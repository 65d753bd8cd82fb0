/**
 * The HAProxy runtime API (the "stats socket" at level admin): one command per connection, over a unix socket
 * or host:port. Runtime changes live in the running process only; saveState writes them to HAProxy's
 * server-state-file so that a reload (with `load-server-state-from-file global`) keeps them. Backend and server names come validated from the profile and the inventory; they cannot carry a
 * newline or a second command.
 */
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { PersonaError } from '../errors.js';

export interface ServerState {
  backend: string;
  server: string;
  address: string;
  /** 0 stopped, 1 starting, 2 running, 3 stopping. */
  opState: number;
  /**
   * Bit flags: 0x01 forced maintenance, 0x02 inherited from a tracked server, 0x04 "disabled" in the config (kept
   * as a record alongside 0x01; it alone does not take the server out), 0x08/0x10 draining, 0x20 maintenance
   * because its address does not resolve.
   */
  adminState: number;
}

const nameRe = /^[A-Za-z0-9_.:-]{1,64}$/;

export class HaproxyRuntime {
  /** `guard` runs before every change (set state, save state): a run that lost its lock changes nothing. */
  constructor(
    readonly address: string,
    private readonly guard: () => void = () => {},
  ) {}

  private target(): { path: string } | { host: string; port: number } {
    if (this.address.startsWith('/')) return { path: this.address };
    const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(this.address);
    if (!m)
      throw new PersonaError(
        'E_USAGE',
        `HAProxy admin socket "${this.address}" is neither a path nor host:port`,
      );
    return { host: m[1]!, port: Number(m[2]) };
  }

  /** Sends one command and returns HAProxy's answer. */
  async command(command: string, signal?: AbortSignal): Promise<string> {
    if (/[\n\r;]/.test(command))
      throw new PersonaError('E_INTERNAL', 'refusing a multi-command HAProxy request');
    return await new Promise((resolve, reject) => {
      const socket = connect(this.target() as never);
      let answer = '';
      const fail = (error: Error) => {
        socket.destroy();
        reject(
          new PersonaError('E_STEP_FAILED', `HAProxy runtime API at ${this.address}: ${error.message}`, {
            hint: 'Check that HAProxy runs and exposes `stats socket ... level admin` at that address.',
          }),
        );
      };
      socket.setTimeout(5000, () => fail(new Error('no answer within 5 s')));
      signal?.addEventListener('abort', () => fail(new Error('cancelled')), { once: true });
      socket.on('connect', () => socket.end(`${command}\n`));
      socket.on('data', (d) => {
        answer += d.toString();
      });
      socket.on('error', fail);
      socket.on('close', () => resolve(answer));
    });
  }

  private static check(backend: string, server: string): void {
    if (!nameRe.test(backend) || !nameRe.test(server)) {
      throw new PersonaError(
        'E_USAGE',
        `invalid HAProxy backend/server name ${JSON.stringify(`${backend}/${server}`)}`,
      );
    }
  }

  async setState(
    backend: string,
    server: string,
    state: 'ready' | 'maint' | 'drain',
    signal?: AbortSignal,
  ): Promise<void> {
    HaproxyRuntime.check(backend, server);
    this.guard();
    const answer = (await this.command(`set server ${backend}/${server} state ${state}`, signal)).trim();
    if (answer !== '') {
      throw new PersonaError(
        'E_STEP_FAILED',
        `HAProxy refused "set server ${backend}/${server} state ${state}": ${answer}`,
        {
          hint: answer.includes('No such')
            ? `Add a server named ${server} to backend ${backend} in haproxy.cfg.`
            : undefined,
        },
      );
    }
  }

  async servers(backend: string, signal?: AbortSignal): Promise<ServerState[]> {
    if (!nameRe.test(backend))
      throw new PersonaError('E_USAGE', `invalid HAProxy backend name ${JSON.stringify(backend)}`);
    const answer = await this.command(`show servers state ${backend}`, signal);
    return parseServersState(answer);
  }

  async server(backend: string, server: string, signal?: AbortSignal): Promise<ServerState | undefined> {
    return (await this.servers(backend, signal)).find((s) => s.server === server);
  }

  /**
   * Writes the state of every server of every backend (`show servers state`) to HAProxy's server-state-file,
   * atomically: a reload with `load-server-state-from-file global` applies it, so runtime changes survive.
   */
  async saveState(file: string, signal?: AbortSignal): Promise<void> {
    const text = await this.command('show servers state', signal);
    if (!/^\d+\n# be_id /.test(text)) {
      throw new PersonaError(
        'E_STEP_FAILED',
        `HAProxy's \`show servers state\` answered unexpectedly: ${text.trim().slice(0, 200)}`,
      );
    }
    this.guard();
    await writeAtomically(file, text);
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const mode = await stat(file).then(
    (s) => s.mode & 0o777,
    () => 0o644,
  );
  const tmp = join(dirname(file), `.${basename(file)}.persona-${process.pid}`);
  try {
    const handle = await open(tmp, 'w', mode);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw new PersonaError(
      'E_STEP_FAILED',
      `cannot write HAProxy's server state file ${file}: ${(error as Error).message}`,
      {
        hint: 'persona needs write access to the directory of traffic.state_file (the path of server-state-file in haproxy.cfg).',
      },
    );
  }
}

/** The servers recorded in a server-state file, or undefined when there is no such file. */
export async function readStateFile(file: string): Promise<ServerState[] | undefined> {
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  return text === undefined ? undefined : parseServersState(text);
}

/** Parses `show servers state` (format 1): a version line, a "#" header naming the columns, one line per server. */
export function parseServersState(text: string): ServerState[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines.find((l) => l.startsWith('# '));
  if (!header) {
    if (/No such backend|Can't find backend/i.test(text))
      throw new PersonaError('E_STEP_FAILED', `HAProxy: ${text.trim()}`);
    return [];
  }
  const columns = header.slice(2).trim().split(/\s+/);
  const col = (fields: string[], name: string) => fields[columns.indexOf(name)] ?? '';
  return lines
    .filter(
      (l) => !l.startsWith('#') && /^\d+ /.test(l) && l.trim().split(/\s+/).length >= columns.length - 2,
    )
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return {
        backend: col(f, 'be_name'),
        server: col(f, 'srv_name'),
        address: col(f, 'srv_addr'),
        opState: Number(col(f, 'srv_op_state')),
        adminState: Number(col(f, 'srv_admin_state')),
      };
    });
}

/** Out of rotation: forced, inherited or resolution maintenance (0x01 | 0x02 | 0x20). */
export const inMaintenance = (s: ServerState) => (s.adminState & 0x23) !== 0;
