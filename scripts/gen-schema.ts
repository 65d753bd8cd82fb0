/**
 * Writes profiles/schema/persona-profile.schema.json from the one schema in src/profile/schema.ts.
 * A unit test fails when the committed file differs from what this would write.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { profileJsonSchemaText } from '../src/profile/json-schema.js';

const target = fileURLToPath(new URL('../../profiles/schema/persona-profile.schema.json', import.meta.url));
writeFileSync(target, profileJsonSchemaText());
console.log(`wrote ${target}`);
