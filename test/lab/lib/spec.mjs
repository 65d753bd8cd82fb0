// Lab spec: read (JSON or YAML), validate with every error named by its path, fill defaults.
// The resolved spec is the single description of a lab that the bash side and the renderers share.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const DEFAULT_LAB_DIR = '/var/lib/persona-lab';
// Bump when the base recipe (lib/base.sh) changes, so cached tarballs are rebuilt.
const BASE_RECIPE = 3;
const MAX_ENDPOINTS = 16; // sshd accepts at most 16 ListenAddress lines

const TOP_KEYS = [
  'name',
  'description',
  'subnet',
  'bridge',
  'bridge_address',
  'suite',
  'mirror',
  'base_packages',
  'ports',
  'profiles_dir',
  'hosts',
];
const PORT_KEYS = ['haproxy_frontend', 'etcd_client', 'etcd_peer', 'apt_proxy'];
const HOST_KEYS = [
  'name',
  'address',
  'cpus',
  'memory',
  'srv_size',
  'srv_fs',
  'packages',
  'labels',
  'apps',
  'ssh_endpoints',
];
const NAME_RE = /^[a-z][a-z0-9-]{0,30}$/;
const PACKAGE_RE = /^[a-z0-9][a-z0-9.+-]*(=[A-Za-z0-9.+~:-]+)?$/;
/** The filesystems a host's /srv image can have; ext4 unless the spec says otherwise. */
const SRV_FILESYSTEMS = ['ext4', 'btrfs'];
/** mkfs.btrfs refuses a smaller device (btrfs-progs 6.2: "minimum size for each btrfs device is 114294784"). */
const BTRFS_MIN_BYTES = 114294784;

export async function loadSpecFile(file) {
  const text = readFileSync(file, 'utf8');
  if (/\.ya?ml$/i.test(file)) {
    const { parse } = await import('yaml');
    return parse(text);
  }
  return JSON.parse(text);
}

export function ipToInt(ip) {
  const parts = String(ip).split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return null;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function intToIp(n) {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

export function parseSize(text) {
  const m = /^(\d+)([KMGT]?)$/i.exec(String(text));
  if (!m) return null;
  const power = { '': 0, K: 1, M: 2, G: 3, T: 4 }[m[2].toUpperCase()];
  return Number(m[1]) * 1024 ** power;
}

export function parseCpuList(text) {
  const cpus = new Set();
  for (const part of String(text).split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return null;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) return null;
    for (let c = lo; c <= hi; c++) cpus.add(c);
  }
  return [...cpus].sort((a, b) => a - b);
}

function onlineCpus() {
  try {
    return parseCpuList(readFileSync('/sys/devices/system/cpu/online', 'utf8').trim()) ?? [];
  } catch {
    return [];
  }
}

function endpoint(value, where, errors) {
  const m = /^([\d.]+):(\d+)$/.exec(String(value));
  if (!m || ipToInt(m[1]) === null || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    errors.push(`${where}: expected ADDRESS:PORT, got ${JSON.stringify(value)}`);
    return { host: '', port: 0, listen: '' };
  }
  return { host: m[1], port: Number(m[2]), listen: value };
}

function checkKeys(obj, allowed, where, errors) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    errors.push(`${where}: expected an object`);
    return false;
  }
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key))
      errors.push(`${where}.${key}: unknown field (allowed: ${allowed.join(', ')})`);
  }
  return true;
}

function stringList(value, where, re, errors) {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && re.test(v))) {
    errors.push(`${where}: expected a list of names matching ${re}`);
    return [];
  }
  return value;
}

export function resolveNet(spec, errors) {
  const m = /^([\d.]+)\/(\d+)$/.exec(String(spec.subnet ?? '10.251.72.0/22'));
  const base = m ? ipToInt(m[1]) : null;
  const prefix = m ? Number(m[2]) : -1;
  if (base === null || prefix < 16 || prefix > 28) {
    errors.push(`subnet: expected an IPv4 CIDR between /16 and /28, got ${JSON.stringify(spec.subnet)}`);
    return null;
  }
  const size = 2 ** (32 - prefix);
  const network = base - (base % size);
  if (network !== base)
    errors.push(
      `subnet: ${spec.subnet} is not a network address (did you mean ${intToIp(network)}/${prefix}?)`,
    );
  const bridgeAddress = spec.bridge_address ?? intToIp(network + 1);
  const net = { network, size, prefix, subnet: `${intToIp(network)}/${prefix}`, bridgeAddress };
  if (!inSubnet(net, ipToInt(bridgeAddress)))
    errors.push(`bridge_address: ${bridgeAddress} is not a host address of ${net.subnet}`);
  return net;
}

