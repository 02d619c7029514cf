// Stats of a pretend instance, for the unit tests of code that only displays or relays them.
import { DROP_REASONS, type Counters, type DropReason, type OffloadStats } from '../../lib/types';

export function fakeOffloadStats(): OffloadStats {
  return {
    active: { tso: true, udpGso: true, udpGro: false, uringWrites: true },
    txGsoSends: 7,
    txGsoSegments: 90,
    rxGroReceives: 5,
    rxGroSegments: 40,
    txSuperFrames: 11,
    rxCoalescedWrites: 3,
    rxCoalescedSegments: 30,
    fallbacks: 0,
  };
}

/**
 * Counters whose values all derive from `n` (txPackets = scale.tx * n, ...), with `n` wrongVni
 * drops; wire bytes add 36 bytes a packet (vxlan over IPv4).
 */
export function fakeCounters(n: number, scale: { tx: number; rx: number; flood: number; bytesPerPacket: number }): Counters {
  const drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  drops.wrongVni = n;
  return {
    txPackets: scale.tx * n,
    txBytes: scale.bytesPerPacket * scale.tx * n,
    rxPackets: scale.rx * n,
    rxBytes: scale.bytesPerPacket * scale.rx * n,
    floodPackets: scale.flood,
    txWireBytes: (scale.bytesPerPacket + 36) * scale.tx * n,
    rxWireBytes: (scale.bytesPerPacket + 36) * scale.rx * n,
    drops,
  };
}

/** Counters with only the given drops (the rest 0), for the drop summary's tests. */
export function fakeDropCounters(drops: Partial<Record<DropReason, number>>): Counters {
  const all = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  return { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0, floodPackets: 0, drops: { ...all, ...drops } };
}

/** totals and peers with the given drops: what the drop summary reads of stats(). */
export function fakeDropStats(
  totals: Partial<Record<DropReason, number>>,
  peers: Record<string, Partial<Record<DropReason, number>>> = {},
): { totals: Counters; peers: Record<string, Counters> } {
  return { totals: fakeDropCounters(totals), peers: Object.fromEntries(Object.entries(peers).map(([name, d]) => [name, fakeDropCounters(d)])) };
}
