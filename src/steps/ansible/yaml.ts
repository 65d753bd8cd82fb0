/**
 * YAML for Ansible in which no value persona takes from a profile or an inventory is ever templated: every string
 * is tagged `!unsafe` (Ansible then never evaluates `{{ ... }}` or `{% ... %}` in it), except the expressions persona
 * writes itself, wrapped in `jinja()`.
 */
import { Document, Scalar } from 'yaml';

/** An expression of persona's own, left to Ansible's templating. */
export class Jinja {
  constructor(readonly text: string) {}
}

export const jinja = (text: string) => new Jinja(text);

export type YamlValue =
  | string
  | number
  | boolean
  | Jinja
  | readonly YamlValue[]
  | { readonly [key: string]: YamlValue | undefined };

function node(value: YamlValue): unknown {
  if (value instanceof Jinja) return value.text;
  if (typeof value === 'string') {
    const s = new Scalar(value);
    s.tag = '!unsafe';
    return s;
  }
  if (Array.isArray(value)) return value.map(node);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = node(v as YamlValue);
    return out;
  }
  return value;
}

export function toAnsibleYaml(value: YamlValue): string {
  return new Document(node(value), { version: '1.1' }).toString({ lineWidth: 0 });
}
