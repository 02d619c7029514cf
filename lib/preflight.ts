// What `up` (Overlay.create) checks on the host before it makes anything, and how it explains a
// setup failure whose system error alone would not say the real cause:
// - underlay.local must be an address of an interface in the namespace the sockets are made in
//   (the one up runs in, or netns:); else a config error that says so.
// - An IPv6 device address needs a device MTU of at least 1280; with mtu auto the MTU is only
//   known here (the underlay interface's MTU minus the overhead), so it is checked here.
// - A port already bound (EADDRINUSE): who holds it, where the kernel tells (the namespace's
//   /proc/net/udp and udp6, and the /proc/PID/fd of the process whose socket has that inode);
//   best effort.
import fs from 'node:fs';
import { isIP } from 'node:net';
import { ConfigError, overheadFor } from './config';
import { IPV6_MIN_MTU } from './config/rules';
import type { NativeBinding, NativeSystemError } from './native';
import type { ResolvedConfig } from './types';

/** Where the sockets and device are made, in words: "the network namespace up runs in" or "network namespace NAME". */
function namespaceText(config: ResolvedConfig): string {
  return config.netns ? `network namespace ${config.netns} (netns:)` : 'the network namespace this process runs in';
}

/**
 * Throws ConfigError when the host cannot run `config` as written: the underlay address is on no
 * interface there, or an IPv6 device address would get an MTU below 1280. `extraAddresses`: more
 * device addresses (the registry's).
 */
export function preflight(config: ResolvedConfig, extraAddresses: readonly string[], native: Pick<NativeBinding, 'interfaceWithAddress'>): void {
  let underlay: { name: string; mtu: number };
  try {
    underlay = native.interfaceWithAddress(config.netns ?? '', config.underlay.local);
  } catch (err) {
    if ((err as NativeSystemError).code !== 'EADDRNOTAVAIL') throw err;
    const hint = config.netns
      ? `is it the right namespace, and is the address assigned there (ip -n ${config.netns} addr)?`
      : 'run up in the namespace that has it (ip netns exec NAME overlayfwd up ...) or name that namespace with netns:';
    throw new ConfigError([{ path: 'underlay.local', message: `${config.underlay.local} is not an address of any interface in ${namespaceText(config)}: ${hint}` }]);
  }
  if (config.device.type === 'packet' || config.device.mtu !== null) return; // an explicit mtu is checked with the config
  const overhead = overheadFor(config);
  const mtu = underlay.mtu - overhead;
  [...config.device.addresses, ...extraAddresses].forEach((cidr, i) => {
    if (isIP(cidr.slice(0, cidr.lastIndexOf('/'))) !== 6 || mtu >= IPV6_MIN_MTU) return;
    const at = i < config.device.addresses.length ? `device.addresses[${i}]` : 'device.addresses';
    throw new ConfigError([
      {
        path: at,
        message:
          `${cidr} is IPv6, which needs an MTU of at least ${IPV6_MIN_MTU} (RFC 8200), and the device would get ${mtu}: ` +
          `the MTU of the underlay interface ${underlay.name} (${underlay.mtu}) minus ${overhead} bytes of ${config.encap.type} overhead; ` +
          `raise the underlay MTU, or set device.mtu to ${IPV6_MIN_MTU} or more (larger inner packets then get Packet Too Big / Fragmentation Needed)`,
      },
    ]);
  });
}

/** A socket in a /proc/net/udp table. */
export interface ProcSocket {
  address: string;
  port: number;
  inode: number;
  /** Datagrams the kernel dropped at this socket (sk_drops: a full receive buffer, mostly). */
  drops: number;
}

