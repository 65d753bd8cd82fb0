import { createHash } from 'node:crypto';

/** Hex sha256 of a text (file contents, profile versions, secrets compared without keeping them). */
export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
