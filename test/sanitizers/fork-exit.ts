// Set up in every netns fork of a sanitizer run (vitest.config.ts, test/sanitizers/run-asan.sh).
//
// The pool (pool.ts) ends a fork with SIGTERM, whose default action ends node before any exit
// hook, so LeakSanitizer would never look at the fork's heap. Instead the fork lets go of its IPC
// channel and ends as a program does when its work is done: node tears the environment and V8
// down, then LeakSanitizer checks what is left, and a leak's report goes to build-asan/reports/,
// which fails the run. (process.exit() would skip that teardown, and V8's own live memory would
// read as leaks.) A test file that leaves a handle open keeps the fork alive until the pool kills
// it, with no leak check: the fork writes that down for the run to say which file and handles.
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll } from 'vitest';

/** A fork still up this long after SIGTERM is held open by a handle. */
const HELD_OPEN_MS = 5_000;

const installed = Symbol.for('overlayfwd.sanitizerExitOnSigterm');
const state = globalThis as { [installed]?: { file: string } };

if (!state[installed]) {
  const current = { file: '(unknown test file)' };
  state[installed] = current;
  process.on('SIGTERM', () => {
    process.disconnect?.();
    const notes = process.env.OVERLAYFWD_SANITIZER_NOTES;
    if (!notes) return;
    setTimeout(() => {
      fs.mkdirSync(notes, { recursive: true });
      fs.writeFileSync(path.join(notes, `held-open.${process.pid}`), `${current.file}: ${process.getActiveResourcesInfo().join(', ')}\n`);
    }, HELD_OPEN_MS).unref();
  });
}

beforeAll(({}, suite) => {
  state[installed]!.file = path.relative(process.cwd(), suite.file.filepath);
});
