import type { CommandRun } from '../spec.js';

export const run: CommandRun = async (ctx) => {
  const store = await ctx.store();
  const profiles = await store.list();
  return {
    data: { store: store.describe, profiles },
    human: (out) => {
      if (profiles.length === 0) {
        out.line(`no profiles in ${store.describe}`);
        return;
      }
      out.table(
        ['id', 'version', 'cores', 'RAM GiB', 'storage GiB', 'status', 'description'],
        profiles.map((p) => [
          p.id,
          p.version,
          p.required_cores ?? '',
          p.required_ram_gb ?? '',
          p.required_storage_gb ?? '',
          p.valid
            ? out.c.green('valid')
            : out.c.red(`invalid (${p.problems} problem${p.problems === 1 ? '' : 's'})`),
          truncate(p.description ?? '', 48),
        ]),
      );
      out.line(
        out.c.dim(`${profiles.length} profile${profiles.length === 1 ? '' : 's'} in ${store.describe}`),
      );
    },
  };
};

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
