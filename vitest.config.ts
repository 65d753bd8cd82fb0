import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Lab files run one at a time: the self-test, the end-to-end files in name order, the teardown check. */
class LabSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    // The self-test first (it expects the lab as `up` leaves it), the teardown check last.
    const key = (f: TestSpecification) =>
      f.moduleId.endsWith('selftest.test.ts')
        ? `0${f.moduleId}`
        : f.moduleId.endsWith('teardown.test.ts')
          ? `~${f.moduleId}`
          : `1${f.moduleId}`;
    return [...files].sort((a, b) => key(a).localeCompare(key(b)));
  }
}

// Tests that need the lab (root, namespaces, the hosts): they share one lab and run serially.
const lab = ['test/lab/**/*.test.ts', 'test/e2e/lab-*.test.ts', 'bench/**/*.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 600_000,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: [...lab, '**/node_modules/**'] },
      },
      {
        extends: true,
        test: {
          name: 'lab',
          include: lab,
          fileParallelism: false,
          testTimeout: 300_000,
          sequence: { sequencer: LabSequencer },
        },
      },
    ],
  },
});
