/**
 * Turns the probe's raw output into facts. Pure: tested on recorded output from real hosts.
 * Usable cores respect the cpuset (nproc) and the CPU quota; usable memory is the smaller of the machine's memory
 * and the cgroup limit (v1 or v2), because /proc/meminfo inside a container shows the whole machine.
 */
import { stripTerminalControls } from '../util/sanitize.js';
import { PROBE_MARKER } from './probe-script.js';

export interface PackageFact {
  name: string;
  wanted?: string;
  installed?: string;
  candidate?: string;
  /** Whether the wanted exact version is offered by the host's package sources (undefined: not asked). */
  wantedAvailable?: boolean;
}

export interface HostFacts {
  hostname: string;
  kernel: string;
  arch: string;
  os: { id: string; version: string; pretty: string };
  cores: { online: number; quota?: number; usable: number };
  memory: {
    totalBytes: number;
    availableBytes: number;
    limitBytes?: number;
    usedBytes?: number;
    usableBytes: number;
  };
  cgroup: '1' | '2' | 'none';
  storage: {
    path: string;
    checked: string;
    mount: string;
    totalBytes: number;
    freeBytes: number;
    /** `stat -f -c %T` of `checked` ("btrfs", "ext2/ext3", ...); absent from older probes, or when stat failed. */
    fsType?: string;
  };
  load1: number;
  packages: {
    manager: 'dpkg' | 'rpm' | 'none';
    installedCount: number;
    /** How many apt package lists the host has; 0 means `apt-get update` must run before installing. */
    aptLists?: number;
    requested: PackageFact[];
  };
}

export class ProbeParseError extends Error {}

const num = (text: string | undefined): number | undefined => {
  if (text === undefined || text.trim() === '') return undefined;
  const n = Number(text.trim());
  return Number.isFinite(n) ? n : undefined;
};

export function parseProbeOutput(output: string, requested: readonly string[] = []): HostFacts {
  const start = output.indexOf(`${PROBE_MARKER}\n`);
  if (start < 0)
    throw new ProbeParseError('the probe printed no facts (is /bin/sh a POSIX shell on the host?)');
  const body = output.slice(start + PROBE_MARKER.length + 1);
  if (!body.includes('persona-probe end')) throw new ProbeParseError('the probe output ended early');
  const kv = new Map<string, string>();
  for (const line of body.split('\n')) {
    const tab = line.indexOf('\t');
    // Remote text: a hostile host must not reach the terminal through a fact (os_pretty, versions).
    if (tab > 0) kv.set(line.slice(0, tab), stripTerminalControls(line.slice(tab + 1)));
  }
  const get = (k: string) => kv.get(k) ?? '';

  const online = num(get('nproc')) ?? 1;
  let quota: number | undefined;
  const cgroup = (get('cgroup') || 'none') as HostFacts['cgroup'];
  if (cgroup === '2') {
    const [max, period] = get('cg_cpu_max').split(/\s+/);
    if (max && max !== 'max' && num(period)) quota = num(max)! / num(period)!;
  } else if (cgroup === '1') {
    const q = num(get('cg_cpu_quota'));
    const period = num(get('cg_cpu_period'));
    if (q !== undefined && q > 0 && period) quota = q / period;
  }
  const usableCores = quota === undefined ? online : Math.max(0, Math.min(online, Math.floor(quota + 1e-9)));

  const totalBytes = (num(get('meminfo_total_kb')) ?? 0) * 1024;
  const availableBytes = (num(get('meminfo_available_kb')) ?? 0) * 1024;
  const rawLimit = get('cg_memory_max');
  const limit = rawLimit === 'max' ? undefined : num(rawLimit);
  // cgroup v1 reports "no limit" as a huge number: anything above the machine's memory is no limit.
  const limitBytes = limit !== undefined && limit < totalBytes ? limit : undefined;
  const usedBytes = num(get('cg_memory_current'));
  const usableBytes = limitBytes ?? totalBytes;

  const df = get('storage_df').trim().split(/\s+/);
  const storage = {
    path: get('storage_path'),
    checked: get('storage_checked'),
    totalBytes: (num(df[1]) ?? 0) * 1024,
    freeBytes: (num(df[3]) ?? 0) * 1024,
    mount: df[5] ?? '',
    ...(get('storage_fstype').trim() ? { fsType: get('storage_fstype').trim() } : {}),
  };

  const requestedFacts: PackageFact[] = requested.map((spec) => {
    const [name = spec, wanted] = spec.split('=', 2);
    const installed = kv.get(`pkg_installed:${name}`);
    // apt-cache policy heads a native-architecture package without its ":arch" (libc6:amd64 -> "libc6:").
    const candidate = kv.get(`pkg_candidate:${name}`) ?? kv.get(`pkg_candidate:${name.split(':')[0]}`);
    const available = kv.get(`pkg_version_available:${name}`);
    return {
      name,
      ...(wanted ? { wanted } : {}),
      ...(installed ? { installed } : {}),
      ...(candidate && candidate !== '(none)' ? { candidate } : {}),
      ...(available ? { wantedAvailable: available === 'yes' } : {}),
    };
  });

  return {
    hostname: get('hostname'),
    kernel: get('kernel'),
    arch: get('arch'),
    os: { id: get('os_id'), version: get('os_version'), pretty: get('os_pretty') },
    cores: { online, ...(quota !== undefined ? { quota } : {}), usable: usableCores },
    memory: {
      totalBytes,
      availableBytes:
        limitBytes !== undefined && usedBytes !== undefined
          ? Math.max(0, limitBytes - usedBytes)
          : availableBytes,
      ...(limitBytes !== undefined ? { limitBytes } : {}),
      ...(usedBytes !== undefined ? { usedBytes } : {}),
      usableBytes,
    },
    cgroup,
    storage,
    load1: num(get('loadavg').split(/\s+/)[0]) ?? 0,
    packages: {
      manager: (get('pkg_manager') || 'none') as HostFacts['packages']['manager'],
      installedCount: num(get('pkg_installed_count')) ?? 0,
      ...(kv.has('apt_lists') ? { aptLists: num(get('apt_lists')) ?? 0 } : {}),
      requested: requestedFacts,
    },
  };
}
