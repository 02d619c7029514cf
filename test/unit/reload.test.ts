// What a reload may change live (peers, esp/ike settings) and what it refuses (everything fixed
// at start), and the printed config showconf serves: it parses back to the same config with
// --show-keys, and without, every secret is "<redacted>", which the parser names at the field.
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ConfigError, parseConfig } from '../../lib/config';
import { planIsEmpty, planReload } from '../../lib/config/reload';
import { printableConfig, REDACTED, redact } from '../../lib/config/printable';
import { reloadSummary } from '../../lib/cli/reload';
import type { ResolvedConfig } from '../../lib/types';

const KEY_B_OUT = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef11223344';
const KEY_B_IN = 'fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210aabbccdd';
const PSK = 'correct horse battery staple, twice';

function base(): Record<string, unknown> {
  return {
    name: 'ovl0',
    device: { type: 'tun', name: 'ovl0', addresses: ['198.19.0.1/24'] },
    encap: { type: 'esp', cipher: 'aes-256-gcm' },
    underlay: { local: '198.18.0.1' },
    workers: 1,
    control: { socket: '/run/overlayfwd/ovl0.sock' },
    ike: { auth: 'psk', psk: PSK },
    peers: [
      { name: 'b', endpoint: '198.18.0.2', allowedIps: ['198.19.0.2/32'], sa: { out: { spi: 0x1001, key: KEY_B_OUT }, in: { spi: 0x2001, key: KEY_B_IN } } },
      { name: 'c', endpoint: '198.18.0.3', allowedIps: ['198.19.0.3/32'], ike: {} },
    ],
  };
}

const noIke = (c: ResolvedConfig) => (c.ike ? 500 : null);

function plan(change: (c: Record<string, unknown>) => void) {
  const next = base();
  change(next);
  return planReload(parseConfig(base()), parseConfig(next), noIke);
}

describe('planReload', () => {
  it('finds nothing to do in the same file', () => {
    const p = plan(() => {});
    expect(planIsEmpty(p)).toBe(true);
    expect(p.peers).toEqual({ added: [], removed: [], changed: [] });
  });

  it('sorts peers into added, removed and changed', () => {
    const p = plan((c) => {
      const peers = c['peers'] as Record<string, unknown>[];
      peers[0]!['endpoint'] = '198.18.0.9';
      peers.splice(1, 1, { name: 'd', endpoint: '198.18.0.4', allowedIps: ['198.19.0.4/32'], ike: {} });
    });
    expect(p.restartNeeded).toEqual([]);
    expect(p.peers).toEqual({ added: ['d'], removed: ['c'], changed: ['b'] });
    expect(planIsEmpty(p)).toBe(false);
  });

  it('counts a new SA key as a changed peer, and esp/ike defaults as live settings', () => {
    const p = plan((c) => {
      const b = (c['peers'] as Record<string, Record<string, unknown>>[])[0]!;
      b['sa'] = { out: { spi: 0x1002, key: KEY_B_OUT.replace('0123', '4567') }, in: { spi: 0x2001, key: KEY_B_IN } };
      c['esp'] = { rekeyGraceSeconds: 5 };
      c['ike'] = { auth: 'psk', psk: PSK, dpdSeconds: 7 };
    });
    expect(p.restartNeeded).toEqual([]);
    expect(p.peers.changed).toContain('b');
    expect(p.settings).toEqual(['esp', 'ike']);
  });

  it.each([
    ['encap.cipher', (c: Record<string, unknown>) => (c['encap'] = { type: 'esp', cipher: 'chacha20-poly1305' }), 'the encapsulation'],
    ['device.mtu', (c: Record<string, unknown>) => (c['device'] = { type: 'tun', name: 'ovl0', addresses: ['198.19.0.1/24'], mtu: 1300 }), 'the device'],
    ['device.addresses', (c: Record<string, unknown>) => (c['device'] = { type: 'tun', name: 'ovl0', addresses: ['198.19.0.9/24'] }), 'the device'],
    ['underlay.local', (c: Record<string, unknown>) => (c['underlay'] = { local: '198.18.0.7' }), 'the underlay'],
    ['workers', (c: Record<string, unknown>) => (c['workers'] = 2), 'the number of workers'],
    ['limits.maxPeers', (c: Record<string, unknown>) => (c['limits'] = { maxPeers: 64 }), 'the table limits'],
    ['control.socket', (c: Record<string, unknown>) => (c['control'] = { socket: '/tmp/other.sock' }), 'the control socket'],
    ['name', (c: Record<string, unknown>) => (c['name'] = 'ovl1'), 'the instance name'],
  ])('refuses a change of %s, naming the field and saying to restart', (field, change, what) => {
    const p = plan(change);
    expect(p.restartNeeded).toHaveLength(1);
    expect(p.restartNeeded[0]!.path).toBe(field);
    expect(p.restartNeeded[0]!.message).toContain(what);
    expect(p.restartNeeded[0]!.message).toContain('restart');
  });

  it('refuses an IKE port that moves (its sockets are opened once)', () => {
    const running = parseConfig(base());
    const next = parseConfig(base());
    const p = planReload(running, next, (c) => (c === running ? 500 : 1500));
    expect(p.restartNeeded.map((i) => i.path)).toEqual(['ike.port']);
  });

  it('summarises what a reload did in one line', () => {
    expect(reloadSummary({ added: ['c'], removed: ['b', 'd'], changed: [], settings: ['esp'], applied: true, tableGeneration: 7 })).toBe(
      'added c; removed b, d; settings esp (table generation 7)',
    );
    expect(reloadSummary({ added: [], removed: [], changed: [], settings: [], applied: false, tableGeneration: 7 })).toMatch(/nothing to change/);
  });
});

