import { rankHosts, requirementsOf, type Strategy } from '../../broker/broker.js';
import { PersonaError } from '../../errors.js';
import { readRankHistory } from '../../feedback/host-history.js';
import { notProbed } from '../../hosts/probe.js';
import { probeWithProgress } from '../../hosts/probe-progress.js';
import { renderRanking } from '../../ui/ranking-table.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { opts }) => {
  if (!opts.profile) throw new PersonaError('E_USAGE', 'hosts rank needs --profile ID');
  const store = await ctx.store();
  const { stored, profile } = await store.load(String(opts.profile));
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
  const past = await readRankHistory(store.backend, profile.id, ctx.now());
  const ranking = rankHosts(req, [...probed, ...skipped], {
    strategy,
    exclude,
    history: past.history,
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
      ...(past.note ? { history_note: past.note } : {}),
    },
    human: (out) => {
      renderRanking(out, ranking, req);
      if (past.note) out.line(`${out.c.yellow('⚠')} ${past.note}`);
      out.line(
        eligible > 0
          ? `${out.c.green('✔')} ${eligible} eligible host${eligible === 1 ? '' : 's'} for ${profile.id}; best: ${ranking[0]!.host}`
          : `${out.c.red('✖')} no host can take ${profile.id}; the reasons are above`,
      );
    },
    ...(eligible === 0 ? { exitCode: 4 } : {}),
  };
};
