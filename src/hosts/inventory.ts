/**
 * The inventory: which hosts exist, how to reach them, their labels, and which applications run where.
 * persona's own format (JSON or YAML), or an Ansible inventory (INI or YAML). Every value is checked like a
 * profile value, because host names, addresses and users end up on an ssh command line.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import * as z from 'zod';
import { PersonaError, type Problem, ValidationError } from '../errors.js';
import { parseJsonText } from '../profile/json-text.js';
import { address, applicationId, hostName, integer, label, labelValue } from '../profile/rules.js';
import { issuesToProblems } from '../profile/validate.js';
import { stripBom } from '../util/text.js';
import {
  type InventoryWarning,
  looksSecret,
  SECRET_IGNORED,
  WarningCollector,
} from './inventory-warnings.js';

export { address, hostName } from '../profile/rules.js';

/**
 * The login name for ssh -l: what real fleets use (`deploy`, `john.doe`, `alice@corp.example.com` for directory
 * accounts), but never an option, a space or a shell character.
 */
export const loginUser = z
  .string({ error: 'must be a user name' })
  .max(255)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.@-]*\$?$/, {
    error: 'must be a user name: letters, digits, ".", "_", "-" or "@", starting with a letter, digit or "_"',
  });

/** ssh -i: a path (ssh expands a leading ~); never an option, never a line break. */
export const keyFile = z
  .string({ error: 'must be a path to a private key' })
  .max(4096)
  .regex(/^[^\0\n\r-][^\0\n\r]*$/, { error: 'must be a path to a private key (not starting with "-")' });

/** ssh -J: [user@]host[:port], comma-separated for several hops. */
export const jumpHost = z
  .string({ error: 'must be a jump host' })
  .max(1024)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.@:[\]-]*(?:,[A-Za-z0-9_][A-Za-z0-9_.@:[\]-]*)*$/, {
    error: 'must be a jump host: [user@]host[:port], comma-separated for several hops',
  });

const inventoryHost = z.strictObject({
  name: hostName,
  address: address.optional(),
  port: integer(1, 65535).optional(),
  user: loginUser.optional(),
  key_file: keyFile.optional(),
  jump: jumpHost.optional(),
  /** `local`: the machine persona runs on (Ansible's ansible_connection=local). */
  connection: z.enum(['ssh', 'local']).optional(),
  labels: z.record(label, labelValue).default({}),
  apps: z.array(applicationId).default([]),
});

export const inventorySchema = z.strictObject({
  $schema: z.string().optional(),
  defaults: z
    .strictObject({
      user: loginUser.optional(),
      port: integer(1, 65535).optional(),
      key_file: keyFile.optional(),
      jump: jumpHost.optional(),
      /**
       * What known_hosts entries are keyed by: `address` (default; as ssh and Ansible, which connect to the
       * address), or `name` (HostKeyAlias: the inventory name, for hosts whose address changes).
       */
      host_keys: z.enum(['address', 'name']).optional(),
      ssh_config: z
        .string()
        .regex(/^[^\0\n]+$/)
        .optional(),
      labels: z.record(label, labelValue).default({}),
    })
    .default({ labels: {} }),
  hosts: z.array(inventoryHost).max(100_000),
});

export interface InventoryHost {
  name: string;
  address: string;
  port?: number;
  user?: string;
  /** ssh -i. */
  keyFile?: string;
  /** Jump host(s), as ssh -J spells them. */
  jump?: string;
  /** HostKeyAlias: the inventory name, when the inventory keys host keys by name (`host_keys: name`). */
  hostKeyAlias?: string;
  /** `local`: Ansible's ansible_connection=local, the machine persona runs on. */
  connection?: 'local';
  labels: Record<string, string>;
  apps: string[];
}

export interface Inventory {
  source: string;
  /** -F for ssh, resolved relative to the inventory file. */
  sshConfig?: string;
  hosts: InventoryHost[];
  /** Variables left out, each with its reason and place. */
  warnings: InventoryWarning[];
}

/**
 * Secret-looking labels are taken out before validation, so that their values can appear in no message and no
 * label. Mutates a copy of the parsed document only.
 */
function dropSecretLabels(source: string, value: unknown, warnings: WarningCollector): unknown {
  if (!value || typeof value !== 'object') return value;
  const doc = structuredClone(value) as {
    defaults?: { labels?: Record<string, unknown> };
    hosts?: Array<{ name?: unknown; labels?: Record<string, unknown> }>;
  };
  const strip = (labels: unknown, host: string, path: string) => {
    if (!labels || typeof labels !== 'object' || Array.isArray(labels)) return;
    for (const name of Object.keys(labels))
      if (looksSecret(name)) {
        delete (labels as Record<string, unknown>)[name];
        warnings.add({ variable: name, message: SECRET_IGNORED, host, where: `${source} ${path}/${name}` });
      }
  };
  strip(doc.defaults?.labels, '*', '/defaults/labels');
  if (Array.isArray(doc.hosts))
    doc.hosts.forEach((h, i) => {
      strip(h?.labels, typeof h?.name === 'string' ? h.name : `#${i}`, `/hosts/${i}/labels`);
    });
  return doc;
}

