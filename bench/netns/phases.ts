// The phases of the netns bench: each builds its overlay between hosts a and b (the kernel's VXLAN
// device, or overlayfwd in both namespaces), runs its tests and takes the overlay down again.
import { execFileSync } from 'node:child_process';
import { verifiedTransfer, VXLAN_PORT, type Host, type Lab } from '../../lab';
import { Overlay } from '../../lib/overlay';
import { buildCeiling, CEILING_DEV, ceilingSourceSha256, startCeilingPair, stopCeilingPair, type CeilingPair } from './ceiling';
import { checkAborted, deviceMtu, errorText, isAborted, measureTcp, measureUdp, pingRtt, waitReachable, withCounters, type PhaseContext } from './measure';
import {
  BENCH_SAS,
  MODE_SPECS,
  OFFLOADS_OFF,
  OFFLOADS_ON,
  otherSide,
  OVERLAY,
  OVERLAY_B,
  OVERLAY_PREFIX,
  UDP_PAYLOAD,
  UNDERLAY,
  UNDERLAY_A,
  UNDERLAY_B,
  VNI,
  type BenchMode,
  type ModeSpec,
  type OffloadsConfig,
  type Side,
} from './modes';
import { rawBaselineRunner } from './raw-baseline';
import { activeText } from './report';
import type { CeilingInfo, CeilingPhaseResult, NetnsOptions, NetnsResult, PhaseResult } from './types';

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
    if (isAborted()) throw err;
    const msg = `${what}: ${errorText(err)}`;
    phase.errors.push(msg);
    log(`netns: ${phase.label}: FAILED ${msg}`);
    return null;
  }
}

/** Which tests a phase runs. */
interface MeasureWhat {
  ping: boolean;
  tcp: boolean;
  /** The parallel TCP test (if opts.parallel > 0). */
  tcpParallel: boolean;
  udp: boolean;
}

const TCP_ONLY: MeasureWhat = { ping: false, tcp: true, tcpParallel: false, udp: false };

async function measurePhase(lab: Lab, a: Host, b: Host, phase: PhaseResult, opts: NetnsOptions, what: MeasureWhat, ctx: PhaseContext): Promise<void> {
  const inProcess = ctx.overlays !== null;
  const log = opts.log ?? (() => undefined);
  await waitReachable(lab, a, OVERLAY_B);
  if (what.ping) {
    const ping = (address: string) => () => pingRtt(lab, a, address, opts.pingCount, opts.pingIntervalSec);
    phase.underlayPing = await attempt(phase, `underlay ping x${opts.pingCount} -i ${opts.pingIntervalSec}`, log, ping(UNDERLAY_B));
    phase.overlayPing = await attempt(phase, `overlay ping x${opts.pingCount} -i ${opts.pingIntervalSec}`, log, ping(OVERLAY_B));
    const [u, o] = [phase.underlayPing?.medianMs, phase.overlayPing?.medianMs];
    if (typeof u === 'number' && typeof o === 'number') phase.addedRttMs = o - u;
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
    const { a: la, b: lb } = UNDERLAY[family];
    await lab.kernelVxlan(a, { vni: VNI, local: la, remotes: [lb], addresses: [`${OVERLAY.a}/${OVERLAY_PREFIX}`], checksumOffload: true });
    await lab.kernelVxlan(b, { vni: VNI, local: lb, remotes: [la], addresses: [`${OVERLAY.b}/${OVERLAY_PREFIX}`], checksumOffload: true });
    phase.devices = { a: { name: 'vx0', mtu: await deviceMtu(lab, a, 'vx0') }, b: { name: 'vx0', mtu: await deviceMtu(lab, b, 'vx0') } };
    await measurePhase(lab, a, b, phase, opts, what, { dev: 'vx0', overlays: null });
  } catch (err) {
    if (isAborted()) throw err;
    phase.errors.push(`setup: ${errorText(err)}`);
  } finally {
    // Free port 4789 and the overlay addresses for overlayfwd.
    if (!isAborted() && !lab.isDestroyed) {
      for (const h of [a, b]) await lab.ip(h, ['link', 'del', 'vx0'], { allowFailure: true });
    }
  }
  return phase;
}

export interface OverlaySetup {
  spec: ModeSpec;
  workers: number;
  offloads: OffloadsConfig;
  /** Peers of each end (default: the other end, routed by its /32 on a TUN device). */
  peers?: (host: Host) => Record<string, unknown>[];
  /** Extra top-level config (e.g. limits). */
  extra?: Record<string, unknown>;
}

function sideOf(host: Host): Side {
  return host.label === 'a' ? 'a' : 'b';
}

/** The other end of `host` as its only peer: underlay endpoint of the spec's family, its overlay /32 on TUN. */
export function defaultPeer(host: Host, spec: ModeSpec): Record<string, unknown> {
  const self = sideOf(host);
  const other = otherSide(self);
  const peer: Record<string, unknown> = { name: other, endpoint: UNDERLAY[spec.family][other] };
  if (spec.device === 'tun') peer['allowedIps'] = [`${OVERLAY[other]}/32`];
  if (spec.transport === 'esp') peer['sa'] = { ...BENCH_SAS[self] };
  return peer;
}

