/**
 * The local programs persona drives: the OpenSSH client and rsync, and the ssh config they will read.
 */
import { join, resolve } from 'node:path';
import { describeSource, provisionArgv } from '../cli/settings.js';
import type { Check, CheckResult, DoctorPorts } from './check.js';
import { firstLine } from './check.js';

const install =
  'install it (Debian/Ubuntu: apt-get install openssh-client rsync; RHEL: dnf install openssh-clients rsync)';

/** "OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.11 19 Sep 2023" -> { version: "9.2p1", major: 9, minor: 2 } */
export function parseOpenSshVersion(
  text: string,
): { version: string; major: number; minor: number } | undefined {
  const m = /OpenSSH_(\d+)\.(\d+)(p\d+)?/.exec(text);
  return m
    ? { version: `${m[1]}.${m[2]}${m[3] ?? ''}`, major: Number(m[1]), minor: Number(m[2]) }
    : undefined;
}

/** "rsync  version 3.2.7  protocol version 31" -> "3.2.7" */
export function parseRsyncVersion(text: string): string | undefined {
  return /rsync\s+version\s+v?(\S+)/.exec(text)?.[1];
}

export const checkOpenSsh: Check = async (_input, ports) => {
  const r = await ports.exec('ssh', ['-V']);
  if (!r) return { id: 'openssh', status: 'fail', summary: 'ssh is not on PATH', fix: install };
  const v = parseOpenSshVersion(`${r.stderr}\n${r.stdout}`);
  if (!v)
    return {
      id: 'openssh',
      status: 'fail',
      summary: `ssh is not OpenSSH: ${firstLine(r.stderr || r.stdout)}`,
      fix: `persona needs the OpenSSH client; ${install}`,
    };
  // persona is tested with OpenSSH 9; it passes options (KexAlgorithms=^…) that old clients do not know.
  if (v.major < 8)
    return {
      id: 'openssh',
      status: 'warn',
      summary: `OpenSSH ${v.version} is older than 8 and untested; it may refuse options persona passes`,
      fix: 'upgrade the OpenSSH client',
      details: { version: v.version },
    };
  return { id: 'openssh', status: 'ok', summary: `OpenSSH ${v.version}`, details: { version: v.version } };
};

export const checkRsync: Check = async (_input, ports) => {
  const r = await ports.exec('rsync', ['--version']);
  if (!r)
    return {
      id: 'rsync',
      status: 'fail',
      summary: 'rsync is not on PATH (the migrate step needs it)',
      fix: install,
    };
  const version = parseRsyncVersion(r.stdout);
  if (r.exitCode !== 0 || !version)
    return {
      id: 'rsync',
      status: 'fail',
      summary: `rsync --version failed: ${firstLine(r.stderr || r.stdout)}`,
      fix: install,
    };
  return { id: 'rsync', status: 'ok', summary: `rsync ${version}`, details: { version } };
};

/** `ssh -G` parses the config and prints the result for a host without connecting to it. */
export async function sshG(
  ports: DoctorPorts,
  configFile: string | undefined,
  args: readonly string[],
): Promise<{ ok: true; options: Map<string, string> } | { ok: false; error: string }> {
  const r = await ports.exec('ssh', [...(configFile ? ['-F', configFile] : []), '-G', ...args]);
  if (!r) return { ok: false, error: 'ssh is not on PATH' };
  if (r.exitCode !== 0) return { ok: false, error: firstLine(r.stderr) || `ssh -G exited ${r.exitCode}` };
  return { ok: true, options: parseSshG(r.stdout) };
}

/** `ssh -G` output: one "keyword value" a line; the first of a keyword wins, as in ssh itself. */
export function parseSshG(text: string): Map<string, string> {
  const options = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (m && !options.has(m[1]!.toLowerCase())) options.set(m[1]!.toLowerCase(), m[2]!);
  }
  return options;
}

export const checkSshConfig: Check = async (input, ports, shared): Promise<CheckResult> => {
  const file = await shared.sshConfig();
  const shown = file ?? '~/.ssh/config';
  if (file && !(await ports.exists(file)))
    return {
      id: 'ssh-config',
      status: 'fail',
      summary: `${file} does not exist (${sshConfigOrigin(input.settings.ssh_config.value, file)})`,
      fix: 'create it, or name another file with --ssh-config, PERSONA_SSH_CONFIG or ssh_config in persona.yaml',
    };
  const host = (await shared.inventory())?.hosts[0]?.name ?? 'persona-doctor.invalid';
  const r = await sshG(ports, file, ['--', host]);
  if (!r.ok)
    return {
      id: 'ssh-config',
      status: 'fail',
      summary: `ssh cannot read ${shown}: ${r.error}`,
      fix: 'fix the line ssh names (`ssh -G HOST` shows what it reads)',
    };
  return {
    id: 'ssh-config',
    status: 'ok',
    summary: file
      ? `${file} parses (ssh -G)`
      : 'ssh default config (~/.ssh/config, /etc/ssh/ssh_config) parses (ssh -G)',
    ...(file ? { details: { file } } : {}),
  };
};

const sshConfigOrigin = (fromSettings: string | undefined, file: string) =>
  fromSettings === file ? 'the ssh_config setting' : "the inventory's defaults.ssh_config";

/**
 * The provision setting's program (recover runs it when no host fits): found and executable, as execve would find
 * it (a path with a "/" as it is, relative to the working directory; a bare name on PATH). Only a warning when it
 * is missing: it matters only on the night no host fits, and a profile may name a command of its own.
 */
export const checkProvision: Check = async (input, ports) => {
  const argv = provisionArgv(input.settings);
  if (!argv)
    return {
      id: 'provision',
      status: 'ok',
      summary: 'no provision command set (recover stops when no host fits, unless a profile names one)',
    };
  const program = argv[0]!;
  const candidates = program.includes('/')
    ? [resolve(input.cwd, program)]
    : (input.env.PATH ?? '')
        .split(':')
        .filter(Boolean)
        .map((dir) => join(dir, program));
  for (const path of candidates) {
    const st = await ports.stat(path);
    if (st && !st.isDirectory && (st.mode & 0o111) !== 0)
      return {
        id: 'provision',
        status: 'ok',
        summary: `provision command ${path} (from ${describeSource(input.settings.provision.source)})`,
        details: { program: path },
      };
  }
  const where = program.includes('/') ? candidates[0]! : `${program} on PATH`;
  return {
    id: 'provision',
    status: 'warn',
    summary: `the provision command's program is not there or not executable: ${where} (from ${describeSource(input.settings.provision.source)})`,
    fix: 'install it, or correct the provision setting (persona config shows where it comes from)',
  };
};
