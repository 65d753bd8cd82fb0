/**
 * monitor on abort (Ctrl-C, SIGTERM, lock loss, timeout): it stops with the abort's reason, so the engine saves the
 * run as interrupted; nothing is left to reject unhandled and crash the process (issue 10).
 */
import { readFileSync } from 'node:fs';
import { afterEach, expect, test } from 'vitest';
import { PersonaError } from '../../src/errors.js';
import { parseProfileText } from '../../src/profile/validate.js';
import type { StepContext } from '../../src/runbook/types.js';
import { monitorStep } from '../../src/steps/monitor.js';
import { repoRoot } from '../helpers/cli.js';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
afterEach(() => {
  process.off('unhandledRejection', onUnhandled);
});

/** Resolves after ms, or rejects with the signal's reason when it aborts first. */
const until = <T>(signal: AbortSignal, ms: number, value: T) =>
  new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => resolve(value), ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });

test('monitor aborted mid-window rejects with the abort reason and leaves no unhandled rejection', async () => {
  process.on('unhandledRejection', onUnhandled);
  const text = JSON.parse(readFileSync(`${repoRoot}profiles/demo-web.json`, 'utf8'));
  text.health_checks = [{ type: 'command', command: ['true'] }];
  const profile = parseProfileText('demo-web', JSON.stringify(text)).profile;
  const controller = new AbortController();
  const ctx = {
    profile,
    target: { name: 'h2', address: '127.0.0.1', labels: {}, apps: [] },
    signal: controller.signal,
    ssh: {
      // Health checks answer at once; the resource sample takes the whole window.
      exec: async () => await until(controller.signal, 5, { exitCode: 0, stdout: '', stderr: '' }),
      run: async () => await until(controller.signal, 60_000, { exitCode: 0, stdout: '', stderr: '' }),
    },
    log: () => {},
    checkpoint: async () => {},
  } as unknown as StepContext;
  setTimeout(() => controller.abort(new PersonaError('E_INTERRUPTED', 'interrupted by SIGINT')), 100);
  const plan = await monitorStep.plan(ctx);
  expect(plan.actions).toEqual([]);
  await expect(monitorStep.conclude(ctx, { plan, applied: new Map() })).rejects.toMatchObject({
    code: 'E_INTERRUPTED',
  });
  await new Promise((r) => setTimeout(r, 50));
  expect(unhandled).toEqual([]);
});
