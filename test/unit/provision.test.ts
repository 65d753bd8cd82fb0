/**
 * Provisioning a host when none fits (issue 12 §7), the pure half: when persona provisions, with which command,
 * what the command is told, how its output is read (every problem named by its JSON path and the command), how the
 * provisioned host is judged, and how a resume finds it again. No process, no SSH.
 */
import { describe, expect, test } from 'vitest';
import type { RankedHost, Requirements } from '../../src/broker/broker.js';
import { parseConfigText } from '../../src/cli/config-file.js';
import { resolveSettings } from '../../src/cli/settings.js';
import { PersonaError } from '../../src/errors.js';
import type { Inventory } from '../../src/hosts/inventory.js';
import { planResume } from '../../src/recover/plan.js';
import {
  parseProvisionOutput,
  provisionCommand,
  provisionEnv,
  provisionedTarget,
  provisionNeed,
  withProvisioned,
} from '../../src/recover/provision.js';
import type { Provisioned } from '../../src/runbook/journal-schema.js';
import { testJournal } from '../helpers/journal.js';

const GiB = 1024 ** 3;
const ARGV = ['/usr/local/bin/make-host', '--pool', 'web'];
const inventory: Inventory = {
  source: 'inventory.json',
  hosts: [
    { name: 'h1', address: '10.0.0.1', labels: {}, apps: ['web'] },
    { name: 'h2', address: '10.0.0.2', labels: {}, apps: [] },
  ],
  warnings: [],
};
const rejected = (host: string): RankedHost => ({
  host,
  address: '10.0.0.2',
  verdict: 'rejected',
  reasons: [{ code: 'memory', message: 'RAM 1 GiB < 5 GiB required', fix: 'needs 4 GiB more usable memory' }],
});
const eligible = (host: string): RankedHost => ({
  host,
  address: '10.0.0.9',
  verdict: 'eligible',
  rank: 1,
  reasons: [],
});
const command = { argv: ARGV, timeoutMs: 600_000, from: 'test' };

function thrown(fn: () => unknown): PersonaError {
  try {
    fn();
  } catch (error) {
    if (error instanceof PersonaError) return error;
    throw error;
  }
  throw new Error('did not throw');
}

describe('when persona provisions', () => {
  test.each([
    ['no host fits, a command, a real run', [rejected('h2')], {}, command, 'provision'],
    [
      'no host fits, a dry run: it only says it would',
      [rejected('h2')],
      { dryRun: true },
      command,
      'would-provision',
    ],
    ['a host fits', [rejected('h2'), eligible('h3')], {}, command, 'no'],
    ['no command: the old "no candidate" error', [rejected('h2')], {}, undefined, 'no'],
    ['--target chose (and is checked as before)', [rejected('h2')], { target: 'h2' }, command, 'no'],
    ['no host at all in the inventory but the failed one', [], {}, command, 'provision'],
  ] as const)('%s', (_what, ranking, req, cmd, expected) => {
    expect(provisionNeed(ranking, { dryRun: false, ...req }, cmd)).toBe(expected);
  });
});

