/**
 * configure as a plan: the batched state report (host-state.ts), the desired-vs-actual diffs, and the plan against
 * a fake host that the actions change, to convergence: a second plan after the actions has nothing observable left.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import type { ExecOptions, ExecResult, SshTarget } from '../../src/hosts/ssh.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import type { Action, StepContext, StepOutputs, StepPlan } from '../../src/runbook/types.js';
import { configureStep, LOAD_NFT } from '../../src/steps/configure.js';
import { nftRuleset } from '../../src/steps/firewall.js';
import {
  Ask,
  fileDiff,
  firewallDiff,
  parseReport,
  queryArgs,
  STATE_SCRIPT,
  userDiff,
} from '../../src/steps/host-state.js';
import { sha256 } from '../../src/util/hash.js';
import { repoRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

describe('the state report', () => {
  test('each query reads its own line, by index and kind; a line of another kind is not trusted', () => {
    const ask = new Ask();
    const rsync = ask.pkg('rsync');
    const socat = ask.pkg('socat');
    const demo = ask.group('demo');
    const ops = ask.group('ops');
    const user = ask.user('demo');
    const file = ask.file('/etc/x');
    const keys = ask.authorizedKeys('demo');
    const nft = ask.nft('persona_x', '/etc/persona/nftables/x.listing.sha256');
    const report = parseReport(
      ask.queries,
      [
        'manager dpkg',
        'nft 1',
        'r 0 pkg  3.2.7-1',
        'r 1 group', // socat is a pkg query: ignored
        'r 2 group',
        'r 4 user demo,adm /bin/bash',
        'r 5 file abc 640 root demo',
        'r 7 nft aaa -',
      ].join('\n'),
    );
    expect(report.manager).toBe('dpkg');
    expect(report.nft).toBe(true);
    expect(rsync(report)).toBe('3.2.7-1');
    expect(socat(report)).toBeUndefined();
    expect([demo(report), ops(report)]).toEqual([true, false]);
    expect(user(report)).toEqual({ groups: ['demo', 'adm'], shell: '/bin/bash' });
    expect(file(report)).toEqual({ sha256: 'abc', mode: '640', owner: 'root', group: 'demo' });
    expect(keys(report)).toBeUndefined();
    expect(nft(report)).toEqual({ live: 'aaa' });
  });

  test('every value is an argument of its own, after its kind', () => {
    const ask = new Ask();
    ask.file('/a b/$(id)');
    ask.nft('t', '/r');
    ask.user('u');
    expect(queryArgs(ask.queries)).toEqual(['file', '/a b/$(id)', 'nft', 't', '/r', 'user', 'u']);
  });

  test('the script, run by sh here, reports what is there and runs nothing it is given', async () => {
    const dir = tempDir('persona-state-');
    const path = join(dir, 'f');
    writeFileSync(path, 'hello\n');
    chmodSync(path, 0o640);
    const marker = join(dir, 'pwned');
    const ask = new Ask();
    const group = ask.group('root');
    const noGroup = ask.group('persona-no-such-group');
    const user = ask.user('root');
    const noUser = ask.user('persona-no-such-user');
    const file = ask.file(path);
    const hostile = ask.file(`${dir}/$(touch ${marker})`);
    const absent = ask.file(join(dir, 'absent'));
    const nft = ask.nft('persona_no_such_table', join(dir, 'absent.sha256'));
    const r = await execa('sh', ['-c', STATE_SCRIPT, 'persona-state', ...queryArgs(ask.queries)]);
    const report = parseReport(ask.queries, r.stdout);
    expect(['dpkg', 'rpm', 'none']).toContain(report.manager);
    expect([group(report), noGroup(report)]).toEqual([true, false]);
    expect(user(report)?.groups).toContain('root');
    expect(noUser(report)).toBeUndefined();
    const me = (await execa('id', ['-un'])).stdout;
    const myGroup = (await execa('id', ['-gn'])).stdout;
    expect(file(report)).toEqual({ sha256: sha256('hello\n'), mode: '640', owner: me, group: myGroup });
    expect(hostile(report)).toBeUndefined();
    expect(existsSync(marker)).toBe(false);
    expect(absent(report)).toBeUndefined();
    expect(nft(report)).toEqual({});
  });
});

describe('desired against actual', () => {
  const want = { sha256: 'aa', mode: '0600', owner: 'demo' };
  test.each([
    ['as wanted ("600" is "0600")', { sha256: 'aa', mode: '600', owner: 'demo', group: 'x' }, undefined],
    ['absent', undefined, 'absent'],
    ['other content', { sha256: 'bb', mode: '600', owner: 'demo', group: 'x' }, 'content differs'],
    ['other mode', { sha256: 'aa', mode: '644', owner: 'demo', group: 'x' }, 'mode 644 not 0600'],
    ['other owner', { sha256: 'aa', mode: '600', owner: 'root', group: 'x' }, 'owner root not demo'],
  ] as const)('file %s', (_name, have, why) => {
    expect(fileDiff(want, have)).toBe(why);
  });

  test('a group is compared only when the profile names one', () => {
    const have = { sha256: 'aa', mode: '600', owner: 'demo', group: 'root' };
    expect(fileDiff(want, have)).toBeUndefined();
    expect(fileDiff({ ...want, group: 'demo' }, have)).toBe('group root not demo');
  });

  test('users: absent, missing groups, another shell', () => {
    expect(userDiff({ groups: ['demo'] }, undefined)).toBe('absent');
    expect(userDiff({ groups: ['demo', 'adm'] }, { groups: ['demo', 'users'] })).toBe('not in adm');
    expect(userDiff({ groups: [], shell: '/bin/sh' }, { groups: ['x'], shell: '/bin/bash' })).toBe(
      'shell /bin/bash not /bin/sh',
    );
    expect(userDiff({ groups: ['demo'] }, { groups: ['demo'], shell: '/bin/bash' })).toBeUndefined();
  });

  test('the firewall: the file, then the live table against what persona recorded', () => {
    const file = { sha256: 'rs', mode: '600', owner: 'root', group: 'root' };
    expect(firewallDiff('rs', undefined, { live: 'l', recorded: 'l' })).toBe('ruleset file absent');
    expect(firewallDiff('other', file, { live: 'l', recorded: 'l' })).toBe('ruleset file differs');
    expect(firewallDiff('rs', file, { recorded: 'l' })).toBe('table not loaded');
    expect(firewallDiff('rs', file, { live: 'l' })).toBe('no record of the table persona loaded');
    expect(firewallDiff('rs', file, { live: 'flushed', recorded: 'l' })).toBe(
      'live table differs from what persona loaded',
    );
    expect(firewallDiff('rs', file, { live: 'l', recorded: 'l' })).toBeUndefined();
  });
});

// A fake host: what configure's scripts would find and do there.
interface FileOnHost {
  content: string;
  mode: string;
  owner: string;
  group: string;
}
interface World {
  pkgs: Record<string, string>;
  hasNft: boolean;
  groups: Set<string>;
  users: Map<string, { groups: string[]; shell?: string }>;
  files: Map<string, FileOnHost>;
  nftLive?: string;
  ran: string[][];
  /** The arguments of the last apt-get install. */
  installArgs?: string[];
}

