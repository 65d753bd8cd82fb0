/**
 * persona profile tune ID: reads the application's observations and recorded outcomes over a window, shows the
 * evidence, proposes requirement changes (tune/propose.ts) and, once confirmed, writes them as a new profile
 * version by compare-and-set. --dry-run shows the diff and writes nothing; without a terminal only --yes confirms.
 */
import type { Context } from '../../context.js';
import { isPersonaError, PersonaError } from '../../errors.js';
import { listObservations } from '../../feedback/observations.js';
import { parseProfileText } from '../../profile/validate.js';
import type { StoredProfile } from '../../stores/profile-store.js';
import { setTopLevelNumbers } from '../../tune/edit.js';
import { ALL } from '../../tune/evidence.js';
import { type Proposal, propose, type TuneReport } from '../../tune/propose.js';
import { mergeObservations, readOutcomeObservations } from '../../tune/read.js';
import { printDiff, unifiedDiff } from '../../ui/diff.js';
import type { HumanOut } from '../../ui/output.js';
import { confirmOrDecline } from '../../ui/prompter.js';
import { parseDuration } from '../../util/duration.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args, opts }) => {
  const id = args.id as string;
  const until = ctx.now();
  const since = new Date(until.getTime() - parseDuration(String(opts.since ?? '7d'), '--since'));
  const store = await ctx.store();
  const { stored, profile } = await store.load(id);
  const warn = (message: string) => ctx.reporter.warn(message);
  const observations = mergeObservations(
    await listObservations(store.backend, { app: id, since }, warn),
    await readOutcomeObservations(store.backend, { app: id, since }, warn),
  );
  const report = propose({ profile, observations });
  const tuned = report.proposals.length ? setTopLevelNumbers(stored.text, report.proposals) : stored.text;
  // A proposal that the profile rules refuse is a bug of tune: say so before anything is written.
  if (tuned !== stored.text) parseProfileText(`profile "${id}" as tune would write it`, tuned, id);
  const diff = unifiedDiff(`${id} version ${stored.version} (current)`, `${id} tuned`, stored.text, tuned);
  const data = {
    id,
    version: stored.version,
    since: since.toISOString(),
    until: until.toISOString(),
    ...report,
    span_days: Math.round((report.span_ms / 86_400_000) * 100) / 100,
    diff,
    dry_run: opts.dryRun === true,
  };
  if (report.proposals.length === 0 || opts.dryRun) {
    return {
      data: { ...data, written: false },
      human: (out) => {
        show(out, stored, report, diff);
        if (report.proposals.length) out.line(out.c.dim('dry run: nothing written'));
      },
    };
  }
  if (!ctx.mode.json) show(ctx.out, stored, report, diff);
  await confirmWrite(ctx, stored, report.proposals, store.describe);
  const written = await store.put(
    id,
    tuned,
    { token: stored.token },
    {
      author: ctx.author,
      at: ctx.now().toISOString(),
      message: `profile tune: ${report.proposals.map((p) => p.evidence).join('; ')}`,
    },
  );
  return {
    data: { ...data, written: true, new_version: written.version },
    human: (out) =>
      out.line(
        `${out.c.green('✔')} wrote ${id} version ${written.version} (was ${stored.version}) to ${store.describe}`,
      ),
  };
};

const changes = (proposals: readonly Proposal[]) =>
  proposals.map((p) => `${p.path} ${p.from} → ${p.to}`).join(', ');

/** Asks (or takes --yes); without either, the refusal carries the proposals so --json shows what was at stake. */
async function confirmWrite(
  ctx: Context,
  stored: StoredProfile,
  proposals: readonly Proposal[],
  where: string,
): Promise<void> {
  const question = `Write a new version of ${stored.id} (now version ${stored.version}) with ${changes(proposals)} to ${where}?`;
  try {
    await confirmOrDecline(ctx.prompter, question, `${stored.id} stays at version ${stored.version}`);
  } catch (error) {
    if (!isPersonaError(error) || error.code !== 'E_CONFIRM_REQUIRED') throw error;
    throw new PersonaError('E_CONFIRM_REQUIRED', error.message, {
      hint: `Pass --yes to write it, or --dry-run to only look.`,
      details: { ...error.details, proposals },
    });
  }
}

const cell = (v: number | string | null) => (v === null ? '—' : String(v));

function show(out: HumanOut, stored: StoredProfile, report: TuneReport, diff: string): void {
  const days = Math.round((report.span_ms / 86_400_000) * 10) / 10;
  out.line(
    `${stored.id} version ${stored.version}: ${report.observations} observation(s) from ${report.hosts.length} host(s) over ${days} days`,
  );
  if (report.evidence.length) {
    out.table(
      ['metric', 'host', 'n', 'p50', 'p95', 'target', 'requirement', 'missed %'],
      report.evidence.map((r) => [
        r.host === ALL ? r.metric : `  ${r.metric}`,
        r.host,
        r.n,
        cell(r.p50),
        cell(r.p95),
        cell(r.target),
        cell(r.requirement),
        cell(r.missed_pct),
      ]),
    );
  }
  for (const p of report.proposals)
    out.line(`${out.c.bold(p.direction === 'raise' ? '▲' : '▼')} ${p.evidence}`);
  for (const note of report.notes) out.line(`${out.c.dim('·')} ${note}`);
  if (report.proposals.length === 0) out.line('nothing to propose');
  else printDiff(out, diff);
}
