import type { Manifest } from '../runbook/remote.js';

/** Why the target's copy is not the source's, or undefined when it is. */
export function copyDiff(
  source: Manifest,
  target: Manifest | undefined,
  targetName: string,
): string | undefined {
  if (!target) return `absent on ${targetName}`;
  if (source.digest !== target.digest) return 'contents differ';
  if (source.meta !== target.meta) return 'owners or modes differ';
  return undefined;
}
