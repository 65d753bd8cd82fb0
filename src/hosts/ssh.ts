/**
 * SSH on OpenSSH: the user's ssh_config, agent and ProxyJump apply; host keys are checked strictly; connections
 * are multiplexed (ControlMaster in a private directory, closed on exit); commands are argument arrays, quoted
 * here and nowhere else; every failure is classified so people read "connection refused", not exit code 255.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { PersonaError } from '../errors.js';
import { processAlive } from '../util/process.js';
import { stripTerminalControls } from '../util/sanitize.js';
import { shellJoin } from './shell-quote.js';
import { type Hop, hopName, parseJump, proxyCommand } from './ssh-jump.js';

export interface SshTarget {
  /** The inventory name: what persona calls the host in messages, journals and locks. */
  name: string;
  /** What ssh connects to, and what ssh_config `Host` patterns match (Ansible's ansible_host); else the name. */
  address?: string;
  port?: number;
  user?: string;
  /** -i: a private key file from the inventory. */
  keyFile?: string;
  /** Jump host(s) from the inventory, as -J spells them (started with persona's options: see ssh-jump.ts). */
  jump?: string;
  /**
   * HostKeyAlias: the name known_hosts is searched for instead of the address. Set only when the inventory says
   * `host_keys: name` (fleets whose addresses change, or that reuse one address behind several bastions).
   */
  hostKeyAlias?: string;
  /**
   * `local`: the machine persona runs on (Ansible's ansible_connection=local), reached without ssh; see
   * local-transport.ts. Only a transport built by `byConnection` honours it.
   */
  connection?: 'local';
}

/** What ssh connects to: the address (Ansible's ansible_host), else the inventory name. */
export const destination = (target: SshTarget): string => target.address ?? target.name;

/**
 * How ssh is told which host to reach, as Ansible tells it: port, user, key file and jump host from the inventory,
 * then `--` and the ADDRESS as the destination, so ssh_config `Host` blocks match the address (`Host 10.0.*`), as
 * they do under Ansible, and known_hosts is searched for the address (or the HostKeyAlias). Every ssh persona
 * starts ends with these, `ssh -G` in `persona doctor` included.
 */
export function targetArgs(target: SshTarget): string[] {
  return [
    ...(target.port ? ['-p', String(target.port)] : []),
    ...(target.user ? ['-l', target.user] : []),
    ...(target.keyFile ? ['-i', target.keyFile] : []),
    ...(target.hostKeyAlias ? ['-o', `HostKeyAlias=${target.hostKeyAlias}`] : []),
    ...(target.jump ? ['-J', target.jump] : []),
    '--',
    destination(target),
  ];
}

export interface SshOptions {
  /** -F: an ssh_config to use instead of ~/.ssh/config. */
  configFile?: string;
  connectTimeoutSec?: number;
  /** `yes` (default) refuses unknown and changed keys; `accept-new` trusts a first contact. Never `no`. */
  hostKeyChecking?: 'yes' | 'accept-new';
  /** Multiplexing: on by default. */
  multiplex?: boolean;
  /** How long an idle master connection stays up. */
  persistSec?: number;
  /** Where the private directory of master sockets goes (XDG_RUNTIME_DIR, else the temp dir). */
  runtimeDir?: string;
  env?: NodeJS.ProcessEnv;
}

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * One-shot calls (a probe of many hosts) use a master connection when one is up but never start one: starting
   * masters costs more than it saves for a single command (bench/RESULTS.md).
   */
  startMaster?: boolean;
}

export type StreamOptions = Pick<ExecOptions, 'signal' | 'timeoutMs'>;

export interface ExecResult {
  exitCode: number;
  /** As the command wrote it (it may be data: NUL-separated, binary-safe text); parsers clean what they show. */
  stdout: string;
  /** Remote diagnostics, only ever shown to people: stripped of terminal control characters here. */
  stderr: string;
  durationMs: number;
}

