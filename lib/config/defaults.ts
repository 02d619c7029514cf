// Defaults that depend on the host (CPUs, environment) rather than on other fields.
import os from 'node:os';
import path from 'node:path';

/** Workers poll this long after their last packet before sleeping (see native/core/datapath/worker.cc). */
export const BUSY_POLL_DEFAULT_US = 0;

/** Directory holding the control sockets; `OVERLAYFWD_RUN_DIR` overrides /run/overlayfwd. */
export function runDir(): string {
  return process.env.OVERLAYFWD_RUN_DIR || '/run/overlayfwd';
}

export function defaultSocketPath(name: string): string {
  return path.join(runDir(), `${name}.sock`);
}

/** One worker per CPU, 1 to 64. */
export function defaultWorkers(): number {
  const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.min(64, Math.max(1, cpus));
}

/** A host's name in the registry when node.name is not given: the host name, cut to what peer names allow. */
export function defaultNodeName(): string {
  const name = os.hostname().replace(/[^a-zA-Z0-9_.-]/g, '-').slice(0, 64);
  return name === '' || name === '.' || name === '..' ? 'node' : name;
}