function inSubnet(net, n) {
  return n !== null && n > net.network && n < net.network + net.size - 1;
}

export function resolveHost(raw, index, ctx) {
  const { errors, net, bridge, cpusOnline } = ctx;
  const where = `hosts[${index}]`;
  if (!checkKeys(raw, HOST_KEYS, where, errors)) return null;
  const name = raw.name;
  if (typeof name !== 'string' || !NAME_RE.test(name))
    errors.push(`${where}.name: expected ${NAME_RE}, got ${JSON.stringify(name)}`);
  const count = raw.ssh_endpoints ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > MAX_ENDPOINTS)
    errors.push(`${where}.ssh_endpoints: expected an integer 1..${MAX_ENDPOINTS}`);
  const first = ipToInt(raw.address);
  const addresses = [];
  for (let k = 0; k < (Number.isInteger(count) ? count : 1); k++) {
    const n = first === null ? null : first + k;
    if (!net || !inSubnet(net, n) || intToIp(n ?? 0) === net.bridgeAddress) {
      errors.push(
        `${where}.address: ${raw.address}${k ? ` + ${k}` : ''} is not a free host address of ${net?.subnet}`,
      );
      break;
    }
    addresses.push(intToIp(n));
  }
  const cpuList = parseCpuList(raw.cpus ?? '0');
  if (!cpuList)
    errors.push(`${where}.cpus: expected a cpuset like "0" or "0-1", got ${JSON.stringify(raw.cpus)}`);
  const missing = (cpuList ?? []).filter((c) => cpusOnline.length && !cpusOnline.includes(c));
  if (missing.length)
    errors.push(
      `${where}.cpus: CPU ${missing.join(',')} is not online here (online: ${cpusOnline.join(',')})`,
    );
  const memoryBytes = parseSize(raw.memory ?? '512M');
  if (!memoryBytes || memoryBytes < 32 * 2 ** 20)
    errors.push(
      `${where}.memory: expected a size of at least 32M like "512M", got ${JSON.stringify(raw.memory)}`,
    );
  const srvBytes = parseSize(raw.srv_size ?? '256M');
  if (!srvBytes || srvBytes < 16 * 2 ** 20)
    errors.push(
      `${where}.srv_size: expected a size of at least 16M like "1G", got ${JSON.stringify(raw.srv_size)}`,
    );
  const srvFs = raw.srv_fs ?? 'ext4';
  if (!SRV_FILESYSTEMS.includes(srvFs))
    errors.push(
      `${where}.srv_fs: expected one of ${SRV_FILESYSTEMS.join(', ')}, got ${JSON.stringify(raw.srv_fs)}`,
    );
  else if (srvFs === 'btrfs' && srvBytes && srvBytes < BTRFS_MIN_BYTES)
    errors.push(
      `${where}.srv_size: btrfs needs at least 109M (mkfs.btrfs refuses less), got ${raw.srv_size}`,
    );
  const labels = raw.labels ?? {};
  if (
    !checkKeys(labels, Object.keys(labels), `${where}.labels`, errors) ||
    !Object.values(labels).every((v) => typeof v === 'string')
  )
    errors.push(`${where}.labels: expected an object of strings`);
  return {
    name,
    index: index + 1,
    address: addresses[0] ?? '',
    addresses,
    endpoints: addresses.map((address, k) => ({ name: k === 0 ? name : `${name}-e${k + 1}`, address })),
    cpus: String(raw.cpus ?? '0'),
    cpu_count: cpuList?.length ?? 0,
    memory: String(raw.memory ?? '512M'),
    memory_bytes: memoryBytes,
    srv_size: String(raw.srv_size ?? '256M'),
    srv_bytes: srvBytes,
    srv_fs: srvFs,
    packages: stringList(raw.packages, `${where}.packages`, PACKAGE_RE, errors),
    labels,
    apps: stringList(raw.apps, `${where}.apps`, NAME_RE, errors),
    netns: `${bridge}-${name}`,
    veth: `${bridge}v${index + 1}`,
  };
}

function checkUnique(hosts, errors) {
  const seen = new Map();
  for (const h of hosts) {
    for (const e of h.endpoints) {
      for (const key of [e.name, e.address]) {
        if (seen.has(key)) errors.push(`hosts: ${key} is used by both ${seen.get(key)} and ${h.name}`);
        seen.set(key, h.name);
      }
    }
  }
}

