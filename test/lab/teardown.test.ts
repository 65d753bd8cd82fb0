// Scheduled last: takes the lab down and checks that nothing of it is left on the machine.
// Other test files that use the lab hold a lease (labUp ... releaseLab); this waits for them.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  assertNoLabTraces,
  labAddHost,
  labDirOf,
  labDown,
  labIdentity,
  labTraces,
  PROVISIONED_SPEC,
  waitForOtherLabUsers,
} from './lab.js';

describe('lab teardown', () => {
  it(
    'down leaves nothing: no mounts, netns, cgroups, links, routes, nftables table, processes, directory; a host lab add-host made included',
    async () => {
      await waitForOtherLabUsers();
      const id = labIdentity();
      if (existsSync(join(labDirOf(), 'state.json')))
        expect((await labAddHost(PROVISIONED_SPEC)).name).toMatch(/-\d+$/);
      await labDown();
      await assertNoLabTraces(id);
      expect(await labTraces(id)).toEqual([]);
    },
    30 * 60_000,
  );

  it('down is safe to run again when nothing is up', async () => {
    const id = labIdentity();
    await labDown();
    await assertNoLabTraces(id);
  }, 60_000);
});
