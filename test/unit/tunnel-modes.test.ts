// The table of tunnel modes lives once, in the native core (native/core/tunnel/modes.cc), and the
// TypeScript side reads it from the addon. These tests hold the two sides against each other and
// against the RFCs: the schema accepts exactly the modes the data path implements, the device
// types, default ports and overheads the config resolves are the ones the core uses.
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_PORTS, ENCAP_TYPES, overheadFor, parseConfig } from '../../lib/config';
import { MODES } from '../../lib/config/modes';
import { loadNative } from '../../lib/native';

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const native = loadNative();

// What the RFCs say each mode adds in front of the payload (outer IP and UDP not included).
const RFC_HEADER_BYTES: Record<string, number> = {
  vxlan: 8, // RFC 7348 §5
  geneve: 8, // RFC 8926 §3.4, without options
  'gre-udp': 4, // RFC 2784 §2, + 4 per key, checksum (with reserved) and sequence number (RFC 2890)
  gre: 4,
  ipip: 0, // RFC 2003: the outer IP header is all
  esp: 16, // RFC 4303 §2: SPI, sequence number, and the 8-byte IV of RFC 4106 / RFC 7634
};
const RFC_PORTS: Record<string, number | null> = { vxlan: 4789, geneve: 6081, 'gre-udp': 4754, gre: null, ipip: null, esp: 4500 };

function encapFor(type: string, options: Raw = {}): Raw {
  if (type === 'vxlan' || type === 'geneve') return { type, vni: 42, ...options };
  if (type === 'esp') return { type, cipher: 'aes-256-gcm', ...options };
  return { type, ...options };
}

function config(type: string, device: 'tap' | 'tun', local: string, options: Raw = {}): Raw {
  return { name: 'ovl0', device: { type: device }, encap: encapFor(type, options), underlay: { local }, workers: 1 };
}

function accepts(raw: Raw): boolean {
  try {
    parseConfig(raw);
    return true;
  } catch (err) {
    if (err instanceof ConfigError) return false;
    throw err;
  }
}

describe('the table of tunnel modes', () => {
  it('names exactly the modes the schema accepts, once each', () => {
    const names = native.tunnelModes().map((row) => row.name);
    expect([...names].sort()).toEqual([...ENCAP_TYPES].sort());
    expect(new Set(names).size).toBe(names.length);
  });

  it('gives the registered default ports, and the config resolves them', () => {
    for (const row of native.tunnelModes()) {
      expect(row.defaultPort, row.name).toBe(RFC_PORTS[row.name]);
      expect(DEFAULT_PORTS[row.name as keyof typeof DEFAULT_PORTS], row.name).toBe(row.defaultPort);
      const resolved = parseConfig(config(row.name, row.carriesEthernet ? 'tap' : 'tun', '198.18.0.1'));
      expect(resolved.encap.port, row.name).toBe(row.defaultPort ?? 0);
    }
  });

  it('gives each mode its RFC header size and the transport the config sees', () => {
    for (const row of native.tunnelModes()) {
      expect(row.headerBytes, row.name).toBe(RFC_HEADER_BYTES[row.name]);
      expect(MODES[row.name as keyof typeof MODES].headerBytes).toBe(row.headerBytes);
      expect(MODES[row.name as keyof typeof MODES].transport).toBe(row.udp && row.rawIp ? 'udp-or-ip' : row.udp ? 'udp' : 'ip');
    }
  });

  it('lets the config put a mode on exactly the devices the data path carries', () => {
    for (const row of native.tunnelModes()) {
      expect(accepts(config(row.name, 'tap', '198.18.0.1')), `${row.name} on tap`).toBe(row.carriesEthernet);
      expect(accepts(config(row.name, 'tun', '198.18.0.1')), `${row.name} on tun`).toBe(row.carriesIp);
    }
  });
});

describe('the overhead the config reports', () => {
  const greOptions: Raw[] = [{}, { key: 7 }, { checksum: true }, { key: 7, checksum: true, sequence: true }];
  const cases: { type: string; options: Raw[] }[] = [
    { type: 'vxlan', options: [{}] },
    { type: 'geneve', options: [{}] },
    { type: 'gre', options: greOptions },
    { type: 'gre-udp', options: greOptions },
    { type: 'ipip', options: [{}] },
    { type: 'esp', options: [{}, { udp: false }] },
  ];

  it('is what the RFCs add up to, on every device and underlay family, and the core agrees', () => {
    let checked = 0;
    for (const { type, options } of cases) {
      const row = native.tunnelModes().find((r) => r.name === type)!;
      for (const option of options) {
        for (const device of ['tap', 'tun'] as const) {
          if (device === 'tap' ? !row.carriesEthernet : !row.carriesIp) continue;
          for (const local of ['198.18.0.1', 'fd00:198:18::1']) {
            const resolved = parseConfig(config(type, device, local, option));
            const ipv6 = local.includes(':');
            const udp = type === 'esp' ? option['udp'] !== false : row.udp;
            const greWords = type.startsWith('gre') ? [option['key'] !== undefined, option['checksum'], option['sequence']].filter(Boolean).length : 0;
            // ESP's trailer: at most 3 bytes of padding, pad length, next header, a 16-byte ICV.
            const trailer = type === 'esp' ? 3 + 2 + 16 : 0;
            const expected =
              (ipv6 ? 40 : 20) + (udp ? 8 : 0) + RFC_HEADER_BYTES[type]! + 4 * greWords + trailer + (device === 'tap' ? 14 : 0);
            const label = `${type} ${JSON.stringify(option)} on ${device} over IPv${ipv6 ? 6 : 4}`;
            expect(overheadFor(resolved), label).toBe(expected);
            expect(
              native.tunnelOverhead({ type, carriesIp: device === 'tun', ipv6, key: option['key'] ?? null, checksum: !!option['checksum'], sequence: !!option['sequence'], udp }),
              label,
            ).toBe(expected);
            checked++;
          }
        }
      }
    }
    expect(checked).toBe(48);
  });
});
