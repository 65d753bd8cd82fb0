/**
 * A fleet of fake hosts behind persona's Transport port, so that recover, resume, dry runs and their failure paths
 * run in-process, in seconds, without root or sshd (issue 10). Each host is a small world: reachable or failing
 * as ssh fails (refused, timeout, auth, a changed host key...), a file map (content, mode, owner, group), installed
 * packages, users and groups, nftables tables, and one service driven by the profile's deploy.start, stop and
 * status commands.
 *
 * It answers the probe with a recorded real probe output (test/fixtures/probe), and the exact commands the steps
 * send: argv commands by their argv, persona's fixed `sh -c SCRIPT NAME args` scripts by their $0 name
 * (persona-write, persona-state, ...) with the script's semantics modelled here. Anything else fails loudly with
 * its argv and is kept in `unknown`, so a test never passes by accident. Every call is recorded per host, with
 * whether it changes the host, so a test can assert "no remote command changed anything".
 *
 * Not modelled: rsync (migrate copies through a real ssh): profiles for in-process runs have no data to move
 * (data.migration "none", or no data paths). Timeouts are not waited for: a host "timing out" fails at once, as
 * ssh's classification of a timed-out connection.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { probeScript } from '../../src/hosts/probe-script.js';
import {
  classifySshFailure,
  type ExecOptions,
  type ExecResult,
  SshError,
  type SshFailureKind,
  type SshTarget,
  type Transport,
} from '../../src/hosts/ssh.js';
import { PEER_SCRIPT } from '../../src/watch/peer.js';
import { repoRoot } from '../helpers/cli.js';

export interface FakeFile {
  content: string;
  /** As the profile writes it ("0600"); `stat -c %a` prints it without the leading zero. */
  mode: string;
  owner: string;
  group: string;
}

export interface FakeUser {
  /** Supplementary groups; the primary group is `primary`. */
  groups: string[];
  primary: string;
  shell: string;
  home: string;
}

/** What a command answers. */
export interface Answer {
  exitCode?: number;
  stdout?: string;
  stderr?: string;
}

/** The failures ssh reports, as its stderr says them (classified by the real classifySshFailure). */
const sshStderr: Partial<Record<SshFailureKind, (host: string) => string>> = {
  refused: (h) => `ssh: connect to host ${h} port 22: Connection refused\n`,
  timeout: (h) => `ssh: connect to host ${h} port 22: Connection timed out\n`,
  unreachable: (h) => `ssh: connect to host ${h} port 22: No route to host\n`,
  dns: (h) => `ssh: Could not resolve hostname ${h}: Name or service not known\n`,
  auth: (h) => `root@${h}: Permission denied (publickey).\n`,
  'host-key-unknown': (h) =>
    `No ED25519 host key is known for ${h} and you have requested strict checking.\nHost key verification failed.\n`,
  'host-key-changed': () =>
    '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\nHost key verification failed.\n',
};

export interface FakeHostSpec {
  /** Absent: the host answers. Else how ssh fails to reach it. */
  down?: keyof typeof sshStderr;
  /** The recorded probe output it answers with (a file name in test/fixtures/probe). */
  probe?: string;
  hostname?: string;
  /** The service runs (deploy.status exits 0). */
  running?: boolean;
  manager?: 'dpkg' | 'rpm' | 'none';
  /** Installed packages: name -> version. */
  packages?: Record<string, string>;
  /** Whether `nft` is installed. */
  nft?: boolean;
  groups?: string[];
  users?: Record<string, Partial<FakeUser>>;
  files?: Record<string, Partial<FakeFile> & { content: string }>;
  /** What deploy.stop prints and exits with (it stops the service whatever it exits with). */
  stop?: Answer;
  /**
   * apt's package lists: how many seconds ago they were updated (absent: never, as a huge age), and the packages
   * they do not know until `apt-get update` (an install naming one fails as apt-get does).
   */
  aptLists?: { ageSeconds: number; lacks?: string[] };
}

export interface FakeService {
  start: readonly string[];
  stop: readonly string[];
  status?: readonly string[];
}

