/**
 * The inventory: which hosts exist, how to reach them, their labels, and which applications run where.
 * persona's own format (JSON or YAML), or an Ansible inventory (INI or YAML). Every value is checked like a
 * profile value, because host names, addresses and users end up on an ssh command line.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import * as z from 'zod';
import { PersonaError, type Problem, ValidationError } from '../errors.js';
import { parseJsonText } from '../profile/json-text.js';
import { applicationId, integer, label, labelValue, unixName } from '../profile/rules.js';
import { issuesToProblems } from '../profile/validate.js';
import { stripBom } from '../util/text.js';
import {
  type InventoryWarning,
  looksSecret,
  SECRET_IGNORED,
  WarningCollector,
} from './inventory-warnings.js';

const hostName = z.string({ error: 'must be a host name' }).regex(/^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})$/, {
  error: 'must be a host name: letters, digits, ".", "_" or "-", starting with a letter or digit',
});

const address = z
  .string({ error: 'must be an address' })
  .max(253)
  .regex(/^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|[0-9a-fA-F:]{2,39})$/, {
    error: 'must be a DNS name, an IPv4 or an IPv6 address (no spaces, no shell characters)',
  });

/** ssh -i: a path (ssh expands a leading ~); never an option, never a line break. */
const keyFile = z
  .string({ error: 'must be a path to a private key' })
  .max(4096)
  .regex(/^[^\0\n\r-][^\0\n\r]*$/, { error: 'must be a path to a private key (not starting with "-")' });

/** ssh -J: [user@]host[:port], comma-separated for several hops. */
const jumpHost = z
  .string({ error: 'must be a jump host' })
  .max(1024)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.@:[\]-]*(?:,[A-Za-z0-9_][A-Za-z0-9_.@:[\]-]*)*$/, {
    error: 'must be a jump host: [user@]host[:port], comma-separated for several hops',
  });

const inventoryHost = z.strictObject({
  name: hostName,
  address: address.optional(),
  port: integer(1, 65535).optional(),
  user: unixName.optional(),
  key_file: keyFile.optional(),
  jump: jumpHost.optional(),
  labels: z.record(label, labelValue).default({}),
  apps: z.array(applicationId).default([]),
});

export const inventorySchema = z.strictObject({
  $schema: z.string().optional(),
  defaults: z
    .strictObject({
      user: unixName.optional(),
      port: integer(1, 65535).optional(),
      key_file: keyFile.optional(),
      jump: jumpHost.optional(),
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
  /** ssh -J. */
  jump?: string;
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
      labels: { ...defaults.labels, ...h.labels },
      apps: h.apps,
    })),
    warnings: [...earlier, ...collected.warnings],
  };
}

export async function loadInventory(path: string): Promise<Inventory> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new PersonaError(
      'E_USAGE',
      `inventory ${path}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code})`}`,
      {
        hint: 'Pass --inventory FILE (JSON, YAML, or an Ansible inventory) or set PERSONA_INVENTORY.',
      },
    );
  }
  return parseInventoryText(path, text);
}

export async function parseInventoryText(path: string, input: string): Promise<Inventory> {
  const text = stripBom(input);
  const baseDir = dirname(path);
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    const value = parseJsonText(path, text) as Record<string, unknown>;
    return normaliseInventory(path, value, baseDir);
  }
  const { fromAnsibleIni, fromAnsibleYaml, looksLikeIni } = await import('./ansible-inventory.js');
  if (looksLikeIni(text)) {
    const { value, warnings } = fromAnsibleIni(path, text);
    return normaliseInventory(path, value, baseDir, warnings);
  }
  const { parse } = await import('yaml');
  let value: unknown;
  try {
    value = parse(text, { maxAliasCount: 100 });
  } catch (error) {
    throw new PersonaError('E_INVALID_INPUT', `${path}: invalid YAML: ${(error as Error).message}`);
  }
  if (
    value &&
    typeof value === 'object' &&
    'hosts' in value &&
    Array.isArray((value as { hosts: unknown }).hosts)
  ) {
    return normaliseInventory(path, value, baseDir);
  }
  const ansible = fromAnsibleYaml(path, value);
  return normaliseInventory(path, ansible.value, baseDir, ansible.warnings);
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
