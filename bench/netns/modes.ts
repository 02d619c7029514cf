// The bench's two hosts, a and b, their addresses, and the overlay modes it can run between them.
import type { ResolvedConfig } from '../../lib/types';

export const VNI = 42;
export const UNDERLAY_A = '198.18.0.1';
export const UNDERLAY_B = '198.18.0.2';
export const OVERLAY_A = '198.19.0.1';
export const OVERLAY_B = '198.19.0.2';
export const OVERLAY_PREFIX = 24;
/** Payload of the UDP packets-per-second test. */
export const UDP_PAYLOAD = 64;
/** The IPv6 underlay (ULA), added to the same veth pair when a mode needs it. */
export const UNDERLAY6_A = 'fd00:198:18::1';
export const UNDERLAY6_B = 'fd00:198:18::2';
/** The veth MTU: a full-size outer packet of the raw-IP modes. */
export const UNDERLAY_MTU = 1500;

export type Side = 'a' | 'b';

/** Underlay address of each end, per address family. */
export const UNDERLAY: Record<4 | 6, Record<Side, string>> = {
  4: { a: UNDERLAY_A, b: UNDERLAY_B },
  6: { a: UNDERLAY6_A, b: UNDERLAY6_B },
};

/** Overlay address of each end. */
export const OVERLAY: Record<Side, string> = { a: OVERLAY_A, b: OVERLAY_B };

export function otherSide(side: Side): Side {
  return side === 'a' ? 'b' : 'a';
}

/** The overlay modes the bench can run; `vxlan` is the IPv4/TAP overlayfwd phases (w=1, w=2, offloads off). */
export const BENCH_MODES = ['vxlan', 'vxlan6', 'geneve', 'gre-udp', 'gre', 'ipip', 'esp'] as const;
export type BenchMode = (typeof BENCH_MODES)[number];

export interface ModeSpec {
  mode: BenchMode;
  /** How the tables name it. */
  label: string;
  encap: Record<string, unknown>;
  device: 'tap' | 'tun';
  family: 4 | 6;
  /** UDP-based, raw IP or ESP in UDP: what the mode's target is (report.ts, TCP_TARGETS). */
  transport: 'udp' | 'raw' | 'esp';
  /** IP protocol of the outer packets of a raw-IP mode (the bare baseline uses the same). */
  rawProtocol: number | null;
  /** Outer bytes added to what the device delivers (rxBytes): outer IP + encapsulation headers. */
  outerOverhead: number;
}

export const MODE_SPECS: Record<BenchMode, ModeSpec> = {
  vxlan: { mode: 'vxlan', outerOverhead: 50, label: 'vxlan (TAP, IPv4 underlay)', encap: { type: 'vxlan', vni: VNI }, device: 'tap', family: 4, transport: 'udp', rawProtocol: null },
  vxlan6: { mode: 'vxlan6', outerOverhead: 70, label: 'vxlan (TAP, IPv6 underlay)', encap: { type: 'vxlan', vni: VNI }, device: 'tap', family: 6, transport: 'udp', rawProtocol: null },
  geneve: { mode: 'geneve', outerOverhead: 36, label: 'geneve (TUN)', encap: { type: 'geneve', vni: VNI }, device: 'tun', family: 4, transport: 'udp', rawProtocol: null },
  'gre-udp': { mode: 'gre-udp', outerOverhead: 32, label: 'gre-udp (TUN)', encap: { type: 'gre-udp' }, device: 'tun', family: 4, transport: 'udp', rawProtocol: null },
  gre: { mode: 'gre', outerOverhead: 24, label: 'gre (TUN, IP proto 47)', encap: { type: 'gre' }, device: 'tun', family: 4, transport: 'raw', rawProtocol: 47 },
  ipip: { mode: 'ipip', outerOverhead: 20, label: 'ipip (TUN, IP proto 4)', encap: { type: 'ipip' }, device: 'tun', family: 4, transport: 'raw', rawProtocol: 4 },
  // Outer IPv4 20 + UDP 8 + SPI/sequence/IV 16 + pad length, next header, ICV 18 (+ 0-3 padding).
  esp: { mode: 'esp', outerOverhead: 62, label: 'esp aes-256-gcm (TUN, UDP 4500)', encap: { type: 'esp', cipher: 'aes-256-gcm', udp: true }, device: 'tun', family: 4, transport: 'esp', rawProtocol: null },
};

/** Fixed bench keys (cipher key + salt, 36 bytes): a bench secret is no secret. */
const BENCH_SA_A_TO_B = { spi: 0x1001, key: '5a'.repeat(36) };
const BENCH_SA_B_TO_A = { spi: 0x2001, key: 'a5'.repeat(36) };

/** The manual ESP SAs each end configures for its peer. */
export const BENCH_SAS: Record<Side, { out: typeof BENCH_SA_A_TO_B; in: typeof BENCH_SA_A_TO_B }> = {
  a: { out: BENCH_SA_A_TO_B, in: BENCH_SA_B_TO_A },
  b: { out: BENCH_SA_B_TO_A, in: BENCH_SA_A_TO_B },
};

export type OffloadsConfig = ResolvedConfig['offloads'];
export const OFFLOADS_ON: OffloadsConfig = { tso: true, udpGso: true, udpGro: true, uringWrites: true };
export const OFFLOADS_OFF: OffloadsConfig = { tso: false, udpGso: false, udpGro: false, uringWrites: false };

/** Parses "gre,ipip" / "all"; throws on an unknown name. */
export function parseModes(text: string): BenchMode[] {
  const names = text
    .split(/[\s,]+/)
    .map((m) => m.trim())
    .filter(Boolean);
  if (names.length === 1 && names[0] === 'all') return [...BENCH_MODES];
  const out: BenchMode[] = [];
  for (const n of names) {
    if (n === 'none') continue;
    if (!(BENCH_MODES as readonly string[]).includes(n)) throw new Error(`unknown mode ${n} (modes: ${BENCH_MODES.join(', ')}, all, none)`);
    if (!out.includes(n as BenchMode)) out.push(n as BenchMode);
  }
  return out;
}
