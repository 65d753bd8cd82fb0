import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { type ExecResult, SshError, type SshFailureKind, type SshTarget } from '../../src/hosts/ssh.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import type { DataFrom } from '../../src/runbook/journal-schema.js';
import type { StepContext, StepRecord } from '../../src/runbook/types.js';
import { decideSource, type SourceFacts } from '../../src/steps/data-source.js';
import { migrateStep } from '../../src/steps/migrate.js';
import { repoRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const down = (kind: SshFailureKind) => ({ ok: false as const, kind, reason: `ssh ${kind}` });
const facts = (over: Partial<SourceFacts>): SourceFacts => ({
  failedName: 'web-1',
  reach: { ok: true },
  failedHasData: true,
  fence: { host_reachable: false, kind: 'refused' },
  dataFrom: 'auto',
  ...over,
});
const use = (f: SourceFacts) => {
  const d = decideSource(f);
  return 'refuse' in d ? 'refuse' : d.use;
};

describe('decideSource: the backup only when the failed host is proven down', () => {
  test.each([
    ['answers with the data', facts({}), 'failed-host'],
    ['answers without the data', facts({ failedHasData: false }), 'backup'],
    ['refused, fence found it down', facts({ reach: down('refused') }), 'backup'],
    ['no route, fence found it down', facts({ reach: down('unreachable') }), 'backup'],
    ['timeout, fence found it down', facts({ reach: down('timeout') }), 'backup'],
    ['auth failure', facts({ reach: down('auth') }), 'refuse'],
    ['changed host key', facts({ reach: down('host-key-changed') }), 'refuse'],
    ['unknown host key', facts({ reach: down('host-key-unknown') }), 'refuse'],
    ['DNS failure', facts({ reach: down('dns') }), 'refuse'],
    ['other connection failure', facts({ reach: down('connection') }), 'refuse'],
    [
      'its bastion timed out or refused (kind bastion): not proof of anything',
      facts({ reach: down('bastion') }),
      'refuse',
    ],
    [
      'refused, but the fence found it answering',
      facts({ reach: down('refused'), fence: { host_reachable: true } }),
      'refuse',
    ],
    ['timeout, no fence record', facts({ reach: down('timeout'), fence: undefined }), 'refuse'],
    ['auth failure, --data-from backup', facts({ reach: down('auth'), dataFrom: 'backup' }), 'backup'],
    ['down, --data-from failed-host', facts({ reach: down('refused'), dataFrom: 'failed-host' }), 'refuse'],
  ] as const)('%s: %s', (_name, f, expected) => {
    expect(use(f)).toBe(expected);
  });

  test('a refusal names the cause and the explicit choice', () => {
    const d = decideSource(facts({ reach: down('auth') }));
    expect(d).toMatchObject({ refuse: expect.stringContaining('auth: ssh auth') });
    expect(d).toMatchObject({ hint: expect.stringContaining('--data-from backup') });
  });
});

const host = (name: string): InventoryHost => ({ name, address: name, labels: {}, apps: [] });
const ok = (stdout = ''): ExecResult => ({ exitCode: 0, stdout, stderr: '', durationMs: 1 });

/** A transport whose failed host fails with one SSH failure kind; the target answers `df` and has no data yet. */
function fakeSsh(failedKind: SshFailureKind, freeKiB = 99000000) {
  const exec = async (target: SshTarget, argv: readonly string[] = []): Promise<ExecResult> => {
    if (target.name === 'web-1') throw new SshError(failedKind, 'web-1', `web-1: ${failedKind}`);
    if (argv.includes('persona-manifest')) return ok('absent');
    if (argv.includes('persona-df')) return ok(`/dev/sda1 100000000 1000 ${freeKiB} 1% /srv`);
    return ok();
  };
  return { exec, run: exec };
}

function migrateContext(
  failedKind: SshFailureKind,
  fence: Record<string, unknown> | 'pending' | undefined,
  dataFrom?: DataFrom,
  freeKiB?: number,
): StepContext {
  const backupDir = tempDir('persona-backup-');
  writeFileSync(join(backupDir, 'a.txt'), 'x'.repeat(4096));
  const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
  raw.data.backup = { path: backupDir };
  const profile = validateProfileValue('demo-web.json', raw, 'demo-web');
  const fenceRecord = {
    kind: 'fence',
    title: 'fence',
    mutates: true,
    status: fence === 'pending' ? 'pending' : 'succeeded',
    attempts: fence === 'pending' ? 0 : 1,
    log: [],
    // The fence's evidence, as the fence step records it (src/runbook/fencing.ts).
    ...(fence && fence !== 'pending'
      ? {
          outputs: {
            evidence: {
              reachable: fence.host_reachable,
              ...(fence.kind ? { unreachableKind: fence.kind } : {}),
            },
          },
        }
      : {}),
  } as StepRecord;
  const steps: StepRecord[] = fence ? [fenceRecord] : [];
  return {
    journal: {
      run_id: 'r1',
      options: { force_no_fence: false, strategy: 'best-fit', ...(dataFrom ? { data_from: dataFrom } : {}) },
      steps,
    } as never,
    profile,
    failed: host('web-1'),
    target: host('web-2'),
    ssh: fakeSsh(failedKind, freeKiB) as never,
    signal: new AbortController().signal,
    stateDir: tempDir(),
    env: {},
    findHost: host,
    previous: (kind) => steps.find((s) => s.kind === kind),
    checkpoint: async () => {},
    log: () => {},
    now: () => new Date(),
  } as Partial<StepContext> as StepContext;
}

describe('migrate chooses its source from the failure kind', () => {
  test('an authentication failure does not fall back to the backup: the step is blocked and names --data-from backup', async () => {
    const plan = await migrateStep.plan(migrateContext('auth', { host_reachable: true }));
    expect(plan.actions).toEqual([]);
    expect(plan.blocked?.message).toMatch(/does not let persona in \(auth/);
    expect(plan.blocked?.hint).toContain('--data-from backup');
  });

  test('a changed host key does not fall back to the backup', async () => {
    const ctx = migrateContext('host-key-changed', { host_reachable: false, kind: 'host-key-changed' });
    expect((await migrateStep.plan(ctx)).blocked?.message).toMatch(/host-key-changed/);
  });

  test('refused, and the fence found the host down: the backup, one copy planned', async () => {
    const plan = await migrateStep.plan(
      migrateContext('refused', { host_reachable: false, kind: 'refused' }),
    );
    expect(plan.blocked).toBeUndefined();
    expect(plan.notes[0]).toMatch(/data source: .*backup on this machine.*web-1 is down/);
    expect(plan.actions.map((a) => [a.id, a.observable, a.mutates])).toEqual([
      ['copy:/srv/demo-web/data', true, true],
    ]);
    expect(plan.actions[0]!.title).toMatch(
      /^copy from \S+ \(backup on this machine\): \/srv\/demo-web\/data \(0\.0 MiB, 1 files; absent on web-2\)$/,
    );
  });

  test('a dry run (the fence still pending) plans the backup for a host that is down now, and says it depends on the fence', async () => {
    const plan = await migrateStep.plan(migrateContext('refused', 'pending'));
    expect(plan.blocked).toBeUndefined();
    expect(plan.notes[0]).toMatch(/backup on this machine.*if the fence finds it down too/);
  });

  test('no fence record at all: the backup is refused', async () => {
    const plan = await migrateStep.plan(migrateContext('refused', undefined));
    expect(plan.blocked?.message).toMatch(/no fence step recorded it as down/);
  });

  test('--data-from backup accepts the backup whatever the failure', async () => {
    const plan = await migrateStep.plan(migrateContext('auth', { host_reachable: true }, 'backup'));
    expect(plan.notes[0]).toMatch(/backup on this machine.*as asked/);
  });

  test('not enough room on the target blocks the step, naming the filesystem', async () => {
    const ctx = migrateContext('refused', { host_reachable: false, kind: 'refused' }, undefined, 1);
    const plan = await migrateStep.plan(ctx);
    expect(plan.blocked?.message).toMatch(
      /^web-2:\/srv has 0\.00 GiB free; \/srv\/demo-web\/data needs 0\.00 GiB$/,
    );
  });
});
