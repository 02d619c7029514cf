// What each encapsulation mode is, in one table: what it rides, its default port, what it carries
// and what it adds to a packet. usesUdp, DEFAULT_PORTS and overheadFor are read off this table.
import { isIP } from 'node:net';
import { loadNative } from '../native';
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
}

// The native core keeps the one table of modes (native/core/tunnel/modes.cc); this side reads it
// instead of keeping a copy, and checks that it names exactly the modes the schema accepts.
function readModes(): Readonly<Record<EncapType, ModeFacts>> {
  const rows = loadNative().tunnelModes();
  const modes: Partial<Record<EncapType, ModeFacts>> = {};
  for (const row of rows) {
    if (!(ENCAP_TYPES as readonly string[]).includes(row.name)) throw new Error(`native mode table: unknown mode ${row.name}`);
    const carries: DeviceLayer[] = [];
    if (row.carriesIp) carries.push('ip');
    if (row.carriesEthernet) carries.push('ethernet');
    modes[row.name as EncapType] = {
      name: row.name as EncapType,
      transport: row.udp && row.rawIp ? 'udp-or-ip' : row.udp ? 'udp' : 'ip',
      defaultPort: row.defaultPort,
      carries,
      headerBytes: row.headerBytes,
      trailerBytes: row.trailerBytes,
    };
  }
  const missing = ENCAP_TYPES.filter((type) => !modes[type]);
  if (missing.length > 0) throw new Error(`native mode table: no row for ${missing.join(', ')}`);
  return modes as Record<EncapType, ModeFacts>;
}

export const MODES: Readonly<Record<EncapType, ModeFacts>> = readModes();

/** Default UDP port per encapsulation; null for the IP-protocol modes (no port). */
export const DEFAULT_PORTS = Object.fromEntries(ENCAP_TYPES.map((t) => [t, MODES[t].defaultPort])) as Readonly<Record<EncapType, number | null>>;

/** True when the mode rides UDP (has a port); false for the IP-protocol modes and ESP with udp: false. */
export function usesUdp(encap: { type: EncapType; udp?: boolean | undefined }): boolean {
  const { transport } = MODES[encap.type];
  return transport === 'udp-or-ip' ? encap.udp !== false : transport === 'udp';
}

/**
 * Encapsulation overhead in bytes: outer IP, UDP where used, the mode's header (with its options)
 * and trailer, the inner Ethernet header where carried. The forwarder's own figure, which sizes
 * the device MTU: asked of the native core, not computed twice.
 */
export function overheadFor(config: ResolvedConfig): number {
  const { encap } = config;
  return loadNative().tunnelOverhead({
    type: encap.type,
    carriesIp: DEVICE_LAYERS[config.device.type] === 'ip',
    ipv6: isIP(config.underlay.local) === 6,
    key: encap.key ?? null,
    checksum: encap.checksum ?? false,
    sequence: encap.sequence ?? false,
    udp: encap.udp !== false,
  });
}