/**
 * An application's data path on a btrfs /srv is made a subvolume inside the host (btrfs subvolume create), so the
 * host needs btrfs-progs before its apps are deployed: in its packages or in the app's software_stack.
 */
function checkBtrfsTools(hosts, apps, errors) {
  const named = (list) => list.some((p) => p.split('=')[0] === 'btrfs-progs');
  for (const h of hosts) {
    if (h.srv_fs !== 'btrfs' || h.apps.length === 0 || named(h.packages)) continue;
    if (h.apps.every((id) => named(apps[id]?.packages ?? []))) continue;
    errors.push(
      `hosts[${h.index - 1}].packages: ${h.name} has srv_fs btrfs and runs ${h.apps.join(', ')}, whose data path becomes a btrfs subvolume: add btrfs-progs`,
    );
  }
}

function checkPorts(ports, net, errors) {
  const p = {
    haproxy: endpoint(ports.haproxy_frontend ?? '127.0.0.1:18080', 'ports.haproxy_frontend', errors),
    etcdClient: endpoint(ports.etcd_client ?? '127.0.0.1:23791', 'ports.etcd_client', errors),
    etcdPeer: endpoint(ports.etcd_peer ?? '127.0.0.1:23801', 'ports.etcd_peer', errors),
    apt: endpoint(ports.apt_proxy ?? `${net?.bridgeAddress}:31420`, 'ports.apt_proxy', errors),
  };
  // Hosts have no route out of the subnet: the proxy must sit on the bridge address.
  if (net && p.apt.host && p.apt.host !== net.bridgeAddress)
    errors.push(`ports.apt_proxy: must listen on the bridge address ${net.bridgeAddress}, got ${p.apt.host}`);
  return p;
}

export async function resolveSpec(specFile, { labDir, cacheDir, repoDir }) {
  const errors = [];
  const spec = await loadSpecFile(specFile);
  checkKeys(spec, TOP_KEYS, 'spec', errors);
  const bridge = spec.bridge ?? 'plab0';
  if (!/^[a-z][a-z0-9]{1,9}$/.test(bridge))
    errors.push(
      `bridge: expected 2-10 lowercase letters/digits (interface names are short), got ${JSON.stringify(bridge)}`,
    );
  const net = resolveNet(spec, errors);
  const ports = spec.ports ?? {};
  checkKeys(ports, PORT_KEYS, 'ports', errors);
  const p = checkPorts(ports, net, errors);
  if (!Array.isArray(spec.hosts) || spec.hosts.length === 0) errors.push('hosts: expected a non-empty list');
  const ctx = { errors, net, bridge, cpusOnline: onlineCpus() };
  const hosts = (Array.isArray(spec.hosts) ? spec.hosts : [])
    .map((h, i) => resolveHost(h, i, ctx))
    .filter(Boolean);
  checkUnique(hosts, errors);
  const profilesDir =
    spec.profiles_dir === undefined
      ? path.join(repoDir, 'profiles')
      : path.resolve(path.dirname(specFile), spec.profiles_dir);
  const apps = resolveApps(hosts, profilesDir, labDir, errors);
  checkBtrfsTools(hosts, apps, errors);
  // One HAProxy frontend (ports.haproxy_frontend) serves one application.
  if (Object.keys(apps).length > 1)
    errors.push(
      `hosts[].apps: the lab's HAProxy frontend serves one application, got ${Object.keys(apps).join(', ')}`,
    );
  const basePackages = stringList(
    spec.base_packages ?? ['openssh-server'],
    'base_packages',
    PACKAGE_RE,
    errors,
  );
  if (errors.length) {
    const err = new Error(`invalid lab spec ${specFile}:\n  ${errors.join('\n  ')}`);
    err.code = 'LAB_SPEC_INVALID';
    throw err;
  }
  const suite = spec.suite ?? 'bookworm';
  const mirror = spec.mirror ?? 'http://deb.debian.org/debian';
  const baseKey = sha256(JSON.stringify({ suite, mirror, basePackages, BASE_RECIPE })).slice(0, 12);
  const resolved = {
    version: 1,
    name: spec.name ?? path.basename(specFile).replace(/\.(json|ya?ml)$/i, ''),
    spec_file: path.resolve(specFile),
    lab_dir: labDir,
    cache_dir: cacheDir,
    repo_dir: repoDir,
    bridge,
    subnet: net.subnet,
    prefix_len: net.prefix,
    bridge_address: net.bridgeAddress,
    suite,
    mirror,
    base_packages: basePackages,
    base_key: baseKey,
    base_dir: path.join(cacheDir, `base-${suite}-${baseKey}`),
    haproxy: {
      bind: p.haproxy.listen,
      frontend_url: `http://${p.haproxy.listen}`,
      backend: Object.values(apps)[0]?.backend ?? 'demo_web',
      server_port: Object.values(apps)[0]?.port ?? 8080,
    },
    etcd: { client: p.etcdClient.listen, peer: p.etcdPeer.listen, endpoint: `http://${p.etcdClient.listen}` },
    apt_proxy: { listen: p.apt.listen, port: p.apt.port, url: `http://${p.apt.listen}` },
    profiles_dir: profilesDir,
    hosts,
    apps,
  };
  resolved.spec_hash = sha256(JSON.stringify({ ...resolved, spec_file: undefined })).slice(0, 16);
  return resolved;
}

