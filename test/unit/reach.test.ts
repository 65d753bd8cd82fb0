import { describe, expect, test } from 'vitest';
import type { InventoryHost } from '../../src/hosts/inventory.js';
import { SshError, type SshFailureKind, type Transport } from '../../src/hosts/ssh.js';
import type { StepContext } from '../../src/runbook/types.js';
import { askReach, reachable, rememberReach } from '../../src/steps/reach.js';
import { testJournal } from '../helpers/journal.js';

const h1: InventoryHost = { name: 'h1', address: '10.0.0.1', labels: {}, apps: [] };

/** A transport whose `true` to h1 fails as `kind` (or answers) after `ms`; it counts the attempts. */
function transport(kind: SshFailureKind | 'ok', ms = 20) {
  const t = {
    attempts: 0,
    async exec() {
      t.attempts++;
      await new Promise((r) => setTimeout(r, ms));
      if (kind === 'ok') return { exitCode: 0, stdout: '', stderr: '', durationMs: ms };
      throw new SshError(
        kind,
        'h1',
        `h1 (10.0.0.1:22): ${kind === 'timeout' ? 'connection timed out' : kind}`,
      );
    },
  };
  return t;
}

function context(ssh: ReturnType<typeof transport>): StepContext {
  return {
    journal: testJournal(),
    ssh: ssh as unknown as Transport,
    signal: new AbortController().signal,
  } as unknown as StepContext;
}

describe('reachable: a dead host is waited for once per run', () => {
  test('two questions at once share one connection attempt', async () => {
    const ssh = transport('timeout');
    const ctx = context(ssh);
    const [a, b] = await Promise.all([reachable(ctx, h1), reachable(ctx, h1)]);
    expect(ssh.attempts).toBe(1);
    expect(a).toMatchObject({ ok: false, kind: 'timeout' });
    expect(b).toMatchObject({ ok: false, kind: 'timeout' });
    // A later question within 30 s reuses the timeout, saying how old it is.
    const c = await reachable(ctx, h1);
    expect(ssh.attempts).toBe(1);
    expect(c).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/s ago in this run: not waited for again/),
    });
  });

  test('the question recover asked while probing is the fence’s answer: no second attempt', async () => {
    const ssh = transport('timeout', 50);
    const ctx = context(ssh);
    const at = performance.now();
    rememberReach(ctx.journal, h1, askReach(ctx.ssh, h1), at);
    expect(await reachable(ctx, h1)).toMatchObject({ ok: false, kind: 'timeout' });
    expect(ssh.attempts).toBe(1);
  });

  test('a refusal or an answer is never reused: the next question asks again', async () => {
    for (const kind of ['refused', 'ok'] as const) {
      const ssh = transport(kind);
      const ctx = context(ssh);
      rememberReach(ctx.journal, h1, askReach(ctx.ssh, h1), performance.now());
      await new Promise((r) => setTimeout(r, 40));
      await reachable(ctx, h1);
      await reachable(ctx, h1);
      expect(ssh.attempts, kind).toBe(3);
    }
  });

  test('another run (another journal) asks again', async () => {
    const ssh = transport('timeout');
    await reachable(context(ssh), h1);
    await reachable(context(ssh), h1);
    expect(ssh.attempts).toBe(2);
  });
});
