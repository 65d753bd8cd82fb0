/**
 * `persona recover HOST` before it reaches any host: which applications, and `--app` for one nothing records yet.
 * The inventory holds the failed host and one excluded host, so a run that gets past the choice of applications
 * ends at the ranking (no host can take it, exit 4) without opening an SSH connection.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readAssignment } from '../../src/steps/record.js';
import { openBackend } from '../../src/stores/open.js';
import { runInProcess, ScriptedPrompter } from '../helpers/cli.js';
import { copyOfProfiles, tempDir } from '../helpers/tmp.js';

function setup(apps: string[] = []) {
  const store = copyOfProfiles();
  const dir = tempDir();
  const inventory = join(dir, 'inventory.json');
  writeFileSync(
    inventory,
    JSON.stringify({
      hosts: [
        { name: 'web-1', address: '127.0.0.1', apps },
        { name: 'web-2', address: '127.0.0.1' },
      ],
    }),
  );
  const env = {
    PERSONA_STORE: `file:${store}`,
    PERSONA_STATE_DIR: join(dir, 'state'),
    PERSONA_INVENTORY: inventory,
    PERSONA_AUTHOR: 'alice@test',
  };
  const assignment = async (app: string) => {
    const backend = await openBackend(`file:${store}`, {}, dir);
    try {
      return await readAssignment(backend, app);
    } finally {
      await backend.close();
    }
  };
  return { env, inventory, assignment };
}

const recover = (args: string[]) => ['recover', 'web-1', '--exclude', 'web-2', ...args];

describe('recover: which applications', () => {
  test('a host with none recorded: exit 4, naming the inventory apps / persona_apps and --app, with an example', async () => {
    const { env } = setup();
    const r = await runInProcess(recover([]), { env });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/error: no application is recorded on web-1 \(inventory .*, store file:/);
    expect(r.stderr).toContain('"apps": ["billing-api"] on web-1');
    expect(r.stderr).toContain('web-1 persona_apps=billing-api');
    expect(r.stderr).toContain('persona recover web-1 --app billing-api');
    expect(r.stderr).toContain('records billing-api on web-1 once you confirm');
  });

  test('--app for an application nothing records, without a terminal and without --yes: exit 3 naming --yes, nothing recorded', async () => {
    const { env, assignment } = setup();
    const r = await runInProcess(recover(['--app', 'demo-web']), { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('Record demo-web as running on web-1?');
    expect(r.stderr).toContain('--yes');
    expect(await assignment('demo-web')).toBeUndefined();
  });

  test('--app with --yes: auto-confirmed, recorded, and the recovery goes on to the ranking', async () => {
    const { env, assignment } = setup();
    const r = await runInProcess(recover(['--app', 'demo-web', '--yes']), { env });
    expect(r.stderr).toMatch(/\? .*Record demo-web as running on web-1\? yes \(--yes\)/);
    expect(r.stderr).toContain('recorded demo-web as running on web-1');
    expect(r.stderr).toContain('web-1 ran: demo-web');
    expect(r.stderr).toContain('no host can take demo-web');
    expect(r.code).toBe(4);
    expect(await assignment('demo-web')).toMatchObject({
      app: 'demo-web',
      host: 'web-1',
      declared_by: 'alice@test',
    });
    // Recorded: the next recovery of web-1 finds it without --app, and asks nothing.
    const again = await runInProcess(recover([]), { env });
    expect(again.stderr).toContain('web-1 ran: demo-web');
    expect(again.stderr).not.toContain('Record demo-web');
  });

  test('--app with --dry-run: says it would record, records nothing, asks nothing', async () => {
    const { env, assignment } = setup();
    const r = await runInProcess(recover(['--app', 'demo-web', '--dry-run']), { env });
    expect(r.stderr).toContain('dry run: would record demo-web as running on web-1');
    expect(r.stderr).toContain('not recorded');
    expect(r.stderr).toContain('no host can take demo-web');
    expect(await assignment('demo-web')).toBeUndefined();
  });

  test('interactive: "no" records nothing and runs nothing (exit 3)', async () => {
    const { env, assignment } = setup();
    const prompter = new ScriptedPrompter([
      {
        match: /^Nothing records where demo-web runs\. Record demo-web as running on web-1\?$/,
        answer: false,
      },
    ]);
    const r = await runInProcess(recover(['--app', 'demo-web']), { env, tty: true, prompter });
    expect(r.code).toBe(3);
    expect(prompter.asked).toHaveLength(1);
    expect(r.stderr).not.toContain('web-1 ran');
    expect(await assignment('demo-web')).toBeUndefined();
  });

  test('--app for an application without a profile is not found (exit 4), and nothing is asked or recorded', async () => {
    const { env, assignment } = setup();
    const r = await runInProcess(recover(['--app', 'nope', '--yes']), { env });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('profile "nope" not found');
    expect(r.stderr).not.toContain('Record nope');
    expect(await assignment('nope')).toBeUndefined();
  });

  test('--app for an application the inventory puts on this host is recovered without a question', async () => {
    const { env, assignment } = setup(['demo-web']);
    const r = await runInProcess(recover(['--app', 'demo-web']), { env });
    expect(r.stderr).not.toContain('Record demo-web');
    expect(r.stderr).toContain('no host can take demo-web');
    expect(await assignment('demo-web')).toBeUndefined();
  });
});
