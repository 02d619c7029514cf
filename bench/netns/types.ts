// The netns bench's options and the shape of its results (the `netns` object of the JSON).
import type { Counters, OffloadStats, ResolvedConfig } from '../../lib/types';
import type { CeilingReady, CeilingStats, CeilingSummary, VerifiedTransfer } from './ceiling';
import type { BenchMode } from './modes';


export interface NetnsOptions {
  /** Seconds per iperf3 test. */
  durationSec: number;
  /** Echo requests per ping measurement (-c); the RTT figure is their median. */
  pingCount: number;
  /** Seconds between echo requests (-i). */
  pingIntervalSec: number;
  /** Measure the ceiling (bench/ceiling/ceiling_vxlan.c) between the kernel and overlayfwd phases (with vxlan). */
  ceiling: boolean;
  /** The ceiling's forwarding threads per end: 1 (both directions on one) or 2 (one per direction). */
  ceilingThreads: number;
  /** Also run overlayfwd's TCP tests (1 and N streams) with workers: 2. */
  workers2: boolean;
  /** Streams of the parallel TCP test (iperf3 -P N); 0 skips it. */
  parallel: number;
  /** Also run overlayfwd's single-stream TCP test with every offload off. */
  offloadsOff: boolean;
  /**
   * Which overlay modes to measure (default: all). `vxlan` is the IPv4/TAP phases (w=1, w=2,
   * offloads off) and the kernel phase's ping, parallel and UDP tests; the kernel's single-stream
   * TCP always runs (every ratio needs it).
   */
  modes: BenchMode[];
  /** Measure the bare raw-IP blast next to gre / ipip (when selected). */
  rawBaseline: boolean;
  /** The 10 vs 100,000 routes test on gre-udp. */
  routes: boolean;
  /** Rounds of the routes test: each is one 10-route and one 100,000-route TCP run (ABBA order). */
  routeRounds: number;
  /** Profile one extra 100,000-route run with `perf record -e cpu-clock` (skipped without perf). */
  profile: boolean;
  /** A second kernel VXLAN single-stream run after the mode phases (one more sample of the reference). */
  kernelEnd: boolean;
  /** A kernel VXLAN single-stream run right before each mode (paired ratio, and more samples of the reference). */
  kernelEach: boolean;
  log?: (line: string) => void;
}

export interface PingRtt {
  transmitted: number;
  received: number;
  intervalSec: number;
  /** Replies whose time was parsed; the quantiles are over these. */
  samples: number;
  /** The figure the tables show. */
  medianMs: number | null;
  p10Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  /** ping's own summary line. */
  minMs: number;
  avgMs: number;
  maxMs: number;
  mdevMs: number;
}

export interface TcpResult {
  /** Parallel streams (iperf3 -P); 1 for the single-stream test. */
  streams: number;
  seconds: number;
  /** TCP payload bytes received by the iperf3 server. */
  bytesReceived: number;
  /** end.sum_received.bits_per_second of the client's JSON. */
  bitsPerSecond: number;
  retransmits: number | null;
  /** CPU seconds (user + system, all threads) of this node process during the test. */
  processCpuSeconds: number;
  /** processCpuSeconds per 1e9 payload bytes; null for the kernel (no data path in this process). */
  processCpuSecondsPerGB: number | null;
  /** Busy CPU seconds of the whole machine (/proc/stat: user+nice+system+irq+softirq+steal). */
  hostCpuSeconds: number;
  hostCpuSecondsPerGB: number;
  /** performance.eventLoopUtilization() of this process during the test; null for the kernel. */
  eventLoopUtilization: number | null;
  /** iperf3's own end.cpu_utilization_percent (sender = host, receiver = remote). */
  iperfCpuPercent: Record<string, number> | null;
  /** Counter changes over the test (from before the iperf3 server started to after it exited). */
  counters: TestCounters | null;
}

export interface LinkCounters {
  rxPackets: number;
  rxDropped: number;
  txPackets: number;
  txDropped: number;
}

export type OffloadCounters = Omit<OffloadStats, 'active'>;

/**
 * The offload counters of the data direction a → b over one test (every test sends from the
 * iperf3 client in a to the server in b): a's transmit side (TSO, GSO) and b's receive side (GRO,
 * coalescing), and what they mean per operation. The ACKs going back b → a are left out (they are
 * in the per-end counters).
 */
export interface OffloadSummary {
  /** TSO super-frames a's overlayfwd read from its TAP device (and cut into wire segments). */
  txSuperFrames: number;
  /** a: sendmmsg messages that carried a UDP_SEGMENT train, and the datagrams in them. */
  txGsoSends: number;
  txGsoSegments: number;
  /** txGsoSegments / txGsoSends. */
  segmentsPerGsoSend: number | null;
  /** txGsoSegments / a's txPackets: share of the sent underlay datagrams that left in a GSO train. */
  gsoShareOfTx: number | null;
  /** b: received datagrams the kernel had coalesced (UDP_GRO), and the datagrams in them. */
  rxGroReceives: number;
  rxGroSegments: number;
  segmentsPerGroReceive: number | null;
  /** rxGroSegments / b's rxPackets. */
  groShareOfRx: number | null;
  /** b: TAP writes that carried a coalesced super-frame, and the segments in them. */
  rxCoalescedWrites: number;
  rxCoalescedSegments: number;
  segmentsPerCoalescedWrite: number | null;
  /** rxCoalescedSegments / b's rxPackets: share of the delivered frames written coalesced. */
  coalescedShareOfRx: number | null;
  /** Both ends. */
  fallbacks: number;
}

