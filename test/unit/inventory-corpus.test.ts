/**
 * persona reads Ansible inventories as Ansible does. Oracle: ansible-core itself (`ansible-inventory -i SOURCE
 * --list`), run once for the whole corpus through test/helpers/ansible-inventory-batch.py (the same InventoryCLI as
 * /usr/bin/ansible-inventory, one Python start-up instead of one per file; the first source is also run through the
 * binary, to show the batch answers as the binary does). For every source, persona's hosts must match: names,
 * address (ansible_ssh_host / ansible_host, else the name), port, user, groups, and every variable either kept as
 * the same label or named in a warning for that host.
 *
 * Ansible only parses here: only the ini and yaml inventory plugins are enabled (no script, no auto/plugins), no
 * user configuration is read, and nothing is contacted.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, test } from 'vitest';
import { scalarText } from '../../src/hosts/ansible-inventory.js';
import { type Inventory, loadInventory } from '../../src/hosts/inventory.js';
import { requireBinaries } from '../helpers/binaries.js';

const run = promisify(execFile);
const FIXTURES = fileURLToPath(new URL('../fixtures/inventory/', import.meta.url));

/** Real inventories: every top-level file of each corpus/<name>/ (group_vars/ and host_vars/ beside it apply). */
const corpus = readdirSync(join(FIXTURES, 'corpus'))
  .filter((d) => statSync(join(FIXTURES, 'corpus', d)).isDirectory())
  .flatMap((d) =>
    readdirSync(join(FIXTURES, 'corpus', d))
      .filter((f) => statSync(join(FIXTURES, 'corpus', d, f)).isFile())
      .map((f) => join(FIXTURES, 'corpus', d, f)),
  );
/** Synthetic edge cases: every entry of edge/ (directories are directory inventories). */
const edge = readdirSync(join(FIXTURES, 'edge')).map((f) => join(FIXTURES, 'edge', f));
/** `*.list.json` is the output of `ansible-inventory --list`: its own content is the expected answer. */
const isListJson = (p: string) => p.endsWith('.list.json');
const sources = [...corpus, ...edge];

interface ListJson {
  _meta?: { hostvars?: Record<string, Record<string, unknown>> };
  [group: string]: { hosts?: string[]; children?: string[] } | unknown;
}

const env = (home: string): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: home,
  LANG: 'C.UTF-8',
  ANSIBLE_CONFIG: join(home, 'ansible.cfg'),
  ANSIBLE_HOME: join(home, '.ansible'),
  ANSIBLE_LOCAL_TEMP: join(home, 'tmp'),
  ANSIBLE_INVENTORY_ENABLED: 'ini,yaml',
  ANSIBLE_VARS_ENABLED: 'host_group_vars',
  ANSIBLE_INVENTORY_UNPARSED_FAILED: 'true',
  ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED: 'true',
  ANSIBLE_COLLECTIONS_PATH: join(home, 'collections'),
  ANSIBLE_NOCOLOR: '1',
});

let answers: Record<string, { list?: ListJson; error?: string }> = {};
let oracleMs = 0;

