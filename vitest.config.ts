import { defineConfig } from 'vitest/config';
import { sanitizerForksPool } from './test/sanitizers/pool';

// A sanitizer run (test/sanitizers/run-asan.sh) names the ASan runtime to preload into the netns
// forks, the processes that load the instrumented addon (vitest's own process does not get it),
// and runs them in a pool that waits for their leak check when they end.
const sanitizerRuntime = process.env.OVERLAYFWD_SANITIZER_PRELOAD;
const sanitizerFork = sanitizerRuntime
  ? {
      pool: sanitizerForksPool,
      env: { LD_PRELOAD: [sanitizerRuntime, process.env.LD_PRELOAD].filter(Boolean).join(':') },
      setupFiles: ['test/sanitizers/fork-exit.ts'],
    }
  : {};

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
          ...sanitizerFork,
        },
      },
    ],
  },
});
