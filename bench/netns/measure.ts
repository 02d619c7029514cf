// Measurement primitives of the netns bench: ping RTT, iperf3 TCP throughput and UDP packets per
// second, the CPU time (this process, the whole host) and event loop utilization around them,
// and the counters (devices, overlayfwd totals and offloads) before and after each test.
import { performance } from 'node:perf_hooks';
import type { Host, Lab } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import { diffCounters } from '../../lib/stats';
import type { Counters, OffloadStats } from '../../lib/types';
import { hostBusySeconds } from '../proc';
import { ceilingSnapshot, diffCeilingStats, summarizeCeiling, type CeilingPair, type CeilingStats } from './ceiling';
import { OVERLAY_B, UDP_PAYLOAD } from './modes';
import type { LinkCounters, OffloadCounters, OffloadSummary, PingRtt, TcpResult, TestCounters, UdpResult } from './types';

const IPERF_PORT = 5201;

// ---- interruption ------------------------------------------------------------------------------

let aborted = false;

/** Marks the run as interrupted (a signal; later measurements fail fast), or at its start as not. */
export function setAborted(value: boolean): void {
  aborted = value;
}

export function isAborted(): boolean {
  return aborted;
}

export function checkAborted(): void {
  if (aborted) throw new Error('interrupted');
}

// ---- small helpers -----------------------------------------------------------------------------

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function deviceMtu(lab: Lab, host: Host, dev: string): Promise<number | null> {
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

/** What a phase runs on: the overlay device name in both namespaces, and the overlays (overlayfwd) or the ceiling pair. */
export interface PhaseContext {
  dev: string;
  overlays: [Overlay, Overlay] | null;
  ceiling?: CeilingPair | null;
}

interface Snapshot {
  links: [LinkCounters | null, LinkCounters | null];
  overlay: [Counters, Counters] | null;
  offloads: [OffloadCounters, OffloadCounters] | null;
  ceiling: { a: CeilingStats; b: CeilingStats } | null;
}

async function snapshot(lab: Lab, a: Host, b: Host, ctx: PhaseContext): Promise<Snapshot> {
  const links: Snapshot['links'] = [await linkCounters(lab, a, ctx.dev), await linkCounters(lab, b, ctx.dev)];
  const ceiling = ctx.ceiling ? await ceilingSnapshot(ctx.ceiling) : null;
  if (!ctx.overlays) return { links, overlay: null, offloads: null, ceiling };
  const [sa, sb] = [ctx.overlays[0].stats(), ctx.overlays[1].stats()];
  return { links, overlay: [sa.totals, sb.totals], offloads: [offloadCounters(sa.offloads), offloadCounters(sb.offloads)], ceiling };
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
  let ceiling: TestCounters['ceiling'] = null;
  if (after.ceiling && before.ceiling) {
    const ca = diffCeilingStats(after.ceiling.a, before.ceiling.a);
    const cb = diffCeilingStats(after.ceiling.b, before.ceiling.b);
    ceiling = { a: ca, b: cb, summary: summarizeCeiling(ca, cb) };
  }
  return { devices: la && lb ? { a: la, b: lb } : null, overlayfwd, offloads, ceiling };
}

/** Runs `fn` between two counter snapshots; a failed snapshot leaves `counters` null. */
export async function withCounters<T extends { counters: TestCounters | null }>(lab: Lab, a: Host, b: Host, ctx: PhaseContext, fn: () => Promise<T>): Promise<T> {
  const before = await snapshot(lab, a, b, ctx).catch(() => null);
  const result = await fn();
  const after = await snapshot(lab, a, b, ctx).catch(() => null);
  result.counters = before && after ? diffSnapshots(after, before) : null;
  return result;
}

/** Quantile q (0..1) of sorted values, interpolated between neighbours. */
export function quantile(sorted: number[], q: number): number | null {
  if (!sorted.length) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  // ping prints three decimals (µs): six are plenty
  return Math.round((sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo)) * 1e6) / 1e6;
}

/**
 * `ping -n -c N -i INTERVAL ADDRESS`: every reply's time (the median is the figure: on a shared
 * VM the mean is dominated by a few replies that waited for a CPU) and the summary line.
 */
export async function pingRtt(lab: Lab, from: Host, address: string, count: number, intervalSec: number): Promise<PingRtt> {
  checkAborted();
  const deadline = Math.ceil(count * intervalSec * 2 + 10);
  const res = await lab.exec(from, 'ping', ['-n', '-c', String(count), '-i', String(intervalSec), '-w', String(deadline), address], {
    allowFailure: true,
    timeoutMs: (deadline + 10) * 1000,
  });
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(res.stdout);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(res.stdout);
  if (!counts || !rtt) throw new Error(`ping ${address}: no summary (exit ${res.code}): ${(res.stdout + res.stderr).trim().slice(-500)}`);
  const received = Number(counts[2]);
  if (received === 0) throw new Error(`ping ${address}: no reply`);
  const times = [...res.stdout.matchAll(/icmp_seq=\d+ .*time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((x, y) => x - y);
  return {
    transmitted: Number(counts[1]),
    received,
    intervalSec,
    samples: times.length,
    medianMs: quantile(times, 0.5),
    p10Ms: quantile(times, 0.1),
    p90Ms: quantile(times, 0.9),
    p99Ms: quantile(times, 0.99),
    minMs: Number(rtt[1]),
    avgMs: Number(rtt[2]),
    maxMs: Number(rtt[3]),
    mdevMs: Number(rtt[4]),
  };
}

/** Pings until a reply comes back (ARP, FDB learning); throws after `timeoutMs`. */
export async function waitReachable(lab: Lab, from: Host, address: string, timeoutMs = 10_000): Promise<void> {
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

export async function measureTcp(lab: Lab, a: Host, b: Host, durationSec: number, streams: number, inProcess: boolean, onStart?: () => void): Promise<TcpResult> {
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

export async function measureUdp(lab: Lab, a: Host, b: Host, durationSec: number): Promise<UdpResult> {
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
