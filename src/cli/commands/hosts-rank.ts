import { rankHosts, requirementsOf, type Strategy } from '../../broker/broker.js';
import { PersonaError } from '../../errors.js';
import { notProbed } from '../../hosts/probe.js';
import { probeWithProgress } from '../../hosts/probe-progress.js';
import { renderRanking } from '../../ui/ranking-table.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { opts }) => {
  if (!opts.profile) throw new PersonaError('E_USAGE', 'hosts rank needs --profile ID');
  const { stored, profile } = await (await ctx.store()).load(String(opts.profile));
  const inventory = await ctx.inventory();
  const req = requirementsOf(profile);
  const failed = opts.failed ? String(opts.failed) : undefined;
  const exclude = (opts.exclude as string[] | undefined) ?? [];
  const skip = (name: string, address: string) =>
    name === failed || address === failed || exclude.includes(name);
  const toProbe = inventory.hosts.filter((h) => !skip(h.name, h.address));
  const probed = await probeWithProgress(ctx, toProbe, { dataPath: req.dataPath, packages: req.packages });
  const skipped = inventory.hosts.filter((h) => skip(h.name, h.address)).map(notProbed);
  const strategy = (opts.strategy as Strategy | undefined) ?? 'best-fit';
  const ranking = rankHosts(req, [...probed, ...skipped], {
    strategy,
    exclude,
    ...(failed ? { failedHost: failed } : {}),
  });
  const eligible = ranking.filter((r) => r.verdict === 'eligible').length;
  return {
    data: {
      profile: profile.id,
      profile_version: stored.version,
      strategy,
      requirements: req,
      hosts: ranking,
    },
    human: (out) => {
      renderRanking(out, ranking, req);
      out.line(
        eligible > 0
          ? `${out.c.green('✔')} ${eligible} eligible host${eligible === 1 ? '' : 's'} for ${profile.id}; best: ${ranking[0]!.host}`
          : `${out.c.red('✖')} no host can take ${profile.id}; the reasons are above`,
      );
    },
    ...(eligible === 0 ? { exitCode: 4 } : {}),
  };
};
