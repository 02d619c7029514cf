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
