// The process-wide registry of live labs: whatever they hold is removed synchronously when the
// process exits, and on SIGINT/SIGTERM/SIGHUP when nobody else handles the signal.

/** What the registry needs of a lab. */
export interface SyncDestroyable {
  /** Synchronous last-resort cleanup: no hooks, SIGKILL everything. */
  destroySync(): void;
}

const liveLabs = new Set<SyncDestroyable>();
let handlersInstalled = false;

function destroyAllSync(): void {
  for (const lab of [...liveLabs]) lab.destroySync();
}

type HandledSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';

function onSignal(signal: HandledSignal): void {
  // Someone else (the CLI, the demo, a test runner) handles this signal and is expected to call
  // destroy(); the 'exit' handler is the backstop. Alone, we clean up and die of the signal.
  if (process.listenerCount(signal) > 1) return;
  destroyAllSync();
  process.removeListener(signal, signalHandlers[signal]);
  process.kill(process.pid, signal);
}

const signalHandlers: Record<HandledSignal, () => void> = {
  SIGINT: () => onSignal('SIGINT'),
  SIGTERM: () => onSignal('SIGTERM'),
  SIGHUP: () => onSignal('SIGHUP'),
};

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', destroyAllSync);
  for (const sig of Object.keys(signalHandlers) as (keyof typeof signalHandlers)[]) {
    process.on(sig, signalHandlers[sig]);
  }
}

/** Puts `lab` under the exit and signal handlers (installed on first use). */
export function registerLab(lab: SyncDestroyable): void {
  installHandlers();
  liveLabs.add(lab);
}

/** Takes `lab` out again once it is destroyed. */
export function unregisterLab(lab: SyncDestroyable): void {
  liveLabs.delete(lab);
}
