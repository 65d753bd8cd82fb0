/**
 * Where migrate takes the data from, decided from facts (pure). A backup may be older than the failed host's
 * data, and the copy runs with --delete, so persona falls back to it only when the failed host is proven down:
 * it does not answer now with a failure that means "down" (refused, no route, timeout) AND the fence already
 * found it not answering. Anything else (authentication, a changed or unknown host key, DNS, a host that went
 * down after the fence) stops the step, naming the cause and the explicit choice: `--data-from backup`.
 */
import type { SshFailureKind } from '../hosts/ssh.js';
import type { DataFrom, StepRecord } from '../runbook/journal-schema.js';
import type { Reach } from './reach.js';

/** Failures that say the machine is gone, as opposed to "we could not get in" or "we could not find it". */
export const downKinds: ReadonlySet<SshFailureKind> = new Set(['refused', 'timeout', 'unreachable']);

export interface SourceFacts {
  failedName: string;
  reach: Reach;
  /** Every data path exists on the failed host (only meaningful when it answers). */
  failedHasData: boolean;
  /** What the fence step recorded about the failed host, if it ran. */
  fence?: { host_reachable?: boolean; kind?: string };
  dataFrom: DataFrom;
}

export type SourceDecision =
  | { use: 'failed-host'; why: string }
  | { use: 'backup'; why: string }
  | { refuse: string; hint: string };

const backupHint = (name: string) =>
  `If the backup is what you want, resume with \`--data-from backup\` (it may be older than ${name}'s data and the copy deletes what the backup lacks); else fix the cause and resume.`;

export function decideSource(f: SourceFacts): SourceDecision {
  const name = f.failedName;
  if (f.dataFrom === 'backup') return { use: 'backup', why: 'the backup, as asked (--data-from backup)' };
  if (f.reach.ok && f.failedHasData) return { use: 'failed-host', why: `${name} answers and has the data` };
  if (f.dataFrom === 'failed-host') {
    return {
      refuse: f.reach.ok
        ? `${name} answers but lacks the data paths, and --data-from failed-host forbids the backup`
        : `${name} does not answer (${f.reach.reason}), and --data-from failed-host forbids the backup`,
      hint: `Bring ${name} back, or resume with \`--data-from backup\`.`,
    };
  }
  if (f.reach.ok) {
    // It answers without the data: a wiped or re-provisioned host; the backup is all there is.
    return { use: 'backup', why: `${name} answers but lacks the data paths` };
  }
  const { kind, reason } = f.reach;
  if (!downKinds.has(kind)) {
    return {
      refuse: `${name} does not let persona in (${kind}: ${reason}); that does not prove it is down, so its data may be newer than the backup`,
      hint: backupHint(name),
    };
  }
  if (f.fence?.host_reachable !== false) {
    const fence = f.fence ? 'the fence found it answering' : 'no fence step recorded it as down';
    return {
      refuse: `${name} does not answer (${reason}), but ${fence}: it may have gone down after writing data the backup lacks`,
      hint: backupHint(name),
    };
  }
  return { use: 'backup', why: `${name} is down (${reason}; the fence found it down too)` };
}

/** What the fence step recorded about the failed host, from its record (undefined before it ran). */
export function fenceFacts(record: StepRecord | undefined): SourceFacts['fence'] {
  const evidence = record?.outputs?.evidence as
    | { reachable?: unknown; unreachableKind?: unknown; answeredBeforePowerOff?: unknown }
    | undefined;
  if (!evidence) return undefined;
  // Powered off by this run while it answered: down now, but its data may be newer than the backup.
  if (evidence.answeredBeforePowerOff === true) return { host_reachable: true };
  return {
    ...(typeof evidence.reachable === 'boolean' ? { host_reachable: evidence.reachable } : {}),
    ...(typeof evidence.unreachableKind === 'string' ? { kind: evidence.unreachableKind } : {}),
  };
}
