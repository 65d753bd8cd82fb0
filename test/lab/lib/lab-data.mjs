#!/usr/bin/env node
// Data side of test/lab/lab: the bash script calls this for everything that reads or writes JSON.
//   resolve SPEC LAB_DIR CACHE_DIR OUT_JSON   validate SPEC, write the resolved spec, print shell declarations
//   render-config LAB_DIR                     ssh/config, haproxy/haproxy.cfg, inventory.json
//   render-known-hosts LAB_DIR                ssh/known_hosts from the hosts' generated host keys
//   render-bastion-config LAB_DIR HOST        ssh/config-bastion: the other hosts through HOST (lab bastion on)
//   render-state LAB_DIR                      state.json from the resolved spec and LAB_DIR/run
//   add-host LAB_DIR FILE|JSON                one more host (lab add-host) into spec.json and spec.sh; prints its name
//   host-entry LAB_DIR HOST                   the host's inventory entry as JSON
//   app-argv LAB_DIR APP start|stop           the app's argv, NUL-separated
//   app-files LAB_DIR APP OUT_DIR             the app's deploy.files written under OUT_DIR
//   app-setup LAB_DIR APP                     users and secrets, one tab-separated line each
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as render from './render.mjs';
import { addHost, loadSpecFile, resolveSpec } from './spec.mjs';

const repoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const commands = {
  async resolve([specFile, labDir, cacheDir, outJson]) {
    const s = await resolveSpec(specFile, { labDir, cacheDir, repoDir });
    render.writeAtomic(outJson, `${JSON.stringify(s, null, 2)}\n`);
    process.stdout.write(render.shellDecls(s));
  },
  'render-config'([labDir]) {
    const s = render.readSpec(labDir);
    render.writeAtomic(path.join(labDir, 'ssh/config'), render.sshConfig(s));
    render.writeAtomic(path.join(labDir, 'haproxy/haproxy.cfg'), render.haproxyConfig(s));
    render.writeAtomic(path.join(labDir, 'inventory.json'), render.inventory(s));
  },
  'render-known-hosts'([labDir]) {
    const s = render.readSpec(labDir);
    render.writeAtomic(path.join(labDir, 'ssh/known_hosts'), render.knownHosts(s));
  },
  'render-bastion-config'([labDir, bastion]) {
    const s = render.readSpec(labDir);
    render.writeAtomic(path.join(labDir, 'ssh/config-bastion'), render.sshBastionConfig(s, bastion));
  },
  'render-state'([labDir]) {
    render.writeAtomic(path.join(labDir, 'state.json'), render.state(render.readSpec(labDir)));
  },
  async 'add-host'([labDir, spec]) {
    const s = render.readSpec(labDir);
    const raw = spec.trimStart().startsWith('{') ? JSON.parse(spec) : await loadSpecFile(spec);
    const host = addHost(s, raw, spec.trimStart().startsWith('{') ? '--spec' : spec);
    s.hosts.push(host);
    // The running lab's record: every later command (status, fail, fence, down) knows the host. The spec hash stays
    // that of the spec the lab was brought up with, so that `up` with it still finds this lab.
    render.writeAtomic(path.join(labDir, 'spec.json'), `${JSON.stringify(s, null, 2)}\n`);
    render.writeAtomic(path.join(labDir, 'spec.sh'), render.shellDecls(s));
    process.stdout.write(`${host.name}\n`);
  },
  'host-entry'([labDir, name]) {
    process.stdout.write(`${JSON.stringify(render.inventoryEntry(render.readSpec(labDir), name))}\n`);
  },
  'app-argv'([labDir, id, which]) {
    const app = appOf(labDir, id);
    process.stdout.write(app[which].map((a) => `${a}\0`).join(''));
  },
  'app-files'([labDir, id, outDir]) {
    for (const f of appOf(labDir, id).files) {
      const target = path.join(outDir, f.path);
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, f.content);
      chmodSync(target, Number.parseInt(f.mode ?? '0644', 8));
    }
  },
  'app-setup'([labDir, id]) {
    const app = appOf(labDir, id);
    const lines = [
      ...app.users.map((u) => ['user', u.name, (u.groups ?? []).join(',')]),
      ...app.secrets.map((k) => ['secret', k.source, k.path, k.owner ?? 'root', k.mode ?? '0600']),
    ];
    process.stdout.write(lines.map((l) => `${l.join('\t')}\n`).join(''));
  },
};

function appOf(labDir, id) {
  const app = render.readSpec(labDir).apps[id];
  if (!app) throw new Error(`no application ${id} in this lab's spec`);
  return app;
}

const [name, ...args] = process.argv.slice(2);
try {
  if (!commands[name])
    throw new Error(`unknown command ${name}; see the header of ${fileURLToPath(import.meta.url)}`);
  await commands[name](args);
} catch (err) {
  // One line (or the spec's error list), never a stack trace: the bash side prefixes the step.
  process.stderr.write(
    `${err.code === 'LAB_SPEC_INVALID' ? err.message : `lab-data ${name}: ${err.message}`}\n`,
  );
  process.exitCode = 1;
}