describe('which command', () => {
  const settings = (env: Record<string, string> = {}, file?: string) =>
    resolveSettings({}, env, '/work', file ? parseConfigText('/etc/team/persona.yaml', file, {}) : undefined);

  test("the profile's comes first, with its time limit", () => {
    const s = settings({ PERSONA_PROVISION: '["/bin/other"]' });
    expect(provisionCommand({ id: 'web', provision: { command: ARGV, timeout_ms: 90_000 } }, s)).toEqual({
      argv: ARGV,
      timeoutMs: 90_000,
      from: 'profile web, provision',
    });
  });

  test('else the config file (a YAML list; a relative program is relative to the file), default limit 600 s', () => {
    const s = settings({}, 'provision: [./bin/make-host, --pool, "web pool"]\n');
    expect(provisionCommand({ id: 'web' }, s)).toEqual({
      argv: ['/etc/team/bin/make-host', '--pool', 'web pool'],
      timeoutMs: 600_000,
      from: '/etc/team/persona.yaml:1',
    });
  });

  test('the environment (JSON) before the file; PERSONA_PROVISION_TIMEOUT in seconds', () => {
    const s = settings(
      { PERSONA_PROVISION: JSON.stringify(ARGV), PERSONA_PROVISION_TIMEOUT: '30' },
      'provision: [/bin/false]\nprovision_timeout: 900\n',
    );
    expect(provisionCommand({ id: 'web' }, s)).toEqual({
      argv: ARGV,
      timeoutMs: 30_000,
      from: 'PERSONA_PROVISION',
    });
  });

  test('none anywhere: none', () => {
    expect(provisionCommand({ id: 'web' }, settings())).toBeUndefined();
  });

  test.each([
    ['provision: make-host --pool web\n', 'must be a command as a list of arguments'],
    ['provision: []\n', 'must be a command as a list of arguments'],
    ['provision: [make-host, 3]\n', 'must be a command as a list of arguments'],
    ['provision_timeout: 0\n', 'must be a whole number from 1 to 86400'],
  ])('config file %j is refused with its line', (text, message) => {
    const error = thrown(() => parseConfigText('/etc/team/persona.yaml', text, {}));
    expect(error.code).toBe('E_USAGE');
    expect(error.message).toMatch(/^\/etc\/team\/persona\.yaml:1: /);
    expect(error.message).toContain(message);
  });

  test('PERSONA_PROVISION that is not a JSON list is refused, naming the variable', () => {
    const error = thrown(() => settings({ PERSONA_PROVISION: 'make-host --pool web' }));
    expect(error.message).toContain('PERSONA_PROVISION: must be a command as a list of arguments');
  });
});

describe('what the command is told', () => {
  test('the application, the failed host, the run and the requirements, as the broker checks them', () => {
    const requirements: Requirements = {
      app: 'web',
      cores: 2,
      ramBytes: 0.5 * GiB,
      storageBytes: 20 * GiB,
      dataPath: '/srv/web',
      dataMigration: 'rsync',
      packages: ['nginx=1.22.*', 'rsync'],
      hostLabels: { zone: 'a' },
    };
    expect(provisionEnv(requirements, { failedHost: 'h1', runId: 'R1' })).toEqual({
      PERSONA_APP: 'web',
      PERSONA_FAILED_HOST: 'h1',
      PERSONA_RUN_ID: 'R1',
      PERSONA_CORES: '2',
      PERSONA_RAM_GB: '0.5',
      PERSONA_STORAGE_GB: '20',
      PERSONA_DATA_PATH: '/srv/web',
      PERSONA_PACKAGES: 'nginx=1.22.* rsync',
      PERSONA_LABELS: '{"zone":"a"}',
    });
  });
});

