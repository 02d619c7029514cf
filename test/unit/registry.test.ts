// Registry mode without etcd: its config sections, the subnet arithmetic of the leases, and how
// records read from etcd are judged (what the watch skips never reaches a table).
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config';
import { MAX_RECORD_BYTES, readNetworkRecord, readNodeRecord } from '../../lib/registry/records';
import {
  candidateOrder,
  contains,
  deviceAddress,
  formatNetwork,
  nthSubnet,
  parseIpv4Network,
  subnetCount,
  subnetFromKey,
  subnetKey,
} from '../../lib/registry/subnets';

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function base(extra: Raw = {}): Raw {
  return {
    name: 'ovl0',
    device: { type: 'tun' },
    encap: { type: 'gre-udp' },
    underlay: { local: '198.18.0.1' },
    registry: { etcd: { endpoints: ['http://127.0.0.1:2379'] } },
    ...extra,
  };
}

function messages(input: Raw): string[] {
  try {
    parseConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected a ConfigError');
}

describe('registry config', () => {
  it('fills in the defaults: prefix, TTL, this host as the node with subnet auto', () => {
    const c = parseConfig(base());
    expect(c.registry).toEqual({
      etcd: { endpoints: ['http://127.0.0.1:2379'], prefix: '/overlayfwd', ttlSeconds: 10, tls: null, username: null, password: null },
      network: null,
      subnetLength: null,
    });
    expect(c.node).toMatchObject({ endpoint: '198.18.0.1', subnet: 'auto' });
    expect(c.node!.name).toMatch(/^[a-zA-Z0-9_.-]{1,64}$/);
    expect(parseConfig({ ...base(), registry: undefined }).registry).toBeUndefined();
  });

  it('takes a network for the first host, a fixed subnet and TLS', () => {
    const c = parseConfig(
      base({
        registry: { etcd: { endpoints: ['https://etcd1:2379'], prefix: '/net/a/', ttlSeconds: 5, tls: { ca: '/etc/ca.pem' } }, network: '10.100.0.0/16', subnetLength: 24 },
        node: { name: 'h1', endpoint: '198.18.0.7', subnet: '10.100.3.0/24' },
      }),
    );
    expect(c.registry!.etcd.prefix).toBe('/net/a');
    expect(c.registry!.etcd.tls).toEqual({ ca: '/etc/ca.pem', cert: null, key: null });
    expect(c.registry!.network).toBe('10.100.0.0/16');
    expect(c.node).toEqual({ name: 'h1', endpoint: '198.18.0.7', subnet: '10.100.3.0/24' });
  });

  it('names the field and the problem', () => {
    expect(messages(base({ registry: { etcd: { endpoints: ['127.0.0.1:2379'] } } }))).toEqual([
      'registry.etcd.endpoints[0]: must be an etcd client URL such as http://127.0.0.1:2379 or https://etcd1:2379',
    ]);
    expect(messages(base({ registry: { etcd: { endpoints: [] } } }))).toEqual(['registry.etcd.endpoints: must list at least one etcd client URL']);
    expect(messages(base({ registry: { etcd: { endpoints: ['http://e:2379'], ttlSeconds: 1 } } }))).toEqual(['registry.etcd.ttlSeconds: must be an integer from 2 to 3600']);
    expect(messages(base({ registry: { etcd: { endpoints: ['http://e:2379'], prefix: 'nope' } } }))[0]).toMatch(/^registry\.etcd\.prefix: must be a key prefix starting with \//);
    expect(messages(base({ registry: { etcd: { endpoints: ['http://e:2379'] }, network: '10.0.0.0/8' } }))).toEqual([
      'registry.subnetLength: registry.network and registry.subnetLength go together',
    ]);
    expect(messages(base({ registry: { etcd: { endpoints: ['http://e:2379'] }, network: '10.0.0.0/16', subnetLength: 8 } }))).toEqual([
      "registry.subnetLength: must be from 16 (the network's length) to 30",
    ]);
    expect(messages(base({ registry: { etcd: { endpoints: ['http://e:2379'] }, network: 'fd00::/48', subnetLength: 64 } }))).toEqual([
      'registry.network: only IPv4 networks are supported by the registry so far',
    ]);
    expect(messages(base({ node: { subnet: 'big' } }))).toEqual(["node.subnet: must be 'auto' or a CIDR subnet of the registry's network, such as 10.100.7.0/24"]);
    expect(messages(base({ node: { endpoint: 'fd00::1' } }))).toEqual(['node.endpoint: must be of the same address family as underlay.local']);
    expect(messages(base({ device: { type: 'tun', addresses: ['10.1.0.1/24'] } }))).toEqual([
      "device.addresses: not used with a registry: the device's address comes from the node's subnet",
    ]);
    expect(messages({ ...base(), registry: undefined, node: { name: 'x' } })).toEqual(['node: used only with registry (peers from etcd)']);
    expect(messages(base({ encap: { type: 'esp', cipher: 'aes-256-gcm' } }))).toEqual([
      'registry: esp with a registry needs a top-level ike (auth: certificate with one CA, or psk): the registry holds no keys',
    ]);
    expect(() => parseConfig(base({ encap: { type: 'esp' }, ike: { auth: 'psk', psk: 'a-mesh-wide-psk-0123456789' } }))).not.toThrow();
    expect(messages(base({ registry: { etcd: { endpoints: ['http://e:2379'], endpoint: 'x' } } }))[0]).toMatch(/^registry\.etcd\.endpoint: unknown key/);
    // The TLS mapping's keys are named too (it once said "known: " with nothing after it).
    expect(messages(base({ registry: { etcd: { endpoints: ['https://e:2379'], tls: { ca: '/ca.pem', cerf: '/c.pem' } } } }))[0]).toBe(
      'registry.etcd.tls.cerf: unknown key (did you mean "cert"?)',
    );
    expect(messages(base({ registry: { etcd: { endpoints: ['https://e:2379'], tls: { ca: '/ca.pem', clientCertificate: '/c.pem' } } } }))[0]).toBe(
      'registry.etcd.tls.clientCertificate: unknown key (known: ca, cert, key)',
    );
  });
});

describe('subnet arithmetic', () => {
  const network = parseIpv4Network('10.100.0.0/16')!;

  it('writes subnets in keys as flannel does and reads back only canonical keys', () => {
    const s = nthSubnet(network, 24, 7);
    expect(formatNetwork(s)).toBe('10.100.7.0/24');
    expect(subnetKey(s)).toBe('10.100.7.0-24');
    expect(subnetFromKey('10.100.7.0-24')).toEqual(s);
    for (const bad of ['10.100.7.1-24', '10.100.7.0', '10.100.7.0-33', 'x-24', '10.100.7.0-24-1']) expect(subnetFromKey(bad), bad).toBeNull();
  });

  it('tries every subnet once, from a random start, and puts the device on the first address', () => {
    expect(subnetCount(network, 24)).toBe(256);
    const order = candidateOrder(network, 24, () => 0.5);
    expect(order[0]).toBe(128);
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: 256 }, (_, i) => i));
    expect(deviceAddress(network, nthSubnet(network, 24, 255))).toBe('10.100.255.1/16');
    expect(contains(network, parseIpv4Network('10.100.9.0/24')!)).toBe(true);
    expect(contains(network, parseIpv4Network('10.101.9.0/24')!)).toBe(false);
    expect(parseIpv4Network('10.100.3.9/16')).toEqual(network);
  });
});

