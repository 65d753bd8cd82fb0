/**
 * Formatting slips in messages persona writes: a parenthetical said twice or stacked on another, a doubled
 * word, a phrase repeated. The offending value (", got ...") is the author's text, not ours, so it is left out.
 */
export function formattingSlips(message: string): string[] {
  const ours = message.replace(/, got [\s\S]*$/, '');
  const slips: string[] = [];
  const parentheticals: string[] = ours.match(/\([^()]*\)/g) ?? [];
  const twice = parentheticals.find((p, i) => parentheticals.indexOf(p) !== i);
  if (twice) slips.push(`repeated parenthetical ${twice}`);
  if (/\)\s*\(/.test(ours)) slips.push('two parentheticals in a row');
  const doubled = /\b(\w+)\s+\1\b/i.exec(ours);
  if (doubled) slips.push(`doubled word "${doubled[1]}"`);
  const words = ours.toLowerCase().match(/[a-z0-9]+/g) ?? [];
  const phrases = new Set<string>();
  for (let i = 0; i + 3 <= words.length; i++) {
    const phrase = words.slice(i, i + 3).join(' ');
    if (phrases.has(phrase)) slips.push(`repeated phrase "${phrase}"`);
    phrases.add(phrase);
  }
  return slips;
}
