/** A valid run journal for tests: fixed times and hosts, no steps; a test overrides what it is about. */
import type { Journal } from '../../src/runbook/types.js';

export function testJournal(fields: Partial<Journal> = {}): Journal {
  return {
    format: 'persona-run',
    version: 1,
    run_id: '20261127T000000Z-app-abcdef',
    app: 'app',
    status: 'planned',
    created_at: '2026-11-27T00:00:00Z',
    updated_at: '2026-11-27T00:00:00Z',
    who: 'tester',
    command_line: ['persona', 'recover', 'h1'],
    driver: { pid: 1, host: 'here' },
    store: 'file:x',
    inventory: 'inv.json',
    profile: { id: 'app', version: 1, sha256: 'x' },
    failed_host: { name: 'h1', address: '10.0.0.1' },
    target_host: { name: 'h2', address: '10.0.0.2' },
    options: { force_no_fence: false, strategy: 'best-fit' },
    ranking: [],
    steps: [],
    ...fields,
  };
}