function overlayConfig(lab: Lab, host: Host, setup: OverlaySetup): Record<string, unknown> {
  const { spec } = setup;
  const self = sideOf(host);
  return {
    name: 'ovl0',
    netns: host.ns,
    device: { type: spec.device, name: 'ovl0', addresses: [`${OVERLAY[self]}/${OVERLAY_PREFIX}`] },
    encap: { ...spec.encap },
    underlay: { local: UNDERLAY[spec.family][self] },
    workers: setup.workers,
    offloads: { ...setup.offloads },
    peers: setup.peers ? setup.peers(host) : [defaultPeer(host, spec)],
    control: { socket: `${lab.tmpdir()}/${host.label}-ovl0.sock` },
    ...(setup.extra ?? {}),
  };
}

/** Starts one overlayfwd per namespace; the caller closes them. */
export async function startOverlays(lab: Lab, a: Host, b: Host, setup: OverlaySetup): Promise<[Overlay, Overlay]> {
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
    if (isAborted()) throw err;
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

/** Switches IPv6 on for the underlay veth of `host` and gives it its IPv6 underlay address/64 without DAD. */
export async function addIpv6Underlay(lab: Lab, host: Host): Promise<void> {
  await lab.exec(host, 'sysctl', ['-q', '-w', `net.ipv6.conf.${host.underlayDev}.disable_ipv6=0`]);
  await lab.ip(host, ['addr', 'add', `${UNDERLAY[6][sideOf(host)]}/64`, 'dev', host.underlayDev, 'nodad']);
}

/** ceiling_vxlan's build line (bench/netns/ceiling.ts buildCeiling). */
const CEILING_BUILD = 'cc -O2 -Wall -pthread';

/**
 * The ceiling: ceiling_vxlan in both namespaces (TAP ceil0, the overlay addresses, VNI 42, UDP
 * 4789), checked with a sha256-verified transfer before it is measured like overlayfwd w=1:
 * pings, TCP 1 stream, UDP 64 B.
 */
async function ceilingPhase(lab: Lab, a: Host, b: Host, opts: NetnsOptions, tmp: string): Promise<CeilingPhaseResult> {
  const log = opts.log ?? (() => undefined);
  const info: CeilingInfo = {
    source: 'bench/ceiling/ceiling_vxlan.c',
    sourceSha256: null,
    build: CEILING_BUILD,
    threads: opts.ceilingThreads,
    ready: null,
    checksum: null,
    sanity: null,
    finalStats: null,
  };
  const phase: CeilingPhaseResult = { ...emptyPhase('ceiling', null, null, null, 4, 'tap'), ceiling: info };
  let pair: CeilingPair | null = null;
  try {
    info.sourceSha256 = ceilingSourceSha256();
    const binary = buildCeiling(tmp);
    try {
      info.checksum = JSON.parse(execFileSync(binary, ['--checksum-selftest'], { encoding: 'utf8', timeout: 30_000 }).trim()) as CeilingInfo['checksum'];
    } catch (err) {
      throw new Error(`ceiling_vxlan --checksum-selftest failed: ${errorText(err)}`);
    }
    if (!info.checksum?.ok) throw new Error(`ceiling_vxlan --checksum-selftest: ${JSON.stringify(info.checksum)}`);
    log(`netns: ceiling: checksum ${info.checksum.gbytesPerSecond1398.toFixed(1)} GB/s over 1398-byte slices, ${info.checksum.gbytesPerSecond65536.toFixed(1)} GB/s over 64 KB`);
    pair = await startCeilingPair(
      lab,
      binary,
      [
        { host: a, local: UNDERLAY_A, remote: UNDERLAY_B, address: `${OVERLAY.a}/${OVERLAY_PREFIX}` },
        { host: b, local: UNDERLAY_B, remote: UNDERLAY_A, address: `${OVERLAY.b}/${OVERLAY_PREFIX}` },
      ],
      { vni: VNI, port: VXLAN_PORT, threads: opts.ceilingThreads },
    );
    info.ready = pair.ready;
    phase.devices = { a: { name: CEILING_DEV, mtu: await deviceMtu(lab, a, CEILING_DEV) }, b: { name: CEILING_DEV, mtu: await deviceMtu(lab, b, CEILING_DEV) } };
    log(
      `netns: ceiling: ${CEILING_DEV} MTU ${pair.ready.a.mtu}, ${pair.ready.a.threads} forwarding thread(s) per end, gso_max_segs ${pair.ready.a.gsoMaxSegs}, ` +
        `UDP_GRO ${pair.ready.b.udpGro ? 'on' : 'off'}`,
    );
    await waitReachable(lab, a, OVERLAY_B);
    const sanity = await attempt(phase, 'sanity: 16 MB TCP a -> b, sha256 verified', log, async () => {
      const r = await verifiedTransfer(lab, { from: a, to: b, address: OVERLAY_B, megabytes: 16, timeoutMs: 60_000 });
      return { bytes: r.bytes, sha256: r.sha256, seconds: r.seconds };
    });
    if (!sanity) throw new Error('the sanity transfer failed: not measured');
    info.sanity = sanity;
    await measurePhase(lab, a, b, phase, opts, { ping: true, tcp: true, tcpParallel: false, udp: true }, { dev: CEILING_DEV, overlays: null, ceiling: pair });
  } catch (err) {
    if (isAborted()) throw err;
    phase.errors.push(`setup: ${errorText(err)}`);
    log(`netns: ceiling: FAILED ${errorText(err)}`);
  } finally {
    if (pair) info.finalStats = await stopCeilingPair(pair);
  }
  return phase;
}

/** The IPv4/TAP vxlan phases, in this order: the NetnsResult field each fills, its config and tests. */
const VXLAN_PHASES: {
  field: 'overlayfwd' | 'overlayfwdWorkers2' | 'overlayfwdNoOffloads';
  label: string;
  workers: number;
  offloads: OffloadsConfig;
  what: MeasureWhat;
  /** Whether the options ask for it. */
  wanted: (opts: NetnsOptions) => boolean;
  /** Paired with the kernel phase that runs right before it. */
  paired: boolean;
}[] = [
  { field: 'overlayfwd', label: 'overlayfwd w=1', workers: 1, offloads: OFFLOADS_ON, what: { ping: true, tcp: true, tcpParallel: true, udp: true }, wanted: () => true, paired: true },
  { field: 'overlayfwdWorkers2', label: 'overlayfwd w=2', workers: 2, offloads: OFFLOADS_ON, what: { ping: false, tcp: true, tcpParallel: true, udp: false }, wanted: (o) => o.workers2, paired: false },
  { field: 'overlayfwdNoOffloads', label: 'overlayfwd w=1 offloads off', workers: 1, offloads: OFFLOADS_OFF, what: TCP_ONLY, wanted: (o) => o.offloadsOff, paired: false },
];

/** The first kernel phase, then (when vxlan is selected) the ceiling and the vxlan phases. */
export async function runVxlanPhases(lab: Lab, a: Host, b: Host, opts: NetnsOptions, tmp: string, result: NetnsResult): Promise<void> {
  // The kernel's single-stream TCP is every ratio's denominator; its other tests only face vxlan's.
  const vx = opts.modes.includes('vxlan');
  const kernel = await kernelPhase(lab, a, b, opts, 'kernel', 4, { ping: vx, tcp: true, tcpParallel: vx, udp: vx });
  result.kernel = kernel;
  if (!vx) return;
  if (opts.ceiling) result.ceiling = await ceilingPhase(lab, a, b, opts, tmp);
  for (const p of VXLAN_PHASES) {
    if (!p.wanted(opts)) continue;
    const phase = await overlayPhase(lab, a, b, opts, { spec: MODE_SPECS.vxlan, workers: p.workers, offloads: p.offloads }, p.what, p.label);
    if (p.paired) phase.pairedKernel = kernel.tcp;
    result[p.field] = phase;
  }
}

/**
 * One phase per selected mode other than vxlan (single-stream TCP, workers: 1, offloads on), each
 * after its references: the kernel VXLAN device over IPv6 for vxlan6, the bare raw-IP blast for
 * gre and ipip, and a kernel VXLAN run right before it.
 */
export async function runModePhases(lab: Lab, a: Host, b: Host, opts: NetnsOptions, tmp: string, result: NetnsResult): Promise<void> {
  const rawBaseline = rawBaselineRunner(tmp, opts.log ?? (() => undefined));
  for (const mode of opts.modes) {
    if (mode === 'vxlan') continue;
    const spec = MODE_SPECS[mode];
    if (mode === 'vxlan6') result.kernel6 = await kernelPhase(lab, a, b, opts, 'kernel IPv6', 6, TCP_ONLY);
    // Right before the mode it is compared with, with no forwarder holding a raw socket.
    if (spec.rawProtocol !== null && opts.rawBaseline) result.rawBaselines.push(await rawBaseline(lab, a, b, spec.rawProtocol, opts.durationSec));
    // The kernel again right before the mode: a paired ratio that a drift of the machine's load cannot skew.
    const paired = opts.kernelEach ? await kernelPhase(lab, a, b, opts, `kernel (before ${mode})`, 4, TCP_ONLY) : null;
    const phase = await overlayPhase(lab, a, b, opts, { spec, workers: 1, offloads: OFFLOADS_ON }, TCP_ONLY, `overlayfwd ${mode}`);
    if (paired) {
      phase.pairedKernel = paired.tcp;
      phase.errors.push(...paired.errors.map((e) => `paired kernel run: ${e}`));
    }
    result.modePhases.push(phase);
  }
}

/** The last kernel VXLAN single-stream run, after the mode phases and the routes test. */
export async function runKernelEnd(lab: Lab, a: Host, b: Host, opts: NetnsOptions, result: NetnsResult): Promise<void> {
  result.kernelEnd = await kernelPhase(lab, a, b, opts, 'kernel (end)', 4, TCP_ONLY);
}
