import type { RankedHost, Requirements } from '../broker/broker.js';
import type { HumanOut } from './output.js';

const GiB = 1024 ** 3;

/** The ranked table: host, resources, software, score with its breakdown, verdict with every reason (and what the host's history cost it). */
export function renderRanking(out: HumanOut, ranking: readonly RankedHost[], req: Requirements): void {
  out.line(
    out.c.dim(
      `${req.app} needs ${req.cores} core(s), ${req.ramBytes / GiB} GiB RAM, ${req.storageBytes / GiB} GiB free on ${req.dataPath}${req.packages.length ? `, ${req.packages.join(' ')}` : ''}`,
    ),
  );
  out.table(
    ['#', 'host', 'cores', 'RAM GiB', 'free GiB', 'software', 'score', 'verdict'],
    ranking.map((r) => [
      r.rank ?? '',
      r.host,
      r.facts?.cores ?? '',
      r.facts?.ramGiB ?? '',
      r.facts?.freeStorageGiB ?? '',
      r.software ? softwareCell(r) : '',
      r.score
        ? `${r.score.total}\n${Object.entries(r.score.components)
            .map(([k, v]) => `${k} ${v}`)
            .join('\n')}`
        : '',
      r.verdict === 'eligible'
        ? `${out.c.green('eligible')}${[...cachedNote(r), ...(r.history ? [r.history] : []), ...(r.notes ?? [])].map((n) => out.c.dim(`\n${n}`)).join('')}`
        : `${out.c.red('rejected')}${cachedNote(r)
            .map((n) => out.c.dim(`\n${n}`))
            .join(
              '',
            )}\n${r.reasons.map((x) => `${x.message}${x.fix ? out.c.dim(`\n  → ${x.fix}`) : ''}`).join('\n')}`,
    ]),
  );
}

/** Where the facts came from, when not from a probe now. */
const cachedNote = (r: RankedHost): string[] =>
  r.cachedFacts ? [`facts from the cache, ${r.cachedFacts.ageS} s old`] : [];

function softwareCell(r: RankedHost): string {
  const s = r.software!;
  const parts = [];
  if (s.present.length) parts.push(`present: ${s.present.join(' ')}`);
  if (s.toInstall.length) parts.push(`to install: ${s.toInstall.join(' ')}`);
  if (s.unknown.length) parts.push(`unknown: ${s.unknown.join(' ')}`);
  if (s.unavailable.length) parts.push(`unavailable: ${s.unavailable.join(' ')}`);
  return parts.join('\n') || '-';
}