/** IPv4 "0100007F" (little-endian words as the kernel prints them) → "127.0.0.1"; IPv6 likewise, per 32-bit word. */
function procAddress(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8);
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(word.slice(b, b + 2), 16));
  }
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** The sockets of a /proc/net/udp or udp6 table (the header line skipped). */
export function parseProcNetUdp(text: string): ProcSocket[] {
  const out: ProcSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = f[1];
    const inode = Number(f[9]);
    if (!local || !local.includes(':') || !Number.isInteger(inode)) continue;
    const [hex = '', port = ''] = local.split(':');
    out.push({ address: procAddress(hex), port: parseInt(port, 16), inode, drops: Number(f[12] ?? 0) || 0 });
  }
  return out;
}

/** The processes that hold a socket of `inodes` open: pid → its command name. Best effort (other users' fds need root). */
export function processesWithSockets(inodes: ReadonlySet<number>, proc = '/proc'): Array<{ pid: number; command: string; inode: number }> {
  const out: Array<{ pid: number; command: string; inode: number }> = [];
  let pids: string[] = [];
  try {
    pids = fs.readdirSync(proc).filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`${proc}/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = fs.readlinkSync(`${proc}/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (!m || !inodes.has(Number(m[1]))) continue;
      let command = '?';
      try {
        command = fs.readFileSync(`${proc}/${pid}/comm`, 'utf8').trim();
      } catch {
        // gone meanwhile
      }
      out.push({ pid: Number(pid), command, inode: Number(m[1]) });
      break;
    }
  }
  return out;
}

/** The UDP sockets of network namespace `netns` ('' for this process's own), IPv4 and IPv6. */
export function udpSockets(netns: string, native: Pick<NativeBinding, 'readProcNet'>): ProcSocket[] {
  const sockets: ProcSocket[] = [];
  for (const table of ['udp', 'udp6']) {
    try {
      sockets.push(...parseProcNetUdp(native.readProcNet(netns, table)));
    } catch {
      // no IPv6, or no /proc: what the other table says
    }
  }
  return sockets;
}

/**
 * Who holds UDP `port` on `address` (or on the wildcard address) in network namespace `netns`,
 * in words: "pid 1234 (charon)", or "a socket no process has open (a kernel tunnel device:
 * vxlan, geneve, fou...)"; null when it cannot be told.
 */
export function udpPortOwner(netns: string, address: string, port: number, native: Pick<NativeBinding, 'readProcNet'>): string | null {
  const family = isIP(address);
  let sockets = udpSockets(netns, native);
  const wildcard = (a: string) => a === '0.0.0.0' || a === '::';
  sockets = sockets.filter((s) => s.port === port && (s.address === address || wildcard(s.address) || (family === 4 && s.address === `::ffff:${address}`)));
  if (sockets.length === 0) return null;
  const owners = processesWithSockets(new Set(sockets.map((s) => s.inode)));
  if (owners.length === 0) {
    return `a socket that no process has open (${sockets[0]!.address}:${port}; a kernel tunnel device's, such as vxlan, geneve or fou: see ip -d link)`;
  }
  return owners.map((o) => `pid ${o.pid} (${o.command})`).join(', ');
}

/**
 * `err` from setting up `config`, with the real cause added where the system error alone would
 * not say it (a port in use: by whom). The error keeps its shape (code, errno, syscall).
 */
export function explainSetupError(err: unknown, config: ResolvedConfig, native: Pick<NativeBinding, 'readProcNet'>): unknown {
  const e = err as NativeSystemError & { detail?: string };
  if (!(err instanceof Error) || e.code !== 'EADDRINUSE' || e.syscall !== 'bind') return err;
  const m = /(?:^|\s)\[?([0-9a-fA-F:.]+?)\]?:(\d+)$/.exec(e.detail ?? '');
  if (!m) return err;
  let owner: string | null = null;
  try {
    owner = udpPortOwner(config.netns ?? '', m[1]!, Number(m[2]), native);
  } catch {
    // best effort
  }
  const where = config.netns ? ` in network namespace ${config.netns}` : '';
  e.message = `${e.message}: UDP port ${m[2]} on ${m[1]}${where} is in use${owner ? ` by ${owner}` : ''}`;
  return err;
}
