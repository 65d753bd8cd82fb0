/**
 * `persona recover` when no inventory host can take the application (issue 12 §7), in-process: the real CLI,
 * engine, steps, journal and file store against fake hosts (FakeHosts; h3 exists there but in no inventory until
 * the provision command prints it), and a real provision command: a small sh script on this machine that records
 * its environment and prints the new host's inventory entry.
 */
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { validateProfileValue } from '../../src/profile/validate.js';
import { JournalStore } from '../../src/runbook/journal.js';
import type { Journal } from '../../src/runbook/types.js';
import { type FakeCommand, type FakeHostSpec, FakeHosts } from '../fakes/fake-hosts.js';
import { jsonLines, repoRoot, runInProcess, ScriptedPrompter } from '../helpers/cli.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

const APP = 'web';
const service = {
  start: ['systemctl', 'start', 'web'],
  stop: ['systemctl', 'stop', 'web'],
  status: ['systemctl', 'is-active', '--quiet', 'web'],
};
const HEALTH = ['curl', '-fsS', 'http://127.0.0.1:8080/health'];
const health: FakeCommand = {
  argv: HEALTH,
  mutates: false,
  answer: (h) => (h.running ? { stdout: 'ok\n' } : { exitCode: 7, stderr: 'curl: (7) Connection refused' }),
};
const H3 = { name: 'h3', address: '10.0.0.3', user: 'deploy', labels: { zone: 'a' } };
/** A secret of the operator's shell: the provision command must not see it. */
const TOKEN = 'consul-token-never-passed';

function profileOf(dir: string, provision?: Record<string, unknown>): Record<string, unknown> {
  return {
    id: APP,
    required_cores: 1,
    required_ram_gb: 1,
    required_storage_gb: 1,
    performance_metrics: { window_seconds: 1, monitor_seconds: 1 },
    data: { paths: [], migration: 'none' },
    deploy: { port: 8080, files: [], install: [], ...service },
    health_checks: [{ name: 'health', type: 'command', command: HEALTH }],
    traffic: {
      method: 'command',
      fence: ['touch', join(dir, 'fence-ran')],
      switch: ['touch', join(dir, 'switch-ran')],
    },
    ...(provision ? { provision } : {}),
  };
}

/** The provision command: records its environment and arguments, says something on stderr, prints `stdout`. */
function provisioner(dir: string, stdout: string, extra = ''): string {
  const file = join(dir, 'make-host');
  writeFileSync(
    file,
    `#!/bin/sh
env > '${dir}/provision-env'
printf '%s\\n' "$@" > '${dir}/provision-args'
printf '\\033]52;c;aGk=\\007creating h3 \\033[31min zone a\\n' >&2
${extra}
cat <<'EOF'
${stdout}
EOF
`,
  );
  chmodSync(file, 0o755);
  return file;
}

const fakes: FakeHosts[] = [];
afterEach(() => {
  for (const fake of fakes.splice(0))
    expect(fake.unknown.map((c) => `${c.host}: ${c.argv.join(' ')}`)).toEqual([]);
});

interface Setup {
  /** The profile's provision (command and timeout), from the script's path. */
  provision?: (script: string) => Record<string, unknown>;
  /** A persona.yaml in the working directory. */
  config?: (script: string) => string;
  stdout?: string;
  extra?: string;
  hosts?: Record<string, FakeHostSpec>;
  profile?: (p: Record<string, unknown>) => void;
  /** More of persona's environment. */
  env?: Record<string, string>;
}

