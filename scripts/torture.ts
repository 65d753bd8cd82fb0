/**
 * `npm run torture -- --runs N`: the built CLI against the real lab, under the failures issue 10 names.
 *
 *   1. kill:    N recoveries, each SIGKILLed (whole process group) at random moments, resumed until the run
 *               succeeds, every resume raced by a second resume. Then: data on the target byte-identical to the
 *               source with owner and mode, switch never without fence evidence, never two drivers at once.
 *   2. zombie:  the lock holder SIGSTOPped past its TTL, another driver takes over and finishes, then SIGCONT:
 *               the zombie writes no journal, no store key, no HAProxy state, runs no remote command, exits 5.
 *   3. etcd:    etcd killed in the middle of a run: exit 5 with a resume hint; after etcd returns, resume finishes.
 *   4. enospc:  the state directory on a tiny tmpfs that fills up: a clear error naming it, the journal intact.
 *   5. secrets: after every run, no secret value of the profile in journals, store keys, stdout, stderr, --json.
 *
 * Writes its figures to docs/RELIABILITY.md (not with --quick). Exit 0 when every invariant held, 1 when one
 * broke (each is printed with its run and why), 2 usage / not root / a program missing.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runScript, ScriptError } from './script-main.js';
import {
  callsOf,
  type Done,
  filesUnder,
  haproxyServers,
  labDir,
  labDown,
  labFail,
  labReset,
  labState,
  log,
  manifest,
  onHost,
  type Proc,
  personaBin,
  repo,
  requireBinaries,
  run,
  type SshCall,
  secretHits,
  sleep,
  sshCalls,
  sshWrapper,
  start,
  within,
} from './torture-lib.js';

const USAGE = `usage: npm run torture [-- OPTIONS]   (as root: it drives the lab, test/lab)
  --runs N      recoveries killed at random moments and resumed (default 50)
  --quick       the CI version: one kill per recovery, docs/RELIABILITY.md left alone
  --only LIST   scenarios to run, of kill,zombie,etcd,enospc (default all)
  --seed S      random seed (default: the time), printed so a failure can be replayed
  --keep        leave the lab up at the end
exit code: 0 every invariant held, 1 one broke (printed with its run and why), 2 usage, not root, program missing`;

const TTL_S = 6;
const LOCK_HELD = 4;
const STEP_FAILED = 5;
const DATA = '/srv/demo-web/data';

interface Options {
  runs: number;
  quick: boolean;
  only: Set<string>;
  seed: number;
  keep: boolean;
}

function parseOptions(argv: string[]): Options | string {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string' },
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      seed: { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (v.help) return USAGE;
  const runs = Number(v.runs ?? 50);
  const only = new Set((v.only ?? 'kill,zombie,etcd,enospc').split(','));
  const seed = Number(v.seed ?? Date.now() % 1_000_000);
  if (!Number.isInteger(runs) || runs < 0) return `torture: --runs must be an integer ≥ 0\n${USAGE}`;
  if ([...only].some((s) => !['kill', 'zombie', 'etcd', 'enospc'].includes(s)))
    return `torture: --only takes kill, zombie, etcd, enospc\n${USAGE}`;
  return { runs, quick: v.quick, only, seed, keep: v.keep };
}

/** mulberry32: a seeded generator, so a failing sequence of kill moments can be replayed with --seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Workspaces: a store, a state directory, secrets with known values, the ssh wrapper, everything persona printed.

/** Values the profile references; each must never appear in anything persona writes or prints. */
function makeSecrets(): Record<string, string> {
  const b64 = randomBytes(96).toString('base64');
  return {
    TORTURE_SHORT: 'Q~Z',
    TORTURE_QUOTED: `q"u'o\\te$d\`${randomBytes(6).toString('hex')}\\n"end`,
    TORTURE_PEM: `-----BEGIN PRIVATE KEY-----\n${b64.slice(0, 64)}\n${b64.slice(64)}\n-----END PRIVATE KEY-----`,
    TORTURE_PLAIN: `plain-${randomBytes(12).toString('hex')}`,
  };
}

interface Workspace {
  name: string;
  root: string;
  store: string;
  state: string;
  storeUrl: string;
  env: Record<string, string>;
  secrets: Record<string, string>;
  sshLog: string;
  profileFile: string;
  /** Everything any persona process of this workspace printed, for the secrets grep. */
  outputs: Array<{ where: string; text: string }>;
}

let realSsh = '/usr/bin/ssh';
const roots: string[] = [];

