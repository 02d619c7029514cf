// What the netns bench reports: ratios to the kernel VXLAN device, the targets, and the tables
// (rows of strings) that bench/run.ts prints as Markdown and writes to bench/results/latest.md.
import type { OffloadStats } from '../../lib/types';
import { MODE_SPECS, UDP_PAYLOAD, type ModeSpec } from './modes';
import type { Headline, HeadlineFigure, NetnsResult, PhaseResult, TcpResult, TestCounters, UdpResult } from './types';

/** The phases that ran, in order. */
export function netnsPhases(r: NetnsResult): PhaseResult[] {
  return [r.kernel, r.ceiling, r.overlayfwd, r.overlayfwdWorkers2, r.overlayfwdNoOffloads, r.kernel6, ...r.modePhases, r.kernelEnd].filter((p): p is PhaseResult => p !== null);
}

/** "tso udpGso udpGro", or "none". */
export function activeText(active: OffloadStats['active'] | null | undefined): string {
  if (!active) return 'n/a';
  const on = (['tso', 'udpGso', 'udpGro'] as const).filter((k) => active[k]);
  return on.length ? on.join(' ') : 'none';
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

/** bits/s as Gbit/s (null stays null). */
function gbit(bps: number | null | undefined): number | null {
  return bps === null || bps === undefined ? null : bps / 1e9;
}

function retransmits(t: TcpResult | null | undefined): string {
  return t && t.retransmits !== null ? String(t.retransmits) : 'n/a';
}

function ratio(ovl: number | null | undefined, kernel: number | null | undefined, note = ''): string {
  if (ovl === null || ovl === undefined || kernel === null || kernel === undefined || !(kernel > 0) || !Number.isFinite(ovl)) return 'n/a';
  const r = ovl / kernel;
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(3)}${note ? ` ${note}` : ''}`;
}

function pingTail(p: PhaseResult['overlayPing'] | undefined): string {
  return p ? `${fmt(p.p90Ms, 3)} / ${fmt(p.avgMs, 3)}` : 'n/a';
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
  const gbps = (t: TcpResult | null | undefined) => gbit(t?.bitsPerSecond);
  const tput = (metric: string, kt: TcpResult | null | undefined, ot: TcpResult | null | undefined) =>
    rows.push({ metric, kernel: fmt(gbps(kt), 3), overlayfwd: fmt(gbps(ot), 3), ratio: ratio(gbps(ot), gbps(kt)) });
  tput('TCP 1 stream, w=1, Gbit/s', k?.tcp, o?.tcp);
  if (w2) tput('TCP 1 stream, w=2, Gbit/s', k?.tcp, w2.tcp);
  if (n > 0) {
    tput(`TCP ${n} streams, w=1, Gbit/s`, k?.tcpParallel, o?.tcpParallel);
    if (w2) tput(`TCP ${n} streams, w=2, Gbit/s`, k?.tcpParallel, w2.tcpParallel);
  }
  if (off) tput('TCP 1 stream, w=1, offloads off, Gbit/s', k?.tcp, off.tcp);
  rows.push({ metric: 'TCP retransmits (1 stream, w=1)', kernel: retransmits(k?.tcp), overlayfwd: retransmits(o?.tcp), ratio: '' });

  const kpps = (u: UdpResult | null | undefined) => (u ? u.receivedPps / 1e3 : null);
  rows.push({ metric: `UDP ${UDP_PAYLOAD} B, kpps received`, kernel: fmt(kpps(k?.udp), 1), overlayfwd: fmt(kpps(o?.udp), 1), ratio: ratio(kpps(o?.udp), kpps(k?.udp)) });
  const sentK = (u: UdpResult | null | undefined) => (u && u.sentPps !== null ? u.sentPps / 1e3 : null);
  rows.push({ metric: `UDP ${UDP_PAYLOAD} B, kpps sent (client)`, kernel: fmt(sentK(k?.udp), 1), overlayfwd: fmt(sentK(o?.udp), 1), ratio: '' });

  rows.push({ metric: 'underlay ping RTT median, ms (baseline)', kernel: fmt(k?.underlayPing?.medianMs, 3), overlayfwd: fmt(o?.underlayPing?.medianMs, 3), ratio: '' });
  rows.push({
    metric: 'overlay ping RTT median, ms',
    kernel: fmt(k?.overlayPing?.medianMs, 3),
    overlayfwd: fmt(o?.overlayPing?.medianMs, 3),
    ratio: ratio(o?.overlayPing?.medianMs, k?.overlayPing?.medianMs, '(total)'),
  });
  rows.push({
    metric: 'added RTT (overlay - underlay, medians), ms',
    kernel: fmt(k?.addedRttMs, 3),
    overlayfwd: fmt(o?.addedRttMs, 3),
    ratio: ratio(o?.addedRttMs, k?.addedRttMs, '(added)'),
  });
  rows.push({ metric: 'overlay ping RTT p90 / avg, ms', kernel: pingTail(k?.overlayPing), overlayfwd: pingTail(o?.overlayPing), ratio: '' });

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

// ---- kernel, ceiling, overlayfwd ---------------------------------------------------------------

function figure(kernel: number | null | undefined, ceiling: number | null | undefined, overlayfwd: number | null | undefined): HeadlineFigure {
  const v = (x: number | null | undefined) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  const [k, c, o] = [v(kernel), v(ceiling), v(overlayfwd)];
  const div = (x: number | null, y: number | null) => (x === null || y === null || !(y > 0) ? null : x / y);
  return { kernel: k, ceiling: c, overlayfwd: o, overlayfwdOverKernel: div(o, k), overlayfwdOverCeiling: div(o, c), ceilingOverKernel: div(c, k) };
}

/** The kernel's first phase, the ceiling and overlayfwd w=1 (vxlan) of the run, side by side; null without vxlan. */
export function headline(r: NetnsResult): Headline | null {
  const [k, c, o] = [r.kernel, r.ceiling, r.overlayfwd];
  if (!o && !c) return null;
  const gbps = (p: PhaseResult | null) => gbit(p?.tcp?.bitsPerSecond);
  const kpps = (p: PhaseResult | null) => (p?.udp ? p.udp.receivedPps / 1e3 : null);
  // Frames into b's overlay device. overlayfwd writes a train of same-size UDP datagrams as one
  // USO super-frame, which the device counts as one packet: its own count of the datagrams it
  // delivered is the comparable figure (the kernel and the ceiling write one datagram each).
  const forwarded = (p: PhaseResult | null) => {
    const u = p?.udp;
    const rx = u?.counters?.overlayfwd?.b.rxPackets ?? u?.counters?.devices?.b.rxPackets;
    return u && typeof rx === 'number' && u.seconds > 0 ? rx / u.seconds / 1e3 : null;
  };
  return {
    tcpGbps: figure(gbps(k), gbps(c), gbps(o)),
    udp64Kpps: figure(kpps(k), kpps(c), kpps(o)),
    udp64ForwardedKpps: figure(forwarded(k), forwarded(c), forwarded(o)),
    rttMedianMs: figure(k?.overlayPing?.medianMs, c?.overlayPing?.medianMs, o?.overlayPing?.medianMs),
    addedRttMedianMs: figure(k?.addedRttMs, c?.addedRttMs, o?.addedRttMs),
    hostCpuSecondsPerGB: figure(k?.tcp?.hostCpuSecondsPerGB, c?.tcp?.hostCpuSecondsPerGB, o?.tcp?.hostCpuSecondsPerGB),
  };
}

export interface HeadlineRow {
  metric: string;
  kernel: string;
  ceiling: string;
  overlayfwd: string;
  overlayfwdOverKernel: string;
  overlayfwdOverCeiling: string;
  ceilingOverKernel: string;
}

/** "metric | kernel | ceiling | overlayfwd | overlayfwd / kernel | overlayfwd / ceiling | ceiling / kernel". */
export function headlineRows(r: NetnsResult): HeadlineRow[] {
  const h = r.headline ?? headline(r);
  if (!h) return [];
  const x = (v: number | null) => (v === null ? 'n/a' : v >= 10 ? v.toFixed(1) : v.toFixed(3));
  const row = (metric: string, f: HeadlineFigure, digits: number): HeadlineRow => ({
    metric,
    kernel: fmt(f.kernel, digits),
    ceiling: fmt(f.ceiling, digits),
    overlayfwd: fmt(f.overlayfwd, digits),
    overlayfwdOverKernel: x(f.overlayfwdOverKernel),
    overlayfwdOverCeiling: x(f.overlayfwdOverCeiling),
    ceilingOverKernel: x(f.ceilingOverKernel),
  });
  return [
    row('TCP 1 stream, Gbit/s', h.tcpGbps, 3),
    row(`UDP ${UDP_PAYLOAD} B, kpps received`, h.udp64Kpps, 1),
    row(`UDP ${UDP_PAYLOAD} B, kpps forwarded (into b's overlay device)`, h.udp64ForwardedKpps, 1),
    row('overlay ping RTT median, ms', h.rttMedianMs, 3),
    row('added RTT (overlay - underlay, medians), ms', h.addedRttMedianMs, 3),
    row('host CPU s per GB (TCP 1 stream)', h.hostCpuSecondsPerGB, 3),
  ];
}

