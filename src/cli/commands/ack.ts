/**
 * persona ack APP --reason TEXT [--for DURATION]: silences watch for an application during maintenance, recorded
 * in the store with who and when; --clear ends it, --list shows them all.
 */
import { PersonaError } from '../../errors.js';
import { applicationId } from '../../profile/rules.js';
import { ackActive, checkReason, clearAck, listAcks, parseDuration, writeAck } from '../../watch/acks.js';
import type { Ack } from '../../watch/types.js';
import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx, { args, opts }) => {
  const app = args.app as string | undefined;
  const store = await ctx.store();
  const now = ctx.now();
  if (opts.list === true) {
    if (app || opts.clear || opts.reason !== undefined)
      throw new PersonaError('E_USAGE', '--list takes no application, --reason or --clear');
    const acks = (await listAcks(store.backend)).map((a) => ({ ...a, active: ackActive(a, now) }));
    return {
      data: { acks },
      human: (out) => {
        if (acks.length === 0) return out.line(`no acks in ${store.describe}`);
        out.table(
          ['app', 'by', 'since', 'until', 'active', 'reason'],
          acks.map((a) => [a.app, a.by, a.at, a.until ?? 'cleared', a.active ? 'yes' : 'lapsed', a.reason]),
        );
      },
    };
  }
  if (!app) throw new PersonaError('E_USAGE', 'ack needs an application (or --list)');
  const id = applicationId.safeParse(app);
  if (!id.success)
    throw new PersonaError('E_USAGE', `application ${JSON.stringify(app)}: ${id.error.issues[0]?.message}`);
  if (opts.clear === true) {
    if (opts.reason !== undefined || opts.for !== undefined)
      throw new PersonaError('E_USAGE', '--clear takes no --reason or --for');
    const was = await clearAck(store.backend, app);
    return {
      data: { app, cleared: was !== undefined, ...(was ? { ack: was } : {}) },
      human: (out) =>
        out.line(was ? `${app}: ack by ${was.by} cleared; watch looks again` : `${app} had no ack`),
    };
  }
  const reason = checkReason(opts.reason);
  let until: string | undefined;
  if (opts.for !== undefined) {
    const ms = parseDuration(String(opts.for));
    if (ms === undefined)
      throw new PersonaError('E_USAGE', `--for ${JSON.stringify(opts.for)} is not a duration`, {
        hint: 'Like 90s, 30m, 2h, 1d or 1h30m (at most a year).',
      });
    until = new Date(now.getTime() + ms).toISOString();
  }
  // Only an application the store knows: a typo must not silence nothing while the real one pages.
  await store.load(app);
  const ack: Ack = { app, by: ctx.author, at: now.toISOString(), reason, ...(until ? { until } : {}) };
  await writeAck(store.backend, ack);
  return {
    data: { ack },
    human: (out) =>
      out.line(
        `${app}: watch is silent ${until ? `until ${until}` : 'until `persona ack ' + app + ' --clear`'} (${ack.by}: ${reason})`,
      ),
  };
};