function workspace(name: string, opts: { storeUrl?: string; state?: string } = {}): Workspace {
  const root = mkdtempSync(join(tmpdir(), `persona-torture-${name}-`));
  roots.push(root);
  const store = join(root, 'store');
  const state = opts.state ?? join(root, 'state');
  const secrets = makeSecrets();
  const secretsDir = join(root, 'secrets');
  mkdirSync(secretsDir, { mode: 0o700 });
  writeFileSync(join(secretsDir, 'pem.key'), secrets.TORTURE_PEM!, { mode: 0o600 });
  writeFileSync(join(secretsDir, 'plain.key'), secrets.TORTURE_PLAIN!, { mode: 0o600 });
  // The lab's own session key is a secret of this profile too.
  secrets.SESSION_KEY = readFileSync(join(labDir, 'secrets/demo-web-session.key'), 'utf8').trim();
  const profile = JSON.parse(readFileSync(join(repo, 'profiles/demo-web.json'), 'utf8'));
  const key = (n: string, secret: string) => ({
    name: n,
    secret,
    path: `/etc/demo-web/${n}.key`,
    owner: 'demo',
    mode: '0600',
  });
  profile.security_profile.encryption_keys.push(
    key('short', 'env:TORTURE_SHORT'),
    key('quoted', 'env:TORTURE_QUOTED'),
    key('pem', `file:${join(secretsDir, 'pem.key')}`),
    key('plain', `file:${join(secretsDir, 'plain.key')}`),
  );
  // A health check whose output is every secret: step outputs and logs must redact it.
  profile.health_checks.push({
    name: 'prints-secrets',
    type: 'command',
    command: ['sh', '-c', 'cat /etc/demo-web/*.key; echo; printenv | grep -i torture; true'],
  });
  cpSync(join(repo, 'profiles'), store, { recursive: true });
  const profileFile = join(store, 'demo-web.json');
  writeFileSync(profileFile, JSON.stringify(profile, null, 2));
  const binDir = join(root, 'bin');
  mkdirSync(binDir);
  const sshLog = join(root, 'ssh.log');
  sshWrapper(binDir, sshLog, realSsh);
  const storeUrl = opts.storeUrl ?? `file:${store}`;
  return {
    name,
    root,
    store,
    state,
    storeUrl,
    secrets,
    sshLog,
    profileFile,
    outputs: [],
    env: {
      PATH: `${binDir}:${process.env.PATH}`,
      CI: 'true',
      NO_COLOR: '1',
      PERSONA_STORE: storeUrl,
      PERSONA_STATE_DIR: state,
      PERSONA_INVENTORY: labState().inventory,
      PERSONA_LOCK_TTL: String(TTL_S),
      TORTURE_SHORT: secrets.TORTURE_SHORT!,
      TORTURE_QUOTED: secrets.TORTURE_QUOTED!,
    },
  };
}

/** persona in its own process group; its output is kept for the secrets grep when it ends. */
function persona(ws: Workspace, args: string[], label: string): Proc {
  const p = start(personaBin, args, ws.env);
  void p.done.then(
    (d) =>
      ws.outputs.push(
        { where: `stdout of ${label}`, text: d.stdout },
        { where: `stderr of ${label}`, text: d.stderr },
      ),
    () => undefined,
  );
  return p;
}

async function personaDone(ws: Workspace, args: string[], label: string, timeoutMs = 240_000): Promise<Done> {
  const p = persona(ws, args, label);
  const d = await within(p, timeoutMs);
  if (d) return d;
  p.group('SIGKILL');
  throw new Invariant(`${label}: persona ${args.join(' ')} did not finish within ${timeoutMs / 1000} s`);
}

interface Journal {
  run_id: string;
  status: string;
  target_host: { name: string };
  driver: { pid: number };
  options: { force_no_fence?: boolean };
  steps: Array<{ kind: string; status: string; outputs?: { evidence?: { fenced?: boolean } } }>;
}

function runIds(ws: Workspace): string[] {
  const dir = join(ws.state, 'runs');
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.json'))
        .map((f) => f.slice(0, -5))
    : [];
}
const journalPath = (ws: Workspace, id: string) => join(ws.state, 'runs', `${id}.json`);
function journal(ws: Workspace, id: string): Journal | undefined {
  try {
    return JSON.parse(readFileSync(journalPath(ws, id), 'utf8'));
  } catch {
    return undefined;
  }
}

/** Which step was running: from the journal a killed driver left. */
function killPoint(j: Journal | undefined): string {
  if (!j) return 'before the journal';
  if (j.status === 'succeeded') return 'after success';
  const running = j.steps.find((s) => s.status === 'running');
  if (running) return running.kind;
  const lastDone = j.steps.filter((s) => s.status === 'succeeded').at(-1);
  return lastDone ? `after ${lastDone.kind}` : 'before fence';
}

class Invariant extends Error {}

// ---------------------------------------------------------------------------------------------------------------
// Checks shared by the scenarios.

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Invariant(`timed out (${ms / 1000} s) waiting for ${what}`);
    await sleep(25);
  }
}

/** Make the data interesting for owner and mode, then return its manifest on lab-1: the source of truth. */
async function seedSource(): Promise<string> {
  const r = await onHost(
    'lab-1',
    `set -e; cd ${DATA}; install -d -o demo -g demo -m 2750 private; ` +
      `head -c 70000 /dev/urandom > private/owned.bin; chown demo:demo private/owned.bin; chmod 0640 private/owned.bin; ` +
      `printf 'ro\\n' > 'read only.txt'; chmod 0400 'read only.txt'; ` +
      `printf 'x\\n' > tool.sh; chown root:demo tool.sh; chmod 0750 tool.sh`,
  );
  if (r.code !== 0)
    throw new ScriptError(`seeding owner/mode test files on lab-1 failed: ${r.stderr.trim()}`, 1);
  return await manifest('lab-1', DATA);
}