function world(setup: Setup = {}) {
  const store = copyOfProfiles();
  const state = tempDir('persona-state-');
  const dir = tempDir('persona-provision-');
  const script = provisioner(dir, setup.stdout ?? JSON.stringify(H3), setup.extra);
  const profile = profileOf(dir, setup.provision?.(script));
  setup.profile?.(profile);
  writeFileSync(join(store, `${APP}.json`), JSON.stringify(profile, null, 2));
  const inventory = join(dir, 'inventory.json');
  writeFileSync(
    inventory,
    JSON.stringify({
      hosts: [
        { name: 'h1', address: '10.0.0.1', apps: [APP] },
        { name: 'h2', address: '10.0.0.2' },
      ],
    }),
  );
  if (setup.config) writeFileSync(join(dir, 'persona.yaml'), setup.config(script));
  // h2 is in the inventory but refuses ssh: no host can take web. h3 is what the provision command makes.
  const fake = new FakeHosts({
    hosts: setup.hosts ?? { h1: { running: true }, h2: { down: 'refused' }, h3: {} },
    service,
    commands: [health],
  });
  fakes.push(fake);
  const env = {
    PERSONA_STORE: `file:${store}`,
    PERSONA_STATE_DIR: state,
    PERSONA_INVENTORY: inventory,
    PERSONA_AUTHOR: 'alice@test',
    PERSONA_LOCK_TTL: '2',
    CI: 'true',
    CONSUL_HTTP_TOKEN: TOKEN,
    ...setup.env,
  };
  return {
    fake,
    dir,
    state,
    script,
    recover: (...args: string[]) => runInProcess(['recover', ...args], { env, transport: fake, cwd: dir }),
    persona: (...args: string[]) => runInProcess(args, { env, transport: fake, cwd: dir }),
    /** On a terminal (no CI), answering from a script that fails on any other question. */
    interactive: (prompter: ScriptedPrompter, ...args: string[]) =>
      runInProcess(['recover', ...args], {
        env: { ...env, CI: '' },
        transport: fake,
        cwd: dir,
        tty: true,
        prompter,
      }),
    ran: () => existsSync(join(dir, 'provision-env')),
    provisionEnv: () => readFileSync(join(dir, 'provision-env'), 'utf8'),
    journals: () => (existsSync(join(state, 'runs')) ? readdirSync(join(state, 'runs')) : []),
    journal: (runId: string) =>
      JSON.parse(readFileSync(join(state, 'runs', `${runId}.json`), 'utf8')) as Journal,
  };
}

const inProfile = (script: string) => ({ command: [script, '--pool', 'web pool'] });
const events = (stdout: string, type: string) => jsonLines(stdout).filter((e) => e.type === type);
const result = (stdout: string) => jsonLines(stdout).at(-1)!;

