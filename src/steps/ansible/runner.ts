/**
 * Runs ansible-playbook against one inventory host, the way persona's own ssh reaches it: the inventory, the
 * callback plugin, the playbook, secrets and extra vars go into a private directory (0700, files 0600) that is
 * removed afterwards; ssh gets persona's options (SshSettings: -F, BatchMode, StrictHostKeyChecking,
 * ConnectTimeout, jump hosts as persona's ProxyCommand); ansible-playbook runs through the LocalRunner with only
 * PATH, HOME, LANG, LC_ALL, TZ, SSH_AUTH_SOCK and the ANSIBLE_* settings persona sets (never persona's own
 * credentials). Building the inventory, the arguments and the environment is pure, and tested.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PersonaError } from '../../errors.js';
import type { InventoryHost } from '../../hosts/inventory.js';
import { isLocal, loginUser } from '../../hosts/local-transport.js';
import { shellJoin } from '../../hosts/shell-quote.js';
import type { SshSettings } from '../../hosts/ssh.js';
import { localEnv } from '../../runbook/local-env.js';
import type { StepContext } from '../../runbook/types.js';
import { endedAs } from '../../util/local-process.js';
import { processAlive } from '../../util/process.js';
import { stripTerminalControls } from '../../util/sanitize.js';
import {
  type AnsibleEvent,
  CALLBACK_NAME,
  CALLBACK_PLUGIN,
  failureText,
  parseEvent,
  type TaskResult,
} from './events.js';
import { becomeFor } from './playbook.js';
import { toAnsibleYaml, type YamlValue } from './yaml.js';

export const ANSIBLE_PLAYBOOK = 'ansible-playbook';

/** ansible-playbook's exit codes, for messages (2, 4 and 8 are bits of the play's outcome, and may add up). */
export const ANSIBLE_EXIT: Record<number, string> = {
  1: 'error',
  2: 'a task failed on the host',
  4: 'the host was unreachable, or the playbook could not be parsed',
  5: 'bad or incomplete options',
  8: 'a play was stopped',
  99: 'interrupted',
  250: 'unexpected error',
};

export interface PlaybookRun {
  host: InventoryHost;
  /** For messages: "configure", "hook pre_configure". */
  what: string;
  /** A playbook persona generated, or one on this machine. */
  playbook: { plays: YamlValue } | { path: string };
  /** --check: report what would change, change nothing. */
  check: boolean;
  timeoutMs: number;
  /** Files for the playbook (secrets), by path relative to the private directory: written 0600, removed after. */
  files?: ReadonlyMap<string, string>;
  /** Extra vars, through a file in the private directory (never on the command line). */
  extraVars?: Record<string, string>;
  /** Each task result as it comes. */
  progress?: (result: TaskResult) => void;
}

export interface PlaybookOutcome {
  results: TaskResult[];
  exitCode: number;
}

/** The inventory: the one host, with its address, port, user, key file, privilege and persona's ssh options. */
export function inventoryYaml(host: InventoryHost, ssh: SshSettings | undefined): string {
  const become = becomeFor(loginUser(host));
  if (!ssh || isLocal(host))
    // A local host (connection: local) is this machine: Ansible's own local connection, as the inventory said.
    return toAnsibleYaml({
      all: {
        hosts: {
          [host.name]: {
            ansible_connection: 'local',
            ansible_python_interpreter: 'auto_silent',
            ...(become.become ? { ansible_become: true, ansible_become_method: 'sudo' } : {}),
          },
        },
      },
    });
  return toAnsibleYaml({
    all: {
      hosts: {
        [host.name]: {
          ansible_connection: 'ssh',
          ansible_host: host.address,
          ...(host.port ? { ansible_port: host.port } : {}),
          ...(host.user ? { ansible_user: host.user } : {}),
          ...(host.keyFile ? { ansible_ssh_private_key_file: host.keyFile } : {}),
          // Ansible splits these like a POSIX shell (shlex): each option quoted once, as persona quotes for ssh.
          ansible_ssh_common_args: shellJoin(ssh.options),
          ansible_ssh_timeout: ssh.connectTimeoutSec,
          ansible_python_interpreter: 'auto_silent',
          ...(become.become ? { ansible_become: true, ansible_become_method: 'sudo' } : {}),
        },
      },
    },
  });
}