const freshWorld = (): World => ({
  pkgs: { rsync: '3.2.7-1' },
  hasNft: false,
  groups: new Set(['root']),
  users: new Map([['root', { groups: ['root'], shell: '/bin/bash' }]]),
  files: new Map(),
  ran: [],
});

const ok = (stdout = ''): ExecResult => ({ exitCode: 0, stdout, stderr: '', durationMs: 1 });
const home = (user: string) => (user === 'root' ? '/root' : `/home/${user}`);
const octal = (mode: string) => Number.parseInt(mode, 8).toString(8);

function report(w: World, args: string[]): string {
  const out = ['manager dpkg', `nft ${w.hasNft ? 1 : 0}`];
  const file = (i: number, kind: string, path: string) => {
    const f = w.files.get(path);
    if (f) out.push(`r ${i} ${kind} ${sha256(f.content)} ${f.mode} ${f.owner} ${f.group}`);
  };
  for (let i = 0, a = 0; a < args.length; i++) {
    const kind = args[a++]!;
    if (kind === 'pkg') {
      const v = w.pkgs[args[a++]!];
      if (v) out.push(`r ${i} pkg ${v}`);
    } else if (kind === 'group') {
      if (w.groups.has(args[a++]!)) out.push(`r ${i} group`);
    } else if (kind === 'user') {
      const u = w.users.get(args[a++]!);
      if (u) out.push(`r ${i} user ${u.groups.join(',')} ${u.shell ?? ''}`);
    } else if (kind === 'file') file(i, 'file', args[a++]!);
    else if (kind === 'akeys') {
      const name = args[a++]!;
      if (w.users.has(name)) file(i, 'akeys', `${home(name)}/.ssh/authorized_keys`);
    } else if (kind === 'nft') {
      const record = w.files.get(args[a + 1]!)?.content.trim();
      out.push(`r ${i} nft ${w.nftLive ?? '-'} ${record ?? '-'}`);
      a += 2;
    } else throw new Error(`unknown query ${kind}`);
  }
  return out.join('\n');
}

