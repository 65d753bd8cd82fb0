/**
 * migrate's early copy copies a backup only when migrate will use it: the failed host found down (or --data-from
 * backup). A host that refuses persona may hold newer data: nothing is copied before migrate decides.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { SshError, type SshFailureKind, type Transport } from '../../src/hosts/ssh.js';
import { validateProfileValue } from '../../src/profile/validate.js';
import type { StepContext } from '../../src/runbook/types.js';
import { migrateStep } from '../../src/steps/migrate.js';
import { repoRoot } from '../helpers/cli.js';
import { testJournal } from '../helpers/journal.js';

const h1: InventoryHost = { name: 'h1', address: '10.0.0.1', labels: {}, apps: [] };
const h2: InventoryHost = { name: 'h2', address: '10.0.0.2', labels: {}, apps: [] };

function context(h1Fails: SshFailureKind, dataFrom?: 'failed-host') {
  const calls: string[] = [];
  const ssh = {
    async exec(t: InventoryHost, argv: readonly string[]) {
      calls.push(`${t.name}: ${argv.join(' ')}`);
      if (t.name === 'h1') throw new SshError(h1Fails, 'h1', `h1 (10.0.0.1:22): ${h1Fails}`);
      return { exitCode: 0, stdout: '', stderr: '', durationMs: 1 };
    },
  };
  const raw = JSON.parse(readFileSync(join(repoRoot, 'profiles/demo-web.json'), 'utf8'));
  const ctx = {
    journal: testJournal({
      options: { force_no_fence: false, strategy: 'best-fit', ...(dataFrom ? { data_from: dataFrom } : {}) },
    }),
    profile: validateProfileValue('demo-web.json', raw, 'demo-web'),
    failed: h1,
    target: h2,
    ssh: ssh as unknown as Transport,
    signal: new AbortController().signal,
  } as unknown as StepContext;
  return { ctx, calls };
}

describe('the early copy waits for migrate to be able to use the backup', () => {
  test.each([
    ['auth', 'h1 is not found down (auth)'],
    ['host-key-changed', 'h1 is not found down (host-key-changed)'],
  ] as const)(
    'the failed host refuses persona (%s): nothing copied, nothing asked of the target',
    async (kind, why) => {
      const { ctx, calls } = context(kind);
      const plan = await migrateStep.early!.plan(ctx);
      expect(plan).toEqual({ actions: [], notes: [`no early copy: ${why}`] });
      expect(calls).toEqual(['h1: true']);
    },
  );

  test('--data-from failed-host: no early copy, and the failed host is not even asked', async () => {
    const { ctx, calls } = context('timeout', 'failed-host');
    expect((await migrateStep.early!.plan(ctx)).notes).toEqual(['no early copy: --data-from failed-host']);
    expect(calls).toEqual([]);
  });
});
