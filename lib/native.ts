// Typed facade over the C++ addon (native/addon). Only this file touches the raw binding.
import fs from 'node:fs';
import path from 'node:path';
import type { EspCipher } from './types';

export interface NativeAddress {
  address: string;
  prefixLength: number;
}

export interface NativeForwarderOptions {
  /** Named network namespace to create the device and sockets in; '' for the caller's own. */
  netns: string;
  device: {
    type: 'tap' | 'tun' | 'packet';
    /** packet: the existing interface to attach ('' for tap and tun). */
    interface: string;
    name: string;
    /** 0: underlay interface MTU minus the encapsulation overhead. */
    mtu: number;
    addresses: NativeAddress[];
    /** '' keeps the kernel's random MAC. */
    mac: string;
  };
  encap: {
    type: 'vxlan' | 'geneve' | 'gre' | 'gre-udp' | 'ipip' | 'esp';
    vni: number;
    port: number;
    key: number | null;
    checksum: boolean;
    sequence: boolean;
    /** esp only: the AEAD of every SA. */
    cipher?: EspCipher;
    /** esp only: true = ESP in UDP (RFC 3948) on `port`; false = IP protocol 50 on raw sockets (port 0). */
    udp?: boolean;
    /** esp only: 64-bit extended sequence numbers (default true). */
    esn?: boolean;
  };
  underlay: { local: string; sourcePorts: number; udpChecksum: boolean };
  workers: number;
  batchSize: number;
  fdb: { learning: boolean; ageingSeconds: number; maxEntries: number };
  /** Number of per-peer counter slots in the stats block. */
  peerSlots: number;
  offloads: { tso: boolean; udpGso: boolean; udpGro: boolean; uringWrites: boolean };
  /** Worker i is pinned to cpuAffinity[i % length]; empty: no pinning. */
  cpuAffinity: number[];
  busyPollMicroseconds: number;
  mssClamp: 'auto' | number | null;
  /**
   * The owner switches the process to another user after setup (lib/privileges.ts): each
   * worker, which drops its capabilities as it starts, keeps CAP_SETUID and CAP_SETGID until
   * that switch clears them (glibc changes the ids in every thread, and aborts if one cannot).
   */
  identitySwitch?: boolean;
}

export interface NativeOffloadState {
  tso: boolean;
  udpGso: boolean;
  udpGro: boolean;
  uringWrites: boolean;
}

export interface NativePeer {
  /** Stable slot in the stats block; also the peer's identity in learned FDB entries. */
  slot: number;
  address: string;
  port: number;
  macs: string[];
  /** CIDR prefixes routed to this peer (tun); host bits are ignored. */
  allowedIps: string[];
  /**
   * esp: the SA we send with, and those the peer may send with (newest first; more than one
   * while a rekey's grace period runs). An SA is its SPI and key: the same SPI with the same key
   * in the next setPeers is the same SA, and keeps its replay window and sequence counter.
   */
  sa?: NativePeerSa;
}

export interface NativeSa {
  spi: number;
  /** Hex: the cipher key followed by the 4-byte salt (20 bytes for aes-128-gcm, 36 otherwise). */
  key: string;
  /** The SA's own cipher and ESN (negotiated by IKEv2); default: the overlay's encap.cipher and encap.esn. */
  cipher?: string;
  esn?: boolean;
}

export interface NativePeerSa {
  /** Absent while IKE has installed the new inbound SA but not yet the outbound one. */
  out?: NativeSa;
  in: NativeSa[];
}

/** Where an outbound SA's sequence counter stands (esp). */
export interface NativeEspOutboundStatus {
  slot: number;
  spi: number;
  /** The last sequence number handed out. */
  sequence: bigint;
  /** Past the soft limit (2^32 numbers before the end with ESN): time to rekey. */
  nearingLimit: boolean;
  /** Used up: nothing more is sent with this SA (drops counted as saExpired) until it is replaced. */
  exhausted: boolean;
}

export interface NativeDeviceInfo {
  name: string;
  ifindex: number;
  mac: string;
  mtu: number;
}

