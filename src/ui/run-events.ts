/**
 * How people see a run's events. Results go to stdout (the plan, the ranking, the dry run: what a human reads and
 * may keep); progress goes to stderr (answers given without asking, logs, steps and actions). Events people do not
 * need (probe, task, run) render nothing: the spinners say it.
 */
import type { ChalkInstance } from 'chalk';
import type { ProvisionEvent, RunEvent, RunPlanEvent, StepPlanEvent } from '../runbook/events.js';
import type { HumanOut } from './output.js';
import { renderRanking } from './ranking-table.js';

export interface EventSinks {
  /** stdout: results. */
  out: HumanOut;
  /** stderr: progress, one message (possibly several lines) at a time. */
  note(text: string): void;
  /** Colours for stderr. */
  c: ChalkInstance;
}

/** A renderer keeps what it needs across events: which runs' dry runs have their heading yet. */
export class RunEventRenderer {
  private readonly simulated = new Set<string>();

  constructor(private readonly sinks: EventSinks) {}

  render(e: RunEvent): void {
    const { out, note, c } = this.sinks;
    switch (e.type) {
      case 'confirm':
        note(`${c.cyan('?')} ${e.question} ${c.dim(`${e.answer ? 'yes' : 'no'} (${e.by})`)}`);
        return;
      case 'select':
        note(`${c.cyan('?')} ${e.question} ${c.dim(`${e.answer} (${e.by})`)}`);
        return;
      case 'log':
        note(e.message);
        return;
      case 'ranking':
        if (e.requirements) renderRanking(out, e.hosts, e.requirements);
        return;
      case 'plan':
        renderRunPlan(out, e);
        return;
      case 'step-plan':
        note(stepPlanText(c, e));
        return;
      case 'simulate':
        if (!this.simulated.has(e.run_id)) {
          this.simulated.add(e.run_id);
          out.line(out.c.bold('Dry run: nothing was changed. What each step would do:'));
        }
        out.line(`  ${e.step}:`);
        for (const l of e.lines) out.line(`     ${l}`);
        return;
      case 'step':
        // running, succeeded and failed are the task spinner's; these two have no spinner.
        if (e.status === 'verified')
          note(
            `${c.green('✔')} ${e.step}: its end state was already there (verified after the interruption)`,
          );
        else if (e.status === 'skipped') note(`${c.yellow('⚠')} ${e.step}: skipped; its work is not done`);
        return;
      case 'action': {
        const what = `${e.action.title}${c.dim(` (${e.action.touches})`)}`;
        if (e.status === 'done') note(`  ${c.green('✔')} ${what}`);
        else if (e.status === 'failed')
          note(`  ${c.red('✖')} ${what}${e.error ? `: ${e.error.message}` : ''}`);
        else if (e.status === 'skipped') note(`  ${c.dim('-')} ${what} ${c.dim('skipped')}`);
        return;
      }
      case 'provision':
        note(provisionText(c, e));
        return;
      case 'watch': {
        const mark =
          e.kind === 'failure' || e.kind === 'watch-error' || e.outcome === 'failed'
            ? c.red('✖')
            : e.kind === 'recovered' || e.outcome === 'succeeded'
              ? c.green('✔')
              : c.yellow('⚠');
        note(`${mark} ${e.kind} ${e.app} on ${e.host}: ${e.reason}`);
        return;
      }
      case 'probe':
      case 'task':
      case 'run':
        return;
    }
  }
}

/** The run's plan, before the confirmation: each step with what it will do, the hooks, where secrets come from. */
function renderRunPlan(out: HumanOut, p: RunPlanEvent): void {
  out.line(
    out.c.bold(
      p.title ??
        `Plan: recover ${p.app} (profile version ${p.profile_version}) from ${p.failed_host} onto ${p.target_host}`,
    ),
  );
  p.steps.forEach((step, i) => {
    out.line(`  ${i + 1}. ${out.c.bold(step.kind)}${step.mutates ? '' : out.c.dim(' (read-only)')}`);
    for (const line of step.lines) out.line(`     ${line}`);
  });
  if (p.hooks.length > 0) {
    out.line('  hooks:');
    for (const h of p.hooks) out.line(`     ${h.phase} on ${h.on}: ${h.run.join(' ')}`);
  }
  if (p.secrets.length > 0) {
    out.line('  secrets (references; values are never shown):');
    for (const x of p.secrets) out.line(`     ${x.where}: ${x.ref} (${x.source})`);
  }
}

/** What one step found and will do: its notes, then its actions (or why it cannot go on). */
function stepPlanText(c: ChalkInstance, p: StepPlanEvent): string {
  const state = p.blocked ? 'blocked' : p.actions.length === 0 ? 'nothing to do' : 'to do:';
  const lines = [`${c.bold(p.step)}: ${state}`];
  for (const n of p.notes) lines.push(`  ${c.dim(n)}`);
  for (const a of p.actions)
    lines.push(`  - ${a.title}${c.dim(` (${a.touches}${a.mutates ? '' : ', read-only'})`)}`);
  if (p.blocked) lines.push(`  ${c.red('blocked:')} ${p.blocked}`);
  return lines.join('\n');
}

/** Provisioning a host: what runs (or would), the command's own stderr lines, the host it made. */
function provisionText(c: ChalkInstance, e: ProvisionEvent): string {
  const command = e.command.join(' ');
  const env = Object.entries(e.env ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const limit = e.timeout_ms ? `, time limit ${Math.round(e.timeout_ms / 1000)} s` : '';
  switch (e.status) {
    case 'would-run':
      return `${c.yellow('dry run:')} no host can take ${e.app}; a real run would provision one with: ${command}${c.dim(` (${env}${limit})`)}; nothing was run`;
    case 'started':
      return `${c.dim('…')} provisioning a host for ${e.app}: ${command}${c.dim(` (${env}${limit})`)}`;
    case 'output':
      return `  ${c.dim('provision:')} ${e.line ?? ''}`;
    case 'succeeded': {
      const h = e.entry;
      const secs = e.duration_ms === undefined ? '' : ` ${c.dim(`${(e.duration_ms / 1000).toFixed(1)}s`)}`;
      return `${c.green('✔')} provisioned ${h?.name} (${h?.address}) for ${e.app}${secs}`;
    }
  }
}
