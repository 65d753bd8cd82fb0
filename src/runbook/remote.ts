/**
 * Small remote operations the steps share. Every command is an argument array; file contents travel on stdin;
 * paths and names are positional parameters of a fixed script, never spliced into it.
 */
import { join } from 'node:path';
import type { InventoryHost } from '../hosts/inventory.js';
import { runsAsRoot } from '../hosts/local-transport.js';
import type { ExecResult, Transport } from '../hosts/ssh.js';

/**
 * Commands run as root: directly for root, through `sudo -n` for anyone else (for a local host: the user persona
 * runs as).
 */
export function privileged(host: InventoryHost, argv: readonly string[]): string[] {
  return runsAsRoot(host) ? [...argv] : ['sudo', '-n', '--', ...argv];
}

export async function runPrivileged(
  ssh: Transport,
  host: InventoryHost,
  argv: readonly string[],
  signal?: AbortSignal,
  input?: string,
): Promise<ExecResult> {
  return await ssh.run(host, privileged(host, argv), {
    ...(signal ? { signal } : {}),
    ...(input !== undefined ? { input } : {}),
  });
}

/**
 * The temp file is private until its mode is set (umask 077); directories it needs are made 0755, as `install -D`
 * does, so that the file's owner can reach it (a key for postgres in a new /var/lib/postgresql/.ssh).
 */
const WRITE_FILE = [
  'set -e',
  '(umask 022 && mkdir -p -- "$(dirname -- "$1")")',
  'umask 077',
  'tmp=$(mktemp -- "$1.persona.XXXXXX")',
  'trap \'rm -f -- "$tmp"\' EXIT',
  'cat > "$tmp"',
  'chown -- "$3" "$tmp"',
  'chmod -- "$2" "$tmp"',
  'mv -f -- "$tmp" "$1"',
  'trap - EXIT',
].join('\n');

/** Writes a file atomically on the host (temp file, then rename), with its owner and mode; content on stdin. */
export async function writeRemoteFile(
  ssh: Transport,
  host: InventoryHost,
  file: { path: string; content: string; mode: string; owner: string },
  signal?: AbortSignal,
): Promise<void> {
  await runPrivileged(
    ssh,
    host,
    ['sh', '-c', WRITE_FILE, 'persona-write', file.path, file.mode, file.owner],
    signal,
    file.content,
  );
}

/** sha256 of the file at path on the host, or undefined when it does not exist. */
export async function remoteSha256(
  ssh: Transport,
  host: InventoryHost,
  path: string,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const r = await ssh.exec(
    host,
    privileged(host, ['sh', '-c', 'test -f "$1" && sha256sum -- "$1"', 'persona-sha', path]),
    signal ? { signal } : {},
  );
  return r.exitCode === 0 ? r.stdout.split(/\s+/)[0] : undefined;
}

export interface Manifest {
  files: number;
  bytes: number;
  /** sha256 over the sorted "sha256  ./path" lines: equal digests mean equal contents. */
  digest: string;
  /**
   * sha256 over the sorted "type mode owner:group ./path" lines of every entry (directories and links too), with
   * owners by name: equal contents with a lost owner or mode are not an equal copy.
   */
  meta: string;
}

/** The same manifest on a host or locally: `cd DIR && find . -type f | sort | sha256sum each | sha256sum`. */
export const MANIFEST_SCRIPT = [
  'set -e',
  'cd -- "$1"',
  'LC_ALL=C; export LC_ALL',
  'files=$(find . -type f | wc -l)',
  'bytes=$(find . -type f -printf "%s\\n" | awk "{s+=\\$1} END {print s+0}")',
  'digest=$(find . -type f -print0 | sort -z | xargs -0r sha256sum | sha256sum | cut -d" " -f1)',
  'meta=$(find . -printf "%y %m %u:%g %p\\0" | sort -z | sha256sum | cut -d" " -f1)',
  'echo "$files $bytes $digest $meta"',
].join('\n');

export function parseManifest(text: string): Manifest {
  const [files = '0', bytes = '0', digest = '', meta = ''] = text.trim().split(/\s+/);
  return { files: Number(files), bytes: Number(bytes), digest, meta };
}

/** Same contents, and the same owners (by name) and modes. */
export const sameTree = (a: Manifest, b: Manifest) => a.digest === b.digest && a.meta === b.meta;