export interface NativeFdbEntry {
  mac: string;
  slot: number;
  ageSeconds: number;
}

/** A control datagram (IKE) passed up by the control channel (openControl). */
export interface NativeControlDatagram {
  /** The local port it arrived on: encap.port (4500, the data-path socket) or the IKE port (500). */
  localPort: number;
  address: string; // the sender's address literal
  port: number; // the sender's port
  /** The IKE message, with the non-ESP marker already stripped for 4500. */
  data: Buffer;
}

export interface NativeControlOptions {
  /** Also open UDP ikePort (500) on underlay.local, inside `netns` when set; 0: none. */
  ikePort: number;
  /** Called on the JavaScript thread for every datagram passed up. What it throws is an uncaught exception. */
  onDatagram: (d: NativeControlDatagram) => void;
}

/** One announced address: `family` 0 and `address` '' when the addresses could not be read. */
export interface NativeAnnounceResult {
  address: string;
  family: 4 | 6 | 0;
  /** What failed (the system call and its error); absent when the frame was sent. */
  error?: string;
}

/** One record of a worker's drop ring (native/core/base/drop_ring.h). */
export interface NativeDropRecord {
  worker: number;
  sequence: number;
  /** CLOCK_REALTIME, nanoseconds. */
  timeNs: bigint;
  /** The counter's name: 'drop.wrongVni'. */
  reason: string;
  /** The peer's stats slot; -1 for none. */
  slot: number;
  packets: number;
  length: number;
  layer: 'none' | 'underlay' | 'outerIp' | 'device';
  direction: 'rx' | 'tx';
  /** underlay layers: the outer IP protocol (17 for UDP). */
  protocol: number;
  /** underlay layers: the sender (rx) or the peer's endpoint (tx); '' when none. */
  remoteAddress: string;
  remotePort: number;
  localPort: number;
  /** The first bytes (at most 128). */
  data: Buffer;
}

export interface NativeDropReadout {
  /** Oldest first per worker, workers one after the other. */
  records: NativeDropRecord[];
  /** Per worker: the next record to read (pass as `since`). */
  cursor: number[];
  /** Records after `since` that the rings had overwritten before they were read. */
  missed: number;
}

/** One route of NativeForwarder.routes: 0 when the kernel did it, else its errno and message. */
export type NativeRouteResult = 0 | { code: string; errno: number; message: string };

