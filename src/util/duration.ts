/**
 * Durations people type on the command line: a whole number and a unit, `30m`, `36h`, `7d`, `2w`.
 */
import { PersonaError } from '../errors.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Milliseconds, or E_USAGE naming the flag and the accepted forms. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d{1,6})([smhdw])$/.exec(text.trim());
  if (!m || Number(m[1]) === 0) {
    throw new PersonaError('E_USAGE', `${flag} ${JSON.stringify(text)}: not a duration`, {
      hint: `Give a whole number and a unit: s, m, h, d or w (e.g. ${flag} 7d, ${flag} 36h).`,
    });
  }
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}
