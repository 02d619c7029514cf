// The soak's overlays: per mode, two hosts of their own (a and b, joined by one veth pair), the
// config file each end's `overlayfwd up` reads, and the peers that come and go.
//
//   vxlan  TAP, VNI 42; the persistent peer by underlay address, learning on
//   esp    TUN, aes-256-gcm in UDP 4500; the persistent peer keyed by IKEv2 (PSK) with a short
//          Child SA lifetime (--rekey) and an IKE SA rekeyed every IKE_REKEY_FACTOR of them
//
// The peers that come and go point at underlay addresses nobody holds (198.18.N.100-199 of the
// mode's own link): nothing answers them, nothing is sent to them but what a peer draws by
// itself (flooded frames, IKE_SA_INITs), and the traffic to the persistent peer goes on beside.
// In esp they alternate between manual SAs and IKE (whose exchanges with nobody time out).
import { randomBytes } from 'node:crypto';
import { overlayAddress, type Host } from '../../lab';
import type { SoakMode } from './args';

/** The IKE SA lives this many Child SA lifetimes: several Child SA rekeys per IKE SA, and both kinds every few minutes. */
export const IKE_REKEY_FACTOR = 4;
/** A bench secret is no secret. */
const PSK = 'overlayfwd-soak-psk-0123456789';

export type Side = 'a' | 'b';

export interface ModeEnds {
  mode: SoakMode;
  /** The mode's index: its overlay subnet is 198.19.INDEX.0/24. */
  index: number;
  a: Host;
  b: Host;
}

/** The overlay address of `side` in the mode's subnet. */
export function overlayOf(ends: Pick<ModeEnds, 'index'>, side: Side): string {
  return overlayAddress(ends.index * 256 + (side === 'a' ? 1 : 2));
}

/** The persistent peer of `side`: the other end, named after it. */
export function persistentPeer(ends: ModeEnds, side: Side): Record<string, unknown> {
  const other: Side = side === 'a' ? 'b' : 'a';
  const peer: Record<string, unknown> = { name: other, endpoint: ends[other].underlay };
  if (ends.mode === 'esp') peer['allowedIps'] = [`${overlayOf(ends, other)}/32`];
  return peer;
}

/** Everything of an end's config file but its peers. `variant` flips a live IKE setting, so that a reload also changes settings. */
export function baseConfig(ends: ModeEnds, side: Side, socket: string, rekeySec: number, variant: number): Record<string, unknown> {
  const self = ends[side];
  const common = {
    name: `soak-${ends.mode}-${side}`,
    netns: self.ns,
    underlay: { local: self.underlay },
    workers: 1,
    control: { socket },
  };
  if (ends.mode === 'vxlan') {
    return { ...common, device: { type: 'tap', name: 'ovl0', addresses: [`${overlayOf(ends, side)}/24`] }, encap: { type: 'vxlan', vni: 42 } };
  }
  return {
    ...common,
    device: { type: 'tun', name: 'ovl0', addresses: [`${overlayOf(ends, side)}/24`] },
    // The cipher is the manual SAs' (the peers that come and go with sa:); IKE negotiates its own.
    encap: { type: 'esp', cipher: 'aes-256-gcm', udp: true },
    ike: { auth: 'psk', psk: PSK, rekeySeconds: rekeySec, ikeRekeySeconds: rekeySec * IKE_REKEY_FACTOR, dpdSeconds: 30 + (variant % 2) },
  };
}

/** An underlay address in the mode's link that no host holds. */
function deadEndpoint(ends: ModeEnds, k: number): string {
  const net = ends.a.underlay.split('.').slice(0, 3).join('.');
  return `${net}.${100 + (k % 100)}`;
}

/** An inbound SPI no other peer of either end uses: 0xSS0xxxxx, SS from the side and the mode, the rest from k. */
function spi(ends: ModeEnds, side: Side, k: number, direction: 0 | 1): number {
  return ((0x50 + ends.index * 4 + (side === 'a' ? 0 : 2) + direction) << 24) + (k & 0xffffff);
}

/**
 * Peer number `k` that comes and goes at `side` (runtime peers and the file's extra peers share
 * the numbering, so names, MACs, prefixes and SPIs never repeat within a run).
 */
export function transientPeer(ends: ModeEnds, side: Side, k: number, prefix: string): Record<string, unknown> {
  const name = `${prefix}${k}`;
  const endpoint = deadEndpoint(ends, k);
  if (ends.mode === 'vxlan') {
    const mac = `02:5c:${ends.index.toString(16).padStart(2, '0')}:${side === 'a' ? '0a' : '0b'}:${((k >> 8) & 0xff).toString(16).padStart(2, '0')}:${(k & 0xff).toString(16).padStart(2, '0')}`;
    return { name, endpoint, macs: [mac] };
  }
  const allowedIps = [`10.${64 + ((k >> 8) % 64)}.${k & 0xff}.0/24`];
  if (k % 2 === 1) return { name, endpoint, allowedIps }; // keyed by the top-level ike (with nobody: it times out)
  const key = () => randomBytes(36).toString('hex');
  return { name, endpoint, allowedIps, sa: { out: { spi: spi(ends, side, k, 0), key: key() }, in: { spi: spi(ends, side, k, 1), key: key() } } };
}
