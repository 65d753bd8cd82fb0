/**
 * The failpoints tests stop persona at (runbook/step-context.ts): a signal that comes between the failpoint's file
 * and its wait must still end the wait, or an in-process test that interrupts as soon as it sees the file hangs.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { stepContext } from '../../src/runbook/step-context.js';
import { tempDir } from '../helpers/tmp.js';

function context(signal: AbortSignal, stateDir: string) {
  return stepContext(
    {
      journal: { run_id: 'r', steps: [] },
      env: { PERSONA_FAILPOINT: 'canary:before-replan' },
      stateDir,
      reporter: { event: () => {}, warn: () => {} },
      redactor: { redact: (s: string) => s },
      ssh: {},
    } as never,
    signal,
    { kind: 'canary', log: [] } as never,
  );
}

describe('checkpoint', () => {
  test('an already aborted signal ends the wait at once, with its reason', async () => {
    const state = tempDir('persona-failpoint-');
    const controller = new AbortController();
    controller.abort(new Error('interrupted before the wait'));
    await expect(context(controller.signal, state).checkpoint('before-replan')).rejects.toThrow(
      'interrupted before the wait',
    );
    expect(existsSync(join(state, 'failpoint-reached'))).toBe(true);
  });

  test('a signal during the wait ends it; another point does not stop', async () => {
    const state = tempDir('persona-failpoint-');
    const controller = new AbortController();
    const ctx = context(controller.signal, state);
    await ctx.checkpoint('after-start');
    expect(existsSync(join(state, 'failpoint-reached'))).toBe(false);
    const waiting = ctx.checkpoint('before-replan');
    while (!existsSync(join(state, 'failpoint-reached'))) await new Promise((r) => setTimeout(r, 5));
    controller.abort(new Error('SIGINT'));
    await expect(waiting).rejects.toThrow('SIGINT');
  });
});