export interface NativeForwarder {
  /**
   * Counters block shared with the workers: [worker][section][counter], section 0 = totals,
   * 1 + slot = peer; then `statsLayout.sharedSections` sections of totals that threads other
   * than the workers count in (the control channel).
   */
  readonly counters: BigUint64Array;
  readonly device: NativeDeviceInfo;
  /** Offloads in use after probing. */
  readonly offloads: NativeOffloadState;
  /** True once a worker lost its device (deleted under us) or its event loop failed. */
  readonly failed: boolean;
  /** Installs a new immutable table snapshot; workers pick it up at their next batch. */
  setPeers(peers: NativePeer[]): void;
  /** Learned forwarding entries (static entries live in the table snapshot). */
  learnedFdb(): NativeFdbEntry[];
  /**
   * The drops the workers recorded, copied out of their rings without stopping them: from
   * since[w] on for worker w, or (no entry) everything its ring holds. Works after close().
   */
  recentDrops(since?: number[]): NativeDropReadout;
  /** esp: every peer's outbound SA and where its sequence counter stands. */
  espStatus(): NativeEspOutboundStatus[];
  /**
   * esp only. Starts passing control datagrams to onDatagram (on the JS thread): IKE messages
   * that arrive on encap.port behind the non-ESP marker (ESP in UDP, RFC 3948), from any sender,
   * peer or not; with ikePort, also whatever arrives on UDP ikePort (500) bound to the underlay's
   * local address (inside `netns` when set). The queue to JavaScript is bounded (1024 datagrams,
   * 8 MiB); a datagram that finds it full is dropped and counted (drops.controlQueueFull). Throws
   * a Node-shaped system error if the bind fails (code EADDRINUSE, syscall 'bind', ...), and
   * ERR_INVALID_STATE when called a second time. Once per forwarder. The channel does not keep
   * the event loop alive.
   */
  openControl(options: NativeControlOptions): void;
  /**
   * Sends one IKE message from localPort: encap.port → on a worker's data-path UDP socket with
   * the 4-byte non-ESP marker prepended; ikePort → on the IKE socket. Synchronous sendto; throws
   * a Node-shaped system error (EAGAIN etc., syscall 'sendmsg'), ERR_INVALID_STATE when the
   * channel is not open, ERR_INVALID_ARG_VALUE for a port without a control socket or an
   * address of the other family. Control traffic, never per packet.
   */
  sendControl(localPort: number, address: string, port: number, data: Uint8Array): void;
  /** Stops delivery (queued datagrams are dropped) and closes the IKE socket; also done by close(). Idempotent. */
  closeControl(): void;
  /**
   * tap: announces every address the device has now, sent on the device (so the workers flood it
   * to the current peers): a gratuitous ARP per IPv4 address, an unsolicited Neighbor
   * Advertisement per IPv6 one out of duplicate address detection. Counted in the shared
   * section (neighborAnnouncements, neighborAnnounceFailures); a failure is an entry with
   * `error`, never a throw. Other devices: []. Throws once closed.
   */
  announceAddresses(): NativeAnnounceResult[];
  /**
   * tap: from now on, each address the device gains (`ip addr add`, or an IPv6 address leaving
   * duplicate address detection) is announced the same way, and onAnnounced gets the results
   * (on the JS thread; the watch does not keep the event loop alive; close() ends it). Once per
   * forwarder; false for other devices (nothing watched).
   */
  watchAddresses(onAnnounced: (results: NativeAnnounceResult[]) => void): boolean;
  /**
   * tun only: installs ('add': RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL) or removes ('remove':
   * RTM_DELROUTE) the kernel routes `PREFIX dev DEVICE proto 79 scope link` of `prefixes` in
   * `table` with `metric`, inside the device's namespace (native/core/system/kernel_routes.h).
   * One result per prefix, in order: a refused route is a result (EEXIST: a route of that prefix,
   * table and metric exists; ESRCH: no such route of ours), never a throw. Throws
   * ERR_INVALID_ARG_VALUE for another device type, a bad prefix, or once closed.
   */
  routes(op: 'add' | 'remove', prefixes: string[], table: number, metric: number): NativeRouteResult[];
  /** Stops and joins the workers, closes every fd; the device disappears. Idempotent. */
  close(): void;
}

export interface NativeStatsLayout {
  /** Names of the counters in one section, in order. Drop counters are named 'drop.<reason>'. */
  counters: string[];
  /** Counters per section. */
  sectionSize: number;
  /** Sections at the end of the block, after the workers' parts: totals counted by other threads (the control channel). */
  sharedSections: number;
}

/** One row of the core's table of tunnel modes (native/core/tunnel/modes.cc). */
export interface NativeTunnelMode {
  name: string;
  /** Rides on UDP (ESP by default: encap.udp false puts it on IP protocol 50). */
  udp: boolean;
  /** Can ride directly on IP, with protocol numbers of its own. */
  rawIp: boolean;
  defaultPort: number | null;
  carriesEthernet: boolean;
  carriesIp: boolean;
  /** The fixed overlay header (GRE: without its optional words). */
  headerBytes: number;
  /** The most bytes appended per packet. */
  trailerBytes: number;
}

export interface NativeTunnelOverheadQuery {
  type: string;
  carriesIp: boolean;
  ipv6: boolean;
  key?: number | null;
  checksum?: boolean;
  sequence?: boolean;
  udp?: boolean;
}

