/**
 * The interactive path through a real pseudo-terminal (tmux): pick a host from the ranked table, confirm the
 * plan, answer "retry" after a step fails.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { requireBinaries } from '../helpers/binaries.js';
import { bin, repoRoot } from '../helpers/cli.js';
import { fail, releaseLab } from '../lab/lab.js';
import { execa, expectRecoveredOnto, freshLab, scratchDir, waitFor, workspace } from './lab-helpers.js';

const session = `persona-e2e-${process.pid}`;

beforeAll(() => {
  requireBinaries('tmux');
});

afterAll(async () => {
  await execa('tmux', ['kill-session', '-t', session], { reject: false });
  releaseLab();
});

async function screen(): Promise<string> {
  return String((await execa('tmux', ['capture-pane', '-p', '-t', session, '-S', '-200'])).stdout);
}

async function waitScreen(text: RegExp, timeoutMs = 180_000): Promise<string> {
  return await waitFor(
    `"${text.source}" on the terminal`,
    async () => {
      const s = await screen();
      return text.test(s) ? s : undefined;
    },
    timeoutMs,
  );
}

const keys = (...k: string[]) => execa('tmux', ['send-keys', '-t', session, ...k]);

test('interactive recover on a terminal: choose lab-3, confirm, retry the failed configure step', async () => {
  const lab = await freshLab();
  const ws = workspace(lab);
  await fail('lab-1', 'app');
  const dir = scratchDir('persona-tty-');
  const exitFile = join(dir, 'exit');
  const env = { ...ws.env, PERSONA_FAILPOINT: 'configure:after-security:fail-once', NO_COLOR: '1' };
  const assignments = Object.entries(env)
    .map(([k, v]) => `${k}='${v}'`)
    .join(' ');
  const command = `cd '${repoRoot}' && env -u CI ${assignments} '${bin}' recover lab-1; echo $? > '${exitFile}'; sleep 600`;
  await execa('tmux', ['new-session', '-d', '-s', session, '-x', '200', '-y', '60', command], {
    env: { ...process.env, CI: '' },
  });

  await waitScreen(/Recover demo-web onto which host\?/);
  const ranked = await screen();
  expect(ranked).toMatch(/1\. lab-2/);
  expect(ranked).toMatch(/2\. lab-3/);
  await keys('Down');
  await keys('Enter');
  await waitScreen(/Recover demo-web from lab-1 onto lab-3: run these 7 steps\?/);
  await keys('y', 'Enter');
  await waitScreen(
    /Step configure failed: failpoint configure:after-security: failing once, as asked\. What now\?/,
    600_000,
  );
  await keys('Enter');
  await waitFor(
    'persona to exit',
    () => (existsSync(exitFile) ? readFileSync(exitFile, 'utf8').trim() : undefined),
    300_000,
  ).catch(async (error: Error) => {
    throw new Error(`${error.message}; the terminal shows:\n${await screen()}`);
  });
  expect(readFileSync(exitFile, 'utf8').trim(), await screen()).toBe('0');
  expect(await screen()).toMatch(/demo-web: lab-1 → lab-3, run \S+: succeeded/);
  await expectRecoveredOnto(lab, ws, 'lab-3');
}, 900_000);
