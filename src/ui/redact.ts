/**
 * Secrets never reach logs, journals or --json output. Every secret value persona resolves is registered here,
 * and every string on its way out passes through `redact`.
 */
export class Redactor {
  private readonly secrets = new Set<string>();

  add(value: string): void {
    // Very short values would redact ordinary words; secrets that short are refused where they are resolved.
    if (value.length >= 4) this.secrets.add(value);
    const trimmed = value.trim();
    if (trimmed !== value && trimmed.length >= 4) this.secrets.add(trimmed);
  }

  redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) {
      if (out.includes(secret)) out = out.split(secret).join('[redacted]');
    }
    return out;
  }

  /** Redacts every string inside a JSON-like value. */
  deep<T>(value: T): T {
    if (this.secrets.size === 0) return value;
    return JSON.parse(this.redact(JSON.stringify(value))) as T;
  }
}