/** A command of the test's own (a health check, an install command, a hook), answered on every host. */
export interface FakeCommand {
  argv: readonly string[];
  mutates: boolean;
  answer(host: FakeHost): Answer;
}

export interface Call {
  host: string;
  /** As received, `sudo -n --` included. */
  argv: string[];
  /** What answered it: "probe", "deploy.stop", "persona-write", "true", ... or "unreachable" / "unknown". */
  what: string;
  /** Whether the command changes the host (a command to an unreachable host counts as what it would do). */
  mutates: boolean;
  /** The host did not answer (the command never ran). */
  unreachable?: boolean;
  input?: string;
}

/** One fake machine: its state, which tests set up and inspect. */
export class FakeHost {
  down: FakeHostSpec['down'];
  running: boolean;
  manager: 'dpkg' | 'rpm' | 'none';
  nft: boolean;
  readonly packages: Map<string, string>;
  readonly groups: Set<string>;
  readonly users: Map<string, FakeUser>;
  readonly files: Map<string, FakeFile>;
  /** Loaded nftables tables (inet family): name -> the ruleset text loaded. */
  readonly tables = new Map<string, string>();
  readonly hostname: string;
  /** The probe output it answers with; a test may change it (the host changed since its facts were cached). */
  probe: string;
  stop: Answer;
  aptListsAge: number;
  readonly aptLacks: Set<string>;

  constructor(
    readonly name: string,
    spec: FakeHostSpec,
  ) {
    this.down = spec.down;
    this.running = spec.running ?? false;
    this.manager = spec.manager ?? 'dpkg';
    this.nft = spec.nft ?? false;
    this.packages = new Map(Object.entries(spec.packages ?? {}));
    this.groups = new Set(['root', ...(spec.groups ?? [])]);
    this.users = new Map(
      Object.entries(spec.users ?? {}).map(([n, u]) => [
        n,
        { groups: [], primary: n, shell: '/bin/sh', home: `/home/${n}`, ...u },
      ]),
    );
    for (const u of this.users.values()) this.groups.add(u.primary);
    this.files = new Map(
      Object.entries(spec.files ?? {}).map(([p, f]) => [
        p,
        { mode: '0644', owner: 'root', group: 'root', ...f },
      ]),
    );
    this.hostname = spec.hostname ?? name;
    this.probe = readFileSync(
      `${repoRoot}test/fixtures/probe/${spec.probe ?? 'debian12-root-cgroup1.txt'}`,
      'utf8',
    );
    this.stop = spec.stop ?? {};
    this.aptListsAge = spec.aptLists?.ageSeconds ?? 1_000_000_000;
    this.aptLacks = new Set(spec.aptLists?.lacks ?? []);
  }

  /** `id -nG`: the primary group first. */
  idGroups(user: FakeUser): string[] {
    return [...new Set([user.primary, ...user.groups])];
  }

  /** The digest `nft list table inet T | sha256sum` would print: the same for the same loaded table. */
  tableDigest(table: string): string | undefined {
    const text = this.tables.get(table);
    return text === undefined ? undefined : sha256(`table inet ${table}\n${text}`);
  }
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const same = (a: readonly string[], b: readonly string[] | undefined) =>
  b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
const ok = (stdout = ''): Answer => ({ exitCode: 0, stdout });
const fail = (exitCode: number, stderr: string): Answer => ({ exitCode, stderr });

interface Handled {
  what: string;
  mutates: boolean;
  answer: () => Answer | Promise<Answer>;
}

export interface FakeHostsOptions {
  hosts: Record<string, FakeHostSpec>;
  /** The application's deploy.start, stop and status, as in the profile. */
  service: FakeService;
  commands?: FakeCommand[];
  /** How long the sampling script's window lasts, as a fraction of the window asked for (1: real time). */
  timeScale?: number;
  /** watch's peer probe (src/watch/look.ts PEER_SCRIPT) run on `peer` with these arguments; absent: unknown. */
  peerProbe?: (peer: FakeHost, args: readonly string[]) => Answer;
}

export class FakeHosts implements Transport {
  readonly calls: Call[] = [];
  /** Commands nothing here answers (each also failed its caller): a test expects none. */
  readonly unknown: Call[] = [];
  private readonly hosts = new Map<string, FakeHost>();
  closed = 0;

