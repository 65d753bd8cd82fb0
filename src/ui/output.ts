/**
 * Results for people: lines and tables on stdout. Commands describe their result with these; they never write
 * to the streams themselves.
 */
import { Chalk, type ChalkInstance } from 'chalk';
import Table from 'cli-table3';
import type { Redactor } from './redact.js';

export interface HumanOut {
  readonly c: ChalkInstance;
  line(text?: string): void;
  table(head: string[], rows: Array<Array<string | number>>): void;
}

export function humanOut(stdout: NodeJS.WritableStream, color: boolean, redactor: Redactor): HumanOut {
  const c = new Chalk({ level: color ? 1 : 0 });
  return {
    c,
    line(text = '') {
      stdout.write(`${redactor.redact(text)}\n`);
    },
    table(head, rows) {
      // cli-table3 colours its borders even when piped: an empty style keeps plain output plain.
      const style = color ? { head: ['cyan'], border: ['grey'] } : { head: [], border: [] };
      const table = new Table({ head, style });
      for (const row of rows) table.push(row.map(String));
      stdout.write(`${redactor.redact(table.toString())}\n`);
    },
  };
}