function fakeSsh(w: World) {
  const run = async (_t: SshTarget, argv: readonly string[], options: ExecOptions = {}) => {
    const [, , , name, ...args] = argv;
    if (argv[0] === 'sh' && argv[1] === '-c') {
      switch (name) {
        case 'persona-state':
          return ok(report(w, args));
        case 'persona-write': {
          const [path, mode, owner] = args as [string, string, string];
          const [o, g = 'root'] = owner.split(':');
          w.files.set(path, { content: options.input ?? '', mode: octal(mode), owner: o!, group: g });
          return ok();
        }
        case 'persona-nft': {
          if (!w.hasNft) return { ...ok(), exitCode: 127, stderr: 'nft: not found' };
          const [path, , record] = args as [string, string, string];
          w.nftLive = sha256(`loaded ${w.files.get(path)!.content}`);
          w.files.set(record, { content: `${w.nftLive}\n`, mode: '600', owner: 'root', group: 'root' });
          return ok();
        }
        case 'persona-group':
          w.groups.add(args[0]!);
          return ok();
        case 'persona-user': {
          const [user, shell, groups] = args as [string, string, string];
          w.groups.add(user);
          const have = w.users.get(user) ?? { groups: [user] };
          w.users.set(user, {
            groups: [...new Set([...have.groups, ...groups.split(',').filter(Boolean)])],
            ...(shell ? { shell } : have.shell ? { shell: have.shell } : {}),
          });
          return ok();
        }
        case 'persona-authorized-keys': {
          const user = args[0]!;
          const content = options.input ?? '';
          w.files.set(`${home(user)}/.ssh/authorized_keys`, {
            content,
            mode: '600',
            owner: user,
            group: user,
          });
          return ok();
        }
        case 'persona-apt-lists-age':
          return ok('999999\n');
        case 'persona-packages':
          return ok(['manager dpkg', ...Object.entries(w.pkgs).map(([n, v]) => `pkg ${n} ${v}`)].join('\n'));
      }
    }
    if (argv.includes('apt-get') && argv.includes('install')) {
      w.installArgs = [...argv];
      for (const spec of argv.filter((a) => /^[a-z0-9][a-z0-9+.-]*(=.*)?$/.test(a) && a !== 'install')) {
        if (['env', 'apt-get'].includes(spec)) continue;
        const [n, v = '1.0'] = spec.split('=');
        w.pkgs[n!] = v;
        if (n === 'nftables') w.hasNft = true;
      }
      return ok();
    }
    if (argv.includes('apt-get')) return ok(); // update
    w.ran.push([...argv]);
    return ok();
  };
  return { run, exec: run };
}

const SECRET = 'k3y-VALUE-never-shown';

function configureContext(w: World, over: { env?: NodeJS.ProcessEnv } = {}) {
  const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
  raw.security_profile.encryption_keys[0].secret = 'env:DEMO_SESSION_KEY';
  raw.security_profile.users[0].authorized_keys = [
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOq0000000000000000000000000000000000000000 ops',
  ];
  raw.deploy.install = [['systemctl', 'daemon-reload']];
  raw.hooks = {
    pre_configure: [{ run: ['echo', 'pre', '{host}'] }],
    post_configure: [{ run: ['echo', 'post'] }],
  };
  const profile = validateProfileValue('demo-web.json', raw, 'demo-web');
  const host = (name: string): InventoryHost => ({ name, address: name, labels: {}, apps: [] });
  const checkpoints: string[] = [];
  const ctx = {
    journal: { run_id: 'r1', options: { force_no_fence: false, strategy: 'best-fit' }, steps: [] } as never,
    profile,
    failed: host('lab-1'),
    target: host('lab-2'),
    ssh: fakeSsh(w) as never,
    backend: { get: async () => undefined, describe: 'test store' } as never,
    redactor: { add: () => {} } as never,
    signal: new AbortController().signal,
    stateDir: tempDir('persona-state-'),
    env: over.env ?? { DEMO_SESSION_KEY: SECRET },
    findHost: host,
    previous: () => undefined,
    checkpoint: async (name: string) => {
      checkpoints.push(name);
    },
    log: () => {},
    now: () => new Date(),
  } as Partial<StepContext> as StepContext;
  return { ctx, checkpoints };
}

