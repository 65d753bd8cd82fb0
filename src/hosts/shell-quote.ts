/**
 * The remote side of ssh always runs a shell over the command text, so every argument is quoted here, once.
 * Single quotes make every character literal; a single quote itself is closed, escaped and reopened.
 */
export function shellQuote(arg: string): string {
  if (arg === '') return "''";
  // '=' stays quoted: an unquoted NAME=value first word would be an assignment, not a command.
  if (/^[A-Za-z0-9_@%+:,./-]+$/.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

export function shellJoin(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}
