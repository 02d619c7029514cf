// Public types of overlayfwd: the resolved configuration, peers and the stats shape.
// The stats shape and the config shape are part of the public contract (the README: Running an overlay, As a library).
// Where the config schema already says what a section is, its type is read off the schema.
import type { z } from 'zod';
import type { ResolvedEncap } from './config/encap';
import type { IkeParsed, ResolvedIke } from './config/ike';
import type { IkeStatus } from './ike/keying';
import type { DEVICE_TYPES, ENCAP_TYPES } from './config/modes';
import type { ESP_CIPHERS } from './config/sa';
import type { espSchema, fdbSchema, limitsSchema, offloadsSchema } from './config/schema';

export type DeviceType = (typeof DEVICE_TYPES)[number];
export type EncapType = (typeof ENCAP_TYPES)[number];
/** ESP AEAD ciphers (RFC 4106 AES-GCM, RFC 7634 ChaCha20-Poly1305), all with a 16-byte ICV. */
export type EspCipher = (typeof ESP_CIPHERS)[number];
export type { ResolvedEncap };

/** One ESP security association: its SPI and its key (hex: the cipher key followed by the 4-byte salt). A secret. */
export interface SecurityAssociation {
  spi: number;
  /** Lower-case hex without 0x: 20 bytes for aes-128-gcm, 36 for aes-256-gcm and chacha20-poly1305. */
  key: string;
}

/** A peer's ESP security associations. */
export interface PeerSecurityAssociations {
  /** What we send to the peer with. */
  out: SecurityAssociation;
  /**
   * What the peer may send with, newest first. One entry, except while a rekey's grace period
   * runs: then the SAs it replaced stay valid next to it until they retire.
   */
  in: SecurityAssociation[];
}