/** What the engine does, in short: apply the plan's actions, plan again, conclude. */
async function converge(ctx: StepContext) {
  const first = await configureStep.plan(ctx);
  expect(first.blocked).toBeUndefined();
  const applied = new Map<string, StepOutputs>();
  for (const a of first.actions) applied.set(a.id, (await a.apply(ctx)) ?? {});
  const final = await configureStep.plan(ctx);
  const outputs = await configureStep.conclude(ctx, { plan: final, applied });
  for (const a of final.after ?? []) applied.set(a.id, (await a.apply(ctx)) ?? {});
  return { first, final, applied, outputs };
}

const ids = (actions: Action[]) => actions.map((a) => a.id);
const observable = (plan: StepPlan) => plan.actions.filter((a) => a.observable);

describe('configure plans what differs, and a second plan sees it done', () => {
  test('a fresh host: every part planned, in order; after the actions only the once-per-run ones remain', async () => {
    const w = freshWorld();
    const { ctx, checkpoints } = configureContext(w);
    const { first, final, outputs } = await converge(ctx);
    expect(ids(first.actions)).toEqual([
      'hook:pre_configure:0',
      'packages',
      'firewall',
      'group:demo',
      'user:demo',
      'authorized_keys:demo',
      'key:session-key',
      'file:/opt/demo-web/handler.sh',
      'install:0',
    ]);
    expect(ids(first.after ?? [])).toEqual(['hook:post_configure:0']);
    expect(first.actions.find((a) => a.id === 'packages')!.title).toBe(
      'install on lab-2: socat=1.7.4.4-2 nftables',
    );
    expect(first.actions.filter((a) => !a.observable).map((a) => a.id)).toEqual([
      'hook:pre_configure:0',
      'install:0',
    ]);
    expect(checkpoints).toEqual(['after-packages', 'after-security']);

    expect(observable(final)).toEqual([]);
    expect(ids(final.actions)).toEqual(['hook:pre_configure:0', 'install:0']);
    expect(final.notes).toContain('all packages already present on lab-2');
    expect(first.notes).toContain('secret env:DEMO_SESSION_KEY for key session-key: available');
    expect(w.ran).toEqual([
      ['echo', 'pre', 'lab-2'],
      ['systemctl', 'daemon-reload'],
      ['echo', 'post'],
    ]);
    expect(outputs).toMatchObject({
      packages: {
        installed: ['socat=1.7.4.4-2', 'nftables'],
        already_present: ['rsync'],
        versions: { socat: '1.7.4.4-2', rsync: '3.2.7-1', nftables: '1.0' },
      },
      firewall: { rules: 2, table: 'inet persona_demo_web', loaded: true },
      security: {
        groups: ['demo'],
        users: [{ name: 'demo', groups: ['demo'], authorized_keys: 1 }],
        keys: [
          {
            name: 'session-key',
            path: '/etc/demo-web/session.key',
            owner: 'demo',
            from: 'env',
            changed: true,
          },
        ],
      },
      deploy: { files: [{ path: '/opt/demo-web/handler.sh', changed: true }], install_commands: 1 },
      hooks: ['target: echo pre lab-2'],
    });
    expect(w.files.get('/etc/demo-web/session.key')).toMatchObject({
      content: SECRET,
      mode: '600',
      owner: 'demo',
    });
  });

  test('the secret is in no title, note, fact or output', async () => {
    const { ctx } = configureContext(freshWorld());
    const { first, final, outputs, applied } = await converge(ctx);
    const text = JSON.stringify([
      [...first.actions, ...(first.after ?? [])].map((a) => a.title),
      first.notes,
      first.facts,
      final.facts,
      outputs,
      [...applied.values()],
    ]);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(sha256(SECRET));
  });

  test('a configured host: nothing observable to do; the outputs say nothing changed', async () => {
    const w = freshWorld();
    await converge(configureContext(w).ctx);
    const { ctx, checkpoints } = configureContext(w);
    const plan = await configureStep.plan(ctx);
    expect(observable(plan)).toEqual([]);
    expect(checkpoints).toEqual([]);
    const outputs = await configureStep.conclude(ctx, { plan, applied: new Map() });
    expect(outputs).toMatchObject({
      packages: { installed: [], already_present: ['socat=1.7.4.4-2', 'rsync', 'nftables'] },
      firewall: { loaded: false },
      security: { keys: [{ changed: false }] },
      deploy: { files: [{ changed: false }] },
    });
  });

  test('a flushed or deleted table is reloaded, though the ruleset file is unchanged', async () => {
    const w = freshWorld();
    await converge(configureContext(w).ctx);
    w.nftLive = sha256('flushed');
    let plan = await configureStep.plan(configureContext(w).ctx);
    expect(ids(observable(plan))).toEqual(['firewall']);
    expect(plan.actions.find((a) => a.id === 'firewall')!.title).toMatch(
      /live table differs from what persona loaded/,
    );
    delete w.nftLive;
    plan = await configureStep.plan(configureContext(w).ctx);
    expect(plan.actions.find((a) => a.id === 'firewall')!.title).toMatch(/table not loaded/);
    await plan.actions.find((a) => a.id === 'firewall')!.apply(configureContext(w).ctx);
    expect(observable(await configureStep.plan(configureContext(w).ctx))).toEqual([]);
  });

  test('drift in a key mode, a group membership, authorized_keys and a deploy file is each planned', async () => {
    const w = freshWorld();
    await converge(configureContext(w).ctx);
    w.files.get('/etc/demo-web/session.key')!.mode = '644';
    w.users.get('demo')!.groups = ['users'];
    w.files.get('/home/demo/.ssh/authorized_keys')!.content = 'ssh-rsa intruder\n';
    w.files.get('/opt/demo-web/handler.sh')!.owner = 'demo';
    const plan = await configureStep.plan(configureContext(w).ctx);
    const titles = Object.fromEntries(observable(plan).map((a) => [a.id, a.title]));
    expect(Object.keys(titles)).toEqual([
      'user:demo',
      'authorized_keys:demo',
      'key:session-key',
      'file:/opt/demo-web/handler.sh',
    ]);
    expect(titles['user:demo']).toMatch(/not in demo/);
    expect(titles['authorized_keys:demo']).toMatch(/content differs/);
    expect(titles['key:session-key']).toMatch(/mode 644 not 0600/);
    expect(titles['file:/opt/demo-web/handler.sh']).toMatch(/owner demo not root/);
  });

  test('the conclusion fails while anything observable is still planned', async () => {
    const { ctx } = configureContext(freshWorld());
    const plan = await configureStep.plan(ctx);
    await expect(configureStep.conclude(ctx, { plan, applied: new Map() })).rejects.toThrow(
      /lab-2 is not configured as the profile says: install on lab-2/,
    );
  });

  test('a secret that cannot be read blocks the step before any action', async () => {
    const w = freshWorld();
    const { ctx } = configureContext(w, { env: {} });
    const plan = await configureStep.plan(ctx);
    expect(plan.blocked?.message).toMatch(/secret env:DEMO_SESSION_KEY .*not set/);
    expect(ids(plan.actions)).not.toContain('key:session-key');
    expect(w.ran).toEqual([]);
  });

  test('a deploy file with a group and a 2755 mode is written owner:group; a second plan finds it so', async () => {
    const w = freshWorld();
    const { ctx } = configureContext(w);
    const file = ctx.profile.deploy.files[0]!;
    file.group = 'www-data';
    file.mode = '2755';
    const { first, final } = await converge(ctx);
    const title = first.actions.find((a) => a.id === `file:${file.path}`)!.title;
    expect(title).toBe(`write ${file.path} (mode 2755, owner root:www-data) on lab-2: absent`);
    expect(w.files.get(file.path)).toMatchObject({ mode: '2755', owner: 'root', group: 'www-data' });
    expect(ids(observable(final))).toEqual([]);
    w.files.get(file.path)!.group = 'root';
    const drift = await configureStep.plan(ctx);
    expect(drift.actions.find((a) => a.id === `file:${file.path}`)?.title).toMatch(
      /: group root not www-data$/,
    );
  });

  test('packages: a glob and a minimum met by what is installed plan nothing; apt-get is asked by name for a minimum', async () => {
    const w = freshWorld();
    w.pkgs.socat = '1.7.4.4-2';
    w.pkgs.nftables = '1.0.6-2';
    w.hasNft = true;
    const { ctx } = configureContext(w);
    ctx.profile.software_stack = ['socat=1.7.*', 'rsync>=3.2', 'nftables>=1.0~rc1'];
    expect(ids((await configureStep.plan(ctx)).actions)).not.toContain('packages');
    ctx.profile.software_stack = ['socat=1.8.*', 'rsync>=3.3'];
    const plan = await configureStep.plan(ctx);
    const install = plan.actions.find((a) => a.id === 'packages')!;
    expect(install.title).toBe('install on lab-2: socat=1.8.* rsync>=3.3');
    await install.apply(ctx).catch(() => undefined);
    expect(w.installArgs?.slice(-3)).toEqual(['--', 'socat=1.8.*', 'rsync']);
  });

  test("a secret outside the run's allowed_sources blocks the step before any action, saying how to allow it", async () => {
    const { ctx } = configureContext(freshWorld());
    const plan = await configureStep.plan({ ...ctx, allowedSources: ['env:BILLING_*'] });
    expect(plan.blocked?.message).toBe(
      "secret env:DEMO_SESSION_KEY (security_profile key session-key): not read: it is not in the allowed secret sources (env:BILLING_*): add a pattern for it to allowed_sources in persona's config file (or PERSONA_ALLOWED_SOURCES)",
    );
    const allowed = await configureStep.plan({ ...ctx, allowedSources: ['env:DEMO_*'] });
    expect(allowed.blocked).toBeUndefined();
  });

  test('without nft and without nftables in the stack, the firewall blocks the step', async () => {
    const w = freshWorld();
    const { ctx } = configureContext(w);
    const stack = ctx.profile.software_stack;
    stack.splice(stack.indexOf('nftables'), 1);
    const plan = await configureStep.plan(ctx);
    expect(plan.blocked).toMatchObject({ message: 'lab-2 has no nft: the firewall rules cannot be applied' });
  });
});