/** The environment of ansible-playbook: the minimal local one, and every setting persona relies on. */
export function ansibleEnv(
  env: NodeJS.ProcessEnv,
  dir: string,
  ssh: SshSettings | undefined,
): Record<string, string> {
  return {
    ...localEnv(env),
    // The user's agent, as persona's own ssh uses it.
    ...(env.SSH_AUTH_SOCK ? { SSH_AUTH_SOCK: env.SSH_AUTH_SOCK } : {}),
    ...(ssh?.shell ? { SHELL: ssh.shell } : {}),
    // Ours, so that no ansible.cfg in the working directory or the home directory changes what runs.
    ANSIBLE_CONFIG: join(dir, 'ansible.cfg'),
    ANSIBLE_STDOUT_CALLBACK: CALLBACK_NAME,
    ANSIBLE_CALLBACK_PLUGINS: join(dir, 'callback_plugins'),
    ANSIBLE_HOST_KEY_CHECKING: 'True',
    ANSIBLE_SSH_ARGS: '-o ControlMaster=auto -o ControlPersist=60s',
    ANSIBLE_SSH_CONTROL_PATH_DIR: join(dir, 'cp'),
    ANSIBLE_PIPELINING: 'True',
    ANSIBLE_LOCAL_TEMP: join(dir, 'tmp'),
    ANSIBLE_RETRY_FILES_ENABLED: 'False',
    ANSIBLE_NOCOLOR: 'True',
    ANSIBLE_FORCE_COLOR: 'False',
    ANSIBLE_DEPRECATION_WARNINGS: 'False',
    ANSIBLE_SYSTEM_WARNINGS: 'False',
    ANSIBLE_LOAD_CALLBACK_PLUGINS: 'False',
    ANSIBLE_CALLBACKS_ENABLED: '',
    ANSIBLE_GATHERING: 'explicit',
    ANSIBLE_FORKS: '1',
  };
}

/** The command line: no value from a profile on it, only paths in the private directory and the host's name. */
export function ansibleArgv(
  files: { playbook: string; inventory: string; extraVars?: string },
  host: string,
  check: boolean,
): string[] {
  return [
    ANSIBLE_PLAYBOOK,
    '-i',
    files.inventory,
    '--limit',
    host,
    ...(files.extraVars ? ['--extra-vars', `@${files.extraVars}`] : []),
    ...(check ? ['--check'] : []),
    '--',
    files.playbook,
  ];
}

const PREFIX = 'persona-ansible-';

/** A run killed with SIGKILL cannot remove its directory (it may hold secrets): the next run does. */
async function sweepStale(base: string): Promise<void> {
  const names = await readdir(base).catch(() => [] as string[]);
  await Promise.all(
    names
      .map((name) => ({ name, pid: new RegExp(`^${PREFIX}(\\d+)-`).exec(name)?.[1] }))
      .filter((d) => d.pid !== undefined && Number(d.pid) !== process.pid && !processAlive(Number(d.pid)))
      .map((d) => rm(join(base, d.name), { recursive: true, force: true }).catch(() => {})),
  );
}

async function writePrivate(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, content, { mode: 0o600, flag: 'wx' });
}

/** Ends the ssh master connections Ansible left in the private directory (ControlPersist). */
async function closeMasters(ctx: StepContext, dir: string, env: Record<string, string>): Promise<void> {
  const sockets = await readdir(join(dir, 'cp')).catch(() => [] as string[]);
  await Promise.all(
    sockets.map((s) =>
      ctx
        .local(['ssh', '-o', `ControlPath=${join(dir, 'cp', s)}`, '-O', 'exit', 'persona-control'], {
          env,
          timeoutMs: 5000,
          signal: AbortSignal.timeout(5000),
        })
        .catch(() => undefined),
    ),
  );
}

function missingBinary(): PersonaError {
  return new PersonaError(
    'E_STEP_FAILED',
    `${ANSIBLE_PLAYBOOK} is not installed on this machine (not on PATH): the Ansible driver needs it`,
    { hint: 'Install the Debian package ansible-core (apt-get install ansible-core), then resume.' },
  );
}

function where(host: InventoryHost): string {
  return host.address !== host.name
    ? `${host.name} (${host.address}${host.port ? `:${host.port}` : ''})`
    : host.name;
}