/** A command started with its stdin and stdout as byte streams (`btrfs send` into `btrfs receive`). */
export interface StreamedCommand {
  /** The command's stdin: write to it, then end it. */
  stdin: Writable;
  /** The command's stdout, as bytes: read it to the end (a reader that stops early stops the command). */
  stdout: Readable;
  /**
   * Settles when the command ended: its exit code and stderr (stdout is the stream, so ''); rejects with an
   * SshError when the connection itself failed, as `exec` does.
   */
  done: Promise<ExecResult>;
}

export type SshFailureKind =
  | 'refused'
  | 'timeout'
  | 'unreachable'
  | 'dns'
  | 'host-key-unknown'
  | 'host-key-changed'
  | 'auth'
  | 'connection'
  /**
   * The jump host failed (its own failure in `bastionFailure`): says nothing about the target, which must never
   * be taken for down because its bastion is.
   */
  | 'bastion'
  | 'cancelled'
  | 'command';

export class SshError extends PersonaError {
  /** The jump host that failed, as -J spells it (kind "bastion"). */
  readonly bastion?: string;
  /** What went wrong at the bastion: timeout, refused, host-key-unknown, ... */
  readonly bastionFailure?: SshFailureKind;

  constructor(
    readonly kind: SshFailureKind,
    readonly host: string,
    message: string,
    hint?: string,
    readonly result?: ExecResult,
    via?: { bastion: string; failure: SshFailureKind },
  ) {
    super('E_SSH', message, {
      hint,
      details: {
        host,
        kind,
        ...(via ? { bastion: via.bastion, bastion_failure: via.failure } : {}),
        ...(result ? { exit_code: result.exitCode } : {}),
      },
    });
    this.name = 'SshError';
    if (via) {
      this.bastion = via.bastion;
      this.bastionFailure = via.failure;
    }
  }
}

