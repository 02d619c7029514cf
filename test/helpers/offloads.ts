// Offload modes to run a suite under, and checks of the offload counters (OverlayStats.offloads).
//
// What to expect on a veth underlay (checked on Linux 6.x):
// - overlayfwd → anything: the kernel hands the TAP TSO super-frames (txSuperFrames), overlayfwd
//   cuts them into wire frames and sends each flow's frames as UDP_SEGMENT trains (txGsoSends,
//   several segments each).
// - overlayfwd → overlayfwd: veth (and a bridge) carry a UDP GSO train whole, so the receiving
//   socket gets it as one UDP_GRO datagram (rxGroReceives, several segments each), and the
//   receiver coalesces the TCP segments into super-frames for the TAP (rxCoalescedWrites).
// - kernel VXLAN device → overlayfwd: the device (TX checksum offload off, as the lab sets it up)
//   segments before encapsulating, so single datagrams arrive and UDP GRO has nothing to merge
//   on veth; overlayfwd still coalesces the TCP segments it decapsulates (rxCoalescedWrites).
import { expect } from 'vitest';
import { OFFLOAD_COUNTERS, type OffloadStats, type OverlayStats } from '../../lib/types';

export type OffloadSettings = { tso: boolean; udpGso: boolean; udpGro: boolean; uringWrites: boolean };

export interface OffloadMode {
  label: string;
  /** The `offloads` config section, or undefined for the defaults (all on). */
  offloads: OffloadSettings | undefined;
  on: boolean;
}

export const OFFLOADS_OFF: OffloadSettings = { tso: false, udpGso: false, udpGro: false, uringWrites: false };

export const OFFLOAD_MODES: OffloadMode[] = [
  { label: 'offloads on (default)', offloads: undefined, on: true },
  { label: 'offloads off', offloads: OFFLOADS_OFF, on: false },
];

/** Extra config keys for ForwarderSpec.extra. */
export function offloadConfig(mode: OffloadMode): Record<string, unknown> {
  return mode.offloads ? { offloads: { ...mode.offloads } } : {};
}

export type OffloadCounters = Omit<OffloadStats, 'active'>;

const COUNTERS = OFFLOAD_COUNTERS;

export function offloadCounters(stats: OverlayStats): OffloadCounters {
  const out = {} as OffloadCounters;
  for (const k of COUNTERS) out[k] = stats.offloads[k];
  return out;
}

/** after − before, counter by counter. */
export function offloadDelta(after: OverlayStats, before: OverlayStats): OffloadCounters {
  const out = {} as OffloadCounters;
  for (const k of COUNTERS) out[k] = after.offloads[k] - before.offloads[k];
  return out;
}

/** The shape and internal consistency of OverlayStats.offloads. */
export function expectOffloadShape(stats: OverlayStats): void {
  const o = stats.offloads;
  expect(o, 'stats().offloads').toBeDefined();
  for (const k of ['tso', 'udpGso', 'udpGro', 'uringWrites'] as const) expect(typeof o.active[k], `offloads.active.${k}`).toBe('boolean');
  for (const k of COUNTERS) {
    expect(Number.isInteger(o[k]) && o[k] >= 0, `offloads.${k} = ${o[k]}`).toBe(true);
  }
  // A GSO send or GRO receive carries at least one segment; segments are packets.
  expect(o.txGsoSegments).toBeGreaterThanOrEqual(o.txGsoSends);
  expect(o.rxGroSegments).toBeGreaterThanOrEqual(o.rxGroReceives);
  expect(o.rxCoalescedSegments).toBeGreaterThanOrEqual(o.rxCoalescedWrites);
  expect(o.txGsoSegments).toBeLessThanOrEqual(stats.totals.txPackets);
  expect(o.rxCoalescedSegments).toBeLessThanOrEqual(stats.totals.rxPackets);
}

/** Offloads turned off in the config: none active, every counter still 0. */
export function expectOffloadsIdle(stats: OverlayStats, where = 'overlay'): void {
  expectOffloadShape(stats);
  expect(stats.offloads.active, `${where}: offloads.active`).toEqual({ tso: false, udpGso: false, udpGro: false, uringWrites: false });
  expect(offloadCounters(stats), `${where}: offload counters`).toEqual({
    txGsoSends: 0,
    txGsoSegments: 0,
    rxGroReceives: 0,
    rxGroSegments: 0,
    txSuperFrames: 0,
    rxCoalescedWrites: 0,
    rxCoalescedSegments: 0,
    fallbacks: 0,
  });
}

/** Default config on a kernel that has them all: every offload active, none fell back. */
export function expectOffloadsActive(stats: OverlayStats, where = 'overlay'): void {
  expectOffloadShape(stats);
  expect(stats.offloads.active, `${where}: offloads.active`).toEqual({ tso: true, udpGso: true, udpGro: true, uringWrites: true });
  expect(stats.offloads.fallbacks, `${where}: offloads.fallbacks`).toBe(0);
}

const show = (d: OffloadCounters) => JSON.stringify(d);

/** A bulk TCP send through this overlay used TSO super-frames and UDP GSO trains. */
export function expectTxOffloadsUsed(d: OffloadCounters, where = 'sender'): void {
  expect(d.txSuperFrames, `${where}: txSuperFrames in ${show(d)}`).toBeGreaterThan(0);
  expect(d.txGsoSends, `${where}: txGsoSends in ${show(d)}`).toBeGreaterThan(0);
  expect(d.txGsoSegments / d.txGsoSends, `${where}: segments per GSO send in ${show(d)}`).toBeGreaterThan(1);
}

/** A bulk TCP receive through this overlay was written to the TAP as coalesced super-frames. */
export function expectRxCoalescingUsed(d: OffloadCounters, where = 'receiver'): void {
  expect(d.rxCoalescedWrites, `${where}: rxCoalescedWrites in ${show(d)}`).toBeGreaterThan(0);
  expect(d.rxCoalescedSegments / d.rxCoalescedWrites, `${where}: segments per coalesced write in ${show(d)}`).toBeGreaterThan(1);
}

/** A bulk receive from a GSO-sending overlayfwd peer arrived as UDP_GRO datagrams. */
export function expectRxGroUsed(d: OffloadCounters, where = 'receiver'): void {
  expect(d.rxGroReceives, `${where}: rxGroReceives in ${show(d)}`).toBeGreaterThan(0);
  expect(d.rxGroSegments / d.rxGroReceives, `${where}: segments per GRO receive in ${show(d)}`).toBeGreaterThan(1);
}
