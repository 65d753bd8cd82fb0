/**
 * The state directory holds run journals (hosts, commands, evidence): it must be writable, and only its owner's.
 */
import { dirname } from 'node:path';
import type { Check, DoctorPorts } from './check.js';

const octal = (mode: number) => `0${(mode & 0o777).toString(8).padStart(3, '0')}`;

async function nearestExisting(ports: DoctorPorts, path: string): Promise<string> {
  let dir = path;
  while (dir !== dirname(dir) && !(await ports.exists(dir))) dir = dirname(dir);
  return dir;
}

export const checkStateDir: Check = async (input, ports) => {
  const id = 'state-dir';
  const dir = input.settings.state_dir.value;
  const chmod = `chmod 700 ${dir}`;
  const st = await ports.stat(dir);
  if (!st) {
    const parent = await nearestExisting(ports, dir);
    const error = await ports.tryWrite(parent);
    if (error)
      return {
        id,
        status: 'fail',
        summary: `${dir} does not exist and cannot be created: ${parent} is not writable (${error})`,
        fix: `mkdir -p -m 700 ${dir} as a user who may, or choose another state_dir (--state-dir, PERSONA_STATE_DIR)`,
      };
    return { id, status: 'ok', summary: `${dir} does not exist yet; persona creates it (0700) on first use` };
  }
  if (!st.isDirectory)
    return { id, status: 'fail', summary: `${dir} is not a directory`, fix: 'choose another state_dir' };
  const error = await ports.tryWrite(dir);
  if (error)
    return {
      id,
      status: 'fail',
      summary: `${dir} is not writable (${error})`,
      fix: `chown it to this user and ${chmod}, or choose another state_dir (--state-dir, PERSONA_STATE_DIR)`,
    };
  if (st.mode & 0o022)
    return {
      id,
      status: 'fail',
      summary: `${dir} is mode ${octal(st.mode)}: other users can change or remove run journals`,
      fix: chmod,
    };
  if (st.mode & 0o077)
    return {
      id,
      status: 'warn',
      summary: `${dir} is mode ${octal(st.mode)}: other users can read run journals (hosts, commands, evidence)`,
      fix: chmod,
    };
  if (ports.uid !== undefined && st.uid !== ports.uid)
    return {
      id,
      status: 'warn',
      summary: `${dir} belongs to uid ${st.uid}, not to this user (uid ${ports.uid})`,
      fix: `chown ${ports.uid} ${dir}`,
    };
  return { id, status: 'ok', summary: `${dir}: writable, mode ${octal(st.mode)}` };
};
