// netns bench: the kernel's own VXLAN device and overlayfwd on the same veth underlay, in one run.
//
//   ns a: veth0 198.18.0.1/24 ─────veth───── ns b: veth0 198.18.0.2/24      (underlay)
//         vx0 | ovl0 198.19.0.1/24 ··VXLAN vni 42, port 4789··  vx0 | ovl0 198.19.0.2/24  (overlay)
//
// Phase 1 puts a kernel VXLAN device (vx0, the kernel's default offloads) in each namespace;
// the next phases delete them (port 4789 is free again) and start overlayfwd in both namespaces,
// in this process. The kernel phase and overlayfwd w=1 (offloads on) measure: ping RTT (overlay,
// and the bare underlay just before it), single-stream TCP throughput with iperf3 (with this
// process's CPU time, the whole host's busy CPU time and this process's event loop utilization
// around it), TCP with N parallel streams (iperf3 -P N), and 64-byte UDP packets per second
// received by the iperf3 server. Then overlayfwd w=2 (TCP 1 and N streams) and overlayfwd w=1 with
// every offload off (TCP 1 stream), to show what multi-queue and the offloads bring. Every
// overlayfwd test also records the change of overlay.stats().offloads (GSO trains, GRO receives,
// TSO super-frames, coalesced TAP writes) on both ends.
//
// Then every other mode, one phase each on the same underlay, single-stream TCP against the kernel
// VXLAN device of the same run: vxlan over an IPv6 underlay (TAP; next to the kernel VXLAN device
// over IPv6), geneve, gre-udp, gre and ipip (TUN, routed by allowedIps). The raw-IP modes (gre,
// ipip) are also compared, in outer packets per second, with a bare sendmmsg/recvmmsg of
// full-size raw IP packets of the same protocol across the same veth pair (raw-baseline/raw_blast.c,
// compiled on demand). Then gre-udp with 10 routes and with 100,000 routes (10,000 peers x 10
// prefixes) alternately on the same two forwarders (peers.replace()), optionally profiled with
// `perf record -e cpu-clock`. A last kernel VXLAN single-stream run brackets the mode phases.
//
// All traffic is between the two lab namespaces (198.18.0.0/24, fd00:198:18::/64 and
// 198.19.0.0/24 exist only there; the 10,000 synthetic peers' endpoints and prefixes are never
// sent to); the lab is destroyed in `finally`, and abortNetns() does the same from a signal handler.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Lab, commandExists, labUnavailableReason, type Host } from '../lab';
import { Overlay } from '../lib/overlay';
import { diffCounters } from '../lib/stats';
import type { Counters, OffloadStats, ResolvedConfig } from '../lib/types';

export const VNI = 42;
export const UNDERLAY_A = '198.18.0.1';
export const UNDERLAY_B = '198.18.0.2';
export const OVERLAY_A = '198.19.0.1';
export const OVERLAY_B = '198.19.0.2';
const OVERLAY_PREFIX = 24;
const IPERF_PORT = 5201;
const UDP_PAYLOAD = 64;
/** The IPv6 underlay (ULA), added to the same veth pair when a mode needs it. */
export const UNDERLAY6_A = 'fd00:198:18::1';
export const UNDERLAY6_B = 'fd00:198:18::2';
/** The veth MTU: a full-size outer packet of the raw-IP modes. */
export const UNDERLAY_MTU = 1500;

/** The overlay modes the bench can run; `vxlan` is the IPv4/TAP overlayfwd phases above. */
export const BENCH_MODES = ['vxlan', 'vxlan6', 'geneve', 'gre-udp', 'gre', 'ipip', 'esp'] as const;
export type BenchMode = (typeof BENCH_MODES)[number];

export interface ModeSpec {
  mode: BenchMode;
  /** How the tables name it. */
  label: string;
  encap: Record<string, unknown>;
  device: 'tap' | 'tun';
  family: 4 | 6;
  /** UDP-based (target: >= 0.9x kernel VXLAN), raw IP (>= 0.1x, and >= 0.8x the bare raw blast) or ESP in UDP (>= 0.7x: issue 5). */
  transport: 'udp' | 'raw' | 'esp';
  /** IP protocol of the outer packets of a raw-IP mode (the bare baseline uses the same). */
  rawProtocol: number | null;
  /** Outer bytes added to what the device delivers (rxBytes): outer IP + encapsulation headers. */
  outerOverhead: number;
}

export const MODE_SPECS: Record<BenchMode, ModeSpec> = {
  vxlan: { mode: 'vxlan', outerOverhead: 50, label: 'vxlan (TAP, IPv4 underlay)', encap: { type: 'vxlan', vni: VNI }, device: 'tap', family: 4, transport: 'udp', rawProtocol: null },
  vxlan6: { mode: 'vxlan6', outerOverhead: 70, label: 'vxlan (TAP, IPv6 underlay)', encap: { type: 'vxlan', vni: VNI }, device: 'tap', family: 6, transport: 'udp', rawProtocol: null },
  geneve: { mode: 'geneve', outerOverhead: 36, label: 'geneve (TUN)', encap: { type: 'geneve', vni: VNI }, device: 'tun', family: 4, transport: 'udp', rawProtocol: null },
  'gre-udp': { mode: 'gre-udp', outerOverhead: 32, label: 'gre-udp (TUN)', encap: { type: 'gre-udp' }, device: 'tun', family: 4, transport: 'udp', rawProtocol: null },
  gre: { mode: 'gre', outerOverhead: 24, label: 'gre (TUN, IP proto 47)', encap: { type: 'gre' }, device: 'tun', family: 4, transport: 'raw', rawProtocol: 47 },
  ipip: { mode: 'ipip', outerOverhead: 20, label: 'ipip (TUN, IP proto 4)', encap: { type: 'ipip' }, device: 'tun', family: 4, transport: 'raw', rawProtocol: 4 },
  // Outer IPv4 20 + UDP 8 + SPI/sequence/IV 16 + pad length, next header, ICV 18 (+ 0-3 padding).
  esp: { mode: 'esp', outerOverhead: 62, label: 'esp aes-256-gcm (TUN, UDP 4500)', encap: { type: 'esp', cipher: 'aes-256-gcm', udp: true }, device: 'tun', family: 4, transport: 'esp', rawProtocol: null },
};

export const TARGET_ESP = 0.7;

/** Fixed bench keys (cipher key + salt, 36 bytes): a bench secret is no secret. */
const BENCH_SA_A_TO_B = { spi: 0x1001, key: '5a'.repeat(36) };
const BENCH_SA_B_TO_A = { spi: 0x2001, key: 'a5'.repeat(36) };

/** Parses "gre,ipip" / "all"; throws on an unknown name. */
export function parseModes(text: string): BenchMode[] {
  const names = text
    .split(/[\s,]+/)
    .map((m) => m.trim())
    .filter(Boolean);
  if (names.length === 1 && names[0] === 'all') return [...BENCH_MODES];
  const out: BenchMode[] = [];
  for (const n of names) {
    if (n === 'none') continue;
    if (!(BENCH_MODES as readonly string[]).includes(n)) throw new Error(`unknown mode ${n} (modes: ${BENCH_MODES.join(', ')}, all, none)`);
    if (!out.includes(n as BenchMode)) out.push(n as BenchMode);
  }
  return out;
}