export interface CeilingRow {
  test: string;
  superFrames: string;
  segmentsPerSuperFrame: string;
  segmentsPerGsoSend: string;
  segmentsPerDatagram: string;
  segmentsPerCoalescedWrite: string;
  framesPerMessage: string;
  dropsErrors: string;
}

/** The ceiling's counters per test, data direction a -> b. */
export function ceilingRows(r: NetnsResult): CeilingRow[] {
  const c = r.ceiling;
  if (!c) return [];
  const rows: CeilingRow[] = [];
  const tests: [string, { counters: TestCounters | null } | null][] = [
    ['TCP 1 stream', c.tcp],
    [`UDP ${UDP_PAYLOAD} B`, c.udp],
  ];
  const f1 = (v: number | null) => fmt(v, 1);
  for (const [test, t] of tests) {
    if (!t) continue;
    const s = t.counters?.ceiling?.summary;
    if (!s) {
      rows.push({ test, superFrames: 'n/a', segmentsPerSuperFrame: 'n/a', segmentsPerGsoSend: 'n/a', segmentsPerDatagram: 'n/a', segmentsPerCoalescedWrite: 'n/a', framesPerMessage: 'n/a', dropsErrors: 'n/a' });
      continue;
    }
    rows.push({
      test,
      superFrames: String(s.superFrames),
      segmentsPerSuperFrame: f1(s.segmentsPerSuperFrame),
      segmentsPerGsoSend: f1(s.segmentsPerGsoSend),
      segmentsPerDatagram: f1(s.segmentsPerDatagram),
      segmentsPerCoalescedWrite: f1(s.segmentsPerCoalescedWrite),
      framesPerMessage: `${f1(s.framesPerMessage)} / ${f1(s.framesPerSendmmsg)}`,
      dropsErrors: `${s.drops} / ${s.errors}`,
    });
  }
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

/**
 * The targets (the zero-copy issue's), each a ratio measured within one run: vxlan's single-stream
 * TCP against the kernel VXLAN device and against the bench's ceiling forwarder; the other modes'
 * against overlayfwd's own vxlan (a mode should cost about what its header costs); 64-byte UDP
 * and host CPU per GB against the kernel device; raw-IP modes against a bare raw blast.
 */
export const TARGET_VXLAN_VS_KERNEL = 0.4;
export const TARGET_VXLAN_VS_CEILING = 0.95;
/** geneve, gre-udp and vxlan over an IPv6 underlay: within 10 % of vxlan over IPv4. */
export const TARGET_UDP_MODES_VS_VXLAN = 0.9;
/** esp aes-256-gcm: the cipher is most of its cost once the plaintext path copies nothing. */
export const TARGET_ESP_VS_VXLAN = 0.45;
export const TARGET_UDP64_VS_KERNEL = 1.0;
/** Host CPU seconds per GB moved, overlayfwd vxlan ÷ the kernel device: at most this. */
export const TARGET_CPU_PER_GB_VS_KERNEL = 2.0;
/** A raw-IP mode's outer packets per second as a fraction of the bare raw blast's. */
export const TARGET_RAW_VS_BARE = 0.8;
/** Throughput with 100,000 routes as a fraction of that with 10. */
export const TARGET_ROUTES = 0.9;
/** "Not visible in a profile": below this share of the forwarding process's samples. */
export const TARGET_ROUTE_PROFILE_SHARE = 0.01;

/** A mode's TCP target against overlayfwd's vxlan (IPv4), or null (vxlan itself; raw-IP modes, whose target is the raw blast). */
export function vxlanTarget(spec: ModeSpec): number | null {
  if (spec.transport === 'esp') return TARGET_ESP_VS_VXLAN;
  if (spec.transport === 'udp' && spec.mode !== 'vxlan') return TARGET_UDP_MODES_VS_VXLAN;
  return null;
}

/** overlayfwd vxlan (IPv4, w=1) of the run: the reference of the other modes. */
export function vxlanPhase(r: NetnsResult): PhaseResult | null {
  return r.overlayfwd ?? r.modePhases.find((p) => p.mode === 'vxlan') ?? null;
}

/**
 * A phase's single-stream TCP ÷ vxlan's. Each is first taken against the kernel run right before
 * it where there is one (the machine's speed drifts over a run; the pairing cancels that), else
 * the two throughputs as they are.
 */
export function ratioToVxlan(r: NetnsResult, p: PhaseResult): number | null {
  const v = vxlanPhase(r);
  if (!v || v === p) return null;
  const paired = (x: PhaseResult) => ratioValue(x.tcp?.bitsPerSecond, x.pairedKernel?.bitsPerSecond);
  const [pp, vp] = [paired(p), paired(v)];
  if (pp !== null && vp !== null) return ratioValue(pp, vp);
  return ratioValue(p.tcp?.bitsPerSecond, v.tcp?.bitsPerSecond);
}

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
  const rows: ModeRow[] = [];
  const mtuOf = (p: PhaseResult | null) => (p?.devices ? String(p.devices.a.mtu ?? '?') : 'n/a');
  const kr = kernelReference(r);
  if (kr.runs.length) {
    const lo = Math.min(...kr.runs) / 1e9;
    const hi = Math.max(...kr.runs) / 1e9;
    rows.push({
      mode: `kernel VXLAN, IPv4 underlay (vx0): median of ${kr.runs.length} run${kr.runs.length > 1 ? 's' : ''}${kr.runs.length > 1 ? ` (${lo.toFixed(2)}-${hi.toFixed(2)})` : ''}`,
      mtu: mtuOf(r.kernel),
      gbps: fmt(gbit(ref), 3),
      ratio: '1',
      ratioSameFamily: '',
      ratioPaired: '',
      hostCpuPerGB: fmt(r.kernel?.tcp?.hostCpuSecondsPerGB, 2),
      retransmits: retransmits(r.kernel?.tcp),
      target: 'reference',
      met: '',
    });
  }
  if (r.kernel6) {
    const p = r.kernel6;
    rows.push({
      mode: 'kernel VXLAN, IPv6 underlay',
      mtu: mtuOf(p),
      gbps: fmt(gbit(p.tcp?.bitsPerSecond), 3),
      ratio: ratio(p.tcp?.bitsPerSecond, ref),
      ratioSameFamily: ratio(p.tcp?.bitsPerSecond, k6),
      ratioPaired: '',
      hostCpuPerGB: fmt(p.tcp?.hostCpuSecondsPerGB, 2),
      retransmits: retransmits(p.tcp),
      target: 'reference (IPv6)',
      met: '',
    });
  }
  const phases: PhaseResult[] = [...(r.overlayfwd ? [r.overlayfwd] : []), ...r.modePhases];
  for (const p of phases) {
    const spec = MODE_SPECS[p.mode ?? 'vxlan'];
    const bps = p.tcp?.bitsPerSecond;
    const rv = ratioValue(bps, ref);
    const t = vxlanTarget(spec);
    const rx = ratioToVxlan(r, p);
    rows.push({
      mode: `overlayfwd ${spec.label}`,
      mtu: mtuOf(p),
      gbps: fmt(gbit(bps), 3),
      ratio: ratio(bps, ref),
      ratioSameFamily: spec.family === 6 ? ratio(bps, k6) : '',
      ratioPaired: ratio(bps, p.pairedKernel?.bitsPerSecond),
      hostCpuPerGB: fmt(p.tcp?.hostCpuSecondsPerGB, 2),
      retransmits: retransmits(p.tcp),
      target: t ? `>= ${t}x vxlan (${rx === null ? 'n/a' : `${rx.toFixed(3)}x`})` : '',
      met: t ? metCell(rx, t) : '',
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
  const gb = (bps: number | null | undefined) => fmt(gbit(bps), 3);
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

/** The targets, each with this run's figure. */
export function targetRows(r: NetnsResult): TargetRow[] {
  const rows: TargetRow[] = [];
  const x = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(3)}x`);
  const h = r.headline ?? headline(r);
  if (h) {
    const vx = vxlanPhase(r);
    const paired = ratioValue(vx?.tcp?.bitsPerSecond, vx?.pairedKernel?.bitsPerSecond) ?? h.tcpGbps.overlayfwdOverKernel;
    rows.push({ target: `vxlan: TCP 1 stream >= ${TARGET_VXLAN_VS_KERNEL}x the kernel VXLAN device (paired)`, figure: x(paired), met: metCell(paired, TARGET_VXLAN_VS_KERNEL) });
    const c = h.tcpGbps.overlayfwdOverCeiling;
    rows.push({ target: `vxlan: TCP 1 stream >= ${TARGET_VXLAN_VS_CEILING}x the ceiling forwarder`, figure: x(c), met: metCell(c, TARGET_VXLAN_VS_CEILING) });
    const u = h.udp64Kpps.overlayfwdOverKernel;
    rows.push({ target: `vxlan: ${UDP_PAYLOAD}-byte UDP >= ${TARGET_UDP64_VS_KERNEL}x the kernel device's packets/s`, figure: x(u), met: metCell(u, TARGET_UDP64_VS_KERNEL) });
    const cpu = h.hostCpuSecondsPerGB.overlayfwdOverKernel;
    rows.push({
      target: `vxlan: host CPU s per GB <= ${TARGET_CPU_PER_GB_VS_KERNEL}x the kernel device's`,
      figure: x(cpu),
      met: cpu === null ? 'n/a' : cpu <= TARGET_CPU_PER_GB_VS_KERNEL ? 'yes' : 'no',
    });
  }
  for (const p of r.modePhases) {
    const spec = p.mode ? MODE_SPECS[p.mode] : null;
    if (!spec) continue;
    const t = vxlanTarget(spec);
    if (t !== null) {
      const rv = ratioToVxlan(r, p);
      rows.push({ target: `${spec.label}: TCP 1 stream >= ${t}x overlayfwd vxlan (IPv4)`, figure: x(rv), met: metCell(rv, t) });
    }
    if (spec.transport === 'raw') {
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
