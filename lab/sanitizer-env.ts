// The environment a lab's child process gets during a sanitizer run (test/sanitizers/run-asan.sh).
// That run preloads the ASan runtime (LD_PRELOAD) so that node can load the instrumented addon,
// and names the preloaded file in OVERLAYFWD_SANITIZER_PRELOAD. Node children (the CLI under
// test) keep it; every other tool a lab runs (ip, python3, iperf3, tshark, etcd, charon,
// ovs-vswitchd) is not instrumented and loses it: under a preloaded ASan their own exit-time
// leaks would be reported as findings of ours, and a Go binary (etcd) may not start at all.
// Outside a sanitizer run the environment passes through unchanged.
import path from 'node:path';

export const SANITIZER_PRELOAD_VARIABLE = 'OVERLAYFWD_SANITIZER_PRELOAD';

function isNode(cmd: string): boolean {
  return cmd === process.execPath || path.basename(cmd) === 'node';
}

/** `env` for running `cmd`: without the sanitizer runtime in LD_PRELOAD unless `cmd` is node. */
export function childEnv(cmd: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const runtime = env[SANITIZER_PRELOAD_VARIABLE];
  if (!runtime || !env.LD_PRELOAD || isNode(cmd)) return env;
  // LD_PRELOAD is a list separated by colons or spaces; other entries (not ours) stay.
  const kept = env.LD_PRELOAD.split(/[:\s]+/).filter((entry) => entry !== '' && entry !== runtime);
  const { LD_PRELOAD: _preload, ...rest } = env;
  return kept.length > 0 ? { ...rest, LD_PRELOAD: kept.join(':') } : rest;
}
