import { gib } from '../../broker/broker.js';
import { ExitCode } from '../../errors.js';
import { cacheFacts } from '../../hosts/fact-refresh.js';
import { findHost } from '../../hosts/inventory.js';
import { probeWithProgress } from '../../hosts/probe-progress.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args, opts }) => {
  const inventory = await ctx.inventory();
  const names = (args.hosts as string[] | undefined) ?? [];
  const hosts = names.length > 0 ? names.map((n) => findHost(inventory, n)) : inventory.hosts;
  let dataPath = String(opts.path ?? '/');
  let packages = (opts.package as string[] | undefined) ?? [];
  if (opts.profile) {
    const { profile } = await (await ctx.store()).load(String(opts.profile));
    dataPath = profile.data.paths[0] ?? dataPath;
    packages = [...profile.software_stack, ...packages];
  }
  const { validatePackages, validateDataPath } = await import('../host-inputs.js');
  validateDataPath(dataPath);
  validatePackages(packages);
  const results = await probeWithProgress(ctx, hosts, { dataPath, packages });
  const answered = results.filter((r) => r.ok).length;
  // What recover ranks from later: the facts of the hosts that answered (the others lose their entry).
  const cached = opts.cache ? await cacheFacts(ctx, results, { dataPath, packages }) : undefined;
  const storeName = cached !== undefined ? (await ctx.store()).describe : '';
  return {
    data: {
      inventory: inventory.source,
      data_path: dataPath,
      hosts: results,
      ...(cached !== undefined ? { cached } : {}),
    },
    human: (out) => {
      out.table(
        [
          'host',
          'address',
          'status',
          'cores',
          'RAM GiB',
          `free/total GiB (${dataPath})`,
          'packages',
          'OS',
          'load',
          'ms',
        ],
        results.map((r) =>
          r.ok
            ? [
                r.host.name,
                r.host.address,
                out.c.green('ok'),
                r.facts.cores.usable,
                gib(r.facts.memory.usableBytes),
                `${gib(r.facts.storage.freeBytes)}/${gib(r.facts.storage.totalBytes)}`,
                packages.length > 0
                  ? r.facts.packages.requested
                      .map((p) => `${p.name}${p.installed ? `=${p.installed}` : out.c.red(' missing')}`)
                      .join('\n')
                  : `${r.facts.packages.installedCount} installed`,
                r.facts.os.pretty,
                r.facts.load1,
                r.durationMs,
              ]
            : [
                r.host.name,
                r.host.address,
                out.c.red(r.failure.kind),
                '',
                '',
                '',
                '',
                out.c.red(wrap(r.failure.message, 40)),
                '',
                r.durationMs,
              ],
        ),
      );
      if (cached !== undefined)
        out.line(
          `${out.c.green('✔')} facts of ${cached} host${cached === 1 ? '' : 's'} written to the fact cache (${storeName})`,
        );
      if (answered === 0 && results.length > 0)
        out.line(`${out.c.red('✖')} no host answered; the reasons are above`);
    },
    // Some hosts failing is an answer (each with its reason); none answering leaves nothing to go on.
    ...(answered === 0 && results.length > 0 ? { exitCode: ExitCode.precondition } : {}),
  };
};

const wrap = (text: string, width: number) =>
  text.replace(new RegExp(`(.{1,${width}})(\\s|$)`, 'g'), '$1\n').trim();