export interface NativeBinding {
  Forwarder: new (options: NativeForwarderOptions) => NativeForwarder;
  statsLayout: NativeStatsLayout;
  /** The table of tunnel modes the data path implements. */
  tunnelModes(): NativeTunnelMode[];
  /** What a packet grows by in a mode, as the forwarder computes it for the device MTU. */
  tunnelOverhead(query: NativeTunnelOverheadQuery): number;
  /**
   * The interface that holds `address` in network namespace `netns` ('' for ours) and its MTU.
   * Throws a Node-shaped EADDRNOTAVAIL (syscall 'getifaddrs') when no interface there has it.
   */
  interfaceWithAddress(netns: string, address: string): { name: string; mtu: number };
  /** /proc/net/`name` (udp, udp6, raw, raw6, ...) as network namespace `netns` ('' for ours) has it; at most 4 MiB. */
  readProcNet(netns: string, name: string): string;
  /** Capabilities and the user the process runs as (native/core/system/privileges.h). */
  privileges: NativePrivileges;
}

/** One thread as /proc/self/task/TID/status shows it; capability sets as lists of capability numbers. */
export interface NativeThreadPrivileges {
  tid: number;
  name: string;
  effective: number[];
  permitted: number[];
  inheritable: number[];
  bounding: number[];
  ambient: number[];
  noNewPrivs: boolean;
  uid: number;
  gid: number;
  /** It blocks the signal restrictOtherThreads asks with (Node's SIGUSR1 watcher, the IKE reader). */
  blocksSignals: boolean;
}

export interface NativePrivileges {
  /** Every thread of this process. */
  threads(): NativeThreadPrivileges[];
  /** The calling thread keeps `keep` (permitted, effective, bounding) and nothing else; sets no_new_privs. */
  restrictThread(keep: number[]): void;
  /**
   * Every other thread that lets the signal in drops everything (but CAP_SETUID and CAP_SETGID
   * when `identitySwitchFollows`); returns the ids of those that could not be asked.
   */
  restrictOtherThreads(identitySwitchFollows: boolean): number[];
  /** Every thread to uid/gid (supplementary groups: gid only); the calling thread keeps `keep`. */
  switchIdentity(uid: number, gid: number, keep: number[]): void;
  /** A user by name or number through NSS; null when there is none. */
  findUser(nameOrId: string): { uid: number; gid: number; name: string } | null;
  findGroup(nameOrId: string): { gid: number; name: string } | null;
  /** The highest capability number the kernel knows. */
  lastCapability: number;
}

/** Error thrown by the addon for a failed system call, shaped like Node's own system errors. */
export interface NativeSystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

let cached: NativeBinding | undefined;

/**
 * Names an addon file to load instead of node-gyp's build/Release/overlayfwd.node: the ASan +
 * UBSan build (`npm run build:asan`, build-asan/Debug/overlayfwd.node) that the sanitizer suites
 * run the data path under (test/sanitizers/run-asan.sh). Relative paths are taken from the
 * current directory. Inherited by child processes, so a CLI the tests start loads it too.
 */
export const ADDON_PATH_VARIABLE = 'OVERLAYFWD_ADDON';

/** The addon file OVERLAYFWD_ADDON names, or null when it is unset or empty. Throws when that file is not there. */
export function addonOverride(env: NodeJS.ProcessEnv = process.env): string | null {
  const value = env[ADDON_PATH_VARIABLE];
  if (value === undefined || value === '') return null;
  const file = path.resolve(value);
  if (!fs.existsSync(file)) {
    const err = new Error(`${ADDON_PATH_VARIABLE} names ${file}, which does not exist (the sanitizer build is made by npm run build:asan)`) as NodeJS.ErrnoException;
    err.code = 'ENOENT';
    err.path = file;
    throw err;
  }
  return file;
}

export function loadNative(): NativeBinding {
  if (cached) return cached;
  const override = addonOverride();
  // dist/lib/native.js → ../../build/Release; lib/native.ts (vitest) → ../build/Release
  const candidates = override
    ? [override]
    : [path.join(__dirname, '..', '..', 'build', 'Release', 'overlayfwd.node'), path.join(__dirname, '..', 'build', 'Release', 'overlayfwd.node')];
  let lastError: unknown;
  for (const file of candidates) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      cached = require(file) as NativeBinding;
      return cached;
    } catch (err) {
      lastError = err;
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    }
  }
  throw new Error(`overlayfwd native addon not built (run npm install): ${String(lastError)}`);
}
