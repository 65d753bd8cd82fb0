import * as z from 'zod';
import { profileSchema } from './schema.js';

export const SCHEMA_ID = 'https://persona.dev/schemas/persona-profile.schema.json';

/** The JSON Schema editors use to complete and check profiles that name it in "$schema". */
export function profileJsonSchemaText(): string {
  const schema = z.toJSONSchema(profileSchema, { io: 'input', target: 'draft-2020-12' }) as Record<
    string,
    unknown
  >;
  return `${JSON.stringify({ ...schema, $id: SCHEMA_ID }, null, 2)}\n`;
}
