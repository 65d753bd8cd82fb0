/**
 * `persona config`: every global setting's effective value and where it came from.
 */
import { availableParallelism } from 'node:os';
import { DEFAULT_PROBE_CONCURRENCY } from '../../hosts/probe.js';
import { redactUrl } from '../../stores/open.js';
import { describeSource, provisionArgv, type SettingKey, type Settings, settingDefs } from '../settings.js';
import type { CommandRun } from '../spec.js';

/** A value as people read it: unset values say what happens instead. */
function shown(key: SettingKey, settings: Settings): string {
  const value = settings[key].value;
  if (key === 'store') return redactUrl(String(value));
  if (key === 'ssh_config' && value === undefined) return "(the inventory's ssh_config, else ~/.ssh/config)";
  if (key === 'concurrency' && value === undefined)
    return `${DEFAULT_PROBE_CONCURRENCY} (16 per core, ${availableParallelism()} cores)`;
  if (key === 'provision' && value === undefined) return '(none, unless a profile has its own provision)';
  return String(value);
}

export const run: CommandRun = async (ctx) => {
  const { values, file, candidates } = ctx.settings;
  const rows = settingDefs.map((d) => ({
    key: d.key,
    value: shown(d.key, values),
    source: describeSource(values[d.key].source),
  }));
  const settings = Object.fromEntries(
    settingDefs.map((d) => [
      d.key,
      {
        value:
          d.key === 'store'
            ? redactUrl(values.store.value)
            : d.key === 'provision'
              ? (provisionArgv(values) ?? null)
              : (values[d.key].value ?? null),
        source: rows.find((r) => r.key === d.key)!.source,
      },
    ]),
  );
  return {
    data: { config_file: file ?? null, looked_in: candidates, settings },
    human: (out) => {
      out.table(
        ['key', 'value', 'source'],
        rows.map((r) => [r.key, r.value, r.source]),
      );
      out.line(
        out.c.dim(file ? `config file: ${file}` : `no config file (looked in ${candidates.join(', ')})`),
      );
    },
  };
};
