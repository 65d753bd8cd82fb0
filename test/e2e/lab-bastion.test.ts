/**
 * A real bastion in the lab. `lab bastion on lab-4` leaves lab-4 as the only way in: the other hosts' sshd take
 * connections only from lab-4's address (nftables in their network namespaces), so this machine can no longer reach
 * them directly. persona (the built CLI) probes them and recovers demo-web through lab-4, its rsync included. The
 * evidence is the hosts' own: the targets' sshd logs accepted connections from the bastion's address only, the
 * bastion's sshd (DEBUG1 while it is the bastion) logged forwarding them, the targets' firewall counters show the
 * data going to and from the bastion over ssh, and that persona never tried to go round it.
 *
 * lab-4 is the bastion because it is a small jump box: demo-web needs 1 GB of memory and lab-4 has 512M, so it is
 * never the recovery target; lab-1 (demo-web) fails and lab-2 takes over, as in the other recovery tests.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { requireBinaries } from '../helpers/binaries.js';
import { jsonLines } from '../helpers/cli.js';
import {
  bastionCounters,
  bastionOff,
  bastionOn,
  fail,
  httpGet,
  type LabState,
  labState,
  releaseLab,
  runLab,
  sshExec,
} from '../lab/lab.js';
import {
  expectEveryStepSucceeded,
  expectRecoveredOnto,
  freshLab,
  journal,
  persona,
  scratchDir,
  workspace,
} from './lab-helpers.js';

const BASTION = 'lab-4';
const BEHIND = ['lab-1', 'lab-2', 'lab-3'];

let lab: LabState;
/** A test changed more than the bastion (a fault, a recovery): the lab is brought back up fresh at the end. */
let changed = false;
const addr = (host: string) => lab.hosts[host]!.address;

/** A host's sshd log, as sshd wrote it inside the host (-E /var/log/sshd.log); read from its upper layer. */
const sshdLogFile = (host: string) => join(lab.hosts[host]!.overlay.upper, 'var/log/sshd.log');

/** Where each host's sshd log ends now: what it logs later is `since(mark)`. */
function logMarks(): Record<string, number> {
  return Object.fromEntries(
    Object.keys(lab.hosts).map((h) => [h, existsSync(sshdLogFile(h)) ? statSync(sshdLogFile(h)).size : 0]),
  );
}

function since(marks: Record<string, number>, host: string): string[] {
  // sshd -E ends its lines with \r\n
  return readFileSync(sshdLogFile(host)).subarray(marks[host]).toString('utf8').split(/\r?\n/);
}

/** The addresses sshd accepted a public key from: "Accepted publickey for root from ADDR port N ssh2: ...". */
const acceptedFrom = (lines: string[]) =>
  lines.flatMap((l) => /Accepted publickey for root from (\S+) port \d+/.exec(l)?.[1] ?? []);

/**
 * The bastion's DEBUG1 line for each connection it forwarded to `target`:22. (`ssh -W` names no originator of its
 * own, so the line says 127.0.0.1 port 65535; who connected is in the bastion's "Accepted publickey" lines.)
 */
const forwardsTo = (lines: string[], target: string) =>
  lines.filter((l) =>
    new RegExp(
      `server_request_direct_tcpip: originator \\S+ port \\d+, target ${target.replaceAll('.', '\\.')} port 22$`,
    ).test(l),
  );

/** The bytes of demo-web's data (its backup holds the same files the lab seeded). */
function dataBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? dataBytes(p) : e.isFile() ? statSync(p).size : 0;
  }
  return total;
}

beforeAll(async () => {
  requireBinaries('ssh', 'rsync', 'nft', 'nsenter');
  lab = await freshLab();
});

/** Every test turns the bastion off, whatever happened; a fault or a recovery is undone once, at the end. */
afterEach(async () => {
  await bastionOff();
  expect(labState().bastion).toBeNull();
});

afterAll(async () => {
  try {
    // A recovery cannot be healed host by host (lab-1 is fenced, demo-web runs on lab-2): a fresh lab, as the
    // other recovery tests start from.
    if (changed || Object.values(labState().hosts).some((h) => h.fault)) await freshLab();
  } finally {
    releaseLab();
  }
});

