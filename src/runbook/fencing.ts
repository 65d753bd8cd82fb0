/**
 * The fencing decision, in one place. The fence step's conclusion, on the first run and on a resume after a crash
 * alike, weighs what a fresh plan observed after the actions (can the traffic method take the host out, did it,
 * does the host answer, is the application stopped there) with what the actions returned, through `fenceVerdict`. The evidence goes to the journal, and the engine refuses any step that
 * needs a fence (switch) unless the journal holds it.
 *
 * With a power fence (STONITH, `fencing.power` in the profile) the power decides, as in Pacemaker: status
 * reporting the host off after the off command is fence evidence on its own, whatever the traffic method can do;
 * anything else (on, unknown, not checked) is not, whatever else was seen. See power-fence.ts.
 */
import type { Journal } from './types.js';

export interface FenceFacts {
  /** The traffic method: haproxy, command, consul, none. */
  method: string;
  /** Whether the traffic method can take a host out of rotation at all. */
  canTakeOut: boolean;
  /** Whether the host is out of rotation now (undefined: the method cannot tell). */
  takenOut: boolean | undefined;
  /** How `takenOut` was established. */
  takenOutBy: string;
  reachable: boolean;
  unreachableReason?: string;
  /** How it failed to answer (refused, timeout, unreachable, auth, …): migrate trusts only real signs of down. */
  unreachableKind?: string;
  /** Exit code of deploy.stop, when it ran in this attempt. */
  stopExitCode?: number;
  /** Exit code of deploy.status after the stop; undefined when the profile has no deploy.status. */
  statusExitCode?: number;
  /** Whether the profile has a power fence (fencing.power); absent: it has none. */
  powerConfigured?: boolean;
  /**
   * Whether the power fence's status exited 2 (off), checked after the off command (or found off before one was
   * needed); undefined: not checked. With a power fence, `reachable` must be looked at after this check.
   */
  poweredOff?: boolean;
  /**
   * Whether the host answered over SSH when this run powered it off (absent: no power off ran): migrate then
   * treats it as found answering, since its data may be newer than the backup.
   */
  answeredBeforePowerOff?: boolean;
  /** What the power fence's status reported, in words (off, on, unknown (why)); see powerFacts in power-fence.ts. */
  powerStatus?: string;
}

export interface FenceEvidence extends FenceFacts {
  fenced: boolean;
  /** Why the host counts as fenced, or why not. */
  reason: string;
  checked_at: string;
}

/** Whether the facts prove the failed host no longer serves, and why. Pure. */
export function fenceVerdict(f: FenceFacts): { fenced: boolean; reason: string } {
  if (f.powerConfigured) return powerVerdict(f);
  if (f.canTakeOut && f.takenOut !== true)
    return {
      fenced: false,
      reason: `traffic method ${f.method} has not taken the host out (${f.takenOutBy})`,
    };
  if (f.reachable) {
    if (f.statusExitCode !== undefined) {
      return f.statusExitCode !== 0
        ? {
            fenced: true,
            reason: `the host answers; deploy.status exits ${f.statusExitCode}: the application is stopped`,
          }
        : { fenced: false, reason: 'the host answers and deploy.status exits 0: the application still runs' };
    }
    if (f.stopExitCode === 0)
      return {
        fenced: true,
        reason: 'the host answers; deploy.stop exited 0 (no deploy.status to check with)',
      };
    return {
      fenced: false,
      reason:
        f.stopExitCode === undefined
          ? 'the host answers and the profile has no deploy.status: only running deploy.stop proves the application stopped'
          : `the host answers and deploy.stop exited ${f.stopExitCode}`,
    };
  }
  if (f.canTakeOut)
    return {
      fenced: true,
      reason: `the host does not answer (${f.unreachableReason}) and ${f.method} has it out of rotation`,
    };
  return {
    fenced: false,
    reason: `the host does not answer (${f.unreachableReason}) and traffic method ${f.method} cannot take it out of rotation: it may still serve`,
  };
}

/** With a power fence, only the power counts: off (and silent) is fenced, anything else is not. */
function powerVerdict(f: FenceFacts): { fenced: boolean; reason: string } {
  if (f.poweredOff === undefined)
    return {
      fenced: false,
      reason: 'the profile has a power fence and its status has not reported the host off yet',
    };
  if (!f.poweredOff)
    return {
      fenced: false,
      reason: `the power fence's status does not report the host off after the off command (status: ${f.powerStatus ?? 'not off'})`,
    };
  if (f.reachable)
    return {
      fenced: false,
      reason:
        "the power fence's status reports the host off, yet it answers over SSH: the fence agent may be acting on another machine",
    };
  return {
    fenced: true,
    reason: `powered off: the power fence's status exits 2 (off) and the host does not answer (${f.unreachableReason ?? 'no answer'})`,
  };
}

/** The fence evidence recorded in a run's journal, when the fence succeeded with it. */
export function fenceEvidence(journal: Readonly<Journal>): FenceEvidence | undefined {
  const fence = journal.steps.find((s) => s.kind === 'fence');
  if (fence?.status !== 'succeeded') return undefined;
  const evidence = (fence.outputs as { evidence?: FenceEvidence } | undefined)?.evidence;
  return evidence?.fenced === true ? evidence : undefined;
}
