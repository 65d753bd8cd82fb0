#!/usr/bin/env node
// The main job. Until `persona recover` lands, it shows the profiles: validate every example, then list them.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const persona = new URL('../bin/persona', import.meta.url).pathname;
const files = readdirSync('profiles').filter((f) => f.endsWith('.json')).map((f) => `profiles/${f}`);
execFileSync(persona, ['profile', 'validate', ...files], { stdio: 'inherit' });
execFileSync(persona, ['profile', 'list'], { stdio: 'inherit' });