export interface NetnsOptions {
  /** Seconds per iperf3 test. */
  durationSec: number;
  /** Echo requests per ping measurement (-c), 10 ms apart. */
  pingCount: number;
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
  /** overlayPing.avgMs − underlayPing.avgMs. */
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

export interface NetnsResult {
  durationSec: number;
  pingCount: number;
  underlay: { a: string; b: string; dev: string };
  overlay: { a: string; b: string; vni: number };
  iperf3: string | null;
  /** Streams of the parallel TCP test (0: not run). */
  parallel: number;
  kernel: PhaseResult | null;
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

/** The phases that ran, in order. */
export function netnsPhases(r: NetnsResult): PhaseResult[] {
  return [r.kernel, r.overlayfwd, r.overlayfwdWorkers2, r.overlayfwdNoOffloads, r.kernel6, ...r.modePhases, r.kernelEnd].filter((p): p is PhaseResult => p !== null);
}

// ---- interruption ------------------------------------------------------------------------------

let activeLab: Lab | null = null;
let aborted = false;

/** Tears down the running netns bench (signal handlers call this); later measurements fail fast. */
export async function abortNetns(): Promise<void> {
  aborted = true;
  const lab = activeLab;
  if (lab) await lab.destroy();
}

function checkAborted(): void {
  if (aborted) throw new Error('interrupted');
}

// ---- small helpers -----------------------------------------------------------------------------

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let clockTicks: number | null = null;
function clkTck(): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Busy CPU seconds of the whole machine since boot (all CPUs). */
function hostBusySeconds(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return busy / clkTck();
}

async function deviceMtu(lab: Lab, host: Host, dev: string): Promise<number | null> {
  try {
    const { stdout } = await lab.ip(host, ['-j', 'link', 'show', 'dev', dev]);
    const info = JSON.parse(stdout) as { mtu?: number }[];
    return info[0]?.mtu ?? null;
  } catch {
    return null;
  }
}

async function linkCounters(lab: Lab, host: Host, dev: string): Promise<LinkCounters | null> {
  try {
    const { stdout } = await lab.ip(host, ['-s', '-j', 'link', 'show', 'dev', dev]);
    type Dir = { packets?: number; dropped?: number };
    const info = JSON.parse(stdout) as { stats64?: { rx?: Dir; tx?: Dir } }[];
    const st = info[0]?.stats64;
    if (!st) return null;
    return { rxPackets: st.rx?.packets ?? 0, rxDropped: st.rx?.dropped ?? 0, txPackets: st.tx?.packets ?? 0, txDropped: st.tx?.dropped ?? 0 };
  } catch {
    return null;
  }
}

function minusOffloads(after: OffloadCounters, before: OffloadCounters): OffloadCounters {
  const out = { ...after };
  for (const k of Object.keys(out) as (keyof OffloadCounters)[]) out[k] = after[k] - (before[k] ?? 0);
  return out;
}

function perOp(n: number, d: number): number | null {
  return d > 0 ? n / d : null;
}

/** The data direction a → b: a's transmit counters, b's receive counters. `traffic` (the overlayfwd totals deltas) gives the shares. */
export function summarizeOffloads(a: OffloadCounters, b: OffloadCounters, traffic: { a: Counters; b: Counters } | null): OffloadSummary {
  const txPackets = traffic ? traffic.a.txPackets : 0;
  const rxPackets = traffic ? traffic.b.rxPackets : 0;
  return {
    txSuperFrames: a.txSuperFrames,
    txGsoSends: a.txGsoSends,
    txGsoSegments: a.txGsoSegments,
    segmentsPerGsoSend: perOp(a.txGsoSegments, a.txGsoSends),
    gsoShareOfTx: perOp(a.txGsoSegments, txPackets),
    rxGroReceives: b.rxGroReceives,
    rxGroSegments: b.rxGroSegments,
    segmentsPerGroReceive: perOp(b.rxGroSegments, b.rxGroReceives),
    groShareOfRx: perOp(b.rxGroSegments, rxPackets),
    rxCoalescedWrites: b.rxCoalescedWrites,
    rxCoalescedSegments: b.rxCoalescedSegments,
    segmentsPerCoalescedWrite: perOp(b.rxCoalescedSegments, b.rxCoalescedWrites),
    coalescedShareOfRx: perOp(b.rxCoalescedSegments, rxPackets),
    fallbacks: a.fallbacks + b.fallbacks,
  };
}

function offloadCounters(stats: OffloadStats): OffloadCounters {
  const { active: _active, ...counters } = stats;
  return counters;
}


/** What a phase runs on: the overlay device name in both namespaces, and the overlays (overlayfwd). */
interface PhaseContext {
  dev: string;
  overlays: [Overlay, Overlay] | null;
}

interface Snapshot {
  links: [LinkCounters | null, LinkCounters | null];
  overlay: [Counters, Counters] | null;
  offloads: [OffloadCounters, OffloadCounters] | null;
}

async function snapshot(lab: Lab, a: Host, b: Host, ctx: PhaseContext): Promise<Snapshot> {
  const links: Snapshot['links'] = [await linkCounters(lab, a, ctx.dev), await linkCounters(lab, b, ctx.dev)];
  if (!ctx.overlays) return { links, overlay: null, offloads: null };
  const [sa, sb] = [ctx.overlays[0].stats(), ctx.overlays[1].stats()];
  return { links, overlay: [sa.totals, sb.totals], offloads: [offloadCounters(sa.offloads), offloadCounters(sb.offloads)] };
}

function diffSnapshots(after: Snapshot, before: Snapshot): TestCounters {
  const link = (x: LinkCounters | null, y: LinkCounters | null): LinkCounters | null =>
    x && y ? { rxPackets: x.rxPackets - y.rxPackets, rxDropped: x.rxDropped - y.rxDropped, txPackets: x.txPackets - y.txPackets, txDropped: x.txDropped - y.txDropped } : null;
  const la = link(after.links[0], before.links[0]);
  const lb = link(after.links[1], before.links[1]);
  const overlayfwd = after.overlay && before.overlay ? { a: diffCounters(after.overlay[0], before.overlay[0]), b: diffCounters(after.overlay[1], before.overlay[1]) } : null;
  let offloads: TestCounters['offloads'] = null;
  if (after.offloads && before.offloads) {
    const oa = minusOffloads(after.offloads[0], before.offloads[0]);
    const ob = minusOffloads(after.offloads[1], before.offloads[1]);
    offloads = { a: oa, b: ob, summary: summarizeOffloads(oa, ob, overlayfwd) };
  }
  return { devices: la && lb ? { a: la, b: lb } : null, overlayfwd, offloads };
}

/** Runs `fn` between two counter snapshots; a failed snapshot leaves `counters` null. */
async function withCounters<T extends { counters: TestCounters | null }>(lab: Lab, a: Host, b: Host, ctx: PhaseContext, fn: () => Promise<T>): Promise<T> {
  const before = await snapshot(lab, a, b, ctx).catch(() => null);
  const result = await fn();
  const after = await snapshot(lab, a, b, ctx).catch(() => null);
  result.counters = before && after ? diffSnapshots(after, before) : null;
  return result;
}

/** `ping -c N -i 0.01 -q` and its rtt summary line. */
async function pingRtt(lab: Lab, from: Host, address: string, count: number): Promise<PingRtt> {
  checkAborted();
  const deadline = Math.ceil(count * 0.01 + 10);
  const res = await lab.exec(from, 'ping', ['-n', '-q', '-c', String(count), '-i', '0.01', '-w', String(deadline), address], {
    allowFailure: true,
    timeoutMs: (deadline + 10) * 1000,
  });
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(res.stdout);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(res.stdout);
  if (!counts || !rtt) throw new Error(`ping ${address}: no summary (exit ${res.code}): ${(res.stdout + res.stderr).trim()}`);
  const received = Number(counts[2]);
  if (received === 0) throw new Error(`ping ${address}: no reply`);
  return {
    transmitted: Number(counts[1]),
    received,
    minMs: Number(rtt[1]),
    avgMs: Number(rtt[2]),
    maxMs: Number(rtt[3]),
    mdevMs: Number(rtt[4]),
  };
}

/** Pings until a reply comes back (ARP, FDB learning); throws after `timeoutMs`. */
async function waitReachable(lab: Lab, from: Host, address: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    checkAborted();
    const r = await lab.ping(from, address, { count: 3, intervalSec: 0.05, timeoutSec: 1 });
    if (r.received > 0) return;
    if (Date.now() > end) throw new Error(`${address} unreachable from ${from.label} after ${timeoutMs} ms`);
    await sleep(200);
  }
}

async function waitListening(lab: Lab, host: Host, port: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    checkAborted();
    const { stdout } = await lab.exec(host, 'ss', ['-H', '-l', '-t', '-n', `sport = :${port}`], { allowFailure: true });
    if (stdout.trim()) return;
    if (Date.now() > end) throw new Error(`iperf3 server in ${host.label} not listening on ${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

type Json = Record<string, unknown>;

function obj(v: unknown, what: string): Json {
  if (typeof v !== 'object' || v === null) throw new Error(`iperf3 JSON: missing ${what}`);
  return v as Json;
}

function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`iperf3 JSON: ${what} is not a number`);
  return v;
}

function parseIperf(text: string, who: string): Json {
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch {
    throw new Error(`iperf3 ${who}: output is not JSON: ${text.slice(0, 500)}`);
  }
  if (typeof doc['error'] === 'string') throw new Error(`iperf3 ${who}: ${doc['error']}`);
  return doc;
}

interface IperfRun {
  client: Json;
  server: Json | null;
  serverError: string | null;
}

/**
 * One iperf3 test: `iperf3 -s -1 -J -B <b overlay>` in b, then `iperf3 -c <b overlay> -t D -J ARGS`
 * in a. `around` brackets the client run (for CPU / ELU sampling).
 */
async function iperf(lab: Lab, a: Host, b: Host, durationSec: number, extra: string[], around?: { before(): void; after(): void }): Promise<IperfRun> {
  checkAborted();
  const server = lab.spawn(b, 'iperf3', ['-s', '-1', '-J', '-B', OVERLAY_B, '-p', String(IPERF_PORT)]);
  try {
    await waitListening(lab, b, IPERF_PORT);
    around?.before();
    let clientOut: string;
    try {
      const res = await lab.exec(
        a,
        'iperf3',
        ['-c', OVERLAY_B, '-p', String(IPERF_PORT), '-t', String(durationSec), '-J', '--connect-timeout', '5000', ...extra],
        { timeoutMs: (durationSec + 30) * 1000, allowFailure: true },
      );
      clientOut = res.stdout;
    } finally {
      around?.after();
    }
    const client = parseIperf(clientOut, 'client');
    let serverJson: Json | null = null;
    let serverError: string | null = null;
    try {
      await server.wait(10_000);
      serverJson = parseIperf(server.stdout, 'server');
    } catch (err) {
      serverError = errorText(err);
    }
    return { client, server: serverJson, serverError };
  } finally {
    await server.stop(1000).catch(() => undefined);
  }
}

async function measureTcp(lab: Lab, a: Host, b: Host, durationSec: number, streams: number, inProcess: boolean, onStart?: () => void): Promise<TcpResult> {
  let cpu0 = process.cpuUsage();
  let elu0 = performance.eventLoopUtilization();
  let host0 = hostBusySeconds();
  let cpu = cpu0;
  let elu = elu0;
  let hostCpu = 0;
  const run = await iperf(lab, a, b, durationSec, streams > 1 ? ['-P', String(streams)] : [], {
    before() {
      onStart?.();
      cpu0 = process.cpuUsage();
      elu0 = performance.eventLoopUtilization();
      host0 = hostBusySeconds();
    },
    after() {
      cpu = process.cpuUsage(cpu0);
      elu = performance.eventLoopUtilization(elu0);
      hostCpu = hostBusySeconds() - host0;
    },
  });
  const end = obj(run.client['end'], 'end');
  const received = obj(end['sum_received'], 'end.sum_received');
  const sent = obj(end['sum_sent'], 'end.sum_sent');
  const bytes = num(received['bytes'], 'end.sum_received.bytes');
  if (bytes <= 0) throw new Error('iperf3 TCP: nothing received');
  const gb = bytes / 1e9;
  const processCpuSeconds = (cpu.user + cpu.system) / 1e6;
  const cpuUtil = end['cpu_utilization_percent'];
  return {
    streams,
    seconds: num(received['seconds'], 'end.sum_received.seconds'),
    bytesReceived: bytes,
    bitsPerSecond: num(received['bits_per_second'], 'end.sum_received.bits_per_second'),
    retransmits: typeof sent['retransmits'] === 'number' ? sent['retransmits'] : null,
    processCpuSeconds,
    processCpuSecondsPerGB: inProcess ? processCpuSeconds / gb : null,
    hostCpuSeconds: hostCpu,
    hostCpuSecondsPerGB: hostCpu / gb,
    eventLoopUtilization: inProcess ? elu.utilization : null,
    iperfCpuPercent: typeof cpuUtil === 'object' && cpuUtil !== null ? (cpuUtil as Record<string, number>) : null,
    counters: null,
  };
}

async function measureUdp(lab: Lab, a: Host, b: Host, durationSec: number): Promise<UdpResult> {
  const run = await iperf(lab, a, b, durationSec, ['-u', '-l', String(UDP_PAYLOAD), '-b', '0']);
  const clientEnd = obj(run.client['end'], 'end');
  const clientSent = clientEnd['sum_sent'] as Json | undefined;
  const sent = clientSent && typeof clientSent['packets'] === 'number' ? clientSent['packets'] : null;
  const sentSeconds = clientSent && typeof clientSent['seconds'] === 'number' ? clientSent['seconds'] : null;
  // The server's end.sum counts what it actually got: packets = highest sequence number seen,
  // lost_packets = gaps below it. The client's end.sum has packets = sent, which would count
  // datagrams lost after the last one received as received.
  let source: 'server' | 'client' = 'server';
  let sum: Json;
  if (run.server && typeof run.server['end'] === 'object' && run.server['end'] !== null && typeof (run.server['end'] as Json)['sum'] === 'object') {
    sum = obj((run.server['end'] as Json)['sum'], 'server end.sum');
  } else {
    source = 'client';
    sum = obj(clientEnd['sum'], 'client end.sum');
  }
  const packets = num(sum['packets'], 'end.sum.packets');
  const lost = num(sum['lost_packets'], 'end.sum.lost_packets');
  const seconds = num(sum['seconds'], 'end.sum.seconds');
  const received = Math.max(0, packets - lost);
  return {
    payloadBytes: UDP_PAYLOAD,
    source,
    seconds,
    sent,
    received,
    lost,
    receivedPps: seconds > 0 ? received / seconds : 0,
    sentPps: sent !== null && sentSeconds ? sent / sentSeconds : null,
    counters: null,
  };
}

function emptyPhase(
  label: string,
  workers: number | null,
  offloadsConfig: PhaseResult['offloadsConfig'],
  mode: BenchMode | null = null,
  family: 4 | 6 = 4,
  deviceType: 'tap' | 'tun' = 'tap',
): PhaseResult {
  return {
    label,
    mode,
    family,
    deviceType,
    workers,
    offloadsConfig,
    offloadsActive: null,
    devices: null,
    underlayPing: null,
    overlayPing: null,
    addedRttMs: null,
    tcp: null,
    pairedKernel: null,
    tcpParallel: null,
    udp: null,
    overlayStats: null,
    overlayOffloads: null,
    errors: [],
  };
}

/** Runs `fn`, recording (not throwing) its failure in `phase.errors`. */
async function attempt<T>(phase: PhaseResult, what: string, log: (l: string) => void, fn: () => Promise<T>): Promise<T | null> {
  checkAborted();
  log(`netns: ${phase.label}: ${what}`);
  try {
    return await fn();
  } catch (err) {
    if (aborted) throw err;
    const msg = `${what}: ${errorText(err)}`;
    phase.errors.push(msg);
    log(`netns: ${phase.label}: FAILED ${msg}`);
    return null;
  }
}

interface MeasureWhat {
  ping: boolean;
  tcp: boolean;
  /** The parallel TCP test (if opts.parallel > 0). */
  tcpParallel: boolean;
  udp: boolean;
}

async function measurePhase(lab: Lab, a: Host, b: Host, phase: PhaseResult, opts: NetnsOptions, what: MeasureWhat, ctx: PhaseContext): Promise<void> {
  const inProcess = ctx.overlays !== null;
  const log = opts.log ?? (() => undefined);
  await waitReachable(lab, a, OVERLAY_B);
  if (what.ping) {
    phase.underlayPing = await attempt(phase, `underlay ping x${opts.pingCount}`, log, () => pingRtt(lab, a, UNDERLAY_B, opts.pingCount));
    phase.overlayPing = await attempt(phase, `overlay ping x${opts.pingCount}`, log, () => pingRtt(lab, a, OVERLAY_B, opts.pingCount));
    if (phase.underlayPing && phase.overlayPing) phase.addedRttMs = phase.overlayPing.avgMs - phase.underlayPing.avgMs;
  }
  if (what.tcp) {
    phase.tcp = await attempt(phase, `TCP 1 stream ${opts.durationSec} s`, log, () =>
      withCounters(lab, a, b, ctx, () => measureTcp(lab, a, b, opts.durationSec, 1, inProcess)),
    );
  }
  if (what.tcpParallel && opts.parallel > 0) {
    phase.tcpParallel = await attempt(phase, `TCP ${opts.parallel} streams ${opts.durationSec} s`, log, () =>
      withCounters(lab, a, b, ctx, () => measureTcp(lab, a, b, opts.durationSec, opts.parallel, inProcess)),
    );
  }
  if (what.udp) {
    phase.udp = await attempt(phase, `UDP ${UDP_PAYLOAD} B ${opts.durationSec} s`, log, () => withCounters(lab, a, b, ctx, () => measureUdp(lab, a, b, opts.durationSec)));
  }
}

/** Kernel VXLAN (vx0, the kernel's default offloads) over the IPv4 or the IPv6 underlay. */
async function kernelPhase(lab: Lab, a: Host, b: Host, opts: NetnsOptions, label: string, family: 4 | 6, what: MeasureWhat): Promise<PhaseResult> {
  const phase = emptyPhase(label, null, null, null, family, 'tap');
  try {
    const [la, lb] = family === 6 ? [UNDERLAY6_A, UNDERLAY6_B] : [UNDERLAY_A, UNDERLAY_B];
    await lab.kernelVxlan(a, { vni: VNI, local: la, remotes: [lb], addresses: [`${OVERLAY_A}/${OVERLAY_PREFIX}`], checksumOffload: true });
    await lab.kernelVxlan(b, { vni: VNI, local: lb, remotes: [la], addresses: [`${OVERLAY_B}/${OVERLAY_PREFIX}`], checksumOffload: true });
    phase.devices = { a: { name: 'vx0', mtu: await deviceMtu(lab, a, 'vx0') }, b: { name: 'vx0', mtu: await deviceMtu(lab, b, 'vx0') } };
    await measurePhase(lab, a, b, phase, opts, what, { dev: 'vx0', overlays: null });
  } catch (err) {
    if (aborted) throw err;
    phase.errors.push(`setup: ${errorText(err)}`);
  } finally {
    // Free port 4789 and the overlay addresses for overlayfwd.
    if (!aborted && !lab.isDestroyed) {
      for (const h of [a, b]) await lab.ip(h, ['link', 'del', 'vx0'], { allowFailure: true });
    }
  }
  return phase;
}

type OffloadsConfig = NonNullable<PhaseResult['offloadsConfig']>;
const OFFLOADS_ON: OffloadsConfig = { tso: true, udpGso: true, udpGro: true, uringWrites: true };
const OFFLOADS_OFF: OffloadsConfig = { tso: false, udpGso: false, udpGro: false, uringWrites: false };

interface OverlaySetup {
  spec: ModeSpec;
  workers: number;
  offloads: OffloadsConfig;
  /** Peers of each end (default: the other end, routed by its /32 on a TUN device). */
  peers?: (host: Host) => Record<string, unknown>[];
  /** Extra top-level config (e.g. limits). */
  extra?: Record<string, unknown>;
}

/** The other end of `host` as its only peer: underlay endpoint of the spec's family, its overlay /32 on TUN. */
function defaultPeer(host: Host, spec: ModeSpec): Record<string, unknown> {
  const isA = host.label === 'a';
  const endpoint = spec.family === 6 ? (isA ? UNDERLAY6_B : UNDERLAY6_A) : isA ? UNDERLAY_B : UNDERLAY_A;
  const peer: Record<string, unknown> = { name: isA ? 'b' : 'a', endpoint };
  if (spec.device === 'tun') peer['allowedIps'] = [`${isA ? OVERLAY_B : OVERLAY_A}/32`];
  if (spec.transport === 'esp') peer['sa'] = isA ? { out: BENCH_SA_A_TO_B, in: BENCH_SA_B_TO_A } : { out: BENCH_SA_B_TO_A, in: BENCH_SA_A_TO_B };
  return peer;
}

function overlayConfig(lab: Lab, host: Host, setup: OverlaySetup): Record<string, unknown> {
  const { spec } = setup;
  const isA = host.label === 'a';
  const address = isA ? OVERLAY_A : OVERLAY_B;
  return {
    name: 'ovl0',
    netns: host.ns,
    device: { type: spec.device, name: 'ovl0', addresses: [`${address}/${OVERLAY_PREFIX}`] },
    encap: { ...spec.encap },
    underlay: { local: spec.family === 6 ? (isA ? UNDERLAY6_A : UNDERLAY6_B) : host.underlay },
    workers: setup.workers,
    offloads: { ...setup.offloads },
    peers: setup.peers ? setup.peers(host) : [defaultPeer(host, spec)],
    control: { socket: `${lab.tmpdir()}/${host.label}-ovl0.sock` },
    ...(setup.extra ?? {}),
  };
}

/** Starts one overlayfwd per namespace; the caller closes them. */
async function startOverlays(lab: Lab, a: Host, b: Host, setup: OverlaySetup): Promise<[Overlay, Overlay]> {
  const overlays: Overlay[] = [];
  try {
    for (const host of [a, b]) {
      const ov = await Overlay.create(overlayConfig(lab, host, setup));
      overlays.push(ov);
      lab.onDestroy(() => ov.close());
    }
  } catch (err) {
    for (const ov of overlays) await ov.close();
    throw err;
  }
  return overlays as [Overlay, Overlay];
}

async function overlayPhase(lab: Lab, a: Host, b: Host, opts: NetnsOptions, setup: OverlaySetup, what: MeasureWhat, label: string): Promise<PhaseResult> {
  const { spec, workers, offloads } = setup;
  const phase = emptyPhase(label, workers, { ...offloads }, spec.mode, spec.family, spec.device);
  const log = opts.log ?? (() => undefined);
  let overlays: [Overlay, Overlay] | null = null;
  try {
    overlays = await startOverlays(lab, a, b, setup);
    const [oa, ob] = overlays;
    phase.devices = { a: { name: oa.device.name, mtu: oa.device.mtu }, b: { name: ob.device.name, mtu: ob.device.mtu } };
    phase.offloadsActive = { a: { ...oa.stats().offloads.active }, b: { ...ob.stats().offloads.active } };
    log(`netns: ${phase.label}: MTU ${oa.device.mtu}, offloads in use: a ${activeText(phase.offloadsActive.a)}, b ${activeText(phase.offloadsActive.b)}`);
    await measurePhase(lab, a, b, phase, opts, what, { dev: oa.device.name, overlays: [oa, ob] });
    recordFinalStats(phase, oa, ob);
  } catch (err) {
    if (aborted) throw err;
    phase.errors.push(`setup: ${errorText(err)}`);
    try {
      if (overlays) recordFinalStats(phase, overlays[0], overlays[1]);
    } catch {
      /* ignore */
    }
  } finally {
    for (const ov of overlays ?? []) await ov.close();
  }
  return phase;
}

function recordFinalStats(phase: PhaseResult, oa: Overlay, ob: Overlay): void {
  const [sa, sb] = [oa.stats(), ob.stats()];
  phase.overlayStats = { a: sa.totals, b: sb.totals };
  phase.overlayOffloads = { a: sa.offloads, b: sb.offloads };
}

/** "tso udpGso udpGro", or "none". */
export function activeText(active: OffloadStats['active'] | null | undefined): string {
  if (!active) return 'n/a';
  const on = (['tso', 'udpGso', 'udpGro'] as const).filter((k) => active[k]);
  return on.length ? on.join(' ') : 'none';
}

/** Switches IPv6 on for the underlay veth of `host` and gives it `address`/64 without DAD. */
async function addIpv6Underlay(lab: Lab, host: Host, address: string): Promise<void> {
  await lab.exec(host, 'sysctl', ['-q', '-w', `net.ipv6.conf.${host.underlayDev}.disable_ipv6=0`]);
  await lab.ip(host, ['addr', 'add', `${address}/64`, 'dev', host.underlayDev, 'nodad']);
}

// ---- the bare raw-IP baseline ------------------------------------------------------------------

const RAW_BLAST_BATCH = 64;

/** bench/raw-baseline/raw_blast.c, from dist/bench/ (compiled) or bench/ (ts-node). */
function rawBlastSource(): string {
  for (const p of [path.resolve(__dirname, '../../bench/raw-baseline/raw_blast.c'), path.resolve(__dirname, 'raw-baseline/raw_blast.c')]) {
    if (fs.existsSync(p)) return p;
  }
  throw new Error('bench/raw-baseline/raw_blast.c not found');
}

/** Compiles raw_blast into `dir` with the system C compiler. */
function buildRawBlast(dir: string): string {
  const out = path.join(dir, 'raw_blast');
  const cc = commandExists('cc') ? 'cc' : commandExists('gcc') ? 'gcc' : null;
  if (!cc) throw new Error('no C compiler (cc) to build raw_blast');
  execFileSync(cc, ['-O2', '-Wall', '-o', out, rawBlastSource()], { stdio: ['ignore', 'pipe', 'pipe'] });
  return out;
}

function lastJsonLine<T>(text: string, who: string): T {
  const line = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{'))
    .pop();
  if (!line) throw new Error(`${who}: no JSON line in output: ${text.slice(-500)}`);
  return JSON.parse(line) as T;
}

/** raw_blast recv in b, raw_blast send in a, for durationSec. */
async function rawBaseline(lab: Lab, a: Host, b: Host, binary: string, protocol: number, durationSec: number, log: (l: string) => void): Promise<RawBaselineResult> {
  const result: RawBaselineResult = { protocol, packetBytes: UNDERLAY_MTU, batch: RAW_BLAST_BATCH, send: null, recv: null, errors: [] };
  checkAborted();
  log(`netns: bare raw blast: IP proto ${protocol}, ${UNDERLAY_MTU} B packets, sendmmsg/recvmmsg x${RAW_BLAST_BATCH}, ${durationSec} s`);
  const recv = lab.spawn(b, binary, ['recv', '--proto', String(protocol), '--local', UNDERLAY_B, '--batch', String(RAW_BLAST_BATCH), '--idle-ms', '1000', '--max-seconds', String(durationSec + 30)]);
  try {
    await recv.waitForOutput('ready', 10_000);
    const send = await lab.exec(
      a,
      binary,
      ['send', '--proto', String(protocol), '--local', UNDERLAY_A, '--remote', UNDERLAY_B, '--size', String(UNDERLAY_MTU), '--seconds', String(durationSec), '--batch', String(RAW_BLAST_BATCH)],
      { timeoutMs: (durationSec + 30) * 1000 },
    );
    result.send = lastJsonLine<RawBlastSend>(send.stdout, 'raw_blast send');
    await recv.wait(15_000);
    result.recv = lastJsonLine<RawBlastRecv>(recv.stdout, 'raw_blast recv');
    log(
      `netns: bare raw blast proto ${protocol}: sent ${(result.send.pps / 1e3).toFixed(1)} kpps, received ${(result.recv.pps / 1e3).toFixed(1)} kpps ` +
        `(${result.recv.gbps.toFixed(3)} Gbit/s), socket drops ${result.recv.socketDrops}`,
    );
  } catch (err) {
    if (aborted) throw err;
    result.errors.push(errorText(err));
    log(`netns: bare raw blast proto ${protocol}: FAILED ${errorText(err)}`);
  } finally {
    await recv.stop(1000).catch(() => undefined);
  }
  return result;
}

// ---- 10 vs 100,000 routes ----------------------------------------------------------------------

export const ROUTES_SMALL = 10;
export const ROUTE_PEERS = 10_000;
export const ROUTES_PER_PEER = 10;
/** One synthetic IPv4 prefix of each of these lengths per peer: ten tables for the length search. */
export const ROUTE_PREFIX_LENGTHS = [32, 28, 26, 24, 22, 20, 19, 18, 17, 16];

/** Peer i's prefix of length index j: in 40.0.0.0-79.255.255.255 (never sent to), unique per (i, j). */
function syntheticPrefix(i: number, j: number): string {
  const len = ROUTE_PREFIX_LENGTHS[j]!;
  const n = (40 * 2 ** 24 + (i + 1) * 2 ** (32 - len)) >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${len}`;
}

/** Synthetic peer i's endpoint (i >= 1): unused addresses in 198.18.1.1 onwards, never sent to. */
function syntheticEndpoint(i: number): string {
  return `198.18.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
}

/**
 * `host`'s peer set: the other end with its overlay /32 and nine synthetic prefixes (10 routes),
 * plus, for `large`, 9,999 synthetic peers with ten prefixes each (100,000 routes in all).
 */
function routePeers(host: Host, large: boolean): Record<string, unknown>[] {
  const real = defaultPeer(host, MODE_SPECS['gre-udp']);
  const realRoutes = [...(real['allowedIps'] as string[])];
  for (let j = 1; j < ROUTES_PER_PEER; j++) realRoutes.push(syntheticPrefix(0, j));
  const peers: Record<string, unknown>[] = [{ ...real, allowedIps: realRoutes }];
  if (!large) return peers;
  for (let i = 1; i < ROUTE_PEERS; i++) {
    const allowedIps: string[] = [];
    for (let j = 0; j < ROUTES_PER_PEER; j++) allowedIps.push(syntheticPrefix(i, j));
    peers.push({ name: `p${i}`, endpoint: syntheticEndpoint(i), allowedIps });
  }
  return peers;
}

function routeCount(peers: Record<string, unknown>[]): number {
  return peers.reduce((n, p) => n + ((p['allowedIps'] as string[] | undefined)?.length ?? 0), 0);
}

function mean(xs: number[]): number | null {
  return xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null;
}

const ROUTE_SYMBOL = /RouteTable|route_detail|by_route/;

/** Parses `perf report --stdio --no-children --sort dso,sym -n`. */
function parsePerfReport(text: string): ProfileSymbol[] {
  const out: ProfileSymbol[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([\d.]+)%\s+(\d+)\s+(\S+)\s+\[[^\]]+\]\s+(.*?)\s*$/.exec(line);
    if (m) out.push({ percent: Number(m[1]), samples: Number(m[2]), dso: m[3]!, symbol: m[4]! });
  }
  return out;
}

/** Runs one TCP test under `perf record -e cpu-clock -p <this process>` and splits the samples. */
async function profiledRun(lab: Lab, a: Host, b: Host, ctx: PhaseContext, durationSec: number, dir: string): Promise<ProfileResult> {
  const file = path.join(dir, 'routes-100k.perf.data');
  const seconds = Math.max(1, durationSec - 1);
  const args = ['record', '-e', 'cpu-clock', '-F', '999', '-p', String(process.pid), '-o', file, '--', 'sleep', String(seconds)];
  const result: ProfileResult = {
    command: `perf ${args.join(' ')}`,
    samples: 0,
    routeSamples: 0,
    routeShare: null,
    addonSamples: 0,
    routeShareOfAddon: null,
    routeSymbols: [],
    top: [],
    tcp: null,
    error: null,
  };
  let perf: ReturnType<Lab['spawn']> | null = null;
  try {
    // Started as the client starts, ends a second before it does: only full-rate traffic.
    result.tcp = await withCounters(lab, a, b, ctx, () =>
      measureTcp(lab, a, b, durationSec, 1, true, () => {
        perf = lab.spawn(null, 'perf', args);
      }),
    );
    const p = perf as ReturnType<Lab['spawn']> | null;
    if (!p) throw new Error('perf did not start');
    const st = await p.wait(30_000);
    if (st.code !== 0) throw new Error(`perf record failed (${p.describeStatus()}): ${p.stderr.slice(-500)}`);
    const report = execFileSync('perf', ['report', '-i', file, '--stdio', '--no-children', '--sort', 'dso,sym', '-n'], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const symbols = parsePerfReport(report);
    result.samples = symbols.reduce((n, s) => n + s.samples, 0);
    result.routeSymbols = symbols.filter((s) => ROUTE_SYMBOL.test(s.symbol));
    result.routeSamples = result.routeSymbols.reduce((n, s) => n + s.samples, 0);
    result.addonSamples = symbols.filter((s) => s.dso.includes('overlayfwd')).reduce((n, s) => n + s.samples, 0);
    result.routeShare = result.samples ? result.routeSamples / result.samples : null;
    result.routeShareOfAddon = result.addonSamples ? result.routeSamples / result.addonSamples : null;
    result.top = symbols.slice(0, 12);
  } catch (err) {
    if (aborted) throw err;
    result.error = errorText(err);
  } finally {
    const p = perf as ReturnType<Lab['spawn']> | null;
    if (p) await p.stop(2000, 'SIGINT').catch(() => undefined);
    fs.rmSync(file, { force: true });
    fs.rmSync(`${file}.old`, { force: true });
  }
  return result;
}

/**
 * gre-udp on TUN, single-stream TCP with 10 routes and with 100,000 routes on both ends,
 * alternating (10, 100k, 100k, 10, ...) on the same two forwarders; peers.replace() switches.
 */
async function routesTest(lab: Lab, a: Host, b: Host, opts: NetnsOptions, tmp: string): Promise<RoutesResult> {
  const log = opts.log ?? (() => undefined);
  const spec = MODE_SPECS['gre-udp'];
  const result: RoutesResult = {
    mode: spec.mode,
    smallRoutes: ROUTES_SMALL,
    smallPeers: 1,
    largeRoutes: ROUTE_PEERS * ROUTES_PER_PEER,
    largePeers: ROUTE_PEERS,
    prefixLengths: [...ROUTE_PREFIX_LENGTHS],
    bothEnds: true,
    runs: [],
    replaceMs: [],
    smallBitsPerSecond: null,
    largeBitsPerSecond: null,
    ratio: null,
    profile: null,
    errors: [],
  };
  const sets = {
    small: { a: routePeers(a, false), b: routePeers(b, false) },
    large: { a: routePeers(a, true), b: routePeers(b, true) },
  };
  if (routeCount(sets.small.a) !== ROUTES_SMALL || routeCount(sets.large.a) !== ROUTE_PEERS * ROUTES_PER_PEER) throw new Error('route sets miscounted');
  let overlays: [Overlay, Overlay] | null = null;
  try {
    overlays = await startOverlays(lab, a, b, {
      spec,
      workers: 1,
      offloads: OFFLOADS_ON,
      peers: (h) => (h.label === 'a' ? sets.small.a : sets.small.b),
      extra: { limits: { maxPeers: ROUTE_PEERS + 16 } },
    });
    const [oa, ob] = overlays;
    const ctx: PhaseContext = { dev: oa.device.name, overlays: [oa, ob] };
    let current: 'small' | 'large' = 'small';
    const use = async (which: 'small' | 'large') => {
      if (which === current) return;
      const t = Date.now();
      oa.peers.replace(sets[which].a);
      ob.peers.replace(sets[which].b);
      result.replaceMs.push(Date.now() - t);
      current = which;
      log(`netns: routes: ${which === 'large' ? `${result.largeRoutes} routes / ${result.largePeers} peers` : `${ROUTES_SMALL} routes / 1 peer`} on both ends (replace ${Date.now() - t} ms)`);
      await waitReachable(lab, a, OVERLAY_B);
    };
    await waitReachable(lab, a, OVERLAY_B);
    const order: ('small' | 'large')[] = [];
    for (let r = 0; r < opts.routeRounds; r++) order.push(...(r % 2 === 0 ? (['small', 'large'] as const) : (['large', 'small'] as const)));
    for (const which of order) {
      checkAborted();
      await use(which);
      const routes = which === 'large' ? result.largeRoutes : ROUTES_SMALL;
      const peers = which === 'large' ? result.largePeers : 1;
      log(`netns: routes: gre-udp, ${routes} routes: TCP 1 stream ${opts.durationSec} s`);
      let tcp: TcpResult | null = null;
      try {
        tcp = await withCounters(lab, a, b, ctx, () => measureTcp(lab, a, b, opts.durationSec, 1, true));
        log(`netns: routes: ${routes} routes: ${(tcp.bitsPerSecond / 1e9).toFixed(3)} Gbit/s`);
      } catch (err) {
        if (aborted) throw err;
        result.errors.push(`${routes} routes: ${errorText(err)}`);
        log(`netns: routes: ${routes} routes: FAILED ${errorText(err)}`);
      }
      result.runs.push({ routes, peers, tcp });
    }
    const bps = (n: number) => result.runs.filter((r) => r.routes === n && r.tcp).map((r) => r.tcp!.bitsPerSecond);
    result.smallBitsPerSecond = mean(bps(ROUTES_SMALL));
    result.largeBitsPerSecond = mean(bps(result.largeRoutes));
    if (result.smallBitsPerSecond && result.largeBitsPerSecond !== null) result.ratio = result.largeBitsPerSecond / result.smallBitsPerSecond;
    if (opts.profile) {
      if (!commandExists('perf')) {
        result.profile = { ...emptyProfile(), error: 'perf is not installed (apt-get install linux-perf)' };
      } else {
        await use('large');
        log(`netns: routes: profiling one more ${result.largeRoutes}-route run (perf record -e cpu-clock, not counted above)`);
        result.profile = await profiledRun(lab, a, b, ctx, opts.durationSec, tmp);
        const pr = result.profile;
        log(
          pr.error
            ? `netns: routes: profile FAILED ${pr.error}`
            : `netns: routes: profile: ${pr.routeSamples} of ${pr.samples} samples in route lookup (${((pr.routeShare ?? 0) * 100).toFixed(2)} %)`,
        );
      }
    }
  } catch (err) {
    if (aborted) throw err;
    result.errors.push(`setup: ${errorText(err)}`);
  } finally {
    for (const ov of overlays ?? []) await ov.close();
  }
  return result;
}

function emptyProfile(): ProfileResult {
  return { command: '', samples: 0, routeSamples: 0, routeShare: null, addonSamples: 0, routeShareOfAddon: null, routeSymbols: [], top: [], tcp: null, error: null };
}

/** Why the netns bench cannot run here, or null. */
export function netnsUnavailableReason(): string | null {
  const reason = labUnavailableReason();
  if (reason) return reason;
  for (const cmd of ['iperf3', 'ping', 'ss']) if (!commandExists(cmd)) return `${cmd} is not installed`;
  return null;
}

function iperfVersion(): string | null {
  try {
    return execFileSync('iperf3', ['--version'], { encoding: 'utf8' }).split('\n')[0]?.trim() ?? null;
  } catch {
    return null;
  }
}

export async function runNetns(opts: NetnsOptions): Promise<NetnsResult> {
  const log = opts.log ?? (() => undefined);
  const reason = netnsUnavailableReason();
  if (reason) throw new Error(`netns bench unavailable: ${reason}`);
  aborted = false;
  const has = (m: BenchMode) => opts.modes.includes(m);
  const result: NetnsResult = {
    durationSec: opts.durationSec,
    pingCount: opts.pingCount,
    underlay: { a: UNDERLAY_A, b: UNDERLAY_B, dev: 'veth0' },
    overlay: { a: OVERLAY_A, b: OVERLAY_B, vni: VNI },
    iperf3: iperfVersion(),
    parallel: opts.parallel,
    kernel: null,
    overlayfwd: null,
    overlayfwdWorkers2: null,
    overlayfwdNoOffloads: null,
    modes: [...opts.modes],
    kernel6: null,
    kernelEnd: null,
    modePhases: [],
    rawBaselines: [],
    routes: null,
    errors: [],
  };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ovbench-'));
  const lab = await Lab.create({ prefix: 'ovbench' });
  activeLab = lab;
  try {
    const [a, b] = await lab.pair('a', 'b');
    if (a.underlay !== UNDERLAY_A || b.underlay !== UNDERLAY_B) throw new Error(`unexpected underlay addresses ${a.underlay} / ${b.underlay}`);
    log(`netns: namespaces ${a.ns} (${a.underlay}) and ${b.ns} (${b.underlay}); modes: ${opts.modes.join(', ') || 'none'}`);
    await waitReachable(lab, a, UNDERLAY_B);
    if (has('vxlan6')) {
      await addIpv6Underlay(lab, a, UNDERLAY6_A);
      await addIpv6Underlay(lab, b, UNDERLAY6_B);
      await waitReachable(lab, a, UNDERLAY6_B);
    }

    // The kernel's single-stream TCP is every ratio's denominator; its other tests only face vxlan's.
    const vx = has('vxlan');
    result.kernel = await kernelPhase(lab, a, b, opts, 'kernel', 4, { ping: vx, tcp: true, tcpParallel: vx, udp: vx });
    if (vx) {
      const setup = (workers: number, offloads: OffloadsConfig): OverlaySetup => ({ spec: MODE_SPECS.vxlan, workers, offloads });
      result.overlayfwd = await overlayPhase(lab, a, b, opts, setup(1, OFFLOADS_ON), { ping: true, tcp: true, tcpParallel: true, udp: true }, 'overlayfwd w=1');
      result.overlayfwd.pairedKernel = result.kernel.tcp;
      if (opts.workers2) {
        result.overlayfwdWorkers2 = await overlayPhase(lab, a, b, opts, setup(2, OFFLOADS_ON), { ping: false, tcp: true, tcpParallel: true, udp: false }, 'overlayfwd w=2');
      }
      if (opts.offloadsOff) {
        result.overlayfwdNoOffloads = await overlayPhase(lab, a, b, opts, setup(1, OFFLOADS_OFF), { ping: false, tcp: true, tcpParallel: false, udp: false }, 'overlayfwd w=1 offloads off');
      }
    }

    let rawBlast: string | null = null;
    let rawBlastError: string | null = null;
    const tcpOnly: MeasureWhat = { ping: false, tcp: true, tcpParallel: false, udp: false };
    for (const mode of opts.modes) {
      if (mode === 'vxlan') continue;
      const spec = MODE_SPECS[mode];
      if (mode === 'vxlan6') result.kernel6 = await kernelPhase(lab, a, b, opts, 'kernel IPv6', 6, tcpOnly);
      if (spec.rawProtocol !== null && opts.rawBaseline) {
        // Right before the mode it is compared with, with no forwarder holding a raw socket.
        if (!rawBlast && !rawBlastError) {
          try {
            rawBlast = buildRawBlast(tmp);
          } catch (err) {
            rawBlastError = `building raw_blast: ${errorText(err)}`;
            log(`netns: ${rawBlastError}`);
          }
        }
        if (rawBlast) result.rawBaselines.push(await rawBaseline(lab, a, b, rawBlast, spec.rawProtocol, opts.durationSec, log));
        else result.rawBaselines.push({ protocol: spec.rawProtocol, packetBytes: UNDERLAY_MTU, batch: RAW_BLAST_BATCH, send: null, recv: null, errors: [rawBlastError!] });
      }
      // The kernel again right before the mode: a paired ratio that a drift of the machine's load cannot skew.
      const paired = opts.kernelEach ? await kernelPhase(lab, a, b, opts, `kernel (before ${mode})`, 4, tcpOnly) : null;
      const phase = await overlayPhase(lab, a, b, opts, { spec, workers: 1, offloads: OFFLOADS_ON }, tcpOnly, `overlayfwd ${mode}`);
      if (paired) {
        phase.pairedKernel = paired.tcp;
        phase.errors.push(...paired.errors.map((e) => `paired kernel run: ${e}`));
      }
      result.modePhases.push(phase);
    }
    if (opts.routes) {
      result.routes = await routesTest(lab, a, b, opts, tmp);
    }
    if (opts.kernelEnd && (result.modePhases.length > 0 || result.routes)) {
      result.kernelEnd = await kernelPhase(lab, a, b, opts, 'kernel (end)', 4, tcpOnly);
    }
  } catch (err) {
    result.errors.push(errorText(err));
    if (aborted) throw err;
  } finally {
    log('netns: tearing down');
    try {
      await lab.destroy();
    } catch (err) {
      result.errors.push(`teardown: ${errorText(err)}`);
    }
    activeLab = null;
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return result;
}

// ---- comparison tables -------------------------------------------------------------------------

export interface Row {
  metric: string;
  kernel: string;
  overlayfwd: string;
  ratio: string;
}

/** The cell of a figure that does not apply to that side (e.g. this process's CPU for the kernel). */
export const NOT_APPLICABLE = '-';

function fmt(v: number | null | undefined, digits: number): string {
  return v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits);
}

function ratio(ovl: number | null | undefined, kernel: number | null | undefined, note = ''): string {
  if (ovl === null || ovl === undefined || kernel === null || kernel === undefined || !(kernel > 0) || !Number.isFinite(ovl)) return 'n/a';
  const r = ovl / kernel;
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(3)}${note ? ` ${note}` : ''}`;
}

/** Rows of "metric | kernel | overlayfwd | ratio (overlayfwd / kernel)". */
export function netnsRows(r: NetnsResult): Row[] {
  const k = r.kernel;
  const o = r.overlayfwd;
  const w2 = r.overlayfwdWorkers2;
  const off = r.overlayfwdNoOffloads;
  const n = r.parallel;
  const rows: Row[] = [];
  const na = NOT_APPLICABLE;

  // Throughput: each overlayfwd run against the kernel run with the same number of streams.
  const gbps = (t: TcpResult | null | undefined) => (t ? t.bitsPerSecond / 1e9 : null);
  const tput = (metric: string, kt: TcpResult | null | undefined, ot: TcpResult | null | undefined) =>
    rows.push({ metric, kernel: fmt(gbps(kt), 3), overlayfwd: fmt(gbps(ot), 3), ratio: ratio(gbps(ot), gbps(kt)) });
  tput('TCP 1 stream, w=1, Gbit/s', k?.tcp, o?.tcp);
  if (w2) tput('TCP 1 stream, w=2, Gbit/s', k?.tcp, w2.tcp);
  if (n > 0) {
    tput(`TCP ${n} streams, w=1, Gbit/s`, k?.tcpParallel, o?.tcpParallel);
    if (w2) tput(`TCP ${n} streams, w=2, Gbit/s`, k?.tcpParallel, w2.tcpParallel);
  }
  if (off) tput('TCP 1 stream, w=1, offloads off, Gbit/s', k?.tcp, off.tcp);
  const retr = (t: TcpResult | null | undefined) => (t && t.retransmits !== null ? String(t.retransmits) : 'n/a');
  rows.push({ metric: 'TCP retransmits (1 stream, w=1)', kernel: retr(k?.tcp), overlayfwd: retr(o?.tcp), ratio: '' });

  const kpps = (u: UdpResult | null | undefined) => (u ? u.receivedPps / 1e3 : null);
  rows.push({ metric: `UDP ${UDP_PAYLOAD} B, kpps received`, kernel: fmt(kpps(k?.udp), 1), overlayfwd: fmt(kpps(o?.udp), 1), ratio: ratio(kpps(o?.udp), kpps(k?.udp)) });
  const sentK = (u: UdpResult | null | undefined) => (u && u.sentPps !== null ? u.sentPps / 1e3 : null);
  rows.push({ metric: `UDP ${UDP_PAYLOAD} B, kpps sent (client)`, kernel: fmt(sentK(k?.udp), 1), overlayfwd: fmt(sentK(o?.udp), 1), ratio: '' });

  rows.push({ metric: 'underlay ping RTT avg, ms (baseline)', kernel: fmt(k?.underlayPing?.avgMs, 3), overlayfwd: fmt(o?.underlayPing?.avgMs, 3), ratio: '' });
  rows.push({
    metric: 'overlay ping RTT avg, ms',
    kernel: fmt(k?.overlayPing?.avgMs, 3),
    overlayfwd: fmt(o?.overlayPing?.avgMs, 3),
    ratio: ratio(o?.overlayPing?.avgMs, k?.overlayPing?.avgMs, '(total)'),
  });
  rows.push({
    metric: 'added RTT (overlay - underlay), ms',
    kernel: fmt(k?.addedRttMs, 3),
    overlayfwd: fmt(o?.addedRttMs, 3),
    ratio: ratio(o?.addedRttMs, k?.addedRttMs, '(added)'),
  });

  // CPU per GB of the single-stream runs: host-wide (comparable), then this process's own.
  const singles: [string, PhaseResult | null][] = [
    ['w=1', o],
    ['w=2', w2],
    ['w=1, offloads off', off],
  ];
  for (const [what, p] of singles) {
    if (!p) continue;
    rows.push({
      metric: `host CPU s per GB (TCP 1 stream, ${what})`,
      kernel: fmt(k?.tcp?.hostCpuSecondsPerGB, 3),
      overlayfwd: fmt(p.tcp?.hostCpuSecondsPerGB, 3),
      ratio: ratio(p.tcp?.hostCpuSecondsPerGB, k?.tcp?.hostCpuSecondsPerGB),
    });
  }
  for (const [what, p] of singles) {
    if (!p) continue;
    rows.push({ metric: `process CPU s per GB (TCP 1 stream, ${what})`, kernel: na, overlayfwd: fmt(p.tcp?.processCpuSecondsPerGB, 3), ratio: na });
  }
  const pct = (v: number | null | undefined) => (v === null || v === undefined ? null : v * 100);
  rows.push({ metric: 'event loop utilization (TCP 1 stream, w=1), %', kernel: na, overlayfwd: fmt(pct(o?.tcp?.eventLoopUtilization), 2), ratio: na });
  const mtu = (p: PhaseResult | null | undefined) => (p?.devices ? `${p.devices.a.name} ${p.devices.a.mtu ?? '?'}` : 'n/a');
  rows.push({ metric: 'overlay device, MTU', kernel: mtu(k), overlayfwd: mtu(o), ratio: '' });
  return rows;
}

export interface OffloadRow {
  /** Which overlayfwd test. */
  test: string;
  /** Offloads in use (after probing) on end a; "a: …, b: …" if the two ends differ. */
  active: string;
  /** TSO super-frames a read from its TAP device. */
  superFrames: string;
  /** Datagrams per UDP GSO send, and the share of sent datagrams that left in GSO trains. */
  gso: string;
  /** Datagrams per UDP GRO receive, and the share of received datagrams that came coalesced. */
  gro: string;
  /** Segments per coalesced TAP write, and the share of delivered frames written coalesced. */
  coalesced: string;
  fallbacks: string;
}

function perOpCell(per: number | null, share: number | null, ops: number): string {
  if (ops === 0 || per === null) return '0';
  return `${per.toFixed(1)} (${share === null ? '?' : (share * 100).toFixed(0)} %)`;
}

/** One row per overlayfwd test: what the offload counters did during it (data direction a → b). */
export function offloadRows(r: NetnsResult): OffloadRow[] {
  const rows: OffloadRow[] = [];
  const tests: [string, PhaseResult | null, (p: PhaseResult) => { counters: TestCounters | null } | null][] = [
    ['TCP 1 stream, w=1', r.overlayfwd, (p) => p.tcp],
    [`TCP ${r.parallel} streams, w=1`, r.overlayfwd, (p) => p.tcpParallel],
    [`UDP ${UDP_PAYLOAD} B, w=1`, r.overlayfwd, (p) => p.udp],
    ['TCP 1 stream, w=2', r.overlayfwdWorkers2, (p) => p.tcp],
    [`TCP ${r.parallel} streams, w=2`, r.overlayfwdWorkers2, (p) => p.tcpParallel],
    ['TCP 1 stream, w=1, offloads off', r.overlayfwdNoOffloads, (p) => p.tcp],
    ...r.modePhases.map((p): [string, PhaseResult | null, (p: PhaseResult) => { counters: TestCounters | null } | null] => [`TCP 1 stream, ${p.mode ? MODE_SPECS[p.mode].label : p.label}`, p, (q) => q.tcp]),
  ];
  for (const [test, phase, pick] of tests) {
    if (!phase) continue;
    const result = pick(phase);
    if (!result) continue;
    const act = phase.offloadsActive;
    const activeCell = !act ? 'n/a' : activeText(act.a) === activeText(act.b) ? activeText(act.a) : `a: ${activeText(act.a)}, b: ${activeText(act.b)}`;
    const s = result.counters?.offloads?.summary;
    if (!s) {
      rows.push({ test, active: activeCell, superFrames: 'n/a', gso: 'n/a', gro: 'n/a', coalesced: 'n/a', fallbacks: 'n/a' });
      continue;
    }
    rows.push({
      test,
      active: activeCell,
      superFrames: String(s.txSuperFrames),
      gso: perOpCell(s.segmentsPerGsoSend, s.gsoShareOfTx, s.txGsoSends),
      gro: perOpCell(s.segmentsPerGroReceive, s.groShareOfRx, s.rxGroReceives),
      coalesced: perOpCell(s.segmentsPerCoalescedWrite, s.coalescedShareOfRx, s.rxCoalescedWrites),
      fallbacks: String(s.fallbacks),
    });
  }
  return rows;
}

// ---- every mode, the raw-IP baseline, routes, targets ------------------------------------------

/** Target thresholds (issue 4). */
export const TARGET_UDP_MODES = 0.9;
export const TARGET_RAW_MODES = 0.1;
export const TARGET_RAW_VS_BARE = 0.8;
export const TARGET_ROUTES = 0.9;
/** "Not visible in a profile": below this share of the forwarding process's samples. */
export const TARGET_ROUTE_PROFILE_SHARE = 0.01;

function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The kernel VXLAN (IPv4) single-stream figure every mode is divided by: the median of all the
 * run's kernel IPv4 single-stream measurements (the first, the one before each mode, the last),
 * so that one run taken while the machine was busy does not set the scale.
 */
export function kernelReference(r: NetnsResult): { bitsPerSecond: number | null; runs: number[] } {
  const runs = [r.kernel?.tcp?.bitsPerSecond, ...r.modePhases.map((p) => p.pairedKernel?.bitsPerSecond), r.kernelEnd?.tcp?.bitsPerSecond].filter(
    (x): x is number => typeof x === 'number' && x > 0,
  );
  return { bitsPerSecond: median(runs), runs };
}

/** Outer packets per second a → b of a TCP test: b's decapsulated packets over the test's seconds. */
export function outerPacketsPerSecond(t: TcpResult | null | undefined): number | null {
  const b = t?.counters?.overlayfwd?.b;
  if (!t || !b || !(t.seconds > 0)) return null;
  return b.rxPackets / t.seconds;
}

/** Mean outer packet size a → b: b's delivered bytes per packet plus the mode's outer headers. */
export function outerPacketBytes(t: TcpResult | null | undefined, spec: ModeSpec): number | null {
  const b = t?.counters?.overlayfwd?.b;
  if (!b || !(b.rxPackets > 0)) return null;
  return b.rxBytes / b.rxPackets + spec.outerOverhead;
}

export interface ModeRow {
  mode: string;
  mtu: string;
  gbps: string;
  /** ÷ kernel VXLAN IPv4 (the reference). */
  ratio: string;
  /** ÷ kernel VXLAN over the same underlay family (IPv6 rows only). */
  ratioSameFamily: string;
  /** ÷ the kernel VXLAN IPv4 run right before this one. */
  ratioPaired: string;
  hostCpuPerGB: string;
  retransmits: string;
  target: string;
  met: string;
}

function ratioValue(x: number | null | undefined, ref: number | null | undefined): number | null {
  return x === null || x === undefined || ref === null || ref === undefined || !(ref > 0) || !Number.isFinite(x) ? null : x / ref;
}

function metCell(v: number | null, threshold: number): string {
  return v === null ? 'n/a' : v >= threshold ? 'yes' : 'no';
}

/** One row per kernel run and per overlayfwd mode: single-stream TCP and its ratio to the kernel VXLAN device. */
export function modeRows(r: NetnsResult): ModeRow[] {
  const ref = kernelReference(r).bitsPerSecond;
  const k6 = r.kernel6?.tcp?.bitsPerSecond ?? null;
  const gb = (bps: number | null | undefined) => (bps === null || bps === undefined ? null : bps / 1e9);
  const rows: ModeRow[] = [];
  const mtuOf = (p: PhaseResult | null) => (p?.devices ? String(p.devices.a.mtu ?? '?') : 'n/a');
  const retr = (t: TcpResult | null | undefined) => (t && t.retransmits !== null ? String(t.retransmits) : 'n/a');
  const kr = kernelReference(r);
  if (kr.runs.length) {
    const lo = Math.min(...kr.runs) / 1e9;
    const hi = Math.max(...kr.runs) / 1e9;
    rows.push({
      mode: `kernel VXLAN, IPv4 underlay (vx0): median of ${kr.runs.length} run${kr.runs.length > 1 ? 's' : ''}${kr.runs.length > 1 ? ` (${lo.toFixed(2)}-${hi.toFixed(2)})` : ''}`,
      mtu: mtuOf(r.kernel),
      gbps: fmt(gb(ref), 3),
      ratio: '1',
      ratioSameFamily: '',
      ratioPaired: '',
      hostCpuPerGB: fmt(r.kernel?.tcp?.hostCpuSecondsPerGB, 2),
      retransmits: retr(r.kernel?.tcp),
      target: 'reference',
      met: '',
    });
  }
  if (r.kernel6) {
    const p = r.kernel6;
    rows.push({
      mode: 'kernel VXLAN, IPv6 underlay',
      mtu: mtuOf(p),
      gbps: fmt(gb(p.tcp?.bitsPerSecond), 3),
      ratio: ratio(p.tcp?.bitsPerSecond, ref),
      ratioSameFamily: ratio(p.tcp?.bitsPerSecond, k6),
      ratioPaired: '',
      hostCpuPerGB: fmt(p.tcp?.hostCpuSecondsPerGB, 2),
      retransmits: retr(p.tcp),
      target: 'reference (IPv6)',
      met: '',
    });
  }
  const phases: PhaseResult[] = [...(r.overlayfwd ? [r.overlayfwd] : []), ...r.modePhases];
  for (const p of phases) {
    const spec = MODE_SPECS[p.mode ?? 'vxlan'];
    const bps = p.tcp?.bitsPerSecond;
    const rv = ratioValue(bps, ref);
    let target = '';
    let met = '';
    if (spec.transport === 'udp' && spec.mode !== 'vxlan') {
      target = `>= ${TARGET_UDP_MODES}x`;
      met = metCell(rv, TARGET_UDP_MODES);
    } else if (spec.transport === 'raw') {
      target = `>= ${TARGET_RAW_MODES}x`;
      met = metCell(rv, TARGET_RAW_MODES);
    } else if (spec.transport === 'esp') {
      target = `>= ${TARGET_ESP}x`;
      met = metCell(rv, TARGET_ESP);
    }
    rows.push({
      mode: `overlayfwd ${spec.label}`,
      mtu: mtuOf(p),
      gbps: fmt(gb(bps), 3),
      ratio: ratio(bps, ref),
      ratioSameFamily: spec.family === 6 ? ratio(bps, k6) : '',
      ratioPaired: ratio(bps, p.pairedKernel?.bitsPerSecond),
      hostCpuPerGB: fmt(p.tcp?.hostCpuSecondsPerGB, 2),
      retransmits: retr(p.tcp),
      target,
      met,
    });
  }
  return rows;
}

export interface RawRow {
  what: string;
  packetBytes: string;
  kpps: string;
  gbps: string;
  ratio: string;
  met: string;
}

/** The bare raw blast of each protocol, then the mode's outer packets a → b during its TCP test. */
export function rawRows(r: NetnsResult): RawRow[] {
  const rows: RawRow[] = [];
  for (const p of r.modePhases) {
    const spec = p.mode ? MODE_SPECS[p.mode] : null;
    if (!spec || spec.rawProtocol === null) continue;
    const base = r.rawBaselines.find((x) => x.protocol === spec.rawProtocol) ?? null;
    if (base) {
      const rv = base.recv;
      rows.push({
        what: `bare sendmmsg/recvmmsg, IP proto ${base.protocol} (raw_blast, batches of ${base.batch})`,
        packetBytes: rv ? rv.meanBytes.toFixed(0) : String(base.packetBytes),
        kpps: fmt(rv ? rv.pps / 1e3 : null, 1),
        gbps: fmt(rv?.gbps, 3),
        ratio: '1',
        met: '',
      });
    }
    const pps = outerPacketsPerSecond(p.tcp);
    const size = outerPacketBytes(p.tcp, spec);
    const basePps = base?.recv?.pps ?? null;
    rows.push({
      what: `overlayfwd ${spec.label}, outer packets a -> b during TCP 1 stream`,
      packetBytes: fmt(size, 0),
      kpps: fmt(pps === null ? null : pps / 1e3, 1),
      gbps: fmt(pps !== null && size !== null ? (pps * size * 8) / 1e9 : null, 3),
      ratio: ratio(pps, basePps),
      met: base ? `${metCell(ratioValue(pps, basePps), TARGET_RAW_VS_BARE)} (>= ${TARGET_RAW_VS_BARE}x)` : 'n/a (no baseline)',
    });
  }
  return rows;
}

export interface RoutesRow {
  what: string;
  value: string;
}

export function routesRows(r: NetnsResult): RoutesRow[] {
  const rt = r.routes;
  if (!rt) return [];
  const rows: RoutesRow[] = [];
  const gb = (bps: number | null | undefined) => fmt(bps === null || bps === undefined ? null : bps / 1e9, 3);
  const runs = (n: number) =>
    rt.runs
      .filter((x) => x.routes === n)
      .map((x) => gb(x.tcp?.bitsPerSecond))
      .join(', ');
  rows.push({ what: `TCP 1 stream, ${rt.smallRoutes} routes (1 peer), Gbit/s per run`, value: runs(rt.smallRoutes) || 'n/a' });
  rows.push({ what: `TCP 1 stream, ${rt.largeRoutes.toLocaleString('en-US')} routes (${rt.largePeers.toLocaleString('en-US')} peers), Gbit/s per run`, value: runs(rt.largeRoutes) || 'n/a' });
  rows.push({ what: `mean, ${rt.smallRoutes} routes, Gbit/s`, value: gb(rt.smallBitsPerSecond) });
  rows.push({ what: `mean, ${rt.largeRoutes.toLocaleString('en-US')} routes, Gbit/s`, value: gb(rt.largeBitsPerSecond) });
  rows.push({
    what: `ratio ${rt.largeRoutes.toLocaleString('en-US')} / ${rt.smallRoutes} (target >= ${TARGET_ROUTES})`,
    value: rt.ratio === null ? 'n/a' : `${rt.ratio.toFixed(3)} (${metCell(rt.ratio, TARGET_ROUTES) === 'yes' ? 'met' : 'not met'})`,
  });
  if (rt.replaceMs.length) rows.push({ what: 'peers.replace() both ends, ms per switch', value: rt.replaceMs.join(', ') });
  const pr = rt.profile;
  if (pr) {
    if (pr.error) rows.push({ what: 'profile (perf record -e cpu-clock)', value: `not taken: ${pr.error}` });
    else {
      const pct = (v: number | null) => (v === null ? 'n/a' : `${(v * 100).toFixed(2)} %`);
      rows.push({
        what: `profile of one more ${rt.largeRoutes.toLocaleString('en-US')}-route run: route lookup samples / this process's samples`,
        value: `${pr.routeSamples} / ${pr.samples} = ${pct(pr.routeShare)} (of the addon's ${pr.addonSamples}: ${pct(pr.routeShareOfAddon)})`,
      });
      rows.push({
        what: 'route symbols seen',
        value: pr.routeSymbols.length ? pr.routeSymbols.map((s) => `${s.symbol.replace(/\(.*$/, '')} ${s.percent.toFixed(2)} %`).join('; ') : 'none',
      });
      rows.push({
        what: 'top symbols of the process',
        value: pr.top
          .slice(0, 6)
          .map((s) => `${s.symbol.replace(/\(.*$/, '')} ${s.percent.toFixed(1)} %`)
          .join('; '),
      });
      rows.push({ what: 'profiled run throughput, Gbit/s (perf running; not in the means)', value: gb(pr.tcp?.bitsPerSecond) });
    }
  }
  return rows;
}

export interface TargetRow {
  target: string;
  figure: string;
  met: string;
}

/** Issue 4's targets, each with this run's figure. */
export function targetRows(r: NetnsResult): TargetRow[] {
  const rows: TargetRow[] = [];
  const ref = kernelReference(r).bitsPerSecond;
  for (const p of r.modePhases) {
    const spec = p.mode ? MODE_SPECS[p.mode] : null;
    if (!spec) continue;
    const rv = ratioValue(p.tcp?.bitsPerSecond, ref);
    const x = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(3)}x`);
    if (spec.transport === 'udp') {
      rows.push({ target: `${spec.label}: TCP 1 stream >= ${TARGET_UDP_MODES}x kernel VXLAN`, figure: x(rv), met: metCell(rv, TARGET_UDP_MODES) });
    } else if (spec.transport === 'esp') {
      rows.push({ target: `${spec.label}: TCP 1 stream >= ${TARGET_ESP}x kernel VXLAN (plaintext)`, figure: x(rv), met: metCell(rv, TARGET_ESP) });
    } else {
      rows.push({ target: `${spec.label}: TCP 1 stream >= ${TARGET_RAW_MODES}x kernel VXLAN`, figure: x(rv), met: metCell(rv, TARGET_RAW_MODES) });
      const base = r.rawBaselines.find((b) => b.protocol === spec.rawProtocol)?.recv?.pps ?? null;
      const rb = ratioValue(outerPacketsPerSecond(p.tcp), base);
      rows.push({ target: `${spec.label}: outer packets/s >= ${TARGET_RAW_VS_BARE}x bare sendmmsg/recvmmsg`, figure: x(rb), met: metCell(rb, TARGET_RAW_VS_BARE) });
    }
  }
  const rt = r.routes;
  if (rt) {
    rows.push({ target: `${rt.largeRoutes.toLocaleString('en-US')} routes >= ${TARGET_ROUTES}x the throughput with ${rt.smallRoutes}`, figure: rt.ratio === null ? 'n/a' : `${rt.ratio.toFixed(3)}x`, met: metCell(rt.ratio, TARGET_ROUTES) });
    const pr = rt.profile;
    if (pr) {
      const share = pr.error ? null : pr.routeShare;
      rows.push({
        target: `route lookup not visible in a profile (< ${TARGET_ROUTE_PROFILE_SHARE * 100} % of samples)`,
        figure: share === null ? `n/a${pr.error ? ` (${pr.error})` : ''}` : `${(share * 100).toFixed(2)} %`,
        met: share === null ? 'n/a' : share < TARGET_ROUTE_PROFILE_SHARE ? 'yes' : 'no',
      });
    }
  }
  return rows;
}