export function normaliseInventory(
  source: string,
  input: unknown,
  baseDir: string,
  earlier: readonly InventoryWarning[] = [],
): Inventory {
  const collected = new WarningCollector();
  const value = dropSecretLabels(source, input, collected);
  const parsed = inventorySchema.safeParse(value, { reportInput: true });
  if (!parsed.success)
    throw new ValidationError(
      source,
      issuesToProblems(parsed.error.issues, value, inventorySchema),
      'E_INVALID_INPUT',
    );
  const { defaults, hosts } = parsed.data;
  const keyFileOf = (k: string | undefined) =>
    k === undefined || k.startsWith('~') || isAbsolute(k) ? k : resolve(baseDir, k);
  const problems: Problem[] = [];
  const seen = new Map<string, number>();
  hosts.forEach((h, i) => {
    const first = seen.get(h.name);
    if (first !== undefined)
      problems.push({
        path: `/hosts/${i}/name`,
        message: `"${h.name}" is listed twice (also /hosts/${first})`,
      });
    seen.set(h.name, i);
  });
  if (problems.length > 0) throw new ValidationError(source, problems, 'E_INVALID_INPUT');
  return {
    source,
    ...(defaults.ssh_config
      ? {
          sshConfig: isAbsolute(defaults.ssh_config)
            ? defaults.ssh_config
            : resolve(baseDir, defaults.ssh_config),
        }
      : {}),
    hosts: hosts.map((h) => ({
      name: h.name,
      address: h.address ?? h.name,
      ...((h.port ?? defaults.port) ? { port: h.port ?? defaults.port } : {}),
      ...((h.user ?? defaults.user) ? { user: h.user ?? defaults.user } : {}),
      ...((h.key_file ?? defaults.key_file) ? { keyFile: keyFileOf(h.key_file ?? defaults.key_file) } : {}),
      ...((h.jump ?? defaults.jump) ? { jump: h.jump ?? defaults.jump } : {}),
      ...(defaults.host_keys === 'name' && (h.address ?? h.name) !== h.name ? { hostKeyAlias: h.name } : {}),
      ...(h.connection === 'local' ? { connection: 'local' as const } : {}),
      labels: { ...defaults.labels, ...h.labels },
      apps: h.apps,
    })),
    warnings: [...earlier, ...collected.warnings],
  };
}

export async function loadInventory(path: string): Promise<Inventory> {
  let text: string | undefined;
  try {
    if ((await stat(path)).isDirectory()) {
      // A directory is an Ansible inventory: every file in it, with its group_vars/ and host_vars/.
      const { readAnsibleInventory } = await import('./ansible-inventory.js');
      const { value, warnings } = await readAnsibleInventory(path, { varsDir: path });
      return normaliseInventory(path, value, path, warnings);
    }
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!code) throw error;
    throw new PersonaError(
      'E_USAGE',
      `inventory ${path}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code})`}`,
      {
        hint: 'Pass --inventory FILE (JSON, YAML, or an Ansible inventory file or directory) or set PERSONA_INVENTORY.',
      },
    );
  }
  return parseInventoryText(path, text, { varsDir: dirname(path) });
}

/**
 * An inventory from its text: persona's JSON or YAML (a `hosts` list), else an Ansible inventory (INI, YAML, or the
 * JSON of `ansible-inventory --list`). `varsDir` is where Ansible's group_vars/ and host_vars/ are looked for (the
 * inventory's directory when it is read from disk; none for a text alone).
 */
export async function parseInventoryText(
  path: string,
  input: string,
  options: { varsDir?: string } = {},
): Promise<Inventory> {
  const text = stripBom(input);
  const baseDir = dirname(path);
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    const value = parseJsonText(path, text) as Record<string, unknown>;
    if (!('_meta' in value) && (!('hosts' in value) || Array.isArray(value.hosts) || '$schema' in value))
      return normaliseInventory(path, value, baseDir);
  } else if (!/^\s*\[[^\]]+\]/m.test(text)) {
    const { parse } = await import('yaml');
    let value: unknown;
    try {
      value = parse(text, { maxAliasCount: 100 });
    } catch {
      value = undefined; // not YAML: Ansible tries it as INI next
    }
    if (
      value &&
      typeof value === 'object' &&
      'hosts' in value &&
      Array.isArray((value as { hosts: unknown }).hosts)
    )
      return normaliseInventory(path, value, baseDir);
  }
  const { readAnsibleInventory } = await import('./ansible-inventory.js');
  const { value, warnings } = await readAnsibleInventory(path, {
    text,
    ...(options.varsDir !== undefined ? { varsDir: options.varsDir } : {}),
  });
  return normaliseInventory(path, value, baseDir, warnings);
}

export function findHost(inventory: Inventory, name: string): InventoryHost {
  const host = inventory.hosts.find((h) => h.name === name || h.address === name);
  if (!host) {
    throw new PersonaError('E_NOT_FOUND', `host "${name}" is not in the inventory ${inventory.source}`, {
      hint: `Known hosts: ${inventory.hosts
        .map((h) => h.name)
        .slice(0, 20)
        .join(', ')}${inventory.hosts.length > 20 ? ', …' : ''}`,
    });
  }
  return host;
}
