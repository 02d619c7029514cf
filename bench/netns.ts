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
// All traffic is between the two lab namespaces (198.18.0.0/24 and 198.19.0.0/24 exist only
// there); the lab is destroyed in `finally`, and abortNetns() does the same from a signal handler.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Lab, commandExists, labUnavailableReason, type Host } from '../lib/lab';
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
  errors: string[];
}

/** The phases that ran, in order. */
export function netnsPhases(r: NetnsResult): PhaseResult[] {
  return [r.kernel, r.overlayfwd, r.overlayfwdWorkers2, r.overlayfwdNoOffloads].filter((p): p is PhaseResult => p !== null);
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

async function measureTcp(lab: Lab, a: Host, b: Host, durationSec: number, streams: number, inProcess: boolean): Promise<TcpResult> {
  let cpu0 = process.cpuUsage();
  let elu0 = performance.eventLoopUtilization();
  let host0 = hostBusySeconds();
  let cpu = cpu0;
  let elu = elu0;
  let hostCpu = 0;
  const run = await iperf(lab, a, b, durationSec, streams > 1 ? ['-P', String(streams)] : [], {
    before() {
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

function emptyPhase(label: string, workers: number | null, offloadsConfig: PhaseResult['offloadsConfig']): PhaseResult {
  return {
    label,
    workers,
    offloadsConfig,
    offloadsActive: null,
    devices: null,
    underlayPing: null,
    overlayPing: null,
    addedRttMs: null,
    tcp: null,
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

async function kernelPhase(lab: Lab, a: Host, b: Host, opts: NetnsOptions): Promise<PhaseResult> {
  const phase = emptyPhase('kernel', null, null);
  try {
    await lab.kernelVxlan(a, { vni: VNI, remotes: [UNDERLAY_B], addresses: [`${OVERLAY_A}/${OVERLAY_PREFIX}`], checksumOffload: true });
    await lab.kernelVxlan(b, { vni: VNI, remotes: [UNDERLAY_A], addresses: [`${OVERLAY_B}/${OVERLAY_PREFIX}`], checksumOffload: true });
    phase.devices = { a: { name: 'vx0', mtu: await deviceMtu(lab, a, 'vx0') }, b: { name: 'vx0', mtu: await deviceMtu(lab, b, 'vx0') } };
    await measurePhase(lab, a, b, phase, opts, { ping: true, tcp: true, tcpParallel: true, udp: true }, { dev: 'vx0', overlays: null });
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

function overlayConfig(lab: Lab, host: Host, address: string, peer: string, workers: number, offloads: OffloadsConfig): Record<string, unknown> {
  return {
    name: 'ovl0',
    netns: host.ns,
    device: { type: 'tap', name: 'ovl0', addresses: [`${address}/${OVERLAY_PREFIX}`] },
    encap: { type: 'vxlan', vni: VNI },
    underlay: { local: host.underlay },
    workers,
    offloads: { ...offloads },
    peers: [{ name: host.label === 'a' ? 'b' : 'a', endpoint: peer }],
    control: { socket: `${lab.tmpdir()}/${host.label}-ovl0.sock` },
  };
}

async function overlayPhase(lab: Lab, a: Host, b: Host, opts: NetnsOptions, workers: number, offloads: OffloadsConfig, what: MeasureWhat): Promise<PhaseResult> {
  const allOff = !offloads.tso && !offloads.udpGso && !offloads.udpGro;
  const phase = emptyPhase(`overlayfwd w=${workers}${allOff ? ' offloads off' : ''}`, workers, { ...offloads });
  const log = opts.log ?? (() => undefined);
  const overlays: Overlay[] = [];
  try {
    for (const [host, address, peer] of [
      [a, OVERLAY_A, UNDERLAY_B],
      [b, OVERLAY_B, UNDERLAY_A],
    ] as const) {
      const ov = await Overlay.create(overlayConfig(lab, host, address, peer, workers, offloads));
      overlays.push(ov);
      lab.onDestroy(() => ov.close());
    }
    const [oa, ob] = overlays as [Overlay, Overlay];
    phase.devices = { a: { name: oa.device.name, mtu: oa.device.mtu }, b: { name: ob.device.name, mtu: ob.device.mtu } };
    phase.offloadsActive = { a: { ...oa.stats().offloads.active }, b: { ...ob.stats().offloads.active } };
    log(`netns: ${phase.label}: offloads in use: a ${activeText(phase.offloadsActive.a)}, b ${activeText(phase.offloadsActive.b)}`);
    await measurePhase(lab, a, b, phase, opts, what, { dev: oa.device.name, overlays: [oa, ob] });
    recordFinalStats(phase, oa, ob);
  } catch (err) {
    if (aborted) throw err;
    phase.errors.push(`setup: ${errorText(err)}`);
    try {
      if (overlays.length === 2) recordFinalStats(phase, overlays[0]!, overlays[1]!);
    } catch {
      /* ignore */
    }
  } finally {
    for (const ov of overlays) await ov.close();
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
    errors: [],
  };
  const lab = await Lab.create({ prefix: 'ovbench' });
  activeLab = lab;
  try {
    const [a, b] = await lab.pair('a', 'b');
    if (a.underlay !== UNDERLAY_A || b.underlay !== UNDERLAY_B) throw new Error(`unexpected underlay addresses ${a.underlay} / ${b.underlay}`);
    log(`netns: namespaces ${a.ns} (${a.underlay}) and ${b.ns} (${b.underlay})`);
    await waitReachable(lab, a, UNDERLAY_B);

    result.kernel = await kernelPhase(lab, a, b, opts);
    result.overlayfwd = await overlayPhase(lab, a, b, opts, 1, OFFLOADS_ON, { ping: true, tcp: true, tcpParallel: true, udp: true });
    if (opts.workers2) {
      result.overlayfwdWorkers2 = await overlayPhase(lab, a, b, opts, 2, OFFLOADS_ON, { ping: false, tcp: true, tcpParallel: true, udp: false });
    }
    if (opts.offloadsOff) {
      result.overlayfwdNoOffloads = await overlayPhase(lab, a, b, opts, 1, OFFLOADS_OFF, { ping: false, tcp: true, tcpParallel: false, udp: false });
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
