// Node's process warnings (the library's own, such as OVERLAYFWD_RANDOM_MAC, and any other) as
// log lines: Node would print them as "(node:PID) Warning: ..." between the JSON lines.
import type { Logger } from './logger';

/** Routes process warnings to `logger` until the returned function puts Node's printer back. */
export function routeProcessWarnings(logger: Logger): () => void {
  const previous = process.listeners('warning');
  process.removeAllListeners('warning');
  const listener = (w: Error & { code?: string }) => logger.warn({ warning: w.name, ...(w.code ? { code: w.code } : {}) }, w.message);
  process.on('warning', listener);
  return () => {
    process.off('warning', listener);
    for (const l of previous) process.on('warning', l);
  };
}