/** Root with nft, in a network namespace of its own (so this machine's firewall is never touched). */
const canNft = async () =>
  process.getuid?.() === 0 &&
  (await execa('unshare', ['-n', 'nft', 'list', 'tables'], { reject: false }).catch(() => ({ exitCode: 1 })))
    .exitCode === 0;

describe('the firewall, for real, in a network namespace', async () => {
  test.runIf(await canNft())(
    'the digest recorded when loading is the one the state report sees; a flushed table is not',
    async () => {
      const { ctx } = configureContext(freshWorld());
      const dir = tempDir('persona-nft-');
      const ruleset = join(dir, 'demo-web.nft');
      const record = join(dir, 'demo-web.listing.sha256');
      writeFileSync(ruleset, nftRuleset(ctx.profile));
      const ask = new Ask();
      const nft = ask.nft('persona_demo_web', record);
      const state = `sh -c "$STATE" persona-state ${queryArgs(ask.queries).join(' ')}`;
      const driver = [
        'set -e',
        'sh -c "$LOAD" persona-nft "$1" persona_demo_web "$2"',
        state,
        'echo ---',
        'nft flush table inet persona_demo_web',
        state,
        'echo ---',
        'sh -c "$LOAD" persona-nft "$1" persona_demo_web "$2"',
        state,
      ].join('\n');
      const r = await execa('unshare', ['-n', 'sh', '-c', driver, 'driver', ruleset, record], {
        env: { ...process.env, LOAD: LOAD_NFT, STATE: STATE_SCRIPT },
      });
      const [loaded, flushed, reloaded] = r.stdout
        .split('---')
        .map((out) => nft(parseReport(ask.queries, out)));
      expect(loaded!.live).toMatch(/^[0-9a-f]{64}$/);
      expect(loaded!.recorded).toBe(loaded!.live);
      expect(flushed!.recorded).toBe(loaded!.live);
      expect(flushed!.live).not.toBe(flushed!.recorded);
      expect(reloaded).toEqual(loaded);
    },
  );
});
