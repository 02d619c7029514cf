// What the machine offers a lab: the prerequisites, commands on PATH, and the lab's own helper
// programs (lab/helpers/*.py).
import fs from 'node:fs';
import path from 'node:path';

/** Why a lab cannot be built here, or null when it can (root, iproute2, /dev/net/tun). */
export function labUnavailableReason(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return `network namespaces need root (uid is ${process.getuid()})`;
  }
  if (!commandExists('ip')) return 'iproute2 (`ip`) is not installed';
  if (!fs.existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
  return null;
}

const commandCache = new Map<string, boolean>();
/** True when `cmd` is an executable on PATH. */
export function commandExists(cmd: string): boolean {
  const cached = commandCache.get(cmd);
  if (cached !== undefined) return cached;
  let found = false;
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (!dir) continue;
    try {
      fs.accessSync(path.join(dir, cmd), fs.constants.X_OK);
      found = true;
      break;
    } catch {
      /* next */
    }
  }
  commandCache.set(cmd, found);
  return found;
}

/**
 * Where the helper programs are: lab/helpers/ next to this file when it runs from the source
 * tree (lab/*.ts), or the same folder of the repository or package when it runs compiled
 * (dist/lab/*.js).
 */
const HELPER_DIRS = [path.join(__dirname, 'helpers'), path.resolve(__dirname, '..', '..', 'lab', 'helpers')];

/** Absolute path of the helper program `name` (e.g. 'ping.py'). */
export function helperPath(name: string): string {
  for (const dir of HELPER_DIRS) {
    const file = path.join(dir, name);
    if (fs.existsSync(file)) return file;
  }
  throw new Error(`lab helper ${name} not found in ${HELPER_DIRS.join(' or ')}`);
}