export interface TestCounters {
  /** The overlay device (vx0 / ovl0) in each namespace: `ip -s link` deltas. */
  devices: { a: LinkCounters; b: LinkCounters } | null;
  /** overlayfwd totals deltas of each end; null for the kernel. */
  overlayfwd: { a: Counters; b: Counters } | null;
  /** overlay.stats().offloads counter deltas of each end, and the a → b summary; null for the kernel. */
  offloads: { a: OffloadCounters; b: OffloadCounters; summary: OffloadSummary } | null;
  /** The ceiling's counter deltas of each end, and the a → b summary; null but for the ceiling. */
  ceiling: { a: CeilingStats; b: CeilingStats; summary: CeilingSummary } | null;
}

export interface UdpResult {
  payloadBytes: number;
  /** Where `received` comes from: the server's JSON end.sum (normal) or the client's (fallback). */
  source: 'server' | 'client';
  seconds: number;
  /** Datagrams the client sent (client end.sum_sent.packets). */
  sent: number | null;
  /** end.sum.packets − end.sum.lost_packets. */
  received: number;
  lost: number;
  /** received / seconds. */
  receivedPps: number;
  sentPps: number | null;
  counters: TestCounters | null;
}

export interface PhaseResult {
  label: string;
  /** The overlay mode (null for the kernel phases). */
  mode: BenchMode | null;
  /** Underlay address family. */
  family: 4 | 6;
  /** Overlay device type (the kernel's vx0 is an Ethernet device: 'tap'). */
  deviceType: 'tap' | 'tun';
  /** overlayfwd workers; null for the kernel. */
  workers: number | null;
  /** overlayfwd's offloads config ({ tso, udpGso, udpGro }) and what each end had in use after probing; null for the kernel. */
  offloadsConfig: ResolvedConfig['offloads'] | null;
  offloadsActive: { a: OffloadStats['active']; b: OffloadStats['active'] } | null;
  devices: { a: { name: string; mtu: number | null }; b: { name: string; mtu: number | null } } | null;
  underlayPing: PingRtt | null;
  overlayPing: PingRtt | null;
  /** overlayPing.medianMs − underlayPing.medianMs. */
  addedRttMs: number | null;
  /** Single-stream TCP. */
  tcp: TcpResult | null;
  /** Kernel VXLAN (IPv4) single-stream TCP measured right before this overlayfwd phase, when it was. */
  pairedKernel: TcpResult | null;
  /** TCP with NetnsOptions.parallel streams (iperf3 -P). */
  tcpParallel: TcpResult | null;
  udp: UdpResult | null;
  /** overlayfwd counters (totals) of both ends at the end of the phase. */
  overlayStats: { a: Counters; b: Counters } | null;
  /** overlay.stats().offloads of both ends at the end of the phase. */
  overlayOffloads: { a: OffloadStats; b: OffloadStats } | null;
  errors: string[];
}

/** The ceiling phase: a PhaseResult plus what ceiling_vxlan was and did. */
export interface CeilingInfo {
  source: string;
  sourceSha256: string | null;
  build: string;
  threads: number;
  ready: { a: CeilingReady; b: CeilingReady } | null;
  /** `ceiling_vxlan --checksum-selftest`: checked against a reference, and its speed. */
  checksum: { ok: boolean; checked: number; gbytesPerSecond1398: number; gbytesPerSecond65536: number } | null;
  /** The sha256-verified TCP transfer a -> b before anything is measured (the phase stops if it fails). */
  sanity: VerifiedTransfer | null;
  /** Both ends' counters when they were stopped. */
  finalStats: { a: CeilingStats | null; b: CeilingStats | null } | null;
}

export type CeilingPhaseResult = PhaseResult & { ceiling: CeilingInfo };

/** One figure of the kernel, the ceiling and overlayfwd (vxlan, w=1) of one run, and their ratios. */
export interface HeadlineFigure {
  kernel: number | null;
  ceiling: number | null;
  overlayfwd: number | null;
  overlayfwdOverKernel: number | null;
  overlayfwdOverCeiling: number | null;
  ceilingOverKernel: number | null;
}

export interface Headline {
  /** TCP 1 stream, Gbit/s. */
  tcpGbps: HeadlineFigure;
  /** UDP 64-byte payload, thousand packets per second received by the iperf3 server. */
  udp64Kpps: HeadlineFigure;
  /**
   * The same test, frames the tunnel delivered into b's overlay device (`ip -s link` rx packets
   * of vx0 / ceil0 / ovl0 over the test): what the forwarder moved, also when the iperf3 server
   * is what drops them.
   */
  udp64ForwardedKpps: HeadlineFigure;
  /** Overlay ping RTT, median, ms. */
  rttMedianMs: HeadlineFigure;
  /** Overlay minus underlay ping RTT (medians), ms. */
  addedRttMedianMs: HeadlineFigure;
  /** Host CPU seconds per 10^9 bytes of the TCP 1 stream test. */
  hostCpuSecondsPerGB: HeadlineFigure;
}

