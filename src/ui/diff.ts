import { createTwoFilesPatch } from 'diff';
import type { HumanOut } from './output.js';

/** A unified diff of two texts; empty when they are the same. */
export function unifiedDiff(fromName: string, toName: string, from: string, to: string): string {
  if (from === to) return '';
  return createTwoFilesPatch(fromName, toName, ensureNewline(from), ensureNewline(to), '', '', { context: 3 })
    .split('\n')
    .filter((line) => !line.startsWith('====='))
    .join('\n')
    .trimEnd();
}

const ensureNewline = (s: string) => (s.endsWith('\n') ? s : `${s}\n`);

export function printDiff(out: HumanOut, diff: string): void {
  for (const line of diff.split('\n')) {
    if (line.startsWith('+++') || line.startsWith('---')) out.line(out.c.bold(line));
    else if (line.startsWith('+')) out.line(out.c.green(line));
    else if (line.startsWith('-')) out.line(out.c.red(line));
    else if (line.startsWith('@@')) out.line(out.c.cyan(line));
    else out.line(line);
  }
}
