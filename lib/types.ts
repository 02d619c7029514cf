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
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  /** Frames flooded (head-end replicated) to every peer: broadcast, multicast, unknown unicast. */
  floodPackets: number;
  drops: Record<DropReason, number>;
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
  fdb: { learned: number; static: number };
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