export interface NetnsResult {
  durationSec: number;
  pingCount: number;
  pingIntervalSec: number;
  underlay: { a: string; b: string; dev: string };
  overlay: { a: string; b: string; vni: number };
  iperf3: string | null;
  /** Streams of the parallel TCP test (0: not run). */
  parallel: number;
  kernel: PhaseResult | null;
  /** The ceiling (bench/ceiling/ceiling_vxlan.c), between the kernel and overlayfwd w=1 phases. */
  ceiling: CeilingPhaseResult | null;
  /** workers: 1, offloads on (the default config). */
  overlayfwd: PhaseResult | null;
  /** workers: 2, offloads on: TCP 1 and N streams. */
  overlayfwdWorkers2: PhaseResult | null;
  /** workers: 1, offloads { tso: false, udpGso: false, udpGro: false, uringWrites: false }: TCP 1 stream. */
  overlayfwdNoOffloads: PhaseResult | null;
  /** The modes selected for this run. */
  modes: BenchMode[];
  /** Kernel VXLAN over the IPv6 underlay (TCP 1 stream), when vxlan6 is selected. */
  kernel6: PhaseResult | null;
  /** Kernel VXLAN over IPv4 again after the mode phases (TCP 1 stream). */
  kernelEnd: PhaseResult | null;
  /** One phase per selected mode other than vxlan (TCP 1 stream, workers: 1, offloads on). */
  modePhases: PhaseResult[];
  /** The bare raw-IP blast, one per raw-IP mode selected. */
  rawBaselines: RawBaselineResult[];
  routes: RoutesResult | null;
  /** Kernel, ceiling and overlayfwd vxlan (w=1) side by side: TCP, 64-byte UDP, RTT medians, CPU. */
  headline: Headline | null;
  errors: string[];
}

/** raw_blast's JSON lines. */
export interface RawBlastSend {
  proto: number;
  batch: number;
  size: number;
  packets: number;
  calls: number;
  errors: number;
  seconds: number;
  pps: number;
  gbps: number;
}

export interface RawBlastRecv {
  proto: number;
  batch: number;
  packets: number;
  bytes: number;
  batches: number;
  seconds: number;
  pps: number;
  gbps: number;
  meanBytes: number;
  socketDrops: number;
}

/**
 * A bare sendmmsg (a) / recvmmsg (b) of full-size raw IP packets of one protocol across the veth
 * pair, no overlay: the ceiling of a raw-IP mode's outer packet rate on this machine.
 */
export interface RawBaselineResult {
  protocol: number;
  /** Outer packet size, IPv4 header included (= the veth MTU: a full-MTU GRE / IP-in-IP packet). */
  packetBytes: number;
  batch: number;
  send: RawBlastSend | null;
  recv: RawBlastRecv | null;
  errors: string[];
}

export interface RoutesRun {
  routes: number;
  peers: number;
  tcp: TcpResult | null;
}

export interface ProfileSymbol {
  percent: number;
  samples: number;
  dso: string;
  symbol: string;
}

/** `perf record -e cpu-clock -p <this process>` over one 100,000-route run (not one of the measured ones). */
export interface ProfileResult {
  command: string;
  /** Samples in this process (all threads: both forwarders' workers, the event loop, libuv). */
  samples: number;
  /** Samples in symbols of the route table (ovl::RouteTable::*, ovl::route_detail::*, PeerTable::by_route*). */
  routeSamples: number;
  /** routeSamples / samples. */
  routeShare: number | null;
  /** Samples in the overlayfwd addon (overlayfwd.node), and the route share of those. */
  addonSamples: number;
  routeShareOfAddon: number | null;
  routeSymbols: ProfileSymbol[];
  top: ProfileSymbol[];
  /** The TCP run it was taken over. */
  tcp: TcpResult | null;
  error: string | null;
}

/** gre-udp (TUN) with 10 routes and with 100,000, alternately on the same two forwarders. */
export interface RoutesResult {
  mode: BenchMode;
  smallRoutes: number;
  smallPeers: number;
  largeRoutes: number;
  largePeers: number;
  /** Prefix lengths of the synthetic IPv4 routes (one of each per peer). */
  prefixLengths: number[];
  /** Both ends hold the table (a routes the data by destination, b checks the source, and the other way for the ACKs). */
  bothEnds: boolean;
  runs: RoutesRun[];
  /** ms each peers.replace() took (both ends, one entry per switch). */
  replaceMs: number[];
  /** Mean bits/s of the runs of each size. */
  smallBitsPerSecond: number | null;
  largeBitsPerSecond: number | null;
  /** large / small. */
  ratio: number | null;
  profile: ProfileResult | null;
  errors: string[];
}

