/**
 * Synthetic observations for profile tune's command tests, written where the feedback branch writes them:
 * `observations/<app>/<host>/<13-digit epoch ms>-<6 random [a-z0-9]>` in a file store.
 */
import { randomBytes } from 'node:crypto';
import { FileBackend } from '../../src/stores/file-backend.js';
import type { Observation } from '../../src/tune/types.js';

const GiB = 1024 ** 3;
const DAY = 86_400_000;

export function observationKey(o: Observation): string {
  const suffix = [...randomBytes(6)].map((b) => 'abcdefghijklmnopqrstuvwxyz0123456789'[b % 36]).join('');
  return `observations/${o.app}/${o.host}/${String(Date.parse(o.at)).padStart(13, '0')}-${suffix}`;
}

/** n observations of demo-web, ending now and spread over `days`, alternating web-1 and web-2. */
export function memoryHistory(
  n: number,
  usedGiB: (i: number) => number,
  options: { days?: number; hosts?: string[]; app?: string; now?: number } = {},
): Observation[] {
  const hosts = options.hosts ?? ['web-1', 'web-2'];
  const now = options.now ?? Date.now();
  const days = options.days ?? 3;
  return Array.from({ length: n }, (_, i) => ({
    at: new Date(now - 60_000 - ((n - 1 - i) * days * DAY) / Math.max(1, n - 1)).toISOString(),
    app: options.app ?? 'demo-web',
    host: hosts[i % hosts.length]!,
    source: 'monitor' as const,
    ok: true,
    metrics: { cpu_pct: 20, memory_used_bytes: Math.round(usedGiB(i) * GiB) },
  }));
}

export async function seedObservations(storeDir: string, list: readonly Observation[]): Promise<void> {
  const kv = await new FileBackend(storeDir).open();
  await kv.txn({ puts: list.map((o) => ({ key: observationKey(o), value: JSON.stringify(o) })) });
}