describe("reading the command's output", () => {
  const parse = (stdout: string) => parseProvisionOutput(stdout, ARGV, inventory, '/work');

  test('an entry: the host, and its copy for the journal', () => {
    const { host, entry } = parse(
      '\n{"name": "h9", "address": "10.0.0.9", "port": 2222, "user": "deploy", "labels": {"zone": "a"}}\n',
    );
    expect(host).toEqual({
      name: 'h9',
      address: '10.0.0.9',
      port: 2222,
      user: 'deploy',
      labels: { zone: 'a' },
      apps: [],
    });
    expect(entry).toEqual({
      name: 'h9',
      address: '10.0.0.9',
      port: 2222,
      user: 'deploy',
      labels: { zone: 'a' },
      apps: [],
    });
  });

  test.each([
    ['', /printed nothing on stdout/],
    ['creating host...\n{"name": "h9"}', /did not print JSON: stdout:1:1/],
    ['{"name": "h9", "name": "h8"}', /duplicate key "name"/],
    ['[{"name": "h9"}]', /printed a list, not one JSON object/],
    ['"h9"', /printed "h9", not one JSON object/],
    [
      '{"name": "h9", "address": "10.0.0.9; rm -rf /", "port": 70000, "colour": "red"}',
      /printed an invalid inventory entry:\n {2}\/address: .*\n {2}\/port: .*\n {2}\/colour: unknown field/,
    ],
    [
      '{"name": "h2", "address": "10.0.0.9"}',
      /entry persona cannot use:\n {2}\/name: "h2" is already in the inventory inventory\.json/,
    ],
    ['{"name": "h9", "connection": "local"}', /\/connection: a provisioned host is reached over SSH/],
  ])('%j is refused, naming the command and what is wrong', (stdout, message) => {
    const error = thrown(() => parse(stdout));
    expect(error.code).toBe('E_PROVISION');
    expect(error.exitCode).toBe(4);
    expect(error.message).toMatch(/^provision command `\/usr\/local\/bin\/make-host --pool web` /);
    expect(error.message).toMatch(message);
    expect(error.hint).toContain('one JSON object on stdout');
  });

  test('problems are also data, by JSON path (for --json)', () => {
    const error = thrown(() => parse('{"name": "h9", "port": "22"}'));
    expect(error.details).toMatchObject({ command: ARGV, problems: [{ path: '/port' }] });
  });
});

describe('the provisioned host is judged like any other', () => {
  test('eligible: it is the target', () => {
    expect(provisionedTarget([rejected('h2'), eligible('h9')], 'h9', 'web')).toBe('h9');
  });

  test('rejected: the run stops with its reasons and what would make it pass; the host is left as it is', () => {
    const error = thrown(() =>
      provisionedTarget([rejected('h2'), { ...rejected('h9'), host: 'h9' }], 'h9', 'web'),
    );
    expect(error.code).toBe('E_PROVISION');
    expect(error.message).toBe('the provisioned host h9 cannot take web: RAM 1 GiB < 5 GiB required');
    expect(error.hint).toContain('needs 4 GiB more usable memory');
    expect(error.hint).toContain('h9 was created and is left as it is');
  });
});

describe('a resume finds the provisioned host in the journal', () => {
  const provisioned: Provisioned = {
    entry: { name: 'h9', address: '10.0.0.9', user: 'deploy', key_file: '/keys/h9', labels: {}, apps: [] },
    command: ARGV,
    at: '2026-11-27T00:00:00.000Z',
    duration_ms: 1200,
  };

  test('added to the inventory with its SSH settings, unless the inventory has it now', () => {
    expect(withProvisioned(inventory, provisioned).hosts.at(-1)).toEqual({
      name: 'h9',
      address: '10.0.0.9',
      user: 'deploy',
      keyFile: '/keys/h9',
      labels: {},
      apps: [],
    });
    expect(withProvisioned(inventory, undefined)).toBe(inventory);
    const listed = {
      ...inventory,
      hosts: [...inventory.hosts, { name: 'h9', address: '10.9.9.9', labels: {}, apps: [] }],
    };
    expect(withProvisioned(listed, provisioned)).toBe(listed);
  });

  test('planResume targets it, with the whole entry (not only the journal host reference)', () => {
    const journal = testJournal({
      failed_host: { name: 'h1', address: '10.0.0.1' },
      target_host: { name: 'h9', address: '10.0.0.9', user: 'deploy' },
      provisioned,
    });
    const plan = planResume(journal, {
      inventory,
      stored: { version: journal.profile.version, text: '' },
      request: { dryRun: false, stepByStep: false, forceNoFence: false },
      driver: { pid: 2, host: 'here' },
    });
    expect(plan.target).toMatchObject({ name: 'h9', keyFile: '/keys/h9', user: 'deploy' });
    expect(plan.inventory.hosts.map((h) => h.name)).toEqual(['h1', 'h2', 'h9']);
  });
});