/** Every entry's owner and group by name (numeric where the name is unknown), NUL-separated "owner:group", path. */
export const OWNERS_SCRIPT = 'cd -- "$1" && find . -printf "%u:%g\\0%p\\0"';

/** Groups the output of OWNERS_SCRIPT: owner:group -> paths. */
export function parseOwners(text: string): Map<string, string[]> {
  const fields = text.split('\0');
  const out = new Map<string, string[]>();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const owner = fields[i]!;
    const path = fields[i + 1]!;
    if (owner === '' || path === '') continue;
    out.set(owner, [...(out.get(owner) ?? []), path]);
  }
  return out;
}

/** chown -h OWNER:GROUP on the paths (relative to DIR) given NUL-separated on stdin. */
export const CHOWN_SCRIPT = 'cd -- "$1" && xargs -0r chown -h -- "$2"';

export async function remoteManifest(
  ssh: Transport,
  host: InventoryHost,
  dir: string,
  signal?: AbortSignal,
): Promise<Manifest> {
  const r = await runPrivileged(ssh, host, ['sh', '-c', MANIFEST_SCRIPT, 'persona-manifest', dir], signal);
  return parseManifest(r.stdout);
}

/** The local manifests this process computed, by directory, with the tree's signature when they were. */
const localManifests = new Map<string, { signature: string; manifest: Manifest }>();

/**
 * A directory tree's signature: every entry's path, type, mode, owner and group ids, size, inode, and its
 * modification and change times to the nanosecond, with the change times of /etc/passwd and /etc/group (the
 * manifest names owners). Writing a file's contents, or changing its owner or mode, changes its ctime, which no
 * unprivileged program can set back; an equal signature means the tree's manifest is still what it was.
 */
export async function treeSignature(dir: string): Promise<string> {
  const { lstat, readdir } = await import('node:fs/promises');
  const { createHash } = await import('node:crypto');
  const names = (await readdir(dir, { recursive: true })).sort();
  const line = async (path: string, name: string) => {
    const s = await lstat(path, { bigint: true });
    return `${name}\0${s.mode} ${s.uid}:${s.gid} ${s.size} ${s.ino} ${s.mtimeNs} ${s.ctimeNs}`;
  };
  const hash = createHash('sha256');
  for (const extra of ['/etc/passwd', '/etc/group'])
    hash.update(await line(extra, extra).catch(() => `${extra}\0absent`));
  hash.update(await line(dir, '.'));
  for (let i = 0; i < names.length; i += 256) {
    const chunk = names.slice(i, i + 256);
    for (const l of await Promise.all(chunk.map((n) => line(join(dir, n), n)))) hash.update(`\0${l}`);
  }
  return hash.digest('hex');
}

/**
 * The manifest of a directory on this machine. A tree whose signature (treeSignature) has not changed since this
 * process last hashed it gets that manifest again without hashing its contents: a backup read by the early copy,
 * then by migrate's plan and its verification, is hashed once per run.
 */
export async function localManifest(dir: string, signal?: AbortSignal): Promise<Manifest> {
  const before = await treeSignature(dir).catch(() => undefined);
  const known = localManifests.get(dir);
  if (before !== undefined && known?.signature === before) return known.manifest;
  const { execa } = await import('execa');
  const r = await execa('sh', ['-c', MANIFEST_SCRIPT, 'persona-manifest', dir], {
    ...(signal ? { cancelSignal: signal } : {}),
  });
  const manifest = parseManifest(String(r.stdout));
  // Kept only when nothing changed while it was hashed.
  if (before !== undefined && (await treeSignature(dir).catch(() => undefined)) === before)
    localManifests.set(dir, { signature: before, manifest });
  else localManifests.delete(dir);
  return manifest;
}

/** The manifest of a data path that may not be there yet: undefined when the directory is absent. */
const MANIFEST_IF_PRESENT = `[ -d "$1" ] || { echo absent; exit 0; }\n${MANIFEST_SCRIPT}`;

export async function manifestIfPresent(
  ssh: Transport,
  host: InventoryHost,
  dir: string,
  signal?: AbortSignal,
): Promise<Manifest | undefined> {
  const r = await runPrivileged(
    ssh,
    host,
    ['sh', '-c', MANIFEST_IF_PRESENT, 'persona-manifest', dir],
    signal,
  );
  return r.stdout.trim() === 'absent' ? undefined : parseManifest(r.stdout);
}
