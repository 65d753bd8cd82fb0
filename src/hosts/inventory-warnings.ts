/**
 * What the inventory loader left out, and why: every variable it ignored or could not use becomes a warning that
 * names the variable, the hosts it applied to and where it was written. Values of secret-looking variables are
 * never kept, neither as labels nor in a warning.
 */

export const REDACTED = '<redacted>';

export interface InventoryWarning {
  /** The variable as written: an Ansible variable, a label, a Consul node meta key. */
  variable: string;
  /** Its value when it is safe to show; `<redacted>` for a secret-looking variable. */
  value?: string;
  /** Why it was ignored. */
  message: string;
  /** The hosts it applied to. */
  hosts: string[];
  /** Where it was written: file:line when known, else the file or the source. */
  where: string;
}

/** Variables that name a path or a setting, not a secret, although their names match the pattern. */
const NOT_SECRETS = new Set([
  'ansible_ssh_private_key_file',
  'ansible_private_key_file',
  'key_file',
  'ansible_ssh_host_key_checking',
  'ansible_host_key_checking',
]);

/** password, passwd, pass, token, secret, key: the value of such a variable is never printed or kept. */
export function looksSecret(name: string): boolean {
  return !NOT_SECRETS.has(name.toLowerCase()) && /pass(word|wd)?|token|secret|key/i.test(name);
}

/** Collects warnings, one per variable, value, place and reason, with every host it applied to. */
export class WarningCollector {
  private readonly byKey = new Map<string, InventoryWarning>();

  add(w: Omit<InventoryWarning, 'hosts' | 'value'> & { host: string; value?: string }): void {
    const value = looksSecret(w.variable) ? REDACTED : w.value;
    const key = JSON.stringify([w.variable, value, w.where, w.message]);
    const found = this.byKey.get(key);
    if (found) {
      if (!found.hosts.includes(w.host)) found.hosts.push(w.host);
      return;
    }
    this.byKey.set(key, {
      variable: w.variable,
      ...(value !== undefined ? { value } : {}),
      message: w.message,
      hosts: [w.host],
      where: w.where,
    });
  }

  get warnings(): InventoryWarning[] {
    return [...this.byKey.values()];
  }
}

export const SECRET_IGNORED =
  'looks like a secret: not kept as a label, and its value is never shown (persona reads secrets from references, not the inventory)';
