// netns bench: the kernel's own VXLAN device, the ceiling and overlayfwd on the same veth underlay, in one run.
//
//   ns a: veth0 198.18.0.1/24 ─────veth───── ns b: veth0 198.18.0.2/24      (underlay)
//         vx0 | ceil0 | ovl0 198.19.0.1/24 ··VXLAN vni 42, port 4789·· vx0 | ceil0 | ovl0 198.19.0.2/24
//
// Phase 1 puts a kernel VXLAN device (vx0, the kernel's default offloads) in each namespace;
// the next phases delete them (port 4789 is free again) and start the ceiling (a minimal C VXLAN
// forwarder, bench/ceiling/ceiling_vxlan.c, one process per namespace: the least work a
// userspace forwarder cannot avoid; checked first with a sha256-verified transfer), then
// overlayfwd in both namespaces, in this process. The kernel phase, the ceiling and overlayfwd
// w=1 (offloads on) measure: ping RTT (overlay, and the bare underlay just before it; the median
// of every reply), single-stream TCP throughput with iperf3 (with this process's CPU time, the
// whole host's busy CPU time and this process's event loop utilization around it), TCP with N
// parallel streams (iperf3 -P N; not the ceiling), and 64-byte UDP packets per second
// received by the iperf3 server. Then overlayfwd w=2 (TCP 1 and N streams) and overlayfwd w=1 with
// every offload off (TCP 1 stream), to show what multi-queue and the offloads bring. Every
// overlayfwd test also records the change of overlay.stats().offloads (GSO trains, GRO receives,
// TSO super-frames, coalesced TAP writes) on both ends.
//
// Then every other mode, one phase each on the same underlay, single-stream TCP against the kernel
// VXLAN device of the same run: vxlan over an IPv6 underlay (TAP; next to the kernel VXLAN device
// over IPv6), geneve, gre-udp, gre, ipip and esp (TUN, routed by allowedIps). The raw-IP modes
// (gre, ipip) are also compared, in outer packets per second, with a bare sendmmsg/recvmmsg of
// full-size raw IP packets of the same protocol across the same veth pair
// (bench/raw-baseline/raw_blast.c, compiled on demand). Then gre-udp with 10 routes and with
// 100,000 routes (10,000 peers x 10 prefixes) alternately on the same two forwarders
// (peers.replace()), optionally profiled with `perf record -e cpu-clock`. A last kernel VXLAN
// single-stream run brackets the mode phases.
//
// All traffic is between the two lab namespaces (198.18.0.0/24, fd00:198:18::/64 and
// 198.19.0.0/24 exist only there; the 10,000 synthetic peers' endpoints and prefixes are never
// sent to); the lab is destroyed in `finally`, and abortNetns() does the same from a signal handler.
//
//   index.ts         runNetns(): the lab, the phases in order, teardown
//   modes.ts         the hosts' addresses, the modes and their configs
//   phases.ts        kernel, ceiling and overlayfwd phases (build, measure, take down)
//   ceiling.ts       building, running and reading the ceiling forwarder
//   measure.ts       ping, iperf3 TCP/UDP, CPU and event loop sampling, counter snapshots
//   raw-baseline.ts  the bare raw-IP blast
//   routes.ts        10 vs 100,000 routes, and the perf profile
//   report.ts        ratios, targets, table rows
//   types.ts         the options and the result shapes (the JSON)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, commandExists, labUnavailableReason } from '../../lab';
import { errorText, isAborted, setAborted, waitReachable } from './measure';
import { OVERLAY_A, OVERLAY_B, UNDERLAY_A, UNDERLAY_B, UNDERLAY6_B, VNI } from './modes';
import { addIpv6Underlay, runKernelEnd, runModePhases, runVxlanPhases } from './phases';
import { headline } from './report';
import { routesTest } from './routes';
import type { NetnsOptions, NetnsResult } from './types';

export * from './modes';
export * from './report';
export { ROUTE_PEERS, ROUTE_PREFIX_LENGTHS, ROUTES_PER_PEER, ROUTES_SMALL } from './routes';
export { summarizeOffloads } from './measure';
export type * from './types';

let activeLab: Lab | null = null;

/** Tears down the running netns bench (signal handlers call this); later measurements fail fast. */
export async function abortNetns(): Promise<void> {
  setAborted(true);
  const lab = activeLab;
  if (lab) await lab.destroy();
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
  setAborted(false);
  const result: NetnsResult = {
    durationSec: opts.durationSec,
    pingCount: opts.pingCount,
    pingIntervalSec: opts.pingIntervalSec,
    underlay: { a: UNDERLAY_A, b: UNDERLAY_B, dev: 'veth0' },
    overlay: { a: OVERLAY_A, b: OVERLAY_B, vni: VNI },
    iperf3: iperfVersion(),
    parallel: opts.parallel,
    kernel: null,
    ceiling: null,
    overlayfwd: null,
    overlayfwdWorkers2: null,
    overlayfwdNoOffloads: null,
    modes: [...opts.modes],
    kernel6: null,
    kernelEnd: null,
    modePhases: [],
    rawBaselines: [],
    routes: null,
    headline: null,
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
    if (opts.modes.includes('vxlan6')) {
      await addIpv6Underlay(lab, a);
      await addIpv6Underlay(lab, b);
      await waitReachable(lab, a, UNDERLAY6_B);
    }
    await runVxlanPhases(lab, a, b, opts, tmp, result);
    await runModePhases(lab, a, b, opts, tmp, result);
    if (opts.routes) {
      result.routes = await routesTest(lab, a, b, opts, tmp);
    }
    if (opts.kernelEnd && (result.modePhases.length > 0 || result.routes)) {
      await runKernelEnd(lab, a, b, opts, result);
    }
  } catch (err) {
    result.errors.push(errorText(err));
    if (isAborted()) throw err;
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
  result.headline = headline(result);
  return result;
}
