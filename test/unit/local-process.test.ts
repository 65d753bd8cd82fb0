/** Commands on this machine go through one port (LocalRunner): a test sees every argv and environment, runs nothing. */
import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { parseProfileText } from '../../src/profile/validate.js';
import { routerFor } from '../../src/traffic/router.js';
import type { LocalRunner, LocalRunOptions } from '../../src/util/local-process.js';
import { endedAs, execaLocal } from '../../src/util/local-process.js';
import { repoRoot } from '../helpers/cli.js';

function profile() {
  const text = JSON.parse(readFileSync(`${repoRoot}profiles/demo-web.json`, 'utf8'));
  text.traffic = { method: 'command', fence: ['lb', 'out', '{failed}'], switch: ['lb', 'in', '{host}'] };
  return parseProfileText('demo-web', JSON.stringify(text)).profile;
}

const h = (name: string) => ({ name, address: '127.0.0.1', labels: {}, apps: [] });

test('the command traffic method runs through the port, with the minimal environment only', async () => {
  const calls: Array<[readonly string[], LocalRunOptions]> = [];
  const local: LocalRunner = async (argv, options) => {
    calls.push([argv, options]);
    return {
      exitCode: argv[1] === 'in' ? 3 : 0,
      timedOut: false,
      stdout: 'ok\n',
      stderr: 'lb busy\n',
      output: '',
    };
  };
  const router = routerFor(profile(), {
    local,
    env: { PATH: '/usr/bin', CONSUL_HTTP_TOKEN: 'tok', PERSONA_STORE_TOKEN: 'x', LANG: 'C' },
  });
  const signal = new AbortController().signal;
  expect(await router.fence(h('h1'), signal)).toEqual({ command: ['lb', 'out', 'h1'], stdout: 'ok' });
  await expect(router.switchTo(h('h2'), h('h1'), signal)).rejects.toThrow(
    /`lb in h2` ended with exit 3: lb busy/,
  );
  expect(calls.map(([argv]) => argv.join(' '))).toEqual(['lb out h1', 'lb in h2']);
  expect(calls[0]![1].env).toEqual({ PATH: '/usr/bin', LANG: 'C' });
});

test('the real runner: no shell, exactly the environment given, and how it ended in words', async () => {
  const signal = new AbortController().signal;
  const r = await execaLocal(['sh', '-c', 'echo "$A;$HOME"; exit 4'], {
    env: { A: 'x' },
    timeoutMs: 5000,
    signal,
  });
  expect(r).toMatchObject({ exitCode: 4, stdout: 'x;' });
  expect(endedAs(r)).toBe('exit 4');
  const missing = await execaLocal(['/nonexistent/persona-cmd'], { env: {}, timeoutMs: 5000, signal });
  expect(missing.exitCode).toBeUndefined();
  expect(endedAs(missing)).toMatch(/ENOENT/);
});
