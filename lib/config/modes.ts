// What each encapsulation mode is, in one table: what it rides, its default port, what it carries
// and what it adds to a packet. usesUdp, DEFAULT_PORTS and overheadFor are read off this table.
import { isIP } from 'node:net';
import type { DeviceType, EncapType, ResolvedConfig } from '../types';

export const DEVICE_TYPES = ['tap', 'tun', 'packet'] as const;
export const ENCAP_TYPES = ['vxlan', 'geneve', 'gre', 'gre-udp', 'ipip', 'esp'] as const;

/** What a device hands to the overlay: Ethernet frames or IP packets. */
export type DeviceLayer = 'ethernet' | 'ip';

export const DEVICE_LAYERS: Readonly<Record<DeviceType, DeviceLayer>> = { tap: 'ethernet', tun: 'ip', packet: 'ethernet' };

export interface ModeFacts {
  /** The mode as the config (encap.type) spells it. */
  name: EncapType;
  /** 'udp': over UDP, with a port; 'ip': an IP protocol of its own, no port; 'udp-or-ip': encap.udp decides (ESP). */
  transport: 'udp' | 'ip' | 'udp-or-ip';
  /** The UDP port when encap.port is not given; null for a mode that never rides UDP. */
  defaultPort: number | null;
  /** The device layers the mode can carry (a mode that carries one only decides the inner header itself). */
  carries: readonly DeviceLayer[];
  /** Bytes of the mode's own header, before any option: not the outer IP header, not UDP. */
  headerBytes: number;
  /** The most bytes the mode appends after the payload. */
  trailerBytes: number;
  /** Bytes each header option adds when the config turns it on (GRE checksum, key, sequence number; RFC 2890). */
  optionBytes: number;
}

// VXLAN: 8-byte header (RFC 7348). Geneve: 8 bytes without options (RFC 8926; none are sent).
// GRE: 4 bytes, +4 per option, over IP protocol 47 or inside UDP (RFC 2784, 2890, 8086).
// IP-in-IP: the outer IP header is all (RFC 2003, 4213). ESP: SPI, sequence number and IV (16);
// then at most 3 bytes of padding, pad length, next header and the 16-byte ICV (21): the most a
// packet can grow (RFC 4303, 4106, 7634), in UDP 4500 unless encap.udp is false (RFC 3948).
export const MODES: Readonly<Record<EncapType, ModeFacts>> = {
  vxlan: { name: 'vxlan', transport: 'udp', defaultPort: 4789, carries: ['ethernet'], headerBytes: 8, trailerBytes: 0, optionBytes: 0 },
  geneve: { name: 'geneve', transport: 'udp', defaultPort: 6081, carries: ['ethernet', 'ip'], headerBytes: 8, trailerBytes: 0, optionBytes: 0 },
  gre: { name: 'gre', transport: 'ip', defaultPort: null, carries: ['ip', 'ethernet'], headerBytes: 4, trailerBytes: 0, optionBytes: 4 },
  'gre-udp': { name: 'gre-udp', transport: 'udp', defaultPort: 4754, carries: ['ip', 'ethernet'], headerBytes: 4, trailerBytes: 0, optionBytes: 4 },
  ipip: { name: 'ipip', transport: 'ip', defaultPort: null, carries: ['ip'], headerBytes: 0, trailerBytes: 0, optionBytes: 0 },
  esp: { name: 'esp', transport: 'udp-or-ip', defaultPort: 4500, carries: ['ip', 'ethernet'], headerBytes: 16, trailerBytes: 21, optionBytes: 0 },
} satisfies { [T in EncapType]: ModeFacts & { name: T } };

/** Default UDP port per encapsulation; null for the IP-protocol modes (no port). */
export const DEFAULT_PORTS = Object.fromEntries(ENCAP_TYPES.map((t) => [t, MODES[t].defaultPort])) as Readonly<Record<EncapType, number | null>>;

/** True when the mode rides UDP (has a port); false for the IP-protocol modes and ESP with udp: false. */
export function usesUdp(encap: { type: EncapType; udp?: boolean | undefined }): boolean {
  const { transport } = MODES[encap.type];
  return transport === 'udp-or-ip' ? encap.udp !== false : transport === 'udp';
}

/** What the overlay carries inside the mode's header for a device of `deviceType`. */
function innerLayer(type: EncapType, deviceType: DeviceType): DeviceLayer {
  const { carries } = MODES[type];
  return carries.length === 1 ? carries[0]! : DEVICE_LAYERS[deviceType];
}

const IPV4_HEADER_BYTES = 20;
const IPV6_HEADER_BYTES = 40;
const UDP_HEADER_BYTES = 8;
const ETHERNET_HEADER_BYTES = 14;

/** Encapsulation overhead in bytes: outer IP, UDP where used, the mode's header and trailer, the inner Ethernet header where carried. */
export function overheadFor(config: ResolvedConfig): number {
  const { encap } = config;
  const mode = MODES[encap.type];
  const options = [encap.checksum, encap.key !== null, encap.sequence].filter(Boolean).length;
  return (
    (isIP(config.underlay.local) === 6 ? IPV6_HEADER_BYTES : IPV4_HEADER_BYTES) +
    (usesUdp(encap) ? UDP_HEADER_BYTES : 0) +
    mode.headerBytes +
    mode.optionBytes * options +
    mode.trailerBytes +
    (innerLayer(encap.type, config.device.type) === 'ethernet' ? ETHERNET_HEADER_BYTES : 0)
  );
}
