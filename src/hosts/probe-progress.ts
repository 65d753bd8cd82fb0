/**
 * Probing with progress for people (a spinner on a terminal, plain lines otherwise) and events for --json.
 */
import type { Context } from '../context.js';
import type { InventoryHost } from './inventory.js';
import { type ProbeOptions, type ProbeResult, probeHosts } from './probe.js';

export async function probeWithProgress(
  ctx: Context,
  hosts: readonly InventoryHost[],
  options: ProbeOptions,
): Promise<ProbeResult[]> {
  const ssh = await ctx.ssh();
  const task = ctx.reporter.task(`probing ${hosts.length} host${hosts.length === 1 ? '' : 's'} over SSH`);
  let done = 0;
  let failed = 0;
  const probing = probeHosts(ssh, hosts, {
    ...options,
    ...(ctx.settings.values.concurrency.value ? { concurrency: ctx.settings.values.concurrency.value } : {}),
    signal: ctx.signal,
    onResult: (r) => {
      done++;
      if (!r.ok) failed++;
      task.update(`probing: ${done}/${hosts.length} answered${failed ? `, ${failed} failed` : ''}`);
      ctx.reporter.event(
        'probe',
        r.ok
          ? { host: r.host.name, ok: true, duration_ms: r.durationMs }
          : { host: r.host.name, ok: false, failure: r.failure },
      );
    },
  });
  const results = await probing.catch((error: unknown) => {
    task.fail(`probe stopped after ${done} of ${hosts.length} host${hosts.length === 1 ? '' : 's'}`);
    throw error;
  });
  const text = `probed ${hosts.length} host${hosts.length === 1 ? '' : 's'}: ${hosts.length - failed} answered${failed ? `, ${failed} failed` : ''}`;
  if (failed > 0) task.warn(text);
  else task.succeed(text);
  return results;
}