function diffLines(a: string, b: string): string {
  const as = new Set(a.split('\n'));
  const bs = new Set(b.split('\n'));
  const only = (x: Set<string>, y: Set<string>) => [...x].filter((l) => !y.has(l)).slice(0, 3);
  return `source only: ${JSON.stringify(only(as, bs))}; target only: ${JSON.stringify(only(bs, as))}`;
}

/** The end state of a succeeded run: identical data, fence evidence before switch, traffic from the target. */
async function checkSucceeded(
  ws: Workspace,
  id: string,
  source: string,
  problems: string[],
): Promise<boolean> {
  const j = journal(ws, id);
  if (j?.status !== 'succeeded') {
    problems.push(`run ${id} is ${j?.status ?? 'missing'}, not succeeded`);
    return false;
  }
  fenceInvariant(j, problems);
  const target = j.target_host.name;
  const there = await manifest(target, DATA);
  const identical = there === source;
  if (!identical) problems.push(`data on ${target} differs from lab-1's: ${diffLines(source, there)}`);
  // The secrets were really used (so the grep below is not vacuous): each key file holds its value.
  for (const [name, file] of [
    ['TORTURE_SHORT', 'short'],
    ['TORTURE_QUOTED', 'quoted'],
    ['TORTURE_PEM', 'pem'],
    ['TORTURE_PLAIN', 'plain'],
  ] as const) {
    const got = await onHost(target, `cat /etc/demo-web/${file}.key`);
    if (got.stdout.replace(/\n$/, '') !== ws.secrets[name]!.replace(/\n$/, ''))
      problems.push(`the key ${file} on ${target} does not hold the secret ${name} (exit ${got.code})`);
  }
  // admin bits: 0x01 forced maintenance, 0x02 inherited, 0x20 forced drain (0x04, "disabled" in the config, stays)
  const servers = await haproxyServers(labState());
  const admin = (h: string) => Number(/admin=(\d+)/.exec(servers[h] ?? '')?.[1] ?? -1);
  if ((admin('lab-1') & 0x01) !== 1)
    problems.push(`HAProxy: lab-1 is not in maintenance (${servers['lab-1']})`);
  if ((admin(target) & 0x23) !== 0 || !/op=2\b/.test(servers[target] ?? ''))
    problems.push(`HAProxy: ${target} is not ready and up (${servers[target]})`);
  return identical;
}

function fenceInvariant(j: Journal, problems: string[]): void {
  const sw = j.steps.find((s) => s.kind === 'switch');
  const fence = j.steps.find((s) => s.kind === 'fence');
  if (sw?.status === 'succeeded' && !j.options.force_no_fence && fence?.outputs?.evidence?.fenced !== true)
    problems.push(
      `switch succeeded without fence evidence (fence ${fence?.status}, evidence ${JSON.stringify(fence?.outputs?.evidence)})`,
    );
}

/** The store's keys and values: the file store's directory, or everything in etcd. */
async function storeTexts(ws: Workspace): Promise<Array<{ where: string; text: string }>> {
  if (ws.storeUrl.startsWith('file:')) return filesUnder(ws.store);
  const r = await run('etcdctl', ['--endpoints', labState().etcd.endpoint, 'get', '--prefix', '']);
  return [{ where: 'etcd (etcdctl get --prefix "")', text: r.stdout }];
}

async function secretsCheck(ws: Workspace, problems: string[]): Promise<number> {
  const texts = [...filesUnder(ws.state), ...(await storeTexts(ws)), ...ws.outputs];
  const hits = secretHits(ws.secrets, texts);
  for (const h of hits) problems.push(h);
  return hits.length;
}

// ---------------------------------------------------------------------------------------------------------------
// Scenario 1: SIGKILL at random moments, resumes raced by a second resume.

interface KillRun {
  run: number;
  kills: string[];
  resumes: number;
  races: number;
  identical: boolean;
  secrets: number;
  seconds: number;
  problems: string[];
}

