// What the forwarders of this process hold, told apart from what Node, V8, libuv and vitest hold
// in the same process: its threads by name (the data-path workers call themselves ovl-worker-N,
// the control channel's reader ovl-control) and its descriptors by kind (sockets, TUN/TAP,
// io_uring). A test that counted every thread or descriptor of the vitest worker would see the
// runtime's own come and go (a thread pool growing, a compiler thread, a pipe), and more so on a
// loaded machine where they start and end late.
import fs from 'node:fs';

export interface OwnThread {
  tid: number;
  name: string;
  /** CPU seconds (user + system) it has used so far. */
  cpuSeconds: number;
}

/** This process's threads whose name starts with `prefix` (default: the forwarders', "ovl-"). */
export function ownThreads(prefix = 'ovl-'): OwnThread[] {
  const out: OwnThread[] = [];
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const name = fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      if (!name.startsWith(prefix)) continue;
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ tid: Number(tid), name, cpuSeconds: (Number(fields[11]) + Number(fields[12])) / 100 });
    } catch {
      // the thread ended while we looked
    }
  }
  return out;
}

/** CPU seconds the forwarders' own threads have used so far (threads that ended are not counted). */
export function ownThreadsCpu(prefix = 'ovl-'): number {
  return ownThreads(prefix).reduce((s, t) => s + t.cpuSeconds, 0);
}

/** This process's descriptors of the kinds a forwarder opens: sockets, TUN/TAP devices, io_uring instances. */
export function forwarderFds(): { sockets: number; devices: number; rings: number } {
  const out = { sockets: 0, devices: 0, rings: 0 };
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (target.startsWith('socket:')) out.sockets++;
    else if (target === '/dev/net/tun') out.devices++;
    else if (target === 'anon_inode:[io_uring]') out.rings++;
  }
  return out;
}
