/**
 * `persona doctor`: the checks, in order, each one a small function over ports. A fail anywhere exits 4
 * (precondition); warnings alone exit 0.
 */
import type { Inventory } from '../hosts/inventory.js';
import type { Check, CheckResult, CheckStatus, DoctorInput, DoctorPorts, Shared } from './check.js';
import { checkInventory } from './inventory.js';
import { checkKnownHosts } from './known-hosts.js';
import { checkStateDir } from './state-dir.js';
import { checkLockTtl, checkStore } from './store.js';
import { checkOpenSsh, checkProvision, checkRsync, checkSshConfig } from './tools.js';

export const checkConfigFile: Check = async (input) =>
  input.configFile
    ? { id: 'config', status: 'ok', summary: `settings from ${input.configFile} (persona config shows each)` }
    : {
        id: 'config',
        status: 'ok',
        summary: `no config file (looked in ${input.configCandidates.join(', ')})`,
      };

export const checks: ReadonlyArray<Check> = [
  checkConfigFile,
  checkOpenSsh,
  checkRsync,
  checkSshConfig,
  checkStore,
  checkLockTtl,
  checkInventory,
  checkStateDir,
  checkKnownHosts,
  checkProvision,
];

export function sharedFor(input: DoctorInput, ports: DoctorPorts): Shared {
  let inventory: Promise<Inventory | undefined> | undefined;
  const shared: Shared = {
    inventory() {
      inventory ??= ports.loadInventory().catch(() => undefined);
      return inventory;
    },
    async sshConfig() {
      // The transport's rule: the ssh_config setting, else the inventory's, else ssh's own default.
      return input.settings.ssh_config.value ?? (await shared.inventory())?.sshConfig;
    },
  };
  return shared;
}

export interface DoctorReport {
  checks: CheckResult[];
  summary: Record<CheckStatus, number>;
  ok: boolean;
}

export async function runDoctor(
  input: DoctorInput,
  ports: DoctorPorts,
  list: ReadonlyArray<Check> = checks,
): Promise<DoctorReport> {
  const shared = sharedFor(input, ports);
  const results: CheckResult[] = [];
  for (const check of list) results.push(await check(input, ports, shared));
  const summary: Record<CheckStatus, number> = { ok: 0, warn: 0, fail: 0, skip: 0 };
  for (const r of results) summary[r.status]++;
  return { checks: results, summary, ok: summary.fail === 0 };
}