/** Two resumes at once; at most one acts, the other gets the lock error and touches nothing. */
async function racedResume(
  ws: Workspace,
  id: string,
  killAfterMs: number | undefined,
  label: string,
  problems: string[],
): Promise<{ killedAt?: string; codes: Array<number | null> }> {
  const args = ['recover', '--resume', id, '--yes', '--json'];
  const a = persona(ws, args, `${label} resume A`);
  const b = persona(ws, args, `${label} resume B`);
  let killedAt: string | undefined;
  if (killAfterMs !== undefined) {
    const early = await Promise.race([
      Promise.all([a.done, b.done]),
      sleep(killAfterMs).then(() => undefined),
    ]);
    if (!early) {
      a.group('SIGKILL');
      b.group('SIGKILL');
      killedAt = killPoint(journalAfterKill(ws, id));
    }
  }
  const [ra, rb] = await Promise.all([within(a, 300_000), within(b, 300_000)]);
  if (!ra || !rb) {
    a.group('SIGKILL');
    b.group('SIGKILL');
    problems.push(`${label}: a resume did not finish in 300 s`);
    return { codes: [ra?.code ?? null, rb?.code ?? null] };
  }
  if (killedAt) return { killedAt, codes: [ra.code, rb.code] };
  // Never two drivers at once: the remote commands of A and B do not overlap in time.
  const calls = sshCalls(ws.sshLog);
  const span = (c: SshCall[]) => (c.length ? [c[0]!.at, c.at(-1)!.at] : undefined);
  const [sa, sb] = [span(callsOf(calls, a.pid)), span(callsOf(calls, b.pid))];
  if (sa && sb && sa[0]! <= sb[1]! && sb[0]! <= sa[1]!)
    problems.push(`${label}: both resumes ran remote commands at once (A ${sa}, B ${sb})`);
  for (const [r, p] of [
    [ra, a],
    [rb, b],
  ] as const) {
    if (r.code === LOCK_HELD) {
      if (!/locked by/.test(r.stderr))
        problems.push(`${label}: exit 4 without naming the lock holder: ${r.stderr.trim()}`);
      if (callsOf(calls, p.pid).length)
        problems.push(`${label}: the resume that lost the lock ran remote commands`);
      if (journal(ws, id)?.driver.pid === p.pid)
        problems.push(`${label}: the resume that lost the lock wrote the journal`);
    } else if (r.code !== 0 && r.code !== STEP_FAILED)
      problems.push(
        `${label}: resume exited ${r.code ?? r.signal}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`,
      );
    if (/internal error|this is a bug|\n\s+at \S+ \(/.test(r.stderr))
      problems.push(`${label}: internal error: ${r.stderr.trim()}`);
  }
  return { codes: [ra.code, rb.code] };
}

const journalAfterKill = (ws: Workspace, id: string) => journal(ws, id);

async function killRun(n: number, opts: Options, random: () => number): Promise<KillRun> {
  const t0 = Date.now();
  const label = `run ${n}`;
  const problems: string[] = [];
  const result: KillRun = {
    run: n,
    kills: [],
    resumes: 0,
    races: 0,
    identical: false,
    secrets: 0,
    seconds: 0,
    problems,
  };
  await labReset();
  const ws = workspace(`kill${n}`);
  const source = await seedSource();
  await labFail('lab-1', 'app');
  const maxKills = opts.quick ? 1 : 1 + Math.floor(random() * 3);
  const windowMs = 24_000;
  let id: string | undefined;
  // The first driver, killed at a random moment of the run (it may finish first).
  for (let attempt = 0; !id && attempt < 4; attempt++) {
    const first = persona(ws, ['recover', 'lab-1', '--yes', '--json'], `${label} recover`);
    const delay = 300 + random() * windowMs;
    const done = await within(first, attempt === 0 ? delay : 300_000);
    if (!done) {
      first.group('SIGKILL');
      await first.done;
      id = runIds(ws)[0];
      result.kills.push(killPoint(id ? journal(ws, id) : undefined));
      log(`${label}: killed after ${(delay / 1000).toFixed(1)} s, in ${result.kills.at(-1)}`);
      if (!id) await sleep((TTL_S + 1) * 1000); // killed before its journal: start again once its lock lapsed
    } else {
      id = runIds(ws)[0];
      if (done.code !== 0 && !(done.code === LOCK_HELD && !id))
        problems.push(
          `${label}: recover exited ${done.code}: ${done.stderr.trim().split('\n').slice(-3).join(' | ')}`,
        );
      if (!id) await sleep((TTL_S + 1) * 1000);
    }
  }
  if (!id) {
    problems.push(`${label}: no run was ever journalled`);
    return { ...result, seconds: (Date.now() - t0) / 1000 };
  }
  for (let round = 0; journal(ws, id)?.status !== 'succeeded'; round++) {
    if (round >= 8) {
      problems.push(`${label}: run ${id} not succeeded after 8 resumes (${journal(ws, id)?.status})`);
      break;
    }
    const kill = result.kills.length < maxKills && random() < 0.6 ? 300 + random() * windowMs : undefined;
    result.resumes++;
    result.races++;
    const r = await racedResume(ws, id, kill, `${label} round ${round + 1}`, problems);
    if (r.killedAt) {
      result.kills.push(r.killedAt);
      log(`${label}: resume killed after ${((kill ?? 0) / 1000).toFixed(1)} s, in ${r.killedAt}`);
    }
    const j = journal(ws, id);
    if (j) fenceInvariant(j, problems);
  }
  // Resuming a succeeded run changes nothing.
  const before = readFileSync(journalPath(ws, id), 'utf8');
  const again = await personaDone(
    ws,
    ['recover', '--resume', id, '--yes', '--json'],
    `${label} resume after success`,
  );
  if (again.code !== 0) problems.push(`${label}: resuming the succeeded run exited ${again.code}`);
  if (readFileSync(journalPath(ws, id), 'utf8') !== before)
    problems.push(`${label}: resuming the succeeded run changed its journal`);
  result.identical = await checkSucceeded(ws, id, source, problems);
  result.secrets = await secretsCheck(ws, problems);
  result.seconds = (Date.now() - t0) / 1000;
  log(
    `${label}: ${problems.length ? `BROKEN (${problems.length})` : 'ok'} in ${result.seconds.toFixed(0)} s; kills: ${result.kills.join(', ') || 'none'}; resumes ${result.resumes}`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// Scenario 2: the zombie.

interface Snapshot {
  journal: string;
  journalMtime: number;
  store: string;
  haproxy: string;
  lab1: string;
}

async function snapshot(ws: Workspace, id: string, target: string): Promise<Snapshot> {
  const store = (await storeTexts(ws)).map((t) => `${t.where}\n${t.text}`).join('\n');
  return {
    journal: readFileSync(journalPath(ws, id), 'utf8'),
    journalMtime: statSync(journalPath(ws, id)).mtimeMs,
    store,
    haproxy: JSON.stringify(await haproxyServers(labState())),
    lab1: `${(await onHost('lab-1', 'ls -la /srv/demo-web /run/demo-web.pid 2>&1; ss -ltn')).stdout}\n${await manifest(target, DATA)}`,
  };
}

interface ZombieResult {
  stoppedIn: string;
  exit: string;
  actions: number;
  identical: boolean;
  secrets: number;
  seconds: number;
  problems: string[];
}

async function zombie(): Promise<ZombieResult> {
  const t0 = Date.now();
  const problems: string[] = [];
  await labReset();
  const ws = workspace('zombie');
  const source = await seedSource();
  await labFail('lab-1', 'app');
  const z = persona(ws, ['recover', 'lab-1', '--yes', '--json'], 'zombie');
  const id = await waitFor(
    'the first driver to reach configure',
    () => {
      if (z.exited()) throw new Invariant(`the first driver exited before configure: ${z.err().trim()}`);
      const rid = runIds(ws)[0];
      const step = rid ? journal(ws, rid)?.steps.find((s) => s.status === 'running')?.kind : undefined;
      return step === 'configure' || step === 'migrate' ? rid : undefined;
    },
    120_000,
  );
  await sleep(1000);
  z.group('SIGSTOP');
  const stoppedIn = killPoint(journal(ws, id));
  log(`zombie: pid ${z.pid} stopped in ${stoppedIn}; waiting ${TTL_S + 2} s (lock TTL ${TTL_S} s)`);
  await sleep((TTL_S + 2) * 1000);
  const t = await personaDone(ws, ['recover', '--resume', id, '--yes', '--json'], 'zombie takeover');
  if (t.code !== 0)
    problems.push(
      `the takeover driver exited ${t.code}: ${t.stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
  const target = journal(ws, id)?.target_host.name ?? 'lab-2';
  const before = await snapshot(ws, id, target);
  const contAt = Date.now();
  z.group('SIGCONT');
  const zd = await within(z, 120_000);
  if (!zd) {
    z.group('SIGKILL');
    problems.push('the zombie did not exit within 120 s of SIGCONT');
  }
  await sleep(2000);
  const after = await snapshot(ws, id, target);
  let actions = 0;
  for (const k of Object.keys(before) as Array<keyof Snapshot>)
    if (before[k] !== after[k]) {
      actions++;
      problems.push(`the zombie changed ${k === 'lab1' ? 'the hosts' : k} after SIGCONT`);
    }
  const remote = callsOf(sshCalls(ws.sshLog), z.pid).filter((c) => c.at >= contAt);
  if (remote.length) {
    actions += remote.length;
    problems.push(
      `the zombie ran ${remote.length} remote command(s) after SIGCONT: ${remote.map((c) => c.args.slice(-120)).join(' ;; ')}`,
    );
  }
  const exit = zd ? String(zd.code ?? zd.signal) : 'hung';
  if (zd && zd.code !== STEP_FAILED)
    problems.push(
      `the zombie exited ${exit}, not 5 (E_LOCK_LOST): ${zd.stderr.trim().split('\n').slice(-2).join(' | ')}`,
    );
  if (zd && !/lost the lock|E_LOCK_LOST|lock was lost/i.test(zd.stderr + zd.stdout))
    problems.push('the zombie did not say it lost the lock');
  const identical = await checkSucceeded(ws, id, source, problems);
  const secrets = await secretsCheck(ws, problems);
  const seconds = (Date.now() - t0) / 1000;
  log(
    `zombie: exit ${exit}, ${actions} action(s) after SIGCONT, ${problems.length ? 'BROKEN' : 'ok'} in ${seconds.toFixed(0)} s`,
  );
  return { stoppedIn, exit, actions, identical, secrets, seconds, problems };
}

// ---------------------------------------------------------------------------------------------------------------
// Scenario 3: etcd killed in the middle of a run.

interface EtcdResult {
  killedIn: string;
  exit: string;
  hint: boolean;
  resumed: boolean;
  identical: boolean;
  secrets: number;
  seconds: number;
  problems: string[];
}

async function etcdKill(): Promise<EtcdResult> {
  const t0 = Date.now();
  const problems: string[] = [];
  await labReset();
  const state = labState();
  const endpoint = state.etcd.endpoint.replace(/^https?:\/\//, '');
  const ws = workspace('etcd', { storeUrl: `etcd://${endpoint}/torture-${Date.now()}` });
  const seeded = await personaDone(
    ws,
    ['profile', 'set', 'demo-web', '--file', ws.profileFile, '--expect-version', '0'],
    'etcd seed',
  );
  if (seeded.code !== 0)
    throw new ScriptError(`persona profile set into etcd failed: ${seeded.stderr.trim()}`, 1);
  const source = await seedSource();
  await labFail('lab-1', 'app');
  const d = persona(ws, ['recover', 'lab-1', '--yes', '--json'], 'etcd recover');
  const id = await waitFor(
    'the run to reach configure',
    () => {
      if (d.exited()) throw new Invariant(`recover exited before configure: ${d.err().trim()}`);
      const rid = runIds(ws)[0];
      const step = rid ? journal(ws, rid)?.steps.find((s) => s.status === 'running')?.kind : undefined;
      return step === 'configure' ? rid : undefined;
    },
    120_000,
  );
  const pidFile = join(labDir, 'etcd/etcd.pid');
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  process.kill(pid, 'SIGKILL');
  const killedIn = killPoint(journal(ws, id));
  log(`etcd: killed (pid ${pid}) while ${killedIn} ran`);
  const r = await within(d, 180_000);
  if (!r) {
    d.group('SIGKILL');
    problems.push('persona did not stop within 180 s of etcd dying');
  }
  const exit = r ? String(r.code ?? r.signal) : 'hung';
  const hint = !!r && /--resume/.test(r.stderr);
  if (r && r.code !== STEP_FAILED)
    problems.push(`exit ${exit} when etcd died, not 5: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  if (r && !hint) problems.push('no resume hint (--resume) on stderr when etcd died');
  if (r && /internal error|this is a bug/.test(r.stderr))
    problems.push(`internal error when etcd died: ${r.stderr.trim()}`);
  // etcd back, as the lab started it.
  const logFd = openSync(join(labDir, 'etcd/etcd.log'), 'a');
  const again = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', logFd, logFd] });
  again.unref();
  writeFileSync(pidFile, `${again.pid}\n`);
  await waitFor(
    'etcd to answer again',
    () =>
      fetch(`${state.etcd.endpoint}/health`, { signal: AbortSignal.timeout(1000) })
        .then((x) => (x.ok ? true : undefined))
        .catch(() => undefined),
    30_000,
  );
  let resumed = false;
  for (let i = 0; i < 4 && !resumed; i++) {
    const x = await personaDone(ws, ['recover', '--resume', id, '--yes', '--json'], `etcd resume ${i + 1}`);
    resumed = x.code === 0;
    if (!resumed) log(`etcd: resume ${i + 1} exited ${x.code}: ${x.stderr.trim().split('\n').at(-1)}`);
    if (!resumed && x.code === LOCK_HELD) await sleep(TTL_S * 1000);
  }
  if (!resumed) problems.push('resume after etcd returned did not succeed');
  const identical = resumed && (await checkSucceeded(ws, id, source, problems));
  const secrets = await secretsCheck(ws, problems);
  const seconds = (Date.now() - t0) / 1000;
  log(
    `etcd: exit ${exit}, hint ${hint}, resumed ${resumed}, ${problems.length ? 'BROKEN' : 'ok'} in ${seconds.toFixed(0)} s`,
  );
  return { killedIn, exit, hint, resumed, identical, secrets, seconds, problems };
}

// ---------------------------------------------------------------------------------------------------------------
// Scenario 4: the state directory fills up.

interface EnospcResult {
  exit: string;
  clear: boolean;
  journalIntact: boolean;
  secrets: number;
  seconds: number;
  problems: string[];
}

/** The processes with a cwd or an open file under dir. */
function holders(dir: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const links = [readlinkSync(`/proc/${pid}/cwd`)];
      for (const fd of readdirSync(`/proc/${pid}/fd`)) links.push(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (links.some((l) => l.startsWith(dir)))
        out.push(
          `${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').slice(0, 160)}`,
        );
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/** umount, retried while something (an ssh master persona left) still holds it; lazily as a last resort. */
async function unmount(dir: string): Promise<void> {
  for (let i = 0; i < 4; i++) {
    const r = await run('umount', [dir]);
    if (r.code === 0) return rmSync(dir, { recursive: true, force: true });
    if (i === 0)
      log(`umount ${dir}: ${r.stderr.trim()} (retrying); held by: ${holders(dir).join('; ') || '?'}`);
    await sleep(500);
  }
  await run('umount', ['-l', dir]);
  log(`umount ${dir}: still busy after 2 s; unmounted lazily`);
}

async function enospc(needsReset: boolean): Promise<EnospcResult> {
  const t0 = Date.now();
  const problems: string[] = [];
  if (needsReset) await labReset();
  const mnt = mkdtempSync(join(tmpdir(), 'persona-torture-tmpfs-'));
  const m = await run('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', mnt]);
  if (m.code !== 0) throw new ScriptError(`mount -t tmpfs on ${mnt} failed: ${m.stderr.trim()}`, 1);
  let exit = 'not run';
  let clear = false;
  let journalIntact = false;
  let secrets = 0;
  try {
    const ws = workspace('enospc', { state: mnt });
    await labFail('lab-1', 'app');
    const d = persona(ws, ['recover', 'lab-1', '--yes', '--json'], 'enospc recover');
    // As soon as the first journal is there, fill what is left of the tmpfs.
    const id = await waitFor(
      'the first journal',
      () => {
        if (d.exited()) throw new Invariant(`recover exited before writing a journal: ${d.err().trim()}`);
        const rid = runIds(ws)[0];
        return rid && journal(ws, rid) ? rid : undefined;
      },
      120_000,
    );
    const fd = openSync(join(mnt, 'filler'), 'w');
    const block = Buffer.alloc(1024, 1);
    try {
      for (;;) writeSync(fd, block);
    } catch {
      // ENOSPC: full
    }
    try {
      for (;;) writeSync(fd, block, 0, 1);
    } catch {
      // not one byte left
    }
    const r = await within(d, 180_000);
    if (!r) {
      d.group('SIGKILL');
      problems.push('persona did not stop within 180 s of its state directory filling up');
    } else {
      exit = String(r.code ?? r.signal);
      log(`enospc: persona said: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
      const out = r.stderr + r.stdout;
      clear = out.includes(mnt) && !/internal error|this is a bug|\n\s+at \S+ \(/.test(out);
      if (r.code === 0) problems.push('the run succeeded on a full state directory (nothing was written?)');
      if (r.code === 1 || !clear)
        problems.push(
          `no clear error naming the state directory ${mnt} (exit ${exit}): ${out.trim().split('\n').slice(-3).join(' | ')}`,
        );
    }
    const j = journal(ws, id);
    journalIntact = !!j && j.run_id === id && Array.isArray(j.steps) && j.steps.length > 0;
    if (!journalIntact) problems.push(`the journal ${journalPath(ws, id)} is not intact JSON after ENOSPC`);
    secrets = await secretsCheck(ws, problems);
  } finally {
    await unmount(mnt);
  }
  const seconds = (Date.now() - t0) / 1000;
  log(
    `enospc: exit ${exit}, clear ${clear}, journal intact ${journalIntact}, ${problems.length ? 'BROKEN' : 'ok'} in ${seconds.toFixed(0)} s`,
  );
  return { exit, clear, journalIntact, secrets, seconds, problems };
}

// ---------------------------------------------------------------------------------------------------------------
// Report.

interface Report {
  command: string;
  date: string;
  seed: number;
  kills: KillRun[];
  zombie?: ZombieResult;
  etcd?: EtcdResult;
  enospc?: EnospcResult;
  seconds: number;
}

function table(r: Report): string {
  const k = r.kills;
  const points = new Map<string, number>();
  for (const p of k.flatMap((x) => x.kills)) points.set(p, (points.get(p) ?? 0) + 1);
  const sum = (f: (x: KillRun) => number) => k.reduce((a, x) => a + f(x), 0);
  const secrets =
    sum((x) => x.secrets) + (r.zombie?.secrets ?? 0) + (r.etcd?.secrets ?? 0) + (r.enospc?.secrets ?? 0);
  const broken = k.filter((x) => x.problems.length).length;
  const mean = k.length ? sum((x) => x.seconds) / k.length : 0;
  const rows: Array<[string, string]> = [
    ['date', r.date],
    ['command', `\`${r.command}\` (seed ${r.seed})`],
    [
      'recoveries (runs)',
      `${k.length}, ${broken} with a broken invariant; ${mean.toFixed(0)} s per run on average`,
    ],
    ['SIGKILLs', `${sum((x) => x.kills.length)}`],
    [
      'kill points hit (step running when killed, from the journal)',
      [...points]
        .sort((a, b) => b[1] - a[1])
        .map(([p, n]) => `${p} ${n}`)
        .join(', ') || '-',
    ],
    ['resumes (each raced by a second resume)', `${sum((x) => x.resumes)}`],
    [
      'identical data (owner, mode, sha256) on the target',
      `${k.filter((x) => x.identical).length} / ${k.length}`,
    ],
    ['secrets found in journals, store, stdout, stderr, --json', `${secrets}`],
    [
      'zombie actions after SIGCONT',
      r.zombie ? `${r.zombie.actions} (stopped in ${r.zombie.stoppedIn}, exit ${r.zombie.exit})` : 'not run',
    ],
    [
      'etcd killed mid-run',
      r.etcd
        ? `killed in ${r.etcd.killedIn}: exit ${r.etcd.exit}, resume hint ${r.etcd.hint ? 'yes' : 'no'}, resumed after etcd returned: ${r.etcd.resumed ? 'yes' : 'no'}, data identical: ${r.etcd.identical ? 'yes' : 'no'}`
        : 'not run',
    ],
    [
      'state directory on a full tmpfs (ENOSPC)',
      r.enospc
        ? `exit ${r.enospc.exit}, clear error naming it: ${r.enospc.clear ? 'yes' : 'no'}, journal intact: ${r.enospc.journalIntact ? 'yes' : 'no'}`
        : 'not run',
    ],
    ['total time', `${(r.seconds / 60).toFixed(1)} min`],
  ];
  return ['| figure | value |', '|---|---|', ...rows.map(([a, b]) => `| ${a} | ${b} |`)].join('\n');
}

const BEGIN = '<!-- torture:begin (generated by npm run torture; do not edit) -->';
const END = '<!-- torture:end -->';

function writeReliability(text: string): void {
  const file = join(repo, 'docs/RELIABILITY.md');
  mkdirSync(join(repo, 'docs'), { recursive: true });
  const block = `${BEGIN}\n${text}\n${END}`;
  const old = existsSync(file)
    ? readFileSync(file, 'utf8')
    : '# Reliability\n\nFigures of the torture suite (`scripts/torture.ts`; `npm run torture -- --runs 50`): the built CLI ' +
      'against the lab, killed at random moments, a zombie lock holder, etcd killed mid-run, a full state ' +
      'directory, and a grep for every secret value after every run.\n\n';
  const i = old.indexOf(BEGIN);
  const j = old.indexOf(END);
  writeFileSync(
    file,
    i >= 0 && j > i ? old.slice(0, i) + block + old.slice(j + END.length) : `${old}${block}\n`,
  );
}

async function main(argv: string[]): Promise<number> {
  const options = parseOptions(argv);
  if (options === USAGE) console.log(USAGE);
  if (typeof options === 'string') {
    if (options !== USAGE) console.error(options);
    return options === USAGE ? 0 : 2;
  }
  if (process.getuid?.() !== 0)
    throw new ScriptError('must run as root (it drives the lab: namespaces, mounts)', 2);
  requireBinaries('ssh', 'rsync', 'etcd', 'etcdctl', 'haproxy', 'mount', 'umount', 'find', 'sha256sum');
  realSsh = (await run('sh', ['-c', 'command -v ssh'])).stdout.trim();
  if (!existsSync(join(repo, 'dist/src/main.js')))
    throw new ScriptError('persona is not built: run `npm run build`', 2);
  const random = rng(options.seed);
  const started = Date.now();
  const report: Report = {
    command: `npm run torture${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
    date: new Date().toISOString(),
    seed: options.seed,
    kills: [],
    seconds: 0,
  };
  log(`seed ${options.seed}; lab ${labDir}`);
  const failures: string[] = [];
  const guard = async <T extends { problems: string[] }>(
    name: string,
    f: () => Promise<T>,
  ): Promise<T | undefined> => {
    try {
      const r = await f();
      for (const p of r.problems) failures.push(`${name}: ${p}`);
      return r;
    } catch (error) {
      if (!(error instanceof Invariant)) throw error;
      failures.push(`${name}: ${error.message}`);
      return undefined;
    }
  };
  let dirty = true;
  try {
    if (options.only.has('enospc')) {
      report.enospc = await guard('enospc', () => enospc(true));
    }
    if (options.only.has('kill'))
      for (let n = 1; n <= options.runs; n++) {
        const r = await guard(`run ${n}`, () => killRun(n, options, random));
        if (r) report.kills.push(r);
      }
    if (options.only.has('zombie')) report.zombie = await guard('zombie', zombie);
    if (options.only.has('etcd')) report.etcd = await guard('etcd', etcdKill);
    dirty = false;
  } finally {
    for (const root of roots) rmSync(root, { recursive: true, force: true });
    if (!options.keep) await labDown().catch((e) => log(`lab down failed: ${(e as Error).message}`));
    else log(`lab left up (${labDir})${dirty ? ' after an error' : ''}`);
  }
  report.seconds = (Date.now() - started) / 1000;
  const text = table(report);
  console.log(text);
  if (!options.quick) {
    writeReliability(text);
    log('docs/RELIABILITY.md updated');
  }
  for (const f of failures) console.log(`BROKEN ${f}`);
  log(
    failures.length ? `${failures.length} invariant(s) broke (seed ${options.seed})` : 'every invariant held',
  );
  return failures.length ? 1 : 0;
}

process.exitCode = await runScript('torture', () => main(process.argv.slice(2)));