describe('no inventory host can take the application: persona provisions one', () => {
  test('--yes: the command runs (arguments as given, no shell, no secrets), h3 is probed, ranked, recovered onto, journalled', async () => {
    const w = world({ provision: inProfile });
    const r = await w.recover('h1', '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(result(r.stdout)).toMatchObject({
      ok: true,
      runs: [{ status: 'succeeded', failed_host: 'h1', target_host: 'h3' }],
    });
    // The command: its arguments as written (one with a space), what it was told, nothing of the operator's.
    expect(readFileSync(join(w.dir, 'provision-args'), 'utf8')).toBe('--pool\nweb pool\n');
    const env = w.provisionEnv();
    for (const line of [
      'PERSONA_APP=web',
      'PERSONA_FAILED_HOST=h1',
      'PERSONA_CORES=1',
      'PERSONA_RAM_GB=1',
      'PERSONA_STORAGE_GB=1',
      'PERSONA_LABELS={}',
    ])
      expect(env).toContain(`${line}\n`);
    expect(env).not.toContain(TOKEN);
    expect(env).not.toMatch(/PERSONA_STORE|PERSONA_STATE_DIR|PERSONA_INVENTORY/);
    // Confirmed by --yes, its stderr shown without terminal controls, then the host it made.
    expect(events(r.stdout, 'confirm')[0]).toMatchObject({
      question: expect.stringMatching(
        /^No host can take web\. Create one with the provision command `.*make-host --pool "web pool"`/,
      ),
      by: '--yes',
    });
    const provision = events(r.stdout, 'provision');
    expect(provision.map((e) => e.status)).toEqual(['started', 'output', 'succeeded']);
    expect(provision[1]!.line).toBe('creating h3 in zone a');
    expect(provision[2]!.entry).toEqual({ ...H3, apps: [] });
    // Ranked twice: without h3 (nobody), then with it; h3 chosen as the provisioned host.
    const rankings = events(r.stdout, 'ranking') as Array<{
      hosts: Array<{ host: string; verdict: string }>;
    }>;
    expect(rankings.map((x) => x.hosts.filter((h) => h.verdict === 'eligible').map((h) => h.host))).toEqual([
      [],
      ['h3'],
    ]);
    expect(events(r.stdout, 'select')[0]).toMatchObject({ answer: 'h3', by: 'provisioned for this run' });
    // The world: web runs on h3 (probed, then configured and started there), h1 stopped.
    expect(w.fake.seen('h3')).toContain('probe');
    expect(w.fake.host('h3').running).toBe(true);
    expect(w.fake.host('h1').running).toBe(false);
    // The journal records the entry, so that a resume finds h3.
    const runId = (result(r.stdout).runs as Array<{ run_id: string }>)[0]!.run_id;
    expect(w.journal(runId)).toMatchObject({
      target_host: { name: 'h3', address: '10.0.0.3', user: 'deploy' },
      provisioned: { entry: { ...H3, apps: [] }, command: [w.script, '--pool', 'web pool'] },
    });
    // `runs show` says the target was made for this run, by which command.
    const shown = await w.persona('runs', 'show', runId);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(
      /target h3 \(10\.0\.0\.3\) made for this run by the provision command `.*make-host --pool "web pool"` at \S+ \(\d+\.\d s\)/,
    );
  });

  test('provision.env: a secret reference reaches the command in its environment only; nowhere else', async () => {
    const SECRET = 'cloud-api-TOKEN-9f3e';
    const w = world({
      provision: (script) => ({ command: [script], env: { CLOUD_TOKEN: 'env:MAKE_HOST_TOKEN' } }),
      env: { MAKE_HOST_TOKEN: SECRET },
      extra: 'printf "using %s\\n" "$CLOUD_TOKEN" >&2',
    });
    const r = await w.recover('h1', '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(w.provisionEnv()).toContain(`CLOUD_TOKEN=${SECRET}\n`);
    // Not the variable it came from, nor persona's own secrets.
    expect(w.provisionEnv()).not.toContain('MAKE_HOST_TOKEN');
    expect(w.provisionEnv()).not.toContain(TOKEN);
    // The command printed it: redacted in the events; absent from the journal and the result.
    const runId = (result(r.stdout).runs as Array<{ run_id: string }>)[0]!.run_id;
    expect(events(r.stdout, 'provision').some((e) => e.line === 'using [redacted]')).toBe(true);
    for (const text of [r.stdout, r.stderr, JSON.stringify(w.journal(runId))])
      expect(text).not.toContain(SECRET);
  });

  test('provision.env may not set PERSONA_ variables (persona sets those)', () => {
    const raw = {
      ...JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8')),
      provision: { command: ['/bin/true'], env: { PERSONA_APP: 'env:X' } },
    };
    expect(() => validateProfileValue('demo-web.json', raw, 'demo-web')).toThrow(
      /\/provision\/env: must not set PERSONA_ variables/,
    );
  });

  test('the command from the config file (persona.yaml), for every application without its own', async () => {
    const w = world({ config: (script) => `provision: [${script}, --from-config]\nprovision_timeout: 60\n` });
    const r = await w.recover('h1', '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(w.dir, 'provision-args'), 'utf8')).toBe('--from-config\n');
    expect(r.stderr).toMatch(
      /provisioning a host for web: .*make-host --from-config \(PERSONA_APP=web .*time limit 60 s\)/,
    );
    expect(r.stderr).toContain('provision: creating h3 in zone a');
    expect(r.stderr).not.toContain('\u001b');
    expect(r.stderr).toMatch(/✔ provisioned h3 \(10\.0\.0\.3\) for web/);
    expect(r.stdout).toMatch(/web: h1 → h3, run \S+: succeeded/);
  });

  test('--dry-run: says what it would run, runs nothing, writes no journal, exit 0', async () => {
    const w = world({ provision: inProfile });
    const r = await w.recover('h1', '--dry-run', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(w.ran()).toBe(false);
    expect(events(r.stdout, 'provision')).toEqual([
      expect.objectContaining({
        status: 'would-run',
        command: [w.script, '--pool', 'web pool'],
        env: expect.objectContaining({ PERSONA_APP: 'web', PERSONA_CORES: '1' }),
        timeout_ms: 600_000,
      }),
    ]);
    expect(result(r.stdout)).toMatchObject({
      ok: true,
      runs: [{ status: 'dry-run', target_host: '(provisioned)' }],
    });
    expect(w.fake.mutations()).toEqual([]);
    expect(w.journals()).toEqual([]);
  });

  test('no terminal and no --yes: refused before the command runs (exit 3, naming --yes)', async () => {
    const w = world({ provision: inProfile });
    const r = await w.recover('h1');
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /confirmation required: No host can take web\. Create one with the provision command/,
    );
    expect(r.stderr).toContain('--yes');
    expect(w.ran()).toBe(false);
    expect(w.fake.mutations()).toEqual([]);
  });

  test('on a terminal: asked first; no means the command never runs (exit 3)', async () => {
    const w = world({ provision: inProfile });
    const prompter = new ScriptedPrompter([{ match: /^No host can take web\. Create one/, answer: false }]);
    const r = await w.interactive(prompter, 'h1');
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain('not confirmed: nothing was changed');
    expect(w.ran()).toBe(false);
    expect(w.fake.mutations()).toEqual([]);
  });

  test('on a terminal, yes: provisioned, then the plan is confirmed as usual (no host to pick: the new one it is)', async () => {
    const w = world({ provision: inProfile });
    const prompter = new ScriptedPrompter([
      { match: /^No host can take web\. Create one/, answer: true },
      { match: /^Recover web from h1 onto h3: run these 7 steps\?/, answer: true },
    ]);
    const r = await w.interactive(prompter, 'h1');
    expect(r.code, r.stderr).toBe(0);
    expect(prompter.asked).toHaveLength(2);
    expect(w.fake.host('h3').running).toBe(true);
  });

  test('without a provision command: no candidate (exit 4), and the hint names the provision setting', async () => {
    const w = world();
    const r = await w.recover('h1', '--yes');
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/no host can take web/);
    expect(r.stderr).toContain('provision command');
    expect(w.ran()).toBe(false);
  });

  test('a host booting: probed again until it answers, within the time limit', async () => {
    const w = world({
      provision: inProfile,
      hosts: { h1: { running: true }, h2: { down: 'refused' }, h3: { down: 'refused' } },
    });
    const up = setTimeout(() => {
      w.fake.host('h3').down = undefined;
    }, 1500);
    const r = await w.recover('h1', '--yes', '--json');
    clearTimeout(up);
    expect(r.code, r.stderr).toBe(0);
    expect(w.fake.calls.filter((c) => c.host === 'h3' && c.unreachable).length).toBeGreaterThan(0);
    expect(w.fake.host('h3').running).toBe(true);
  });
});