describe('printableConfig (check, showconf)', () => {
  it('with showKeys, parses back to the same config, keys and PSK included', () => {
    const config = parseConfig(base());
    const printed = YAML.parse(YAML.stringify(printableConfig(config, { showKeys: true }))) as unknown;
    expect(parseConfig(printed)).toEqual(config);
  });

  it('without, holds no secret, and the parser refuses each placeholder at its field', () => {
    const config = parseConfig(base());
    const text = YAML.stringify(printableConfig(config));
    for (const secret of [KEY_B_OUT, KEY_B_IN, PSK]) expect(text).not.toContain(secret);
    expect(text).toContain(REDACTED);
    let issues: ConfigError['issues'] = [];
    try {
      parseConfig(YAML.parse(text));
    } catch (e) {
      issues = (e as ConfigError).issues;
    }
    const paths = issues.filter((i) => i.message.includes('printed without its secrets')).map((i) => i.path).sort();
    // c's PSK shows twice: printed peers carry their merged IKE settings.
    expect(paths).toEqual(['ike.psk', 'peers[0].sa.in.key', 'peers[0].sa.out.key', 'peers[1].ike.psk']);
  });

  it('keeps file names that sit in secret-looking fields (a private key file, the etcd client key)', () => {
    const input = {
      ike: { privateKey: '/etc/overlayfwd/host.key', psk: PSK },
      peers: [{ name: 'b', ike: { privateKey: '/etc/overlayfwd/b.key', psk: PSK }, sa: { out: { key: KEY_B_OUT } } }],
      registry: { etcd: { tls: { key: '/etc/overlayfwd/etcd.key' }, password: 'hunter2hunter2' } },
    };
    expect(redact(input)).toEqual({
      ike: { privateKey: '/etc/overlayfwd/host.key', psk: REDACTED },
      peers: [{ name: 'b', ike: { privateKey: '/etc/overlayfwd/b.key', psk: REDACTED }, sa: { out: { key: REDACTED } } }],
      registry: { etcd: { tls: { key: '/etc/overlayfwd/etcd.key' }, password: REDACTED } },
    });
  });
});
