// What a lab may leave on the machine, checked independently of the bash teardown that should remove it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { type LabOptions, labDirOf, specOf } from './lab.js';

export interface LabIdentity {
  labDir: string;
  bridge: string;
  subnet: string;
}

/** The names a lab uses: from its state when it is up, else from its spec. */
export function labIdentity(opts: LabOptions = {}): LabIdentity {
  const labDir = labDirOf(opts);
  const stateFile = path.join(labDir, 'state.json');
  const source = existsSync(stateFile) ? stateFile : specOf(opts);
  const data = JSON.parse(readFileSync(source, 'utf8')) as { bridge?: string; subnet?: string };
  return { labDir, bridge: data.bridge ?? 'plab0', subnet: data.subnet ?? '10.251.72.0/22' };
}

const read = (file: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return ''; // the process or device went away while we looked
  }
};

function processTraces(id: LabIdentity): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid)) {
    const cmdline = read(`/proc/${pid}/cmdline`).replace(/\0/g, ' ').trim();
    const inCgroup = read(`/proc/${pid}/cgroup`).includes(`persona-lab-${id.bridge}/`);
    if (inCgroup || cmdline.includes(`${id.labDir}/`)) out.push(`process: ${pid} ${cmdline.slice(0, 120)}`);
  }
  return out;
}

function kernelTraces(id: LabIdentity): string[] {
  const out: string[] = [];
  for (const line of read('/proc/self/mountinfo').split('\n')) {
    if (line.includes(`${id.labDir}/`)) out.push(`mount: ${line}`);
  }
  for (const dev of readdirSync('/sys/block').filter((d) => d.startsWith('loop'))) {
    const backing = read(`/sys/block/${dev}/loop/backing_file`).trim();
    if (backing.startsWith(`${id.labDir}/`)) out.push(`loop device: ${dev} -> ${backing}`);
  }
  if (existsSync('/run/netns')) {
    for (const ns of readdirSync('/run/netns').filter((n) => n.startsWith(`${id.bridge}-`)))
      out.push(`netns: ${ns}`);
  }
  for (const link of readdirSync('/sys/class/net')) {
    if (link === id.bridge || new RegExp(`^${id.bridge}v\\d+$`).test(link)) out.push(`link: ${link}`);
  }
  const group = `persona-lab-${id.bridge}`;
  for (const dir of [
    `/sys/fs/cgroup/memory/${group}`,
    `/sys/fs/cgroup/cpuset/${group}`,
    `/sys/fs/cgroup/${group}`,
  ]) {
    if (existsSync(dir)) out.push(`cgroup: ${dir}`);
  }
  return out;
}

async function netfilterAndRouteTraces(id: LabIdentity): Promise<string[]> {
  const out: string[] = [];
  const routes = await execa('ip', ['-o', 'route', 'show', 'table', 'all'], { reject: false });
  for (const line of String(routes.stdout).split('\n')) {
    if (line.includes(id.subnet)) out.push(`route: ${line}`);
  }
  const nft = await execa('nft', ['list', 'tables'], { reject: false });
  if (String(nft.stdout).includes(`persona_lab_${id.bridge}`))
    out.push(`nftables: table persona_lab_${id.bridge}`);
  return out;
}

/** Everything of this lab still on the machine; empty when the teardown was complete. */
export async function labTraces(id: LabIdentity = labIdentity()): Promise<string[]> {
  return [
    ...kernelTraces(id),
    ...(await netfilterAndRouteTraces(id)),
    ...processTraces(id),
    ...(existsSync(id.labDir) ? [`directory: ${id.labDir}`] : []),
  ];
}

export async function assertNoLabTraces(id: LabIdentity = labIdentity()): Promise<void> {
  const traces = await labTraces(id);
  if (traces.length > 0) throw new Error(`the lab left ${traces.length} traces:\n  ${traces.join('\n  ')}`);
}