/** Drop reasons, in the order the native counters block stores them. */
export const DROP_REASONS = [
  'malformed',
  'wrongVni',
  'unknownPeer',
  'noRoute',
  'tooBig',
  'queueFull',
  'deviceError',
  'socketError',
  'loop',
  'authFailed',
  'replay',
  'spoofed',
  'unknownOption',
  'oam',
  'wrongKey',
  'badChecksum',
  'ttlExpired',
  'ecn',
  'outOfOrder',
  'unknownSpi',
  'saExpired',
  'noSa',
  'controlQueueFull',
  'unreachable',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface ResolvedEndpoint {
  address: string; // IPv4 or IPv6 literal
  port: number;
}

export interface ResolvedPeer {
  name: string;
  endpoint: ResolvedEndpoint;
  allowedIps: string[]; // CIDR prefixes (tun modes)
  macs: string[]; // lower-case aa:bb:cc:dd:ee:ff (tap modes: static forwarding entries)
  /** esp only (required there): the peer's security associations. Holds keys: never print it. */
  sa?: PeerSecurityAssociations;
  /** esp: IKEv2 negotiates the SAs (then `sa` is absent). Holds the pre-shared key: print publicPeer(). */
  ike?: ResolvedIke;
}

export interface ResolvedConfig {
  name: string;
  /** Named network namespace (/run/netns/NAME) in which the device and sockets are created. */
  netns: string | null;
  device: {
    type: DeviceType;
    name: string;
    /** null: derived at start from the underlay interface MTU minus the encapsulation overhead. */
    mtu: number | null;
    addresses: string[]; // CIDR, e.g. 198.19.0.1/24 or fd00::1/64
    /**
     * tap: the MAC as configured; null: derived at start from the machine ID, the instance and
     * device names and underlay.local (lib/device-mac.ts), the same at every start. The MAC in
     * use is `overlay.device.mac`.
     */
    mac: string | null;
    /**
     * packet devices only: the existing Ethernet interface attached to the overlay (`name` is the
     * same; mtu, addresses and mac stay unset: overlayfwd does not change that interface).
     */
    interface?: string;
    /**
     * tun only: kernel routes for the peers' allowedIps outside `addresses` ('auto', the
     * default), or none ('off'); lib/routes.ts. Absent on tap and packet devices.
     */
    routes?: 'auto' | 'off';
    /** tun only: the routing table they go in (254, main, by default). */
    routeTable?: number;
    /** tun only: their metric (0 by default; IPv6 stores 0 as 1024). */
    routeMetric?: number;
  };
  /** The mode and its options, every field filled in (see lib/config/encap.ts). */
  encap: ResolvedEncap;
  /** esp only. */
  esp?: z.output<typeof espSchema>;
  /** esp: the top-level ike, every IKE peer's defaults (may hold the pre-shared key: never print it). */
  ike?: IkeParsed;
  underlay: {
    local: string;
    /** Number of UDP source ports (sockets) per worker that carry the flow-hash entropy. */
    sourcePorts: number;
    /** Send UDP checksums over IPv4 (IPv6 always carries one). Zero checksums are always accepted. */
    udpChecksum: boolean;
  };
  workers: number;
  /** CPUs to pin workers to (worker i → cpuAffinity[i % length]); empty: no pinning. */
  cpuAffinity: number[];
  /** After its last packet a worker keeps polling this long before it sleeps: lower latency, some CPU. */
  busyPollMicroseconds: number;
  /** Lower the MSS option of TCP SYNs crossing the overlay: 'off', 'auto' (MTU − 40 / − 60) or a value. */
  mssClamp: 'off' | 'auto' | number;
  batchSize: number;
  fdb: z.output<typeof fdbSchema>;
  /** Kernel offloads to use where available (each is probed at start; false turns it off). */
  offloads: z.output<typeof offloadsSchema>;
  limits: z.output<typeof limitsSchema>;
  peers: ResolvedPeer[];
  control: {
    socket: string;
  };
  /** Registry mode: the etcd cluster the overlay's hosts register in (absent without one). */
  registry?: ResolvedRegistry;
  /** Registry mode: how this host registers (absent without a registry). */
  node?: ResolvedNode;
  /** Prometheus metrics served by `overlayfwd up` (absent: off). */
  metrics?: ResolvedMetrics;
  /** The user `overlayfwd up` switches to after setup: a name or a uid (absent: it stays who started it). */
  user?: string | number;
  /** The group it switches to with the user (absent: the user's primary group); also the control socket's group. */
  group?: string | number;
}

/** What a reload did (overlay.reload, `overlayfwd reload`). */
export interface ReloadResult {
  /** Peers by name: new in the file, gone from it, and changed. */
  added: string[];
  removed: string[];
  changed: string[];
  /** Live settings that changed besides peers ('esp', 'ike'). */
  settings: string[];
  /** false: the file matches the running config; nothing was swapped. */
  applied: boolean;
  /** The table generation now running. */
  tableGeneration: number;
}

export interface ResolvedMetrics {
  /** host:port to serve /metrics and /healthz on, an IP literal (IPv6 in brackets): "127.0.0.1:9469". */
  listen: string;
}

export interface ResolvedRegistry {
  etcd: {
    endpoints: string[];
    /** Every key of this overlay lives under it (no trailing slash). */
    prefix: string;
    /** The lease a host's record lives under: it is removed this long after the host stops renewing it. */
    ttlSeconds: number;
    tls: { ca: string; cert: string | null; key: string | null } | null;
    username: string | null;
    /** A secret: never printed. */
    password: string | null;
  };
  /** The network to write to etcd when it holds none yet (the first host); null: etcd must hold one. */
  network: string | null;
  subnetLength: number | null;
}

export interface ResolvedNode {
  name: string;
  /** The underlay address the other hosts reach this one at. */
  endpoint: string;
  /** 'auto': a free subnet of the network, leased; else this subnet. */
  subnet: 'auto' | string;
}

export interface Counters {
  txPackets: number;
  /** Inner bytes sent: the frame as read from the device (TAP: with its Ethernet header; TUN: the IP packet). */
  txBytes: number;
  rxPackets: number;
  /** Inner bytes delivered to the device, counted as txBytes is. */
  rxBytes: number;
  /**
   * Frames flooded (head-end replicated) to every peer: broadcast, multicast, unknown unicast.
   * In the totals each frame counts once; in a peer's counters, the copies sent toward that peer
   * (so with N peers the peers' floodPackets add up to N times the total).
   */
  floodPackets: number;
  /**
   * Outer bytes of what was sent (the datagrams the socket took): the outer IP header (20 or
   * 40 bytes), UDP header (UDP modes), overlay header, inner packet and trailer; not the
   * underlay's link header. txWireBytes − txBytes is the encapsulation overhead. Optional in
   * the type: an instance older than this field does not send it.
   */
  txWireBytes?: number;
  /** Outer bytes received, counted as txWireBytes: every datagram of the peer's that reached the tunnel, dropped ones included. */
  rxWireBytes?: number;
  drops: Record<DropReason, number>;
}

/** A dropped packet as the workers' drop rings recorded it (overlay.recentDrops(), `overlayfwd drops`). */
export interface DroppedPacket {
  /** The worker that dropped it, and the record's number in that worker's sequence (from 1). */
  worker: number;
  sequence: number;
  /** When: ISO 8601 (UTC, microseconds), and the same in microseconds since the epoch. */
  time: string;
  timestampUs: number;
  reason: DropReason;
  /** rx: from the underlay toward the device; tx: from the device toward the underlay. */
  direction: 'rx' | 'tx';
  /** The peer it was charged to (null: none, e.g. unknownPeer, or a peer gone since). */
  peer: string | null;
  /** The packets the drop stands for: 1, or a GRO batch's datagrams, or frames a device read lost. */
  packets: number;
  /**
   * What `data` holds: `underlay`, a datagram after its outer IP header (raw-IP modes) or UDP
   * header (UDP modes), as received or as it was to be sent; `outerIp`, a whole outer IP packet;
   * `device`, an inner frame as the device reads and writes it (TAP and packet: Ethernet; TUN:
   * IP); `none`, nothing was captured (a failed read).
   */
  layer: 'underlay' | 'outerIp' | 'device' | 'none';
  /** The whole length of that packet or frame; `data` holds its first bytes (at most 128). */
  length: number;
  /** Hex. */
  data: string;
  /** underlay and outerIp: the other end and the outer protocol (17: UDP; 47, 4, 41, 50: raw IP). */
  underlay?: { protocol: number; remote: string; remotePort: number; localPort: number };
}

/** What overlay.recentDrops() returns (the control socket's `drops`). */
export interface RecentDrops {
  name: string;
  /** What the device's frames are (the link type of `device`-layer captures). */
  device: { name: string; layer: 'ethernet' | 'ip' };
  /** The local underlay address (the other end of `underlay`-layer captures). */
  underlay: { local: string };
  /** Oldest first. */
  drops: DroppedPacket[];
  /** Pass as `since` to get only the drops recorded after these: per worker, the next record to read. */
  cursor: number[];
  /** Drops recorded after `since` that the rings had overwritten before this read (0 without `since`). */
  missed: number;
}

/** The offload counters of OffloadStats, in the order the native block names them. */
export const OFFLOAD_COUNTERS = [
  'txGsoSends',
  'txGsoSegments',
  'rxGroReceives',
  'rxGroSegments',
  'txSuperFrames',
  'rxCoalescedWrites',
  'rxCoalescedSegments',
  'fallbacks',
] as const;

export interface OffloadStats {
  /** Offloads in use after probing (requested in config and supported by the kernel). */
  active: { tso: boolean; udpGso: boolean; udpGro: boolean; uringWrites: boolean };
  txGsoSends: number;
  txGsoSegments: number;
  rxGroReceives: number;
  rxGroSegments: number;
  txSuperFrames: number;
  rxCoalescedWrites: number;
  rxCoalescedSegments: number;
  /** Offloads the kernel refused at run time, after which they were turned off. */
  fallbacks: number;
}

export interface OverlayStats {
  name: string;
  device: string;
  /** False once the data path failed for good (e.g. the device was deleted under it). */
  healthy: boolean;
  workers: number;
  totals: Counters;
  peers: Record<string, Counters>;
  /**
   * The forwarding table: entries learned and static, and `refused`: new source MACs not learned
   * because the learned entries were at fdb.maxEntries (their frames are still delivered, and the
   * entries already there are kept).
   */
  fdb: { learned: number; static: number; refused: number };
  offloads: OffloadStats;
  /**
   * Packets the data path made or rewrote itself: ICMP Fragmentation Needed / Packet Too Big sent
   * to the device, TCP SYNs whose MSS was clamped; and (tap) the gratuitous ARPs and unsolicited
   * Neighbor Advertisements sent on the device for its addresses, and those that failed
   * (optional in the type: an instance older than these fields does not send them).
   */
  generated: { icmpTooBig: number; mssClamped: number; announcements?: number; announceFailures?: number };
  /** Control traffic (totals only): what shares the underlay with the tunnel but is no tunnel packet. */
  control: ControlStats;
  /**
   * Peer-table snapshots installed since start (the first table is 1): it moves on every peer,
   * route or SA change. Optional in the type: an instance older than this field does not send it.
   */
  tableGeneration?: number;
  /** esp with IKE peers: the IKE daemon's SAs and the IKE messages it dropped. */
  ike?: IkeStats;
}

export interface IkeStats {
  /** IKE SAs held: established, being set up, and half open. */
  sessions: number;
  /** Responder IKE SAs between IKE_SA_INIT and IKE_AUTH (above 16 a new initiator must return a COOKIE). */
  halfOpen: number;
  /** Peers with an established IKE SA and a Child SA in use. */
  established: number;
  /** Child SAs installed since start (the first of each peer and every rekey). */
  childSas: number;
  /** IKE messages dropped (not answered, or answered only with a refusal such as a COOKIE), by reason. */
  drops: Record<string, number>;
}

export interface ControlStats {
  /** NAT keepalives (RFC 3948 §2.3: one byte 0xFF) accepted on the ESP UDP port. */
  natKeepalives: number;
  /** Control datagrams (IKE) passed up to the control channel (drops.controlQueueFull: those that found its queue full). */
  controlRx: number;
  /** Control datagrams sent by the control channel. */
  controlTx: number;
}

/** An SA as it may be shown: the SPI only, never the key. */
export interface PublicSecurityAssociation {
  spi: number;
  /** Inbound SAs in a rekey's grace period: seconds until they are removed. */
  retiresInSeconds?: number;
}

/** A peer as it may be shown (peers list, the control socket): its SAs without keys. */
export interface PublicPeer extends Omit<ResolvedPeer, 'sa'> {
  sa?: { out: PublicSecurityAssociation; in: PublicSecurityAssociation[] };
}

export interface PeerInfo extends PublicPeer {
  learnedMacs: number;
  /** esp with IKE: the IKE SA and its Child SA (SPIs, algorithms, age; never keys). */
  ikeSa?: IkeStatus;
}

export interface FdbEntry {
  mac: string;
  peer: string;
  static: boolean;
  ageSeconds: number;
}

/** Registry mode: what `overlayfwd nodes` shows (the control socket's `nodes`). */
export interface RegistryNodes {
  self: { name: string; subnet: string; endpoint: string; deviceAddress: string };
  network: string;
  nodes: {
    name: string;
    subnet: string;
    endpoint: string;
    mac: string | null;
    /** Seconds since this host saw the record appear or change. */
    ageSeconds: number;
    /** Whether it is a peer in the table (a record can be valid and still refused: a clash). */
    inTable: boolean;
  }[];
}

// ---- Overlay events that report state changes (lib/overlay.ts OverlayEvents). Each carries
// names and numbers only, never a key: listeners may log them as they are.

/** What made the overlay install a new peer-table snapshot. */
export type TableChangeCause =
  /** The first table, installed by create() (before any listener can hear it). */
  | 'start'
  /** overlay.peers.add / remove / replace (the control socket's peers add and remove too). */
  | 'add'
  | 'remove'
  | 'replace'
  /** esp: overlay.peers.rekey installed new manual SAs; 'retire': a replaced inbound SA's grace period ended. */
  | 'rekey'
  | 'retire'
  /** overlay.reload (overlayfwd reload, SIGHUP): the config file's peers. */
  | 'reload'
  /** Registry mode: the registry's hosts changed. */
  | 'registry'
  /** esp with IKE: a Child SA was installed, activated or removed. */
  | 'ike';

/** A new peer-table snapshot was installed (the `tableChanged` event). */
export interface TableChange {
  /** stats().tableGeneration after the swap. */
  generation: number;
  cause: TableChangeCause;
  /** Peers in the table now (the config's and the registry's). */
  peers: number;
  /** Peers that joined, left, or stayed with a new endpoint, prefixes, MACs or SAs (by name). */
  added: string[];
  removed: string[];
  changed: string[];
}

/** The data path's health changed (the `healthChanged` event; stats().healthy says the same). */
export interface HealthChange {
  healthy: boolean;
  /** Why, when unhealthy. */
  reason?: string;
}

/**
 * The kernel refused an offload at run time and the data path turned it off (the
 * `offloadFallback` event; stats().offloads.fallbacks counts them).
 */
export interface OffloadFallback {
  /** Fallbacks since the last event. */
  added: number;
  /** stats().offloads.fallbacks now. */
  total: number;
}