/** Why the run failed, from its results and exit code; undefined when it did not. */
export function playbookFailure(
  run: Pick<PlaybookRun, 'what' | 'check'> & { host: InventoryHost },
  results: readonly TaskResult[],
  events: readonly AnsibleEvent[],
  exitCode: number,
  stderr: string,
): PersonaError | undefined {
  const mode = run.check ? ' (check mode)' : '';
  const code = `ansible-playbook exit ${exitCode}${ANSIBLE_EXIT[exitCode] ? `: ${ANSIBLE_EXIT[exitCode]}` : ''}`;
  const unreachable = results.find((r) => r.status === 'unreachable');
  if (unreachable)
    return new PersonaError(
      'E_STEP_FAILED',
      `${run.what}${mode}: ansible-playbook could not reach ${where(run.host)} at task "${unreachable.task}": ${failureText(unreachable)} (${code})`,
      { hint: 'persona connects with the same ssh settings: `persona hosts probe` shows what ssh says.' },
    );
  const failed = results.find((r) => r.status === 'failed' && !r.ignored);
  if (failed)
    return new PersonaError(
      'E_STEP_FAILED',
      `${run.what}${mode}: task "${failed.task}" failed on ${failed.host}: ${failureText(failed)} (${code})`,
    );
  if (events.some((e) => e.event === 'no_hosts_matched'))
    return new PersonaError(
      'E_STEP_FAILED',
      `${run.what}: the playbook's plays match no host of the one-host inventory persona gives it (${run.host.name})`,
      { hint: 'A playbook run by persona should say `hosts: all`: persona limits it to the host.' },
    );
  if (exitCode !== 0) {
    const text = stripTerminalControls(stderr).trim().split('\n').slice(-5).join(' ⏎ ');
    return new PersonaError('E_STEP_FAILED', `${run.what}${mode}: ${code}${text ? `: ${text}` : ''}`);
  }
  return undefined;
}

/**
 * Runs the playbook and returns every task result; throws, naming the task, the host and Ansible's message, when a
 * task failed (unless ignored), the host was unreachable, or ansible-playbook did not succeed.
 */
export async function runPlaybook(ctx: StepContext, run: PlaybookRun): Promise<PlaybookOutcome> {
  if (!isLocal(run.host) && !ctx.ssh.sshSettings)
    throw new PersonaError(
      'E_STEP_FAILED',
      `${run.what}: the Ansible driver needs persona's OpenSSH transport`,
    );
  const ssh = isLocal(run.host) ? undefined : await ctx.ssh.sshSettings!(run.host);
  const base = tmpdir();
  await sweepStale(base);
  const dir = await mkdtemp(join(base, `${PREFIX}${process.pid}-`));
  const env = ansibleEnv(ctx.env, dir, ssh);
  try {
    await writePrivate(join(dir, 'ansible.cfg'), '# persona: every setting is in the environment\n');
    await writePrivate(join(dir, 'callback_plugins', `${CALLBACK_NAME}.py`), CALLBACK_PLUGIN);
    await writePrivate(join(dir, 'inventory.yml'), inventoryYaml(run.host, ssh));
    await mkdir(join(dir, 'cp'), { mode: 0o700 });
    await mkdir(join(dir, 'tmp'), { mode: 0o700 });
    for (const [path, content] of run.files ?? []) await writePrivate(join(dir, path), content);
    let playbook: string;
    if ('plays' in run.playbook) {
      playbook = join(dir, 'playbook.yml');
      await writePrivate(playbook, toAnsibleYaml(run.playbook.plays));
    } else playbook = run.playbook.path;
    let extraVars: string | undefined;
    if (run.extraVars) {
      extraVars = join(dir, 'extra-vars.yml');
      await writePrivate(extraVars, toAnsibleYaml(run.extraVars));
    }
    const argv = ansibleArgv(
      { playbook, inventory: join(dir, 'inventory.yml'), ...(extraVars ? { extraVars } : {}) },
      run.host.name,
      run.check,
    );
    const events: AnsibleEvent[] = [];
    const results: TaskResult[] = [];
    const r = await ctx.local(argv, {
      env,
      timeoutMs: run.timeoutMs,
      signal: ctx.signal,
      onStdoutLine: (line) => {
        const e = parseEvent(line);
        if (e?.event === 'result') run.progress?.(e);
      },
    });
    if (r.exitCode === undefined && /ENOENT/.test(r.error ?? '')) throw missingBinary();
    for (const line of r.stdout.split('\n')) {
      const e = parseEvent(line);
      if (!e) continue;
      events.push(e);
      if (e.event === 'result') results.push(e);
    }
    if (r.exitCode === undefined)
      throw new PersonaError(
        'E_STEP_FAILED',
        `${run.what}: ansible-playbook ${endedAs(r)} on ${where(run.host)}${results.length ? ` after task "${results.at(-1)!.task}"` : ''}`,
      );
    const failure = playbookFailure(run, results, events, r.exitCode, r.stderr);
    if (failure) throw failure;
    return { results, exitCode: r.exitCode };
  } finally {
    await closeMasters(ctx, dir, env);
    await rm(dir, { recursive: true, force: true });
  }
}