  constructor(private readonly options: FakeHostsOptions) {
    for (const [name, spec] of Object.entries(options.hosts)) this.hosts.set(name, new FakeHost(name, spec));
  }

  host(name: string): FakeHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`FakeHosts: no host ${name}`);
    return h;
  }

  /** The calls that changed (or would have changed) a host, optionally of one host. */
  mutations(host?: string): Call[] {
    return this.calls.filter((c) => c.mutates && (host === undefined || c.host === host));
  }

  /** What answered each call of a host, in order ("deploy.stop", "persona-write", ...). */
  seen(host: string): string[] {
    return this.calls.filter((c) => c.host === host).map((c) => c.what);
  }

  async exec(target: SshTarget, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const host = this.host(target.name);
    const plain = argv[0] === 'sudo' && argv[1] === '-n' && argv[2] === '--' ? argv.slice(3) : [...argv];
    const handled = this.handle(host, plain, options.input);
    return await this.answer(target, host, [...argv], handled, options);
  }

  async script(
    target: SshTarget,
    script: string,
    args: readonly string[] = [],
    options: ExecOptions = {},
  ): Promise<ExecResult> {
    const host = this.host(target.name);
    const argv = ['sh', '-s', '--', ...args];
    const peerProbe = this.options.peerProbe;
    const handled: Handled | undefined =
      script === probeScript
        ? { what: 'probe', mutates: false, answer: () => ok(host.probe) }
        : script === PEER_SCRIPT && peerProbe
          ? { what: 'watch-peer', mutates: false, answer: () => peerProbe(host, args) }
          : undefined;
    return await this.answer(target, host, argv, handled, { ...options, input: script });
  }

  async run(target: SshTarget, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(target, argv, options);
    if (r.exitCode !== 0)
      throw new SshError(
        'command',
        target.name,
        `${target.name}: \`${argv.join(' ')}\` exited with code ${r.exitCode}${r.stderr.trim() ? `: ${r.stderr.trim()}` : ''}`,
        undefined,
        r,
      );
    return r;
  }

  async rsyncShell(target: SshTarget): Promise<{ rsh: string; host: string }> {
    throw new Error(
      `FakeHosts cannot copy data to or from ${target.name} (rsync needs a real ssh): give the profile data.migration "none"`,
    );
  }

  async close(): Promise<void> {
    this.closed++;
  }

  private async answer(
    target: SshTarget,
    host: FakeHost,
    argv: string[],
    handled: Handled | undefined,
    options: ExecOptions,
  ): Promise<ExecResult> {
    const call: Call = {
      host: host.name,
      argv,
      what: handled?.what ?? 'unknown',
      mutates: handled?.mutates ?? false,
      ...(options.input !== undefined && handled?.what !== 'probe' ? { input: options.input } : {}),
    };
    this.calls.push(call);
    const result = (a: Answer): ExecResult => ({
      exitCode: a.exitCode ?? 0,
      stdout: a.stdout ?? '',
      stderr: a.stderr ?? '',
      durationMs: 0,
    });
    if (options.signal?.aborted)
      throw new SshError(
        'cancelled',
        host.name,
        `${host.name}: cancelled`,
        undefined,
        result({ exitCode: 255 }),
      );
    if (host.down) {
      call.unreachable = true;
      const stderr = sshStderr[host.down]!(target.address ?? host.name);
      throw classifySshFailure(target, result({ exitCode: 255, stderr }), false, {})!;
    }
    if (!handled) {
      this.unknown.push(call);
      throw new Error(`FakeHosts: nothing answers on ${host.name}: ${JSON.stringify(argv)}`);
    }
    return result(await handled.answer());
  }

  /** What answers argv (without sudo) on the host, and what it does there. */
  private handle(host: FakeHost, argv: string[], input: string | undefined): Handled | undefined {
    const { service } = this.options;
    const h = (what: string, mutates: boolean, answer: () => Answer | Promise<Answer>): Handled => ({
      what,
      mutates,
      answer,
    });
    if (same(argv, service.status))
      return h('deploy.status', false, () => (host.running ? ok() : fail(3, '')));
    if (same(argv, service.stop))
      return h('deploy.stop', true, () => {
        host.running = false;
        return { exitCode: 0, ...host.stop };
      });
    if (same(argv, service.start))
      return h('deploy.start', true, () => {
        host.running = true;
        return ok();
      });
    for (const c of this.options.commands ?? [])
      if (same(argv, c.argv)) return h(c.argv.join(' '), c.mutates, () => c.answer(host));
    if (same(argv, ['true'])) return h('true', false, () => ok());
    if (same(argv, ['cat', '/proc/sys/kernel/hostname']))
      return h('hostname', false, () => ok(`${host.hostname}\n`));
    if (same(argv, ['apt-get', 'update', '-q']) && host.manager === 'dpkg')
      return h('apt-get update', true, () => {
        host.aptListsAge = 0;
        host.aptLacks.clear();
        return ok();
      });
    if (argv[0] === 'env' && argv[1] === 'DEBIAN_FRONTEND=noninteractive' && argv[3] === 'install')
      return h('apt-get install', true, () =>
        this.install(
          host,
          argv.slice(4).filter((a) => !a.startsWith('-') && !a.startsWith('Dpkg::')),
        ),
      );
    if (argv[0] === 'sh' && argv[1] === '-c' && argv.length >= 4)
      return this.script$0(host, argv[3]!, argv.slice(4), input);
    return undefined;
  }

  /** persona's fixed scripts, by their $0: what each one does, modelled on the host. */
  private script$0(
    host: FakeHost,
    name: string,
    args: string[],
    input: string | undefined,
  ): Handled | undefined {
    const h = (mutates: boolean, answer: () => Answer | Promise<Answer>): Handled => ({
      what: name,
      mutates,
      answer,
    });
    switch (name) {
      case 'persona-state':
        return h(false, () => ok(this.state(host, args)));
      case 'persona-staging':
        // migrate's data paths and its staging directories are not modelled: nothing at either.
        return h(false, () => ok('absent - rsync\n'));
      case 'persona-apt-lists-age':
        return h(false, () => ok(`${host.aptListsAge}\n`));
      case 'persona-packages':
        return h(false, () =>
          ok(
            [
              `manager ${host.manager}`,
              ...args.filter((n) => host.packages.has(n)).map((n) => `pkg ${n} ${host.packages.get(n)}`),
            ].join('\n'),
          ),
        );
      case 'persona-sha':
        return h(false, () => {
          const f = host.files.get(args[0]!);
          return f ? ok(`${sha256(f.content)}  ${args[0]}\n`) : fail(1, '');
        });
      case 'persona-sample':
        return h(false, async () => {
          const [window = '1', , mb = '0'] = args;
          await new Promise((r) => setTimeout(r, Number(window) * 1000 * (this.options.timeScale ?? 1)));
          return ok(
            [
              'cores 2',
              `cpu_ns ${Number(window) * 2e8} wall_ns ${Number(window) * 1e9}`,
              'meminfo 4294967296 3221225472',
              ...(Number(mb) > 0 ? [`dd ${Number(mb) * 1048576} 0.1`] : []),
            ].join('\n'),
          );
        });
      case 'persona-write':
        return h(true, () => {
          const [path = '', mode = '', owner = ''] = args;
          const [user, group] = owner.split(':');
          if (!this.knownOwner(host, user!, group)) return fail(1, `chown: invalid user: '${owner}'`);
          host.files.set(path, { content: input ?? '', mode, owner: user!, group: group ?? 'root' });
          return ok();
        });
      case 'persona-group':
        return h(true, () => {
          host.groups.add(args[0]!);
          return ok();
        });
      case 'persona-user':
        return h(true, () => this.ensureUser(host, args));
      case 'persona-authorized-keys':
        return h(true, () => {
          const user = host.users.get(args[0]!);
          if (!user) return fail(1, `no home directory for ${args[0]}`);
          host.files.set(`${user.home}/.ssh/authorized_keys`, {
            content: input ?? '',
            mode: '600',
            owner: args[0]!,
            group: user.primary,
          });
          return ok();
        });
      case 'persona-nft':
        return h(true, () => {
          const [path = '', table = '', record = ''] = args;
          if (!host.nft) return fail(127, 'sh: 2: nft: not found');
          const file = host.files.get(path);
          if (!file) return fail(1, `Error: Could not process rule: No such file or directory\n${path}`);
          host.tables.set(table, file.content);
          host.files.set(record, {
            content: `${host.tableDigest(table)}\n`,
            mode: '0600',
            owner: 'root',
            group: 'root',
          });
          return ok();
        });
      default:
        return undefined;
    }
  }

  private knownOwner(host: FakeHost, user: string, group: string | undefined): boolean {
    return (user === 'root' || host.users.has(user)) && (group === undefined || host.groups.has(group));
  }

  /** ENSURE_USER: useradd -m (-U, or -g NAME when that group exists), usermod -s, usermod -a -G. */
  private ensureUser(host: FakeHost, [name = '', shell = '', groups = '']: string[]): Answer {
    const wanted = groups.split(',').filter(Boolean);
    const missing = wanted.filter((g) => !host.groups.has(g));
    let user = host.users.get(name);
    if (!user) {
      user = { groups: [], primary: name, shell: shell || '/bin/sh', home: `/home/${name}` };
      host.users.set(name, user);
      host.groups.add(name);
    } else if (shell) user.shell = shell;
    if (missing.length > 0) return fail(6, `usermod: group '${missing[0]}' does not exist`);
    for (const g of wanted) if (!user.groups.includes(g)) user.groups.push(g);
    return ok(`${user.home}\n`);
  }

  private install(host: FakeHost, specs: string[]): Answer {
    const unknown = specs.map((spec) => spec.split('=', 1)[0]!).find((name) => host.aptLacks.has(name));
    if (unknown) return fail(100, `E: Unable to locate package ${unknown}\n`);
    const lines: string[] = [];
    for (const spec of specs) {
      const [name = spec, version = '1.0-1'] = spec.split('=', 2);
      host.packages.set(name, version);
      if (name === 'nftables') host.nft = true;
      lines.push(`Setting up ${name} (${version}) ...`);
    }
    return ok(`${lines.join('\n')}\n`);
  }

  /** host-state.ts's STATE_SCRIPT: "manager", "nft", then one "r <index> <kind> ..." line per query found. */
  private state(host: FakeHost, args: string[]): string {
    const out = [`manager ${host.manager}`, `nft ${host.nft ? 1 : 0}`];
    const fileLine = (i: number, kind: string, f: FakeFile | undefined) => {
      if (f)
        out.push(
          `r ${i} ${kind} ${sha256(f.content)} ${Number.parseInt(f.mode, 8).toString(8)} ${f.owner} ${f.group}`,
        );
    };
    let i = 0;
    for (let a = 0; a < args.length; i++) {
      const kind = args[a++];
      if (kind === 'pkg') {
        const v = host.packages.get(args[a++]!);
        if (v !== undefined) out.push(`r ${i} pkg ${v}`);
      } else if (kind === 'group') {
        if (host.groups.has(args[a++]!)) out.push(`r ${i} group`);
      } else if (kind === 'user') {
        const u = host.users.get(args[a++]!);
        if (u) out.push(`r ${i} user ${host.idGroups(u).join(',')} ${u.shell}`);
      } else if (kind === 'file') {
        fileLine(i, 'file', host.files.get(args[a++]!));
      } else if (kind === 'akeys') {
        const u = host.users.get(args[a++]!);
        if (u) fileLine(i, 'akeys', host.files.get(`${u.home}/.ssh/authorized_keys`));
      } else if (kind === 'nft') {
        const table = args[a++]!;
        const record = args[a++]!;
        const live = host.nft ? host.tableDigest(table) : undefined;
        const rec = host.files.get(record)?.content.slice(0, 64);
        out.push(`r ${i} nft ${live ?? '-'} ${rec || '-'}`);
      } else {
        throw new Error(`FakeHosts: persona-state query ${kind} is not modelled`);
      }
    }
    return `${out.join('\n')}\n`;
  }
}
