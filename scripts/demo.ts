/**
 * The main job, for real: bring up the lab (or reuse a clean one), break the host that runs the sample
 * application, and let `persona recover` move it. Then show that traffic and data now come from the new host.
 *
 *   sudo npm run demo                    # lab-1 is powered off; the data comes back from its backup
 *   sudo npm run demo -- --mode app      # only the application dies; the data is copied from lab-1
 *
 * Exit codes: 0 recovered, traffic and data checked; 1 recovered but traffic or data is not as expected (or a bug);
 * 2 usage, not root, or Debian packages missing; otherwise the failing `lab` command's or persona's own code.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { getText, runScript, ScriptError } from './script-main.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const labScript = join(repo, 'test/lab/lab');
const persona = join(repo, 'bin/persona');
const labDir = process.env.PERSONA_LAB_DIR ?? '/var/lib/persona-lab';
const demoDir = join(labDir, 'demo');
const mode = process.argv.includes('--mode') ? process.argv[process.argv.indexOf('--mode') + 1] : 'poweroff';

const say = (text: string) => process.stderr.write(`\n\x1b[1m▶ ${text}\x1b[0m\n`);

/** A lab command with its output shown; a failure is one line naming the command (the lab said why above). */
async function lab(...args: string[]): Promise<void> {
  const r = await execa(labScript, args, { stdio: 'inherit', reject: false });
  if (r.exitCode !== 0)
    throw new ScriptError(
      `\`npm run lab -- ${args.join(' ')}\` failed (exit ${r.exitCode ?? r.signal}); the lab said why above`,
      r.exitCode ?? 1,
    );
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      'The demo builds a lab of simulated hosts with namespaces and cgroups: run it as root (sudo npm run demo).\n',
    );
    return 2;
  }
  if (mode !== 'poweroff' && mode !== 'app') {
    process.stderr.write(`--mode is poweroff or app, not ${mode}\n`);
    return 2;
  }
  say('the lab: four hosts, HAProxy in front, demo-web running on lab-1');
  const statePath = join(labDir, 'state.json');
  if (existsSync(statePath)) {
    const front = JSON.parse(readFileSync(statePath, 'utf8')).haproxy.frontend_url as string;
    if ((await getText(`${front}/whoami`)) !== '200 lab-1') {
      say('the lab is up but not as a fresh one (an earlier demo or test changed it): starting it again');
      await lab('down');
    }
  }
  await lab('up');
  const state = JSON.parse(readFileSync(statePath, 'utf8'));
  const front = state.haproxy.frontend_url as string;
  const checksum = state.apps['demo-web'].data_checksum as string;

  // A fresh store for the demo: the example profiles, no history of earlier demos.
  rmSync(demoDir, { recursive: true, force: true });
  mkdirSync(demoDir, { recursive: true, mode: 0o700 });
  cpSync(join(repo, 'profiles'), join(demoDir, 'store'), { recursive: true });
  const env = {
    ...process.env,
    PERSONA_STORE: `file:${join(demoDir, 'store')}`,
    PERSONA_STATE_DIR: join(demoDir, 'state'),
    PERSONA_INVENTORY: state.inventory as string,
  };

  say(
    `before: ${front}/whoami → ${await getText(`${front}/whoami`)}; /checksum → ${await getText(`${front}/checksum`)}`,
  );
  say(
    mode === 'poweroff'
      ? 'lab-1 loses power (its processes die, its link goes down)'
      : 'demo-web dies on lab-1 (the host stays up)',
  );
  await lab('fail', 'lab-1', `--mode=${mode}`);
  say(`now: ${front}/whoami → ${await getText(`${front}/whoami`)}`);

  const interactive = Boolean(process.stdin.isTTY && process.stderr.isTTY && !process.env.CI);
  const args = ['recover', 'lab-1', ...(interactive ? [] : ['--yes'])];
  say(`persona ${args.join(' ')}${interactive ? '   (you pick the host and confirm the plan)' : ''}`);
  const run = await execa(persona, args, { env, stdio: 'inherit', reject: false });
  if (run.exitCode !== 0) {
    say(
      `persona exited with ${run.exitCode}; the run is saved: PERSONA_STATE_DIR=${env.PERSONA_STATE_DIR} persona runs list`,
    );
    return run.exitCode ?? 1;
  }

  const whoami = await getText(`${front}/whoami`);
  const after = await getText(`${front}/checksum`);
  say(`after: ${front}/whoami → ${whoami}; /checksum → ${after}`);
  const same = after === `200 ${checksum}`;
  process.stderr.write(
    `${same ? '✔' : '✖'} the data served now is ${same ? 'identical to' : 'DIFFERENT from'} what lab-1 served (sha256 manifest ${checksum.slice(0, 16)}…)\n`,
  );
  process.stderr.write(
    `\nExplore: PERSONA_STORE=${env.PERSONA_STORE} PERSONA_STATE_DIR=${env.PERSONA_STATE_DIR} PERSONA_INVENTORY=${env.PERSONA_INVENTORY} persona runs list\n` +
      `Put lab-1 back: npm run lab -- heal lab-1; tear the lab down: npm run lab -- down\n`,
  );
  return same && whoami !== '200 lab-1' ? 0 : 1;
}

process.exitCode = await runScript('demo', main);
