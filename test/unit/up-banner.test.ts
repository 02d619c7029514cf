// The `up` banner says each mode as it is: a VNI only where the mode has one, a port only where
// it rides UDP, GRE's options where set, how ESP is keyed.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config';
import { encapLine } from '../../lib/cli/up';

const SA = {
  out: { spi: 0x1001, key: '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef11223344' },
  in: { spi: 0x2001, key: 'fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210aabbccdd' },
};

function line(encap: Record<string, unknown>, device = 'tun', local = '198.18.0.1', peer: Record<string, unknown> = {}): string {
  return encapLine(
    parseConfig({
      name: 'ovl0',
      device: { type: device, addresses: ['198.19.0.1/24'] },
      encap,
      underlay: { local },
      peers: [{ name: 'b', endpoint: local.includes(':') ? 'fd00::2' : '198.18.0.2', ...(device === 'tun' ? { allowedIps: ['198.19.0.2/32'] } : {}), ...peer }],
    }),
  );
}

describe('up banner', () => {
  it.each([
    [{ type: 'vxlan', vni: 42 }, 'tap', 'vxlan vni 42 on 198.18.0.1:4789'],
    [{ type: 'geneve', vni: 7 }, 'tap', 'geneve vni 7 on 198.18.0.1:6081'],
    [{ type: 'gre-udp' }, 'tun', 'gre-udp on 198.18.0.1:4754'],
    [{ type: 'gre' }, 'tun', 'gre on 198.18.0.1 (IP protocol 47, GRE)'],
    [{ type: 'gre', key: 5, checksum: true }, 'tap', 'gre key 5 checksum on 198.18.0.1 (IP protocol 47, GRE)'],
    [{ type: 'ipip' }, 'tun', 'ipip on 198.18.0.1 (IP protocols 4 and 41, IPv4 and IPv6 in IP)'],
  ])('%j on %s: %s', (encap, device, expected) => {
    expect(line(encap, device)).toBe(expected);
  });

  it('puts an IPv6 underlay address as it is (no port for the IP-protocol modes)', () => {
    expect(line({ type: 'ipip' }, 'tun', 'fd00::1')).toBe('ipip on fd00::1 (IP protocols 4 and 41, IPv4 and IPv6 in IP)');
    expect(line({ type: 'vxlan', vni: 1 }, 'tap', 'fd00::1')).toBe('vxlan vni 1 on [fd00::1]:4789');
  });

  it('says how ESP is keyed and where it rides', () => {
    expect(line({ type: 'esp', cipher: 'aes-256-gcm' }, 'tun', '198.18.0.1', { sa: SA })).toBe('esp aes-256-gcm (manual SAs) on 198.18.0.1:4500');
    expect(line({ type: 'esp', cipher: 'aes-256-gcm', udp: false }, 'tun', '198.18.0.1', { sa: SA })).toBe('esp aes-256-gcm (manual SAs) on 198.18.0.1 (IP protocol 50, ESP)');
    expect(line({ type: 'esp' }, 'tun', '198.18.0.1', { ike: { auth: 'psk', psk: 'sixteen chars at least' } })).toBe('esp negotiated (IKEv2) on 198.18.0.1:4500');
  });
});
