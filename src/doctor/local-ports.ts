/**
 * The doctor's real side effects on this machine: local programs (argument arrays, a timeout), the file system.
 * The store and the inventory come from the command's context.
 */
import { randomBytes } from 'node:crypto';
import { access, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { DoctorPorts } from './check.js';

export function localPorts(
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
): Omit<DoctorPorts, 'openStore' | 'loadInventory'> {
  return {
    async exec(file, args) {
      const { execa } = await import('execa');
      const r = await execa(file, args, {
        reject: false,
        env,
        extendEnv: false,
        stdin: 'ignore',
        timeout: 10_000,
        ...(signal ? { cancelSignal: signal } : {}),
      });
      if ((r as { code?: string }).code === 'ENOENT') return undefined;
      return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
    },
    readText: (path) => readFile(path, 'utf8').catch(() => undefined),
    exists: (path) =>
      access(path).then(
        () => true,
        () => false,
      ),
    async stat(path) {
      const s = await stat(path).catch(() => undefined);
      return s && { mode: s.mode, uid: s.uid, isDirectory: s.isDirectory() };
    },
    async tryWrite(dir) {
      const file = join(dir, `.persona-doctor-${randomBytes(4).toString('hex')}`);
      try {
        await writeFile(file, '', { flag: 'wx', mode: 0o600 });
        await unlink(file);
        return undefined;
      } catch (error) {
        return (error as NodeJS.ErrnoException).code ?? String(error);
      }
    },
    uid: process.getuid?.(),
    hostname: hostname(),
    pid: process.pid,
  };
}
