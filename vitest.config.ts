import { defineConfig } from 'vitest/config';

// Two projects: fast unit tests, then the network-namespace integration tests. The netns tests
// run one file at a time (they build labs, move real traffic and measure CPU and event-loop
// time on a 2-core machine) in forked processes (the native addon's threads enter namespaces),
// with timeouts generous enough for a loaded CI machine.
export default defineConfig({
  test: {
    pool: 'forks',
    teardownTimeout: 60_000,
    projects: [
      {
        test: {
          name: 'unit',
          pool: 'forks',
          include: ['test/**/*.test.ts'],
          exclude: ['test/netns/**', '**/node_modules/**', 'dist/**'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'netns',
          pool: 'forks',
          include: ['test/netns/**/*.test.ts'],
          fileParallelism: false,
          // lifecycle.test.ts collects garbage before it compares memory.
          execArgv: ['--expose-gc'],
          maxWorkers: 1,
          testTimeout: 120_000,
          hookTimeout: 120_000,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