/** A command as people should read it in a message: scripts by their name ($0), never their whole text. */
export function displayCommand(argv: readonly string[]): string {
  const shown = argv[0] === 'sh' && argv[1] === '-c' && argv.length > 3 ? argv.slice(3) : argv;
  const text = shellJoin(shown).replace(/\n/g, '⏎');
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

const tail = (text: string, lines = 5) => text.trim().split('\n').slice(-lines).join('\n');

function where(target: SshTarget): string {
  const address =
    target.address && target.address !== target.name
      ? ` (${target.address}${target.port ? `:${target.port}` : ''})`
      : '';
  return `${target.name}${address}`;
}

/** A non-zero exit as an SshError of kind "command", with the exit code and the stderr tail (`run`). */
export function checked(target: SshTarget, argv: readonly string[], result: ExecResult): ExecResult {
  if (result.exitCode === 0) return result;
  throw new SshError(
    'command',
    target.name,
    `${where(target)}: \`${displayCommand(argv)}\` exited with code ${result.exitCode}${result.stderr.trim() ? `: ${tail(result.stderr)}` : ''}`,
    undefined,
    result,
  );
}

/** Who a failure is about: how messages name it, and the address, port and key name its hints use. */
interface Peer {
  /** The name SshError carries. */
  name: string;
  shown: string;
  address: string;
  port?: number;
  hostKeyAlias?: string;
}

const peerOf = (target: SshTarget): Peer => ({
  name: target.name,
  shown: where(target),
  address: destination(target),
  ...(target.port ? { port: target.port } : {}),
  ...(target.hostKeyAlias ? { hostKeyAlias: target.hostKeyAlias } : {}),
});

/**
 * What the end of an ssh started through a ProxyCommand prints when the proxy (the hop) ended before the ssh
 * banner: the hop's own diagnostics come before it.
 */
const PROXY_CLOSED =
  /^(?:kex_exchange_identification: |ssh_exchange_identification: |Connection closed by UNKNOWN port 65535|Connection (?:reset|timed out) by UNKNOWN port 65535)/m;

/** A bastion that connected but could not open the forward to the target: `channel 0: open failed: ...`. */
const FORWARD_FAILED = /open failed: (?:connect failed: )?(.*)|stdio forwarding failed/i;

/**
 * Reads what went wrong from ssh's own exit status 255 and its stderr. With jump hosts (`hops`, first hop first),
 * a failure of the hop names the bastion and is of kind "bastion"; a bastion that answered but could not reach the
 * target names the target with the bastion's reason.
 */
export function classifySshFailure(
  target: SshTarget,
  result: ExecResult,
  timedOut: boolean,
  options: SshOptions,
  hops: readonly Hop[] = [],
): SshError | undefined {
  const peer = peerOf(target);
  const chain = hops.map(hopName).join(',');
  if (timedOut) {
    return new SshError(
      'timeout',
      target.name,
      `${peer.shown}: no answer within the deadline${hops.length ? ` (through the bastion ${chain})` : ''}`,
      'The host or its sshd may hang; check it from a console.',
      result,
    );
  }
  const err = result.stderr;
  if (hops.length > 0) {
    // Each ssh that ends before the banner adds a PROXY_CLOSED line: the last one is the target's ssh, what
    // comes before it is what the hops said (a nested hop adds its own PROXY_CLOSED line).
    const closed = [...err.matchAll(new RegExp(PROXY_CLOSED.source, 'gm'))];
    const last = closed.at(-1);
    const hopText = last ? err.slice(0, last.index).trim() : '';
    const nested = closed.length > 1 && hopText.includes(closed[0]![0]);
    const forward = FORWARD_FAILED.exec(hopText);
    if (forward && !nested) {
      // The last hop answered but could not open the forward: the target's failure, as the bastion saw it.
      const reason = (forward[1] ?? '').trim();
      const found = reason ? classifyText(peer, { ...result, stderr: reason }, options) : undefined;
      const through = ` (the bastion ${chain} answered, but could not reach it: ${reason})`;
      if (found && ['refused', 'timeout', 'unreachable', 'dns'].includes(found.kind))
        return new SshError(found.kind, target.name, `${found.message}${through}`, found.hint, result);
      return new SshError(
        'bastion',
        target.name,
        `bastion ${chain}: could not forward the connection to ${peer.shown}: ${reason || tail(hopText, 1)}`,
        'The bastion must allow TCP forwarding (AllowTcpForwarding, PermitOpen) to the target for this user.',
        result,
        { bastion: chain, failure: 'connection' },
      );
    }
    if (hopText !== '') {
      const text = hopText.replace(new RegExp(`${PROXY_CLOSED.source}.*\\n?`, 'gm'), '').trim() || hopText;
      const hop = hops.find((h) => text.includes(h.host)) ?? (hops.length === 1 ? hops[0] : undefined);
      const bastion = hop ? hopName(hop) : chain;
      const bastionPeer: Peer = {
        name: target.name,
        shown: `bastion ${bastion}`,
        address: hop?.host ?? chain,
        ...(hop?.port ? { port: hop.port } : {}),
      };
      const found = classifyText(bastionPeer, { ...result, exitCode: 255, stderr: text }, options);
      const failure = found?.kind ?? 'connection';
      const message = found?.message ?? `bastion ${bastion}: ssh failed: ${tail(text, 2)}`;
      return new SshError(
        'bastion',
        target.name,
        `${message} — on the way to ${peer.shown}, which was not reached`,
        found?.hint,
        result,
        { bastion, failure },
      );
    }
  }
  return classifyText(peer, result, options);
}

function classifyText(peer: Peer, result: ExecResult, options: SshOptions): SshError | undefined {
  const host = peer.shown;
  const err = result.stderr;
  // ssh names the entry it looked for ("No ED25519 host key is known for [10.0.0.5]:2222 and ..."): a bastion
  // from the ssh_config is known to persona only by its alias, so what ssh says wins.
  const said = /host key is known for (\S+) and/i.exec(err)?.[1];
  const keyName = said ?? peer.hostKeyAlias ?? (peer.port ? `[${peer.address}]:${peer.port}` : peer.address);
  const scanned = said && !peer.hostKeyAlias ? /^\[(.+)\]:(\d+)$/.exec(said) : null;
  const scanHost = scanned ? scanned[1]! : said && !peer.hostKeyAlias ? said : peer.address;
  const scanPort = scanned ? Number(scanned[2]) : said && !peer.hostKeyAlias ? undefined : peer.port;
  const known = options.configFile
    ? ` (UserKnownHostsFile in ${options.configFile})`
    : ' (~/.ssh/known_hosts)';
  const scan = `ssh-keyscan ${scanPort ? `-p ${scanPort} ` : ''}${scanHost}${peer.hostKeyAlias ? ` | sed 's/^[^ ]*/${peer.hostKeyAlias}/'` : ''}`;
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(err)) {
    return new SshError(
      'host-key-changed',
      peer.name,
      `${host}: the host key has CHANGED since it was recorded — possibly a man-in-the-middle, or a reinstalled host; refusing to connect`,
      `If you know why it changed, verify the new key out of band, then remove the old one with \`ssh-keygen -R ${peer.hostKeyAlias ?? peer.address}\`${known} and add the new one.`,
      result,
    );
  }
  if (/No .*host key is known|Host key verification failed/i.test(err)) {
    return new SshError(
      'host-key-unknown',
      peer.name,
      `${host}: its host key is not known${known} as ${keyName}; refusing to connect`,
      `Verify the key out of band, then add it: \`${scan} >> known_hosts\` (check the fingerprint), or run with --accept-new-host-keys for a first contact you trust.`,
      result,
    );
  }
  if (/Permission denied \(/i.test(err) || /Too many authentication failures/i.test(err)) {
    return new SshError(
      'auth',
      peer.name,
      `${host}: authentication failed (${tail(err, 1)})`,
      'Check the user, the key (IdentityFile) and your agent (`ssh-add -l`).',
      result,
    );
  }
  if (/Connection refused/i.test(err)) {
    return new SshError(
      'refused',
      peer.name,
      `${host}: connection refused — sshd is not running or the port is wrong`,
      undefined,
      result,
    );
  }
  if (
    /Connection timed out|Operation timed out|timed out during banner exchange|Connection to .* timed out/i.test(
      err,
    )
  ) {
    return new SshError(
      'timeout',
      peer.name,
      `${host}: connection timed out`,
      'The host may be down, partitioned, or its sshd hung.',
      result,
    );
  }
  if (/No route to host|Network is unreachable|Host is down/i.test(err)) {
    return new SshError(
      'unreachable',
      peer.name,
      `${host}: unreachable (${tail(err, 1)})`,
      undefined,
      result,
    );
  }
  if (/Could not resolve hostname|Name or service not known|nodename nor servname/i.test(err)) {
    return new SshError(
      'dns',
      peer.name,
      `${host}: the name does not resolve`,
      'Check the address in the inventory.',
      result,
    );
  }
  if (
    result.exitCode === 255 &&
    /^(ssh|kex_exchange_identification|banner exchange|Connection (closed|reset))|ssh_exchange_identification|Broken pipe|mux_client/im.test(
      err,
    )
  ) {
    return new SshError('connection', peer.name, `${host}: ssh failed: ${tail(err, 2)}`, undefined, result);
  }
  return undefined;
}

/**
 * One word of rsync's -e command: rsync splits on spaces and reads '...' and "..." as quotes, a quote doubled
 * inside them standing for itself (rsync's do_cmd).
 */
export function rsyncQuote(word: string): string {
  return word === '' || /[\s'"]/.test(word) ? `'${word.replaceAll("'", "''")}'` : word;
}

/**
 * A persona killed with SIGKILL cannot remove its control directory; the next one does, when the pid in the
 * directory's name is gone (`persona-ssh-<pid>-XXXXXX`).
 */
async function sweepStaleControlDirs(base: string): Promise<void> {
  const names = await readdir(base).catch(() => [] as string[]);
  await Promise.all(
    names
      .map((name) => ({ name, pid: /^persona-ssh-(\d+)-/.exec(name)?.[1] }))
      .filter((d) => d.pid !== undefined && Number(d.pid) !== process.pid && !processAlive(Number(d.pid)))
      .map((d) => rm(join(base, d.name), { recursive: true, force: true }).catch(() => {})),
  );
}

/**
 * What persona asks of a connection to its hosts: the port the runbook, the probe and the CLI use. SshTransport is
 * the real one (OpenSSH); tests pass a fake through World.transport (test/fakes/fake-hosts.ts).
 */
export interface Transport {
  /** Runs argv on the target; resolves with the remote exit code, throws SshError when the connection failed. */
  exec(target: SshTarget, argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** Runs a POSIX sh script (on stdin) with quoted arguments. */
  script(
    target: SshTarget,
    script: string,
    args?: readonly string[],
    options?: ExecOptions,
  ): Promise<ExecResult>;
  /** Like exec, but a non-zero exit is an SshError of kind "command". */
  run(target: SshTarget, argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /**
   * Starts argv on the target with stdin and stdout as streams, for data that is neither text nor bounded (a btrfs
   * send stream): two of them piped through this machine move data host to host over persona's own SSH settings.
   * Absent on transports that cannot stream (the fake hosts): what needs it says so.
   */
  stream?(target: SshTarget, argv: readonly string[], options?: StreamOptions): Promise<StreamedCommand>;
  /** The ssh command for `rsync -e` and the host to name after it. */
  rsyncShell(target: SshTarget): Promise<{ rsh: string; host: string }>;
  /** Closes what the transport keeps open (master connections). */
  close(): Promise<void>;
  /**
   * How another program's ssh (ansible-playbook's) reaches the target exactly as persona does; absent on
   * transports that are not OpenSSH.
   */
  sshSettings?(target: SshTarget): Promise<SshSettings>;
}

/** persona's ssh options for a target, for a program that runs ssh itself (Ansible). */
export interface SshSettings {
  /**
   * -F, BatchMode, ConnectTimeout, StrictHostKeyChecking and the rest of persona's options, HostKeyAlias when the
   * inventory asks for it, and the jump hosts as the ProxyCommand persona builds (ssh-jump.ts). Not the port, user,
   * key file or destination: the program passes those from the inventory.
   */
  options: string[];
  /** The connect timeout in seconds, jump hosts included (each hop has its own). */
  connectTimeoutSec: number;
  /** ssh runs a ProxyCommand with $SHELL: persona's are quoted for POSIX sh, so that is the shell it needs. */
  shell?: string;
}

/**
 * A multiplexed session hands its stdio to the master connection, which keeps the pipes open until the remote
 * command ends. Once our ssh process has gone (cancelled or timed out), stop waiting for them.
 */
function releasePipesOnExit(
  subprocess: ChildProcess,
  options: Pick<ExecOptions, 'signal' | 'timeoutMs'>,
  started: number,
): void {
  subprocess.once('exit', () => {
    if (
      options.signal?.aborted ||
      (options.timeoutMs !== undefined && Date.now() - started >= options.timeoutMs)
    ) {
      subprocess.stdout?.destroy();
      subprocess.stderr?.destroy();
    }
  });
}

export class SshTransport implements Transport {
  /** The private directory of master sockets; a promise, so that parallel first calls share one. */
  private controlDir: Promise<string> | undefined;
  /** Numbers the hops' log files in the control directory (see command()). */
  private hopLogs = 0;
  private readonly options: Required<Omit<SshOptions, 'configFile' | 'env' | 'runtimeDir'>> &
    Pick<SshOptions, 'configFile' | 'env' | 'runtimeDir'>;

  constructor(options: SshOptions = {}) {
    this.options = {
      connectTimeoutSec: 5,
      hostKeyChecking: 'yes',
      multiplex: true,
      persistSec: 60,
      ...options,
    };
  }

  private async control(): Promise<string> {
    this.controlDir ??= (async () => {
      const base = this.options.runtimeDir ?? tmpdir();
      await sweepStaleControlDirs(base);
      return await mkdtemp(join(base, `persona-ssh-${process.pid}-`));
    })();
    return await this.controlDir;
  }

  /** Jump hosts by target: from the inventory, else the ProxyJump the ssh_config gives the address (ssh -G). */
  private readonly jumps = new Map<string, Promise<Hop[]>>();

  /**
   * The jump hosts ssh would use for the target, first hop first: the inventory's, else the config's ProxyJump
   * for the destination. A ProxyCommand of the user's own in the config is left to ssh (persona cannot add its
   * options to a command it did not write).
   */
  async hops(target: SshTarget): Promise<Hop[]> {
    if (target.jump) return parseJump(target.jump, `${target.name}: the jump host`);
    const key = JSON.stringify(targetArgs(target));
    let found = this.jumps.get(key);
    if (!found) {
      found = (async () => {
        const { execa } = await import('execa');
        const g = await execa(
          'ssh',
          [...(this.options.configFile ? ['-F', this.options.configFile] : []), '-G', ...targetArgs(target)],
          {
            reject: false,
            env: this.options.env,
            extendEnv: this.options.env === undefined,
            timeout: 10_000,
          },
        );
        // A config ssh cannot read is reported by the connection itself, classified like any other failure.
        if (g.exitCode !== 0) return [];
        const jump = /^proxyjump (.+)$/m.exec(String(g.stdout))?.[1]?.trim();
        if (!jump || jump === 'none') return [];
        return parseJump(jump, `${target.name}: the ProxyJump in the ssh config`);
      })();
      this.jumps.set(key, found);
    }
    return await found;
  }

  /** persona's options, the same for the target and every jump host. */
  private commonOptions(connectTimeoutSec: number): string[] {
    const o = this.options;
    return [
      ...(o.configFile ? ['-F', o.configFile] : []),
      '-o',
      'BatchMode=yes',
      '-o',
      `ConnectTimeout=${connectTimeoutSec}`,
      '-o',
      `StrictHostKeyChecking=${o.hostKeyChecking}`,
      '-o',
      'ServerAliveInterval=5',
      '-o',
      'ServerAliveCountMax=3',
      '-o',
      'LogLevel=ERROR',
      '-o',
      'KexAlgorithms=^curve25519-sha256',
    ];
  }

  /** The ssh argument vector for a target and a remote command (already quoted into one string). */
  async argv(target: SshTarget, remoteCommand: string | undefined, startMaster = true): Promise<string[]> {
    return (await this.command(target, remoteCommand, startMaster)).args;
  }

  private async command(
    target: SshTarget,
    remoteCommand: string | undefined,
    startMaster = true,
  ): Promise<{ args: string[]; hops: Hop[]; hopLog?: string }> {
    const o = this.options;
    const hops = await this.hops(target);
    // With ControlPersist, ssh sends its ProxyCommand's stderr to /dev/null (sshconnect.c), and with it what the
    // hops said ("open failed: connect failed: No route to host"): a target down behind a working bastion would
    // read as an unexplained "Connection closed". So the hops log (-E) to a file of their own in the private
    // control directory, which execRaw reads when the connection fails.
    const hopLog =
      hops.length > 0 && o.multiplex ? join(await this.control(), `hop-${++this.hopLogs}.log`) : undefined;
    // Through jump hosts the banner comes only after every hop connected, each within its own timeout: the
    // target's ssh waits longer, so that a hop that times out is the one that says so.
    const args = [...this.commonOptions(o.connectTimeoutSec * (hops.length + 1)), '-T'];
    if (hops.length > 0) args.push('-o', `ProxyCommand=${this.proxy(hops, hopLog)}`);
    if (o.multiplex) {
      args.push(
        '-o',
        `ControlMaster=${startMaster ? 'auto' : 'no'}`,
        '-o',
        `ControlPath=${await this.control()}/%C`,
        '-o',
        `ControlPersist=${o.persistSec}`,
      );
    }
    // The jump is in the ProxyCommand: -J would start the hop from the ssh_config alone.
    args.push(...targetArgs({ ...target, jump: undefined }));
    if (remoteCommand !== undefined) args.push(remoteCommand);
    return { args, hops, ...(hopLog ? { hopLog } : {}) };
  }

  /** The ProxyCommand through the jump hosts, each hop started with persona's options. */
  private proxy(hops: readonly Hop[], hopLog?: string): string {
    // LogLevel INFO on the hops (first value wins): the bastion's reason for a failed forward ("open
    // failed: connect failed: Connection refused") is an INFO line; -E: see `command`.
    const hopOptions = [
      '-o',
      'LogLevel=INFO',
      ...(hopLog ? ['-E', hopLog] : []),
      ...this.commonOptions(this.options.connectTimeoutSec),
      '-o',
      'ControlPath=none',
    ];
    return proxyCommand(hops, hopOptions);
  }

  /** persona's options for the target, for a program that runs ssh itself (see SshSettings). */
  async sshSettings(target: SshTarget): Promise<SshSettings> {
    const hops = await this.hops(target);
    const connectTimeoutSec = this.options.connectTimeoutSec * (hops.length + 1);
    return {
      options: [
        ...this.commonOptions(connectTimeoutSec),
        ...(target.hostKeyAlias ? ['-o', `HostKeyAlias=${target.hostKeyAlias}`] : []),
        ...(hops.length > 0 ? ['-o', `ProxyCommand=${this.proxy(hops)}`] : []),
      ],
      connectTimeoutSec,
      ...(hops.length > 0 ? { shell: '/bin/sh' } : {}),
    };
  }

  /** ssh runs a ProxyCommand with $SHELL: persona's are quoted for POSIX sh, so that is the shell it gets. */
  private env(hops: readonly Hop[]): { env?: NodeJS.ProcessEnv; extendEnv: boolean } {
    const base = this.options.env;
    if (hops.length === 0) return { ...(base ? { env: base } : {}), extendEnv: base === undefined };
    return { env: { ...base, SHELL: '/bin/sh' }, extendEnv: base === undefined };
  }

  /**
   * The ssh command for `rsync -e`: the same options, control path, jump hosts and host-key checking as every
   * other call. rsync splits it on spaces and honours quotes (a quote is doubled inside quotes), so arguments are
   * quoted the way rsync reads them; `env SHELL=/bin/sh` runs it when there is a ProxyCommand.
   */
  async rsyncShell(target: SshTarget): Promise<{ rsh: string; host: string }> {
    const { args, hops } = await this.command(target, undefined);
    const host = args.pop()!;
    args.pop(); // '--': rsync appends the host after the options.
    const words = [...(hops.length > 0 ? ['env', 'SHELL=/bin/sh'] : []), 'ssh', ...args];
    return { rsh: words.map(rsyncQuote).join(' '), host };
  }

  /**
   * Runs argv on the target. Resolves with the remote exit code for commands that ran; throws SshError when the
   * connection itself failed (refused, timeout, host key, auth, ...).
   */
  async exec(target: SshTarget, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    return this.execRaw(target, shellJoin(argv), options);
  }

  /** Runs a POSIX sh script (sent on stdin, never on the command line) with quoted arguments. */
  async script(
    target: SshTarget,
    script: string,
    args: readonly string[] = [],
    options: ExecOptions = {},
  ): Promise<ExecResult> {
    return this.execRaw(target, shellJoin(['sh', '-s', '--', ...args]), { ...options, input: script });
  }

  /** Like exec, but a non-zero exit is an SshError of kind "command" with the exit code and stderr tail. */
  async run(target: SshTarget, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    return checked(target, argv, await this.exec(target, argv, options));
  }

  private async execRaw(target: SshTarget, command: string, options: ExecOptions): Promise<ExecResult> {
    const { execa } = await import('execa');
    const { args, hops, hopLog } = await this.command(target, command, options.startMaster ?? true);
    const started = Date.now();
    const subprocess = execa('ssh', args, {
      input: options.input ?? '',
      reject: false,
      stripFinalNewline: false,
      timeout: options.timeoutMs,
      cancelSignal: options.signal,
      ...this.env(hops),
      maxBuffer: 64 * 1024 * 1024,
    });
    releasePipesOnExit(subprocess, options, started);
    return await this.outcome(target, await subprocess, started, hops, hopLog);
  }

  /** Starts argv on the target with stdin and stdout as streams (see Transport.stream). */
  async stream(
    target: SshTarget,
    argv: readonly string[],
    options: StreamOptions = {},
  ): Promise<StreamedCommand> {
    const { execa } = await import('execa');
    const { args, hops, hopLog } = await this.command(target, shellJoin(argv));
    const started = Date.now();
    const subprocess = execa('ssh', args, {
      stdin: 'pipe',
      stdout: 'pipe',
      buffer: { stdout: false },
      reject: false,
      timeout: options.timeoutMs,
      cancelSignal: options.signal,
      ...this.env(hops),
    });
    releasePipesOnExit(subprocess, options, started);
    return {
      stdin: subprocess.stdin,
      stdout: subprocess.stdout,
      done: subprocess.then(async (child) => await this.outcome(target, child, started, hops, hopLog)),
    };
  }

  /** An ended ssh as a result, or the SshError of its connection. */
  private async outcome(
    target: SshTarget,
    child: {
      exitCode?: number;
      stdout?: unknown;
      stderr?: unknown;
      isCanceled: boolean;
      timedOut: boolean;
    },
    started: number,
    hops: readonly Hop[],
    hopLog: string | undefined,
  ): Promise<ExecResult> {
    const result: ExecResult = {
      exitCode: child.exitCode ?? 255,
      stdout: child.stdout === undefined ? '' : String(child.stdout),
      stderr: stripTerminalControls(String(child.stderr ?? '')),
      durationMs: Date.now() - started,
    };
    if (child.isCanceled) {
      throw new SshError('cancelled', target.name, `${where(target)}: cancelled`, undefined, result);
    }
    // What the hops logged comes before the target's ssh's own words, as it would on stderr. A hop that connected
    // goes on as the master's proxy: its file is unlinked, not closed.
    const hopText = hopLog ? stripTerminalControls(await readFile(hopLog, 'utf8').catch(() => '')) : '';
    if (hopLog) await rm(hopLog, { force: true });
    if (child.timedOut || result.exitCode === 255) {
      const seen = hopText ? { ...result, stderr: `${hopText}${result.stderr}` } : result;
      const failure = classifySshFailure(target, seen, Boolean(child.timedOut), this.options, hops);
      if (failure) throw failure;
    }
    return result;
  }

  /** Closes every master connection and removes the private control directory. */
  async close(): Promise<void> {
    const pending = this.controlDir;
    if (!pending) return;
    this.controlDir = undefined;
    const dir = await pending;
    const { execa } = await import('execa');
    // The master sockets (%C, hex), not the hops' log files.
    const sockets = (await readdir(dir).catch(() => [] as string[])).filter((s) => !s.startsWith('hop-'));
    await Promise.all(
      sockets.map((s) =>
        execa('ssh', ['-o', `ControlPath=${join(dir, s)}`, '-O', 'exit', 'persona-control'], {
          reject: false,
          timeout: 5000,
        }),
      ),
    );
    await rm(dir, { recursive: true, force: true });
  }
}
