// The netns project's pool in a sanitizer run (test/sanitizers/run-asan.sh): vitest's forks, each
// with the ASan runtime preloaded, given the time their leak check takes when they end.
//
// Vitest ends a fork with SIGTERM and SIGKILL 500 ms later. A fork that ran forwarders needs more
// than that to tear node and V8 down and then let LeakSanitizer scan and report (about 450 ms on
// this 2-core machine without a finding, more with one to symbolize), and a SIGKILL in between
// loses the report. So this pool sends the SIGTERM (test/sanitizers/fork-exit.ts makes the fork
// end as a finished program does) and waits for the fork to be gone before vitest's own stop(),
// which then finds nothing left to kill.
import type { ChildProcess } from 'node:child_process';
import { ForksPoolWorker, type PoolOptions } from 'vitest/node';

/** How long a fork may take to end after SIGTERM before it is killed without its leak check. */
const EXIT_GRACE_MS = 30_000;

class SanitizerForksPoolWorker extends ForksPoolWorker {
  override readonly name = 'sanitizer-forks';

  override async stop(): Promise<void> {
    // ForksPoolWorker keeps its child in a private field; it is the one process this worker runs.
    const child = (this as unknown as { _fork?: ChildProcess })._fork;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
    await super.stop();
  }
}

export const sanitizerForksPool = {
  name: 'sanitizer-forks',
  createPoolWorker: (options: PoolOptions) => new SanitizerForksPoolWorker(options),
};