describe('records read back from etcd', () => {
  const network = parseIpv4Network('10.100.0.0/16')!;
  const meta = { lease: '1', createRevision: '2', modRevision: '3' };
  const read = (key: string, value: string | Buffer) => readNodeRecord(key, Buffer.isBuffer(value) ? value : Buffer.from(value), network, 24, meta);

  it('takes a well-formed host', () => {
    expect(read('10.100.4.0-24', JSON.stringify({ name: 'h4', endpoint: '198.18.0.4', mac: '02:00:00:00:00:04' }))).toEqual({
      ok: true,
      value: { name: 'h4', endpoint: '198.18.0.4', mac: '02:00:00:00:00:04', subnet: '10.100.4.0/24', key: '10.100.4.0-24', lease: '1', createRevision: '2', modRevision: '3' },
    });
  });

  it('skips every kind of bad record with a reason', () => {
    const cases: [string, string | Buffer, RegExp][] = [
      ['10.100.4.0-24', 'not json', /not JSON/],
      ['10.100.4.0-24', Buffer.alloc(MAX_RECORD_BYTES + 1, 0x20), /at most 4096/],
      ['10.200.4.0-24', JSON.stringify({ name: 'h', endpoint: '198.18.0.4' }), /not a \/24 of the network/],
      ['10.100.4.0-25', JSON.stringify({ name: 'h', endpoint: '198.18.0.4' }), /not a \/24 of the network/],
      ['junk', JSON.stringify({ name: 'h', endpoint: '198.18.0.4' }), /names no subnet/],
      ['10.100.4.0-24', JSON.stringify({ name: 'h', endpoint: 'nowhere' }), /endpoint: not an IPv4 or IPv6 address/],
      ['10.100.4.0-24', JSON.stringify({ name: 'h h', endpoint: '198.18.0.4' }), /name/],
      ['10.100.4.0-24', JSON.stringify({ name: 'h', endpoint: '198.18.0.4', secret: 'k' }), /not a node record/],
      ['10.100.4.0-24', JSON.stringify(['h']), /not a node record/],
    ];
    for (const [key, value, reason] of cases) {
      const r = read(key, value);
      expect(r.ok, `${key} ${String(value).slice(0, 40)}`).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(reason);
    }
  });

  it('judges the network record', () => {
    const good = readNetworkRecord(Buffer.from(JSON.stringify({ network: '10.100.0.0/16', subnetLength: 24, encap: { type: 'vxlan', vni: 1, port: 4789 } })));
    expect(good.ok).toBe(true);
    expect(readNetworkRecord(Buffer.from(JSON.stringify({ network: '10.100.0.0/16', subnetLength: 8, encap: { type: 'vxlan' } }))).ok).toBe(false);
    expect(readNetworkRecord(Buffer.from(JSON.stringify({ network: 'fd00::/48', subnetLength: 64, encap: { type: 'vxlan' } }))).ok).toBe(false);
  });
});
