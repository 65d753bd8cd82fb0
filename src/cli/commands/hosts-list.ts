/**
 * What persona understood from the inventory, without connecting to anything: how each host is reached, its
 * labels and apps, and every variable that was left out with the reason.
 */
import { findHost, type InventoryHost } from '../../hosts/inventory.js';
import { type InventoryWarning, looksSecret, REDACTED } from '../../hosts/inventory-warnings.js';
import type { HumanOut } from '../../ui/output.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args }) => {
  const inventory = await ctx.inventory();
  const names = (args.hosts as string[] | undefined) ?? [];
  const chosen = names.length > 0 ? names.map((n) => findHost(inventory, n)) : inventory.hosts;
  const hosts = chosen.map(describeHost);
  const shown = new Set(chosen.map((h) => h.name));
  const warnings = inventory.warnings.filter(
    (w) => names.length === 0 || w.hosts.some((h) => h === '*' || shown.has(h)),
  );
  return {
    data: {
      inventory: inventory.source,
      ...(inventory.sshConfig ? { ssh_config: inventory.sshConfig } : {}),
      hosts,
      warnings,
    },
    human: (out) => render(out, short(ctx.cwd), inventory.source, hosts, warnings),
  };
};

/** One host as --json shows it: every field present, null when the inventory does not say. */
function describeHost(h: InventoryHost) {
  return {
    name: h.name,
    address: h.address,
    port: h.port ?? null,
    user: h.user ?? null,
    key_file: h.keyFile ?? null,
    jump: h.jump ?? null,
    /** `local`: Ansible's ansible_connection=local: this machine, reached without ssh. */
    connection: h.connection ?? 'ssh',
    // Secret-looking labels are refused when the inventory is read; this keeps a future path from printing one.
    labels: Object.fromEntries(Object.entries(h.labels).map(([k, v]) => [k, looksSecret(k) ? REDACTED : v])),
    apps: h.apps,
  };
}

type HostRow = ReturnType<typeof describeHost>;

/** Paths under the working directory, as people typed them. */
const short = (cwd: string) => {
  const base = cwd.endsWith('/') ? cwd : `${cwd}/`;
  return (text: string) => (text.startsWith(base) ? text.slice(base.length) : text);
};

function render(
  out: HumanOut,
  path: (text: string) => string,
  source: string,
  hosts: HostRow[],
  warnings: InventoryWarning[],
): void {
  const dash = out.c.dim('-');
  out.table(
    ['host', 'address', 'port', 'user', 'key file', 'jump', 'labels', 'apps'],
    hosts.map((h) => [
      h.name,
      h.connection === 'local' ? `${h.address} (local)` : h.address,
      h.port ?? dash,
      h.user ?? dash,
      h.key_file ?? dash,
      h.jump ?? dash,
      Object.entries(h.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n') || dash,
      h.apps.join('\n') || dash,
    ]),
  );
  for (const w of warnings) {
    const variable = w.value !== undefined ? `${w.variable}=${w.value}` : w.variable;
    const who = w.hosts.includes('*') ? 'every host' : w.hosts.join(', ');
    out.line(`${out.c.yellow('warning:')} ${path(w.where)}: ${variable} ignored (${who}): ${w.message}`);
  }
  out.line(
    out.c.dim(
      `${hosts.length} host${hosts.length === 1 ? '' : 's'} in ${path(source)}; nothing was contacted` +
        (warnings.length ? `; ${warnings.length} warning${warnings.length === 1 ? '' : 's'}` : ''),
    ),
  );
}
