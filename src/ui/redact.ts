/**
 * Secrets never reach logs, journals, the shared store or --json output. Every secret value persona resolves is
 * registered here, and everything persisted or printed passes through `redact` (text) or `deep` (values).
 *
 * What counts as the secret, for a registered value V:
 * - V itself, at any length of 1 character or more, and V trimmed;
 * - V as it appears inside a JSON string (quotes, backslashes and newlines escaped), so a secret printed inside
 *   JSON output, or a JSON-encoded copy of it, is caught too;
 * - each line of a multi-line V (a PEM key, say) of 4 characters or more, since output is often split by lines.
 * A value shorter than 4 characters is replaced only where it stands alone: not next to a letter or digit, so a
 * 3-character secret "abc" is removed from "password=abc" but does not turn "fabric" into "f[redacted]ric".
 * Longer values are replaced wherever they occur.
 */
const MASK = '[redacted]';
const SHORT = 4;

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class Redactor {
  private readonly forms = new Set<string>();
  private pattern: RegExp | undefined;

  add(value: string): void {
    if (value.length === 0) return;
    const whole = [value, value.trim()].filter((v) => v.length > 0);
    const lines = value.includes('\n')
      ? value
          .split(/\r?\n/)
          .map((l) => l.trim())
          .filter((l) => l.length >= SHORT)
      : [];
    for (const form of [...whole, ...lines]) {
      this.forms.add(form);
      const escaped = JSON.stringify(form).slice(1, -1);
      if (escaped !== form) this.forms.add(escaped);
    }
    this.pattern = undefined;
  }

  private regex(): RegExp | undefined {
    if (this.forms.size === 0) return undefined;
    if (!this.pattern) {
      // Longest first, so a secret that contains another is replaced whole.
      const alternatives = [...this.forms]
        .sort((a, b) => b.length - a.length)
        .map((f) =>
          f.length < SHORT ? `(?<![A-Za-z0-9])${escapeRegExp(f)}(?![A-Za-z0-9])` : escapeRegExp(f),
        );
      this.pattern = new RegExp(alternatives.join('|'), 'g');
    }
    return this.pattern;
  }

  redact(text: string): string {
    const re = this.regex();
    return re ? text.replace(re, MASK) : text;
  }

  /** Redacts every string (and key) inside a JSON-like value; the structure is kept, so it stays valid JSON. */
  deep<T>(value: T): T {
    if (this.forms.size === 0) return value;
    return this.walk(value) as T;
  }

  private walk(value: unknown): unknown {
    if (typeof value === 'string') return this.redact(value);
    if (Array.isArray(value)) return value.map((v) => this.walk(v));
    if (value && typeof value === 'object') {
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function')
        return this.walk((value as { toJSON(): unknown }).toJSON());
      return Object.fromEntries(
        Object.entries(value as Record<string, unknown>).map(([k, v]) => [this.redact(k), this.walk(v)]),
      );
    }
    return value;
  }
}