const ADD_KEYS = ['cpus', 'memory', 'srv_size', 'srv_fs', 'packages', 'labels'];

/**
 * One more host for a running lab (lab add-host), from a host spec (cpus, memory, srv_size, srv_fs, packages, labels):
 * the next name (lab-5 after lab-4), the next free address and veth, checked as a spec's hosts are.
 */
export function addHost(s, raw, source) {
  const errors = [];
  if (!checkKeys(raw, ADD_KEYS, source, errors)) throw specError(source, errors);
  const net = resolveNet({ subnet: s.subnet, bridge_address: s.bridge_address }, errors);
  const prefix = /^(.*)-\d+$/.exec(s.hosts[0]?.name ?? '')?.[1] ?? 'host';
  const next = 1 + Math.max(0, ...s.hosts.map((h) => Number(/-(\d+)$/.exec(h.name)?.[1] ?? 0)));
  const last = Math.max(...s.hosts.flatMap((h) => h.addresses.map(ipToInt)));
  const index = Math.max(...s.hosts.map((h) => h.index));
  const host = resolveHost(
    { ...raw, name: `${prefix}-${next}`, address: intToIp(last + 1), apps: [] },
    index,
    {
      errors,
      net,
      bridge: s.bridge,
      cpusOnline: onlineCpus(),
    },
  );
  checkUnique([...s.hosts, host], errors);
  if (errors.length)
    throw specError(
      source,
      errors.map((e) => e.replace(`hosts[${index}]`, 'host')),
    );
  return host;
}

function specError(source, errors) {
  const err = new Error(`invalid host spec ${source}:\n  ${errors.join('\n  ')}`);
  err.code = 'LAB_SPEC_INVALID';
  return err;
}

// A path inside the default lab dir moves with PERSONA_LAB_DIR (profiles name the default one).
export function labPath(p, labDir) {
  return p.startsWith(`${DEFAULT_LAB_DIR}/`) ? path.join(labDir, p.slice(DEFAULT_LAB_DIR.length + 1)) : p;
}

function resolveApps(hosts, profilesDir, labDir, errors) {
  const apps = {};
  for (const h of hosts) {
    for (const id of h.apps) {
      if (apps[id]) {
        apps[id].hosts.push(h.name);
        continue;
      }
      const file = path.join(profilesDir, `${id}.json`);
      if (!existsSync(file)) {
        errors.push(`hosts[${h.index - 1}].apps: no profile ${file} for application ${id}`);
        continue;
      }
      apps[id] = {
        ...appFromProfile(JSON.parse(readFileSync(file, 'utf8')), labDir, errors),
        profile: file,
        hosts: [h.name],
      };
    }
  }
  return apps;
}

function appFromProfile(profile, labDir, errors) {
  const deploy = profile.deploy ?? {};
  if (!Array.isArray(deploy.start) || !Array.isArray(deploy.stop) || !deploy.port) {
    errors.push(
      `profile ${profile.id}: deploy.start, deploy.stop and deploy.port are needed to run it in the lab`,
    );
  }
  const dataPath = profile.data?.paths?.[0] ?? `/srv/${profile.id}/data`;
  return {
    id: profile.id,
    port: deploy.port,
    files: deploy.files ?? [],
    start: deploy.start ?? [],
    stop: deploy.stop ?? [],
    packages: profile.software_stack ?? [],
    data_path: dataPath,
    backup_path: path.join(labDir, 'backups', profile.id),
    backend: profile.traffic?.backend ?? profile.id.replace(/-/g, '_'),
    users: profile.security_profile?.users ?? [],
    secrets: (profile.security_profile?.encryption_keys ?? [])
      .filter((k) => String(k.secret).startsWith('file:'))
      .map((k) => ({ ...k, source: labPath(String(k.secret).slice(5), labDir) })),
  };
}

export function sha256(text) {
  return createHash('sha256').update(text).digest('hex');
}