beforeAll(async () => {
  const [binary] = requireBinaries('ansible-inventory');
  const home = mkdtempSync(join(tmpdir(), 'persona-ansible-'));
  writeFileSync(join(home, 'ansible.cfg'), '');
  const python = readFileSync(binary!, 'utf8')
    .split('\n')[0]!
    .replace(/^#!\s*/, '')
    .split(/\s+/)[0]!;
  const started = Date.now();
  const batch = fileURLToPath(new URL('../helpers/ansible-inventory-batch.py', import.meta.url));
  const [{ stdout }, single] = await Promise.all([
    run(python, [batch, ...sources.filter((s) => !isListJson(s))], {
      env: env(home),
      cwd: home,
      maxBuffer: 64 << 20,
    }),
    run(binary!, ['-i', corpus[0]!, '--list'], { env: env(home), cwd: home }),
  ]);
  oracleMs = Date.now() - started;
  answers = JSON.parse(stdout) as typeof answers;
  // The batch is ansible-inventory: the same answer as the binary for the same source.
  expect(answers[corpus[0]!]?.list).toEqual(JSON.parse(single.stdout));
  for (const s of sources.filter(isListJson))
    answers[s] = { list: JSON.parse(readFileSync(s, 'utf8')) as ListJson };
}, 60_000);

interface Expected {
  address: string;
  port?: number;
  user?: string;
  groups: string[];
  vars: Record<string, unknown>;
}

/** Each host of an `ansible-inventory --list` answer with its groups (through children) and its variables. */
function expectedHosts(list: ListJson): Map<string, Expected> {
  const groups = Object.entries(list).filter(([k]) => k !== '_meta') as Array<
    [string, { hosts?: string[]; children?: string[] }]
  >;
  const byName = new Map(groups);
  const members = (g: string, seen = new Set<string>()): Set<string> => {
    const out = new Set(byName.get(g)?.hosts ?? []);
    for (const c of byName.get(g)?.children ?? [])
      if (!seen.has(c)) for (const h of members(c, seen.add(c))) out.add(h);
    return out;
  };
  const names = new Set([
    ...groups.flatMap(([, g]) => g.hosts ?? []),
    ...Object.keys(list._meta?.hostvars ?? {}),
  ]);
  const out = new Map<string, Expected>();
  for (const name of names) {
    const vars = list._meta?.hostvars?.[name] ?? {};
    const pick = (...keys: string[]) => keys.map((k) => vars[k]).find((v) => v !== undefined);
    const address = scalarText(pick('ansible_ssh_host', 'ansible_host'));
    const port = pick('ansible_ssh_port', 'ansible_port');
    const user = scalarText(pick('ansible_ssh_user', 'ansible_user'));
    const templated = (t: string | undefined) => t?.includes('{{') === true;
    out.set(name, {
      address: address !== undefined && !templated(address) ? address : name,
      ...(port !== undefined ? { port: Number(port) } : {}),
      ...(user !== undefined && !templated(user) ? { user } : {}),
      groups: groups
        .map(([g]) => g)
        .filter((g) => g !== 'all' && g !== 'ungrouped' && members(g).has(name))
        .sort(),
      vars,
    });
  }
  return out;
}

/** Variables persona takes to reach the host or to run its steps, rather than as labels. */
const CONSUMED = new Set([
  'ansible_host',
  'ansible_ssh_host',
  'ansible_port',
  'ansible_ssh_port',
  'ansible_user',
  'ansible_ssh_user',
  'ansible_ssh_private_key_file',
  'ansible_private_key_file',
  'ansible_ssh_common_args',
  'ansible_ssh_extra_args',
  'ansible_connection',
  'ansible_become',
  'ansible_become_user',
  'ansible_become_method',
  'persona_apps',
]);

function compare(inventory: Inventory, list: ListJson): string[] {
  const expected = expectedHosts(list);
  const diffs: string[] = [];
  const got = new Map(inventory.hosts.map((h) => [h.name, h]));
  const sorted = (xs: Iterable<string>) => [...xs].sort();
  if (JSON.stringify(sorted(got.keys())) !== JSON.stringify(sorted(expected.keys())))
    diffs.push(
      `hosts: persona ${sorted(got.keys()).join(',')} / ansible ${sorted(expected.keys()).join(',')}`,
    );
  for (const [name, want] of expected) {
    const h = got.get(name);
    if (!h) continue;
    const warned = (variable: string) =>
      inventory.warnings.some(
        (w) => w.variable === variable && (w.hosts.includes(name) || w.hosts.includes('*')),
      );
    if (h.address !== want.address) diffs.push(`${name}: address ${h.address} / ansible ${want.address}`);
    if (h.port !== want.port) diffs.push(`${name}: port ${h.port} / ansible ${want.port}`);
    if (h.user !== want.user && !(want.user !== undefined && warned('ansible_user')))
      diffs.push(`${name}: user ${h.user} / ansible ${want.user}`);
    const groups = Object.keys(h.labels)
      .filter((l) => l.startsWith('group.'))
      .map((l) => l.slice(6));
    const groupsWarned = want.groups.filter((g) => !groups.includes(g) && warned(`group.${g}`));
    if (JSON.stringify(sorted([...groups, ...groupsWarned])) !== JSON.stringify(want.groups))
      diffs.push(`${name}: groups ${sorted(groups).join(',')} / ansible ${want.groups.join(',')}`);
    for (const [k, v] of Object.entries(want.vars)) {
      if (CONSUMED.has(k)) continue;
      if (k in h.labels) {
        if (h.labels[k] !== scalarText(v))
          diffs.push(`${name}: ${k}=${h.labels[k]} / ansible ${JSON.stringify(v)}`);
      } else if (!warned(k))
        diffs.push(`${name}: ${k} neither a label nor a warning (ansible ${JSON.stringify(v)})`);
    }
    for (const k of Object.keys(h.labels))
      if (!k.startsWith('group.') && !(k in want.vars))
        diffs.push(`${name}: label ${k} is not an Ansible variable`);
  }
  return diffs;
}

describe('Ansible inventories: the same answer as ansible-inventory --list', () => {
  test.each(sources.map((s) => [s.slice(FIXTURES.length), s]))('%s', async (_label, source) => {
    const answer = answers[source];
    expect(answer, `no answer from ansible for ${source}`).toBeDefined();
    if (answer?.error !== undefined) {
      // Ansible refuses it: so does persona.
      await expect(loadInventory(source)).rejects.toThrow();
      return;
    }
    const inventory = await loadInventory(source);
    expect(compare(inventory, answer!.list!)).toEqual([]);
  });

  test('the corpus is real and large enough, and Ansible answered quickly', () => {
    expect(new Set(corpus.map((p) => p.split('/corpus/')[1]!.split('/')[0])).size).toBeGreaterThanOrEqual(10);
    const readme = readFileSync(join(FIXTURES, 'corpus', 'README.md'), 'utf8');
    for (const p of corpus) expect(readme, p).toContain(p.split('/corpus/')[1]!);
    console.log(`ansible-inventory answered for ${sources.length} sources in ${oracleMs} ms`);
  });
});
