// The memory, descriptors and CPU time of this process, where the forwarders of a test run, and
// of the machine: what the floods test (test/netns/floods.test.ts) holds bounded under a flood.
import fs from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';

let collect: (() => void) | null = null;

/**
 * VmRSS of this process in bytes (/proc/self/status), after a full garbage collection: what the
 * test's own JavaScript left behind (the transfers' buffers) is not what the forwarders hold.
 */
export function settledRssBytes(): number {
  if (!collect) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  collect();
  collect();
  return rssBytes();
}

/** VmRSS of this process in bytes (/proc/self/status). */
export function rssBytes(): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error('no VmRSS in /proc/self/status');
  return Number(m[1]) * 1024;
}

/** Open file descriptors of this process. */
export function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** CPU seconds (user + system) a process has used so far (/proc/PID/stat). */
export function cpuSeconds(pid: number | 'self'): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** The machine's CPU seconds so far, busy and all (/proc/stat, every core). */
export function machineCpu(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = line.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (line[3] ?? 0) + (line[4] ?? 0);
  return { busy: (total - idle) / 100, total: total / 100 };
}
