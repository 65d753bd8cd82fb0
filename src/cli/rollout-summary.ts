/** A rollout's outcome for a person: the steps, the comparison table and the decision. */

import type { RunSummary } from '../recover/summary.js';
import type { GroupRow } from '../rollout/compare.js';
import type { HumanOut } from '../ui/output.js';
import { renderSummary } from './run-summary.js';

export function renderRollout(out: HumanOut, s: RunSummary): void {
  renderSummary(out, s);
  const r = s.rollout;
  if (!r?.decision) return;
  const pct = (n?: number) => (n === undefined ? '-' : `${n}%`);
  out.table(
    ['group', 'hosts', 'health failures', 'CPU', 'memory', 'targets missed'],
    (r.table as GroupRow[]).map((g) => [
      g.group,
      g.hosts.join(', '),
      String(g.health_failures),
      pct(g.cpu_pct),
      pct(g.memory_pct),
      g.misses.join(', ') || '-',
    ]),
  );
  if (r.decision === 'promote')
    out.line(
      out.c.green(
        `promoted: ${s.app} version ${r.version ?? '?'} (was ${r.from_version}) on ${[...r.canary, ...r.control].join(', ')}`,
      ),
    );
  else
    out.line(
      out.c.red(
        `reverted: ${r.canary.join(', ')} back on version ${r.from_version}; the profile is unchanged (${r.reasons.join('; ')})`,
      ),
    );
}