describe('a real bastion (lab bastion on lab-4)', () => {
  test('this machine reaches the other hosts only through the bastion: direct ssh fails, through it works; HAProxy still checks them', async () => {
    const b = await bastionOn(BASTION);
    expect(b).toMatchObject({
      host: BASTION,
      addresses: [addr(BASTION)],
      behind: BEHIND,
      nft_table: 'persona_lab_bastion',
    });
    expect(readFileSync(b.ssh_config, 'utf8')).toContain(`ProxyJump root@${addr(BASTION)}`);

    // Directly, with the lab's plain config: the SYN is dropped, ssh times out.
    const direct = await Promise.all(
      BEHIND.map((h) => sshExec(h, ['true'], { sshConfig: lab.ssh.config, connectTimeoutS: 3 })),
    );
    for (const [i, r] of direct.entries()) {
      expect(r.exitCode, `${BEHIND[i]}: ${r.stderr}`).toBe(255);
      expect(r.stderr).toMatch(/Connection timed out|timed out/);
    }
    const counters = await bastionCounters();
    for (const h of BEHIND) expect(counters[h]!.dropped, h).toBeGreaterThan(0);
    // The bastion itself answers directly.
    const own = await sshExec(BASTION, ['hostname'], { sshConfig: lab.ssh.config });
    expect(own.exitCode, own.stderr).toBe(0);
    expect(own.stdout.trim()).toBe(BASTION);

    // Through it (the ProxyJump of config-bastion): each host sees the connection come from the bastion's address.
    for (const h of BEHIND) {
      const r = await sshExec(h, ['sh', '-c', 'hostname; echo "$SSH_CONNECTION"'], {
        sshConfig: b.ssh_config,
      });
      expect(r.exitCode, r.stderr).toBe(0);
      const [name, conn] = r.stdout.trim().split('\n');
      expect(name).toBe(h);
      expect(conn).toMatch(new RegExp(`^${addr(BASTION)} \\d+ ${addr(h)} 22$`));
    }
    const after = await bastionCounters();
    for (const h of BEHIND) expect(after[h]!.connections, h).toBeGreaterThan(counters[h]!.connections);

    // HAProxy's health checks are not ssh: demo-web is still served from lab-1, every server still checked.
    expect((await httpGet(`${lab.haproxy.frontend_url}/whoami`)).body.trim()).toBe('lab-1');
    // The lab's own tools go through the bastion too: status measures every host over ssh.
    const status = await runLab(['status']);
    for (const h of Object.keys(lab.hosts))
      expect(status).toMatch(new RegExp(`^${h}\\s+${addr(h).replaceAll('.', '\\.')}\\s+ok\\s`, 'm'));
    expect(status).toContain(`bastion  ${BASTION}`);
  });

  test('persona hosts probe (built CLI): directly only the bastion answers; through it (ssh_config ProxyJump, or the inventory jump) every host does', async () => {
    const b = await bastionOn(BASTION);
    const ws = workspace(lab);
    type Probe = { host: { name: string }; ok: boolean; failure?: { kind: string }; facts?: unknown };
    const probe = async (env: Record<string, string>) => {
      const r = await persona(['hosts', 'probe', '--json'], ws, env);
      expect(r.code, r.stderr).toBe(0);
      const [data] = jsonLines(r.stdout) as Array<{ type: string; hosts: Probe[] }>;
      expect(data).toMatchObject({ type: 'result', ok: true });
      return Object.fromEntries(data!.hosts.map((h) => [h.host.name, h]));
    };

    // The lab's inventory and plain config: persona cannot get past the firewall, and says the hosts time out.
    const plain = await probe({});
    expect(plain[BASTION]).toMatchObject({ ok: true });
    for (const h of BEHIND) expect(plain[h], h).toMatchObject({ ok: false, failure: { kind: 'timeout' } });

    const marks = logMarks();
    const before = await bastionCounters();
    // 1. The ProxyJump that the ssh_config gives each host's address (ssh -G), run by persona with its options.
    const viaConfig = await probe({ PERSONA_SSH_CONFIG: b.ssh_config });
    // 2. The inventory's own `jump` for each host behind the bastion, with the lab's plain config.
    const inventory = join(scratchDir('persona-bastion-inv-'), 'inventory.json');
    const inv = JSON.parse(readFileSync(lab.inventory, 'utf8')) as {
      hosts: Array<{ name: string; jump?: string }>;
    };
    for (const h of inv.hosts) if (h.name !== BASTION) h.jump = `root@${addr(BASTION)}`;
    writeFileSync(inventory, JSON.stringify(inv));
    const viaInventory = await probe({ PERSONA_INVENTORY: inventory });

    for (const results of [viaConfig, viaInventory]) {
      for (const h of Object.keys(lab.hosts)) expect(results[h], h).toMatchObject({ ok: true });
      expect(results['lab-1']).toMatchObject({
        facts: { cores: { usable: 1 }, memory: { usableBytes: 1536 * 1024 ** 2 } },
      });
      expect(results['lab-3']).toMatchObject({ facts: { memory: { usableBytes: 4096 * 1024 ** 2 } } });
    }
    // Each host behind the bastion took persona's connections from the bastion's address only, and the bastion
    // logged forwarding them from this machine, at least once per probe.
    const bastionLog = since(marks, BASTION);
    // The bastion took ssh from this machine only (the bridge address).
    expect(new Set(acceptedFrom(bastionLog))).toEqual(new Set([lab.bridge_address]));
    for (const h of BEHIND) {
      const from = acceptedFrom(since(marks, h));
      expect(from.length, h).toBeGreaterThanOrEqual(2);
      expect(new Set(from), h).toEqual(new Set([addr(BASTION)]));
      expect(forwardsTo(bastionLog, addr(h)).length, h).toBeGreaterThanOrEqual(2);
    }
    // persona never tried to go round it: no ssh packet was dropped while it probed through the bastion.
    const after = await bastionCounters();
    for (const h of BEHIND) {
      expect(after[h]!.dropped, h).toBe(before[h]!.dropped);
      expect(after[h]!.connections, h).toBeGreaterThanOrEqual(before[h]!.connections + 2);
    }
  });

  test('persona recover (built CLI): demo-web from lab-1 (app down) onto lab-2, data rsynced from lab-1 through the bastion', async () => {
    const b = await bastionOn(BASTION);
    const ws = workspace(lab, { PERSONA_SSH_CONFIG: b.ssh_config });
    changed = true;
    await fail('lab-1', 'app');
    const marks = logMarks();
    const before = await bastionCounters();

    const r = await persona(['recover', 'lab-1', '--yes', '--json'], ws);
    expect(r.code, r.stderr).toBe(0);
    const events = jsonLines(r.stdout);
    const result = events.at(-1)!;
    expect(result).toMatchObject({
      type: 'result',
      ok: true,
      runs: [{ app: 'demo-web', status: 'succeeded', target_host: 'lab-2' }],
    });
    expectEveryStepSucceeded(events);
    // The data came from lab-1 itself (it answered, through the bastion), by rsync: pulled here, pushed to lab-2.
    const runId = (result.runs as Array<{ run_id: string }>)[0]!.run_id;
    const migrate = (
      journal(ws, runId) as unknown as {
        steps: Array<{ kind: string; outputs: { source?: { kind: string; host?: string } } }>;
      }
    ).steps.find((s) => s.kind === 'migrate')!;
    expect(migrate.outputs.source).toMatchObject({ kind: 'failed-host', host: 'lab-1' });
    const bytes = dataBytes(lab.apps['demo-web']!.backup_path);
    expect(bytes).toBeGreaterThan(10 * 1024 ** 2);

    // Evidence from the hosts' own sshd logs. lab-1 (fenced, data pulled) and lab-2 (configured, data pushed,
    // started) took persona's connections, all of them from the bastion's address.
    for (const h of ['lab-1', 'lab-2']) {
      const from = acceptedFrom(since(marks, h));
      expect(from.length, h).toBeGreaterThanOrEqual(1);
      expect(new Set(from), h).toEqual(new Set([addr(BASTION)]));
    }
    // The bastion took them from this machine and forwarded them.
    const bastionLog = since(marks, BASTION);
    expect(new Set(acceptedFrom(bastionLog))).toEqual(new Set([lab.bridge_address]));
    for (const h of ['lab-1', 'lab-2'])
      expect(forwardsTo(bastionLog, addr(h)).length, h).toBeGreaterThanOrEqual(1);
    // The data went through the bastion over ssh, as the targets' firewall counted it: lab-1's sshd sent at least
    // the data to the bastion (the pull), lab-2's received at least the data from it (the push). Nothing tried to
    // go round the bastion while persona ran.
    const after = await bastionCounters();
    expect(after['lab-1']!.bytesOut - before['lab-1']!.bytesOut).toBeGreaterThanOrEqual(bytes);
    expect(after['lab-2']!.bytesIn - before['lab-2']!.bytesIn).toBeGreaterThanOrEqual(bytes);
    for (const h of BEHIND) expect(after[h]!.dropped, h).toBe(before[h]!.dropped);
    for (const h of ['lab-1', 'lab-2'])
      expect(after[h]!.connections, h).toBeGreaterThan(before[h]!.connections);

    // The end state, checked through the bastion as well: served from lab-2 with the data's checksum, recorded.
    await expectRecoveredOnto(lab, ws, 'lab-2');
    expect((await sshExec('lab-1', ['sh', '-c', 'exec 3<>/dev/tcp/127.0.0.1/8080'])).exitCode).not.toBe(0);
  });

  test('persona recover (built CLI), lab-1 powered off: the bastion answers but cannot reach it, so lab-1 is down (not the bastion); the backup goes to lab-2 through the bastion', async () => {
    lab = await freshLab();
    const b = await bastionOn(BASTION);
    const ws = workspace(lab, { PERSONA_SSH_CONFIG: b.ssh_config });
    changed = true;
    await fail('lab-1', 'poweroff');
    const marks = logMarks();
    const before = await bastionCounters();

    const r = await persona(['recover', 'lab-1', '--yes'], ws);
    expect(r.code, r.stderr).toBe(0);
    // The fence's evidence names lab-1 as what does not answer, with the bastion's own reason; no "bastion" failure.
    expect(r.stderr).toMatch(
      new RegExp(
        `fenced: the host does not answer \\(lab-1 \\(${addr('lab-1').replaceAll('.', '\\.')}:22\\): unreachable \\(No route to host\\) \\(the bastion root@${addr(BASTION).replaceAll('.', '\\.')} answered, but could not reach it`,
      ),
    );
    // A failure of the bastion itself reads "bastion root@ADDR: ..."; there is none.
    expect(r.stderr).not.toMatch(/bastion root@\S+: /);
    expect(r.stderr).toMatch(
      /data source: \/var\/lib\/persona-lab\/backups\/demo-web \(backup on this machine\) — lab-1 is down/,
    );
    expect(r.stdout).toMatch(/demo-web: lab-1 → lab-2, run \S+: succeeded/);

    // lab-2 took persona's connections from the bastion only, and the backup from it (its firewall's counters).
    const from = acceptedFrom(since(marks, 'lab-2'));
    expect(from.length).toBeGreaterThanOrEqual(1);
    expect(new Set(from)).toEqual(new Set([addr(BASTION)]));
    const bytes = dataBytes(lab.apps['demo-web']!.backup_path);
    const bastionLog = since(marks, BASTION);
    expect(forwardsTo(bastionLog, addr('lab-2')).length).toBeGreaterThanOrEqual(1);
    // The bastion tried lab-1 for persona (and could not reach it): persona never went round it.
    expect(forwardsTo(bastionLog, addr('lab-1')).length).toBeGreaterThanOrEqual(1);
    const after = await bastionCounters();
    expect(after['lab-2']!.bytesIn - before['lab-2']!.bytesIn).toBeGreaterThanOrEqual(bytes);
    for (const h of BEHIND) expect(after[h]!.dropped, h).toBe(before[h]!.dropped);

    await expectRecoveredOnto(lab, ws, 'lab-2');
  });
});
