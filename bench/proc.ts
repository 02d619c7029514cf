// What /proc says about a process and the machine, for the benches: CPU time (a process, one of
// its threads, its live descendants, the whole machine), memory, open file descriptors, threads.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

let clockTicks: number | null = null;
/** Clock ticks per second, the unit of /proc's CPU times. */
export function clkTck(): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** The fields of /proc/PID/stat after the command name, which may hold spaces and parentheses. */
function statFields(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** utime + stime of a process (all its threads, the dead ones included), or of one thread. */
export function cpuSecondsOf(pid: number, tid?: number): number {
  const fields = statFields(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`);
  // Fields after the command: state is [0], utime [11], stime [12] (proc(5) fields 14 and 15).
  return (Number(fields[11]) + Number(fields[12])) / clkTck();
}

/** cutime + cstime: the CPU time of the children a process has waited for (proc(5) fields 16 and 17). */
export function reapedChildrenCpuSecondsOf(pid: number): number {
  const fields = statFields(`/proc/${pid}/stat`);
  return (Number(fields[13]) + Number(fields[14])) / clkTck();
}

/** Every live process below `pid` (children, their children, ...), by /proc/N/stat's parent field. */
export function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let ppid: number;
    try {
      ppid = Number(statFields(`/proc/${entry}/stat`)[1]);
    } catch {
      continue; // gone meanwhile
    }
    let list = children.get(ppid);
    if (!list) children.set(ppid, (list = []));
    list.push(Number(entry));
  }
  const out: number[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length > 0) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

/**
 * CPU seconds of `pid` and everything it started: its own, its reaped children's, and its live
 * descendants'. Between two readings the difference is what the whole tree used (a child that
 * exits in between moves from the live part to the reaped part, which goes on counting it).
 */
export function treeCpuSeconds(pid = process.pid): number {
  let total = cpuSecondsOf(pid) + reapedChildrenCpuSecondsOf(pid);
  for (const p of descendantsOf(pid)) {
    try {
      total += cpuSecondsOf(p);
    } catch {
      /* exited meanwhile: its time is in its parent's reaped part once waited for */
    }
  }
  return total;
}

/** Busy CPU seconds of the whole machine since boot (all CPUs). */
export function hostBusySeconds(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return busy / clkTck();
}

export interface ProcessResources {
  /** Resident set now, and its peak since start (VmRSS, VmHWM of /proc/PID/status), KiB. */
  rssKiB: number;
  hwmKiB: number;
  /** What RSS is made of: anonymous memory (heaps, the JS heap among them) and mapped files (code, libraries). */
  rssAnonKiB: number;
  rssFileKiB: number;
  /** Entries of /proc/PID/fd and /proc/PID/task. */
  fds: number;
  threads: number;
  /** utime + stime so far. */
  cpuSeconds: number;
}

function statusKiB(status: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(status);
  if (!m) throw new Error(`/proc status has no ${key}`);
  return Number(m[1]);
}

/** Memory, descriptors, threads and CPU time of a live process; throws when it is gone. */
export function processResources(pid: number): ProcessResources {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    rssKiB: statusKiB(status, 'VmRSS'),
    hwmKiB: statusKiB(status, 'VmHWM'),
    rssAnonKiB: statusKiB(status, 'RssAnon'),
    rssFileKiB: statusKiB(status, 'RssFile'),
    fds: fs.readdirSync(`/proc/${pid}/fd`).length,
    threads: fs.readdirSync(`/proc/${pid}/task`).length,
    cpuSeconds: cpuSecondsOf(pid),
  };
}