describe('what goes wrong is said, naming the command; no step runs (exit 4)', () => {
  test.each([
    [
      'an invalid entry',
      { stdout: '{"name": "h3", "address": "10.0.0.3 && reboot", "port": 0}' },
      /printed an invalid inventory entry:\n {2}\/address: .*\n {2}\/port: /,
    ],
    ['not JSON', { stdout: 'h3 is ready' }, /did not print JSON: stdout:1:1/],
    ['a host the inventory has', { stdout: '{"name": "h2"}' }, /\/name: "h2" is already in the inventory/],
    [
      'the command failing',
      { extra: 'echo "quota exceeded in zone a" >&2; exit 3' },
      /make-host --pool "web pool"` failed \(exit 3\): quota exceeded in zone a/,
    ],
  ])('%s', async (_what, setup, message) => {
    const w = world({ provision: inProfile, ...setup });
    const r = await w.recover('h1', '--yes', '--json');
    expect(r.code, r.stderr).toBe(4);
    const error = result(r.stdout).error as { code: string; message: string };
    expect(error.code).toBe('E_PROVISION');
    expect(error.message).toMatch(/^provision command `/);
    expect(error.message).toMatch(message);
    expect(w.fake.mutations()).toEqual([]);
    expect(w.journals()).toEqual([]);
  });

  test('the time limit: the command is stopped', async () => {
    const w = world({
      provision: (script) => ({ command: [script], timeout_ms: 1000 }),
      extra: 'sleep 5',
    });
    const started = Date.now();
    const r = await w.recover('h1', '--yes');
    expect(r.code, r.stderr).toBe(4);
    expect(Date.now() - started).toBeLessThan(4500);
    expect(r.stderr).toMatch(/did not finish within 1 s and was stopped/);
    expect(r.stderr).toContain('provision_timeout');
    expect(w.fake.mutations()).toEqual([]);
  });

  test('the new host does not meet the requirements: the rejection explained, nothing recovered onto it', async () => {
    const w = world({
      provision: inProfile,
      profile: (p) => {
        p.host_labels = { zone: 'b' };
      },
    });
    const r = await w.recover('h1', '--yes', '--json');
    expect(r.code, r.stderr).toBe(4);
    const error = result(r.stdout).error as { code: string; message: string; hint: string };
    expect(error).toMatchObject({ code: 'E_PROVISION' });
    expect(error.message).toMatch(/^the provisioned host h3 cannot take web: .*zone/);
    expect(error.hint).toContain('h3 was created and is left as it is');
    expect(w.fake.mutations()).toEqual([]);
    expect(w.journals()).toEqual([]);
  });
});

describe('resume', () => {
  test('a run that provisioned h3 and stopped: the resume finds h3 in the journal, though no inventory lists it', async () => {
    const w = world({ provision: inProfile });
    const first = await w.recover('h1', '--yes', '--json');
    expect(first.code, first.stderr).toBe(0);
    const runId = (result(first.stdout).runs as Array<{ run_id: string }>)[0]!.run_id;
    // As if it had stopped before switch: the journal says so.
    const journal = w.journal(runId);
    for (const s of journal.steps)
      if (['switch', 'monitor', 'record'].includes(s.kind))
        Object.assign(s, { status: 'pending', attempts: 0 });
    journal.status = 'interrupted';
    await new JournalStore(w.state).save(journal);
    const r = await w.recover('--resume', runId, '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`run ${runId} provisioned h3 \\(10\\.0\\.0\\.3\\)`));
    expect(result(r.stdout)).toMatchObject({ runs: [{ status: 'succeeded', target_host: 'h3' }] });
    expect(w.fake.seen('h3')).toContain('deploy.status');
  });
});
