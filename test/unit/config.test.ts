import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BUSY_POLL_DEFAULT_US,
  ConfigError,
  loadConfigFile,
  overheadFor,
  parseConfig,
  parseEndpointString,
  parsePeer,
} from '../../lib/config';
import type { ResolvedConfig } from '../../lib/types';

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function base(): Raw {
  return {
    name: 'ovl0',
    encap: { type: 'vxlan', vni: 42 },
    underlay: { local: '198.18.0.1' },
    peers: [
      { name: 'b', endpoint: '198.18.0.2', macs: ['02:00:00:00:00:02'] },
      { name: 'c', endpoint: '198.18.0.3:4790', allowedIps: ['198.19.0.3/32'] },
    ],
  };
}

function issuesOf(input: unknown): ConfigError {
  try {
    parseConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ovlcfg-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('parseConfig defaults', () => {
  it('fills in every default', () => {
    const cfg = parseConfig({ name: 'ovl0', encap: { vni: 42 }, underlay: { local: '198.18.0.1' } });
    const cpus = Math.min(64, os.availableParallelism());
    expect(cfg).toEqual<ResolvedConfig>({
      name: 'ovl0',
      netns: null,
      device: { type: 'tap', name: 'ovl0', mtu: null, addresses: [], mac: null },
      encap: { type: 'vxlan', vni: 42, port: 4789, key: null, checksum: false, sequence: false },
      underlay: { local: '198.18.0.1', sourcePorts: 16, udpChecksum: false },
      workers: cpus,
      cpuAffinity: [],
      busyPollMicroseconds: BUSY_POLL_DEFAULT_US,
      mssClamp: 'off',
      batchSize: 64,
      fdb: { learning: true, ageingSeconds: 300, maxEntries: 4096 },
      offloads: { tso: true, udpGso: true, udpGro: true, uringWrites: true },
      limits: { maxPeers: 1024 },
      peers: [],
      control: { socket: '/run/overlayfwd/ovl0.sock' },
    });
  });

  it('resolves peers: endpoint forms, default port = encap.port, canonical addresses and MACs', () => {
    const cfg = parseConfig({
      name: 'v6',
      encap: { vni: 0, port: 8472 },
      underlay: { local: 'FD00::1' },
      // Overlay addresses apart from the underlay's fd00::/64 (overlapping ones are an error).
      device: { mac: '02-AA-BB-CC-DD-EE', mtu: 'auto', addresses: ['FD00:0:0:1:0::1/64', '198.19.0.1/24'] },
      peers: [
        { name: 'a', endpoint: 'fd00::2' },
        { name: 'b', endpoint: '[fd00:0::3]:4789', macs: ['02:AA:00:00:00:01'] },
        { name: 'c', endpoint: '[fd00::4]' },
        { name: 'd', endpoint: { address: 'fd00::5', port: 5000 } },
        { name: 'e', endpoint: { address: 'fd00::6' }, allowedIps: ['fd01::/64', '0.0.0.0/0'] },
      ],
    });
    expect(cfg.underlay.local).toBe('fd00::1');
    expect(cfg.device.mac).toBe('02:aa:bb:cc:dd:ee');
    expect(cfg.device.mtu).toBeNull();
    expect(cfg.device.addresses).toEqual(['fd00:0:0:1::1/64', '198.19.0.1/24']);
    expect(cfg.peers.map((p) => p.endpoint)).toEqual([
      { address: 'fd00::2', port: 8472 },
      { address: 'fd00::3', port: 4789 },
      { address: 'fd00::4', port: 8472 },
      { address: 'fd00::5', port: 5000 },
      { address: 'fd00::6', port: 8472 },
    ]);
    expect(cfg.peers[1]!.macs).toEqual(['02:aa:00:00:00:01']);
    expect(cfg.peers[4]!.allowedIps).toEqual(['fd01::/64', '0.0.0.0/0']);
    expect(cfg.peers[0]).toEqual({ name: 'a', endpoint: { address: 'fd00::2', port: 8472 }, allowedIps: [], macs: [] });
  });

  it('keeps explicit values', () => {
    const cfg = parseConfig({
      ...base(),
      netns: 'ns-a',
      device: { type: 'tap', name: 'tap9', mtu: 1450, addresses: ['198.19.0.1/24'], mac: null },
      underlay: { local: '198.18.0.1', sourcePorts: 1, udpChecksum: true },
      workers: 3,
      batchSize: 1024,
      fdb: { learning: false, ageingSeconds: 86400, maxEntries: 16 },
      limits: { maxPeers: 2 },
      control: { socket: '/tmp/x.sock' },
    });
    expect(cfg.netns).toBe('ns-a');
    expect(cfg.device).toEqual({ type: 'tap', name: 'tap9', mtu: 1450, addresses: ['198.19.0.1/24'], mac: null });
    expect(cfg.underlay).toEqual({ local: '198.18.0.1', sourcePorts: 1, udpChecksum: true });
    expect([cfg.workers, cfg.batchSize]).toEqual([3, 1024]);
    expect(cfg.fdb).toEqual({ learning: false, ageingSeconds: 86400, maxEntries: 16 });
    expect(cfg.limits.maxPeers).toBe(2);
    expect(cfg.control.socket).toBe('/tmp/x.sock');
    expect(cfg.peers.map((p) => `${p.name}@${p.endpoint.address}:${p.endpoint.port}`)).toEqual([
      'b@198.18.0.2:4789',
      'c@198.18.0.3:4790',
    ]);
  });

  it('accepts its own output again (resolved endpoints are objects)', () => {
    const cfg = parseConfig(base());
    expect(parseConfig(JSON.parse(JSON.stringify(cfg)))).toEqual(cfg);
  });
});

// [description, mutation of the base config, path, message pattern]
const broken: Array<[string, (c: Raw) => void, string, RegExp]> = [
  ['name missing', (c) => delete c.name, 'name', /required/],
  ['name too long for IFNAMSIZ', (c) => (c.name = 'a'.repeat(16)), 'name', /1 to 15 characters/],
  ['name with a space', (c) => (c.name = 'ovl 0'), 'name', /1 to 15 characters/],
  ['name not a string', (c) => (c.name = 42), 'name', /must be/],
  ['unknown top-level key', (c) => (c.peer = []), 'peer', /unknown key.*"peers"/],
  ['unknown nested key', (c) => (c.underlay.localAddress = 'x'), 'underlay.localAddress', /unknown key/],
  ['netns with a slash', (c) => (c.netns = 'a/b'), 'netns', /network namespace name/],
  ['device not a mapping', (c) => (c.device = 'tap'), 'device', /mapping/],
  ['device.type packet without an interface', (c) => (c.device = { type: 'packet' }), 'device.interface', /^required for device.type packet/],
  ['vxlan on a tun device', (c) => ((c.device = { type: 'tun' }), (c.peers = [])), 'encap.type', /^vxlan carries Ethernet frames: it needs device.type tap$/],
  ['ipip on a tap device', (c) => ((c.encap = { type: 'ipip' }), (c.peers = [])), 'encap.type', /^ipip carries IP packets: it needs device.type tun$/],
  ['device.mac on a tun device', (c) => ((c.device = { type: 'tun', mac: '02:00:00:00:00:09' }), (c.encap = { type: 'gre' }), (c.peers = [])), 'device.mac', /tun device has no MAC/],
  ['macs on a tun device', (c) => ((c.device = { type: 'tun' }), (c.encap = { type: 'gre' }), (c.peers[1].endpoint = '198.18.0.3')), 'peers[0].macs', /only with device.type tap/],
  ['GRE sequence numbers with two workers', (c) => ((c.encap = { type: 'gre-udp', sequence: true }), (c.workers = 2), (c.peers[1].endpoint = '198.18.0.3')), 'encap.sequence', /needs workers: 1/],
  ['GRE sequence numbers on vxlan', (c) => (c.encap.sequence = true), 'encap.sequence', /not used by vxlan \(GRE modes only\)/],
  ['mssClamp too small', (c) => (c.mssClamp = 40), 'mssClamp', /'off', 'auto' or an integer from 88 to 65495/],
  ['mssClamp a word', (c) => (c.mssClamp = 'on'), 'mssClamp', /'off', 'auto' or an integer from 88 to 65495/],
  ['a port on a gre endpoint', (c) => ((c.encap = { type: 'gre' }), (c.peers[1].endpoint = '198.18.0.3:4789')), 'peers[1].endpoint', /gre has no UDP port/],
  ['one prefix routed to two peers', (c) => (c.peers[0].allowedIps = ['198.19.0.9/32', '198.19.0.3/32']), 'peers[1].allowedIps[0]', /198.19.0.3\/32 is already routed to peer "b"/],
  ['the same network written twice', (c) => (c.peers[1].allowedIps = ['198.19.1.0/24', '198.19.1.7/24']), 'peers[1].allowedIps[1]', /198.19.1.0\/24 is listed twice/],
  ['the same IPv6 network written twice', (c) => (c.peers[1].allowedIps = ['fd00:1::/48', 'fd00:1:0:ff::1/48']), 'peers[1].allowedIps[1]', /fd00:1:0:0:0:0:0:0\/48 is listed twice/],
  ['device.type unknown', (c) => (c.device = { type: 'tup' }), 'device.type', /"tup" is not a device type/],
  ['device.name too long', (c) => (c.device = { name: 'x'.repeat(16) }), 'device.name', /1 to 15/],
  ['device.mtu too small', (c) => (c.device = { mtu: 575 }), 'device.mtu', /integer from 576 to 65535/],
  ['device.mtu too large', (c) => (c.device = { mtu: 65536 }), 'device.mtu', /integer from 576 to 65535/],
  ['device.mtu fractional', (c) => (c.device = { mtu: 1400.5 }), 'device.mtu', /integer from 576 to 65535/],
  ['device.mtu a string', (c) => (c.device = { mtu: '1400' }), 'device.mtu', /integer from 576 to 65535/],
  ['device.addresses without prefix', (c) => (c.device = { addresses: ['198.19.0.1'] }), 'device.addresses[0]', /not a CIDR prefix/],
  ['device.addresses IPv4 prefix 33', (c) => (c.device = { addresses: ['198.19.0.1/24', '198.19.0.1/33'] }), 'device.addresses[1]', /0 to 32 for IPv4/],
  ['device.addresses IPv6 prefix 129', (c) => (c.device = { addresses: ['fd00::1/129'] }), 'device.addresses[0]', /0 to 128 for IPv6/],
  ['device.addresses bad address', (c) => (c.device = { addresses: ['198.19.0.256/24'] }), 'device.addresses[0]', /"198.19.0.256" is not an IPv4 or IPv6 address/],
  ['device.addresses duplicate', (c) => (c.device = { addresses: ['198.19.0.1/24', '198.19.0.1/24'] }), 'device.addresses[1]', /listed twice/],
  ['device.addresses not a list', (c) => (c.device = { addresses: '198.19.0.1/24' }), 'device.addresses', /list/],
  ['device.mac multicast', (c) => (c.device = { mac: '01:00:5e:00:00:01' }), 'device.mac', /must be unicast/],
  ['device.mac broadcast', (c) => (c.device = { mac: 'ff:ff:ff:ff:ff:ff' }), 'device.mac', /must be unicast/],
  ['device.mac malformed', (c) => (c.device = { mac: '02:00:00:00:00' }), 'device.mac', /not a MAC address/],
  ['encap missing (vni required)', (c) => delete c.encap, 'encap.vni', /required for vxlan/],
  ['encap.type esp without a cipher', (c) => (c.encap = { type: 'esp' }), 'encap.cipher', /^required for esp \(one of: aes-128-gcm, aes-256-gcm, chacha20-poly1305\)$/],
  ['encap.key on vxlan', (c) => (c.encap.key = 5), 'encap.key', /not used by vxlan/],
  ['encap.key too large', (c) => (c.encap = { type: 'gre-udp', key: 2 ** 32 }), 'encap.key', /integer/],
  ['encap.type unknown', (c) => (c.encap = { type: 'mpls', vni: 1 }), 'encap.type', /"mpls" is not an encapsulation type/],
  ['encap.vni missing', (c) => delete c.encap.vni, 'encap.vni', /required for vxlan/],
  ['encap.vni too large', (c) => (c.encap.vni = 16777216), 'encap.vni', /^must be an integer from 0 to 16777215$/],
  ['encap.vni negative', (c) => (c.encap.vni = -1), 'encap.vni', /^must be an integer from 0 to 16777215$/],
  ['encap.vni a string', (c) => (c.encap.vni = '42'), 'encap.vni', /^must be an integer from 0 to 16777215$/],
  ['encap.port 0', (c) => (c.encap.port = 0), 'encap.port', /integer from 1 to 65535/],
  ['encap.port 65536', (c) => (c.encap.port = 65536), 'encap.port', /integer from 1 to 65535/],
  ['underlay missing', (c) => delete c.underlay, 'underlay', /required/],
  ['underlay.local missing', (c) => (c.underlay = {}), 'underlay.local', /required/],
  ['underlay.local invalid', (c) => (c.underlay.local = '198.18.0.999'), 'underlay.local', /"198.18.0.999" is not an IPv4 or IPv6 address/],
  ['underlay.local a host name', (c) => (c.underlay.local = 'node-a.example'), 'underlay.local', /host names are not resolved/],
  ['underlay.local unspecified', (c) => (c.underlay.local = '0.0.0.0'), 'underlay.local', /unicast/],
  ['underlay.local with zone', (c) => (c.underlay.local = 'fe80::1%eth0'), 'underlay.local', /zone/],
  ['underlay.sourcePorts 0', (c) => (c.underlay.sourcePorts = 0), 'underlay.sourcePorts', /integer from 1 to 256/],
  ['underlay.sourcePorts 257', (c) => (c.underlay.sourcePorts = 257), 'underlay.sourcePorts', /integer from 1 to 256/],
  ['underlay.udpChecksum "yes"', (c) => (c.underlay.udpChecksum = 'yes'), 'underlay.udpChecksum', /true or false/],
  ['workers 0', (c) => (c.workers = 0), 'workers', /integer from 1 to 64/],
  ['workers 65', (c) => (c.workers = 65), 'workers', /integer from 1 to 64/],
  ['batchSize 0', (c) => (c.batchSize = 0), 'batchSize', /integer from 1 to 1024/],
  ['batchSize 1025', (c) => (c.batchSize = 1025), 'batchSize', /integer from 1 to 1024/],
  ['fdb.learning "on"', (c) => (c.fdb = { learning: 'on' }), 'fdb.learning', /true or false/],
  ['fdb.ageingSeconds 0', (c) => (c.fdb = { ageingSeconds: 0 }), 'fdb.ageingSeconds', /integer from 1 to 86400/],
  ['fdb.ageingSeconds 86401', (c) => (c.fdb = { ageingSeconds: 86401 }), 'fdb.ageingSeconds', /integer from 1 to 86400/],
  ['fdb.maxEntries 15', (c) => (c.fdb = { maxEntries: 15 }), 'fdb.maxEntries', /integer from 16 to 1000000/],
  ['fdb.maxEntries 1000001', (c) => (c.fdb = { maxEntries: 1_000_001 }), 'fdb.maxEntries', /integer from 16 to 1000000/],
  ['limits.maxPeers 0', (c) => (c.limits = { maxPeers: 0 }), 'limits.maxPeers', /integer from 1 to 65536/],
  ['limits.maxPeers 65537', (c) => (c.limits = { maxPeers: 65537 }), 'limits.maxPeers', /integer from 1 to 65536/],
  ['more peers than limits.maxPeers', (c) => (c.limits = { maxPeers: 1 }), 'peers', /2 peers exceed limits.maxPeers \(1\)/],
  ['peers not a list', (c) => (c.peers = { b: {} }), 'peers', /list/],
  ['peer not a mapping', (c) => (c.peers[1] = 'c'), 'peers[1]', /mapping/],
  ['peer name missing', (c) => delete c.peers[1].name, 'peers[1].name', /required/],
  ['peer name invalid', (c) => (c.peers[1].name = 'c d'), 'peers[1].name', /1 to 64 characters/],
  ['peer name __proto__', (c) => (c.peers[1].name = '__proto__'), 'peers[1].name', /reserved/],
  ['duplicate peer name', (c) => (c.peers[1].name = 'b'), 'peers[1].name', /duplicate peer name "b".*peers\[0\]/],
  ['peer unknown key', (c) => (c.peers[1].allowed_ips = []), 'peers[1].allowed_ips', /unknown key \(did you mean "allowedIps"\?\)/],
  ['endpoint missing', (c) => delete c.peers[1].endpoint, 'peers[1].endpoint', /required/],
  ['endpoint invalid address', (c) => (c.peers[1].endpoint = '198.18.0.999'), 'peers[1].endpoint', /^"198.18.0.999" is not an IPv4 or IPv6 address$/],
  ['endpoint port too large', (c) => (c.peers[1].endpoint = '198.18.0.3:65536'), 'peers[1].endpoint', /port "65536" must be an integer from 1 to 65535/],
  ['endpoint port 0', (c) => (c.peers[1].endpoint = '198.18.0.3:0'), 'peers[1].endpoint', /port "0"/],
  ['endpoint port not numeric', (c) => (c.peers[1].endpoint = '198.18.0.3:vxlan'), 'peers[1].endpoint', /port "vxlan"/],
  ['endpoint IPv4 in brackets', (c) => (c.peers[1].endpoint = '[198.18.0.3]:4789'), 'peers[1].endpoint', /not an IPv6 address/],
  ['endpoint a number', (c) => (c.peers[1].endpoint = 42), 'peers[1].endpoint', /must be an address/],
  ['endpoint object bad address', (c) => (c.peers[1].endpoint = { address: 'x', port: 1 }), 'peers[1].endpoint.address', /"x" is not an IPv4 or IPv6 address/],
  ['endpoint object bad port', (c) => (c.peers[1].endpoint = { address: '198.18.0.3', port: 70000 }), 'peers[1].endpoint.port', /integer from 1 to 65535/],
  ['endpoint object unknown key', (c) => (c.peers[1].endpoint = { address: '198.18.0.3', host: 'x' }), 'peers[1].endpoint.host', /unknown key/],
  ['endpoint family differs from underlay', (c) => (c.peers[1].endpoint = 'fd00::3'), 'peers[1].endpoint', /fd00::3 is IPv6 but underlay.local 198.18.0.1 is IPv4/],
  ['endpoint is underlay.local', (c) => (c.peers[1].endpoint = '198.18.0.1:4790'), 'peers[1].endpoint', /underlay.local itself/],
  ['endpoint multicast', (c) => (c.peers[1].endpoint = '239.1.1.1'), 'peers[1].endpoint', /not a unicast address/],
  ['duplicate endpoint (default port spelled out)', (c) => (c.peers[1].endpoint = '198.18.0.2:4789'), 'peers[1].endpoint', /198.18.0.2:4789 is already the endpoint of peer "b"/],
  ['allowedIps invalid', (c) => (c.peers[1].allowedIps = ['198.19.0.3/32', '198.19.0.0/40']), 'peers[1].allowedIps[1]', /0 to 32 for IPv4/],
  ['allowedIps not a list', (c) => (c.peers[1].allowedIps = '198.19.0.3/32'), 'peers[1].allowedIps', /list/],
  ['macs multicast', (c) => (c.peers[1].macs = ['33:33:00:00:00:01']), 'peers[1].macs[0]', /must be unicast/],
  ['macs duplicate across peers', (c) => (c.peers[1].macs = ['02:00:00:00:00:03', '02:00:00:00:00:02']), 'peers[1].macs[1]', /02:00:00:00:00:02 is already assigned to peer "b"/],
  ['macs duplicate within a peer', (c) => (c.peers[1].macs = ['02:00:00:00:00:03', '02:00:00:00:00:03']), 'peers[1].macs[1]', /listed twice/],
  ['peer MAC is the device MAC', (c) => (c.device = { mac: '02:00:00:00:00:02' }), 'peers[0].macs[0]', /device's own MAC/],
  ['control.socket empty', (c) => (c.control = { socket: '' }), 'control.socket', /must not be empty/],
  ['control.socket too long', (c) => (c.control = { socket: `/tmp/${'x'.repeat(120)}.sock` }), 'control.socket', /too long/],
  ['control unknown key', (c) => (c.control = { path: '/tmp/x.sock' }), 'control.path', /unknown key/],
  ['device.interface on a tap device', (c) => (c.device = { interface: 'eth1' }), 'device.interface', /used only with device.type packet/],
  ['device.interface on a tun device', (c) => ((c.device = { type: 'tun', interface: 'eth1' }), (c.encap = { type: 'gre' }), (c.peers = [])), 'device.interface', /used only with device.type packet/],
  ['device.interface not a name', (c) => (c.device = { type: 'packet', interface: 'eth 1' }), 'device.interface', /name of an existing network interface/],
  ['device.interface too long', (c) => (c.device = { type: 'packet', interface: 'e'.repeat(16) }), 'device.interface', /1 to 15 characters/],
  ['device.name on a packet device', (c) => (c.device = { type: 'packet', interface: 'eth1', name: 'ovl0' }), 'device.name', /not used by device.type packet/],
  ['device.mtu on a packet device', (c) => (c.device = { type: 'packet', interface: 'eth1', mtu: 1400 }), 'device.mtu', /not used by device.type packet: the interface keeps its own MTU/],
  ['device.addresses on a packet device', (c) => (c.device = { type: 'packet', interface: 'eth1', addresses: ['198.19.0.1/24'] }), 'device.addresses', /not used by device.type packet/],
  ['device.mac on a packet device', (c) => (c.device = { type: 'packet', interface: 'eth1', mac: '02:00:00:00:00:09' }), 'device.mac', /not used by device.type packet: the interface keeps its own MAC/],
  ['ipip on a packet device', (c) => ((c.device = { type: 'packet', interface: 'eth1' }), (c.encap = { type: 'ipip' }), (c.peers = [])), 'encap.type', /^ipip carries IP packets: device.type packet bridges Ethernet frames/],
];

describe('parseConfig rejects broken configs, naming the field', () => {
  it.each(broken)('%s', (_what, mutate, at, pattern) => {
    const input = base();
    mutate(input);
    const err = issuesOf(input);
    const matching = err.issues.filter((i) => i.path === at);
    expect(matching.map((i) => i.message), `issues: ${err.message}`).toEqual(
      expect.arrayContaining([expect.stringMatching(pattern)]),
    );
    // The message lists every issue as "<path>: <problem>".
    expect(err.message.split('\n')).toEqual(err.issues.map((i) => `${i.path}: ${i.message}`));
  });

  it('has at least 20 cases', () => expect(broken.length).toBeGreaterThanOrEqual(20));

  it('rejects input that is not a mapping', () => {
    for (const input of [null, [], 'name: x', 42]) {
      expect(issuesOf(input).issues[0]!.path).toBe('(config)');
    }
  });

  it('reports every problem at once, peers in order', () => {
    const input = base();
    input.name = 'this-name-is-too-long';
    input.encap.vni = 1 << 24;
    input.workers = 0;
    input.peers.push({ name: 'd', endpoint: '198.18.0.999' }, { name: 'b', endpoint: '198.18.0.5' });
    input.peers[1].macs = ['nope'];
    const paths = issuesOf(input).issues.map((i) => i.path);
    expect(paths).toEqual(['name', 'encap.vni', 'workers', 'peers[1].macs[0]', 'peers[2].endpoint', 'peers[3].name']);
  });

  it('reports the example messages exactly', () => {
    const input = base();
    input.encap = { type: 'esp' };
    input.peers[1].endpoint = '198.18.0.999';
    const lines = issuesOf(input).message.split('\n');
    expect(lines).toContain('encap.cipher: required for esp (one of: aes-128-gcm, aes-256-gcm, chacha20-poly1305)');
    expect(lines).toContain('peers[1].endpoint: "198.18.0.999" is not an IPv4 or IPv6 address');
    input.encap = { vni: 16777216 };
    expect(issuesOf(input).message.split('\n')).toContain('encap.vni: must be an integer from 0 to 16777215');
  });
});

describe('parseEndpointString', () => {
  it.each([
    ['198.18.0.2', { address: '198.18.0.2', family: 4, port: undefined }],
    ['198.18.0.2:4789', { address: '198.18.0.2', family: 4, port: 4789 }],
    ['fd00::2', { address: 'fd00::2', family: 6, port: undefined }],
    ['[fd00::2]', { address: 'fd00::2', family: 6, port: undefined }],
    ['[FD00:0::2]:4789', { address: 'fd00::2', family: 6, port: 4789 }],
  ])('%s', (text, expected) => {
    expect(parseEndpointString(text)).toEqual({ ok: true, value: expected });
  });
});

describe('parsePeer', () => {
  const config = parseConfig({ ...base(), encap: { vni: 1, port: 8472 }, limits: { maxPeers: 3 } });

  it('parses one entry, with the vxlan port by default', () => {
    expect(parsePeer({ name: 'x', endpoint: '198.18.0.9' })).toEqual({
      name: 'x',
      endpoint: { address: '198.18.0.9', port: 4789 },
      allowedIps: [],
      macs: [],
    });
  });

  it('names fields under the given path', () => {
    try {
      parsePeer({ name: 'x', endpoint: '1.2.3', macs: ['zz'] }, 'peer');
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).issues.map((i) => i.path)).toEqual(['peer.endpoint', 'peer.macs[0]']);
    }
  });

  it('checks against a config: port, family, uniqueness, maxPeers', () => {
    expect(parsePeer({ name: 'x', endpoint: '198.18.0.9' }, 'peer', config).endpoint.port).toBe(8472);
    const bad = (input: unknown, existing = config.peers) => {
      try {
        parsePeer(input, 'peer', config, existing);
      } catch (err) {
        return (err as ConfigError).message;
      }
      return 'accepted';
    };
    expect(bad({ name: 'b', endpoint: '198.18.0.9' })).toMatch(/^peer.name: duplicate peer name "b"/);
    expect(bad({ name: 'x', endpoint: '198.18.0.2:8472' })).toMatch(/^peer.endpoint: 198.18.0.2:8472 is already the endpoint of peer "b"/);
    expect(bad({ name: 'x', endpoint: '198.18.0.9', macs: ['02:00:00:00:00:02'] })).toMatch(/^peer.macs\[0\]: .* already assigned to peer "b"/);
    expect(bad({ name: 'x', endpoint: 'fd00::9' })).toMatch(/^peer.endpoint: fd00::9 is IPv6/);
    expect(bad({ name: 'x', endpoint: '198.18.0.9' }, [...config.peers, { ...config.peers[0]!, name: 'z', endpoint: { address: '198.18.0.8', port: 1 }, macs: [] }])).toMatch(
      /limits.maxPeers \(3\) reached/,
    );
    expect(bad({ name: 'x', endpoint: '198.18.0.9' })).toBe('accepted');
  });
});

describe('loadConfigFile', () => {
  const write = (name: string, text: string) => {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, text);
    return file;
  };
  const loadError = (file: string) => {
    try {
      loadConfigFile(file);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return err as ConfigError;
    }
    throw new Error('expected a ConfigError');
  };

  it('reads YAML as in DESIGN.md', () => {
    const file = write(
      'design.yaml',
      `name: ovl0                        # instance name
device:
  type: tap
  name: ovl0
  mtu: 1450
  addresses: [198.19.0.1/24]
encap:
  type: vxlan
  vni: 42
  port: 4789
underlay:
  local: 198.18.0.1
workers: 2
peers:
  - name: b
    endpoint: 198.18.0.2
    allowedIps: [198.19.0.2/32]
    macs: [02:00:00:00:00:02]
control:
  socket: /run/overlayfwd/ovl0.sock
`,
    );
    const cfg = loadConfigFile(file);
    expect(cfg.device.mtu).toBe(1450);
    expect(cfg.workers).toBe(2);
    expect(cfg.peers).toEqual([
      { name: 'b', endpoint: { address: '198.18.0.2', port: 4789 }, allowedIps: ['198.19.0.2/32'], macs: ['02:00:00:00:00:02'] },
    ]);
  });

  it('reads JSON', () => {
    const file = write('c.json', JSON.stringify(base()));
    expect(loadConfigFile(file).peers).toHaveLength(2);
  });

  it('reports an unreadable file under (file)', () => {
    const err = loadError(path.join(tmp, 'missing.yaml'));
    expect(err.issues).toEqual([{ path: '(file)', message: expect.stringMatching(/cannot read .*missing.yaml: no such file/) }]);
    expect(loadError(tmp).issues[0]!.message).toMatch(/is a directory/);
  });

  it('reports YAML syntax errors under (file), with the line', () => {
    const err = loadError(write('bad.yaml', 'name: [ovl0\nencap:\n  vni: 1\n'));
    expect(err.issues[0]!.path).toBe('(file)');
    expect(err.issues[0]!.message).toMatch(/line \d+/);
  });

  it('rejects duplicate keys and empty files', () => {
    expect(loadError(write('dup.yaml', 'name: a\nname: b\n')).issues[0]!.message).toMatch(/unique/);
    expect(loadError(write('empty.yaml', '# nothing\n')).issues[0]!.message).toMatch(/empty/);
  });

  it('reports schema problems with field paths', () => {
    const err = loadError(write('schema.yaml', 'name: ovl0\nencap: {vni: 1}\nunderlay: {local: 198.18.0.1, udpChecksum: yes}\n'));
    expect(err.issues).toEqual([{ path: 'underlay.udpChecksum', message: 'must be true or false' }]);
  });
});

describe('overheadFor', () => {
  it('is 50 bytes for VXLAN over IPv4 and 70 over IPv6', () => {
    expect(overheadFor(parseConfig(base()))).toBe(50);
    expect(overheadFor(parseConfig({ name: 'v6', encap: { vni: 1 }, underlay: { local: 'fd00::1' } }))).toBe(70);
  });
});

describe('cpuAffinity', () => {
  const base = { name: 'ovl0', encap: { type: 'vxlan', vni: 1 }, underlay: { local: '198.18.0.1' } };
  it('accepts a list of CPU numbers', () => {
    expect(parseConfig({ ...base, cpuAffinity: [0, 1] }).cpuAffinity).toEqual([0, 1]);
  });
  it('names the entry that is not a CPU number', () => {
    expect(() => parseConfig({ ...base, cpuAffinity: [0, -1] })).toThrow(/cpuAffinity\[1\]/);
  });
});

describe('geneve', () => {
  it('defaults the port to 6081 and keeps the VNI', () => {
    const config = parseConfig({ name: 'g0', encap: { type: 'geneve', vni: 7 }, underlay: { local: '198.18.0.1' } });
    expect(config.encap).toEqual({ type: 'geneve', vni: 7, port: 6081, key: null, checksum: false, sequence: false });
    expect(overheadFor(config)).toBe(50);
  });
  it('requires a VNI', () => {
    expect(() => parseConfig({ name: 'g0', encap: { type: 'geneve' }, underlay: { local: '198.18.0.1' } })).toThrow(/encap\.vni/);
  });
});

describe('gre-udp', () => {
  it('defaults the port to 4754, no key, no checksum, and counts the options in the overhead', () => {
    const plain = parseConfig({ name: 'g0', encap: { type: 'gre-udp' }, underlay: { local: '198.18.0.1' } });
    expect(plain.encap).toEqual({ type: 'gre-udp', vni: 0, port: 4754, key: null, checksum: false, sequence: false });
    expect(overheadFor(plain)).toBe(46);
    const full = parseConfig({ name: 'g0', encap: { type: 'gre-udp', key: 42, checksum: true }, underlay: { local: '198.18.0.1' } });
    expect(overheadFor(full)).toBe(54);
  });
  it('has no VNI', () => {
    expect(() => parseConfig({ name: 'g0', encap: { type: 'gre-udp', vni: 1 }, underlay: { local: '198.18.0.1' } })).toThrow(/encap\.vni: not used by gre-udp/);
  });
});

describe('device.type packet', () => {
  const packet = (encap: Raw, device: Raw = {}) =>
    parseConfig({ name: 'gw', device: { type: 'packet', interface: 'eth1', ...device }, encap, underlay: { local: '198.18.0.1' } });

  it('names the device after the interface and leaves the interface alone', () => {
    const config = packet({ type: 'vxlan', vni: 5 });
    expect(config.device).toEqual({ type: 'packet', name: 'eth1', mtu: null, addresses: [], mac: null, interface: 'eth1' });
    expect(overheadFor(config)).toBe(50);
  });
  it('accepts every mode that carries Ethernet frames', () => {
    for (const encap of [{ type: 'vxlan', vni: 1 }, { type: 'geneve', vni: 2 }, { type: 'gre', key: 3 }, { type: 'gre-udp' }]) {
      expect(packet(encap).device.type).toBe('packet');
    }
  });
  it('takes "auto" and null for the fields it does not use', () => {
    expect(packet({ type: 'vxlan', vni: 5 }, { mtu: 'auto', mac: null, addresses: [], name: 'eth1' }).device.interface).toBe('eth1');
  });
  it('accepts its own output again', () => {
    const config = packet({ type: 'geneve', vni: 9 });
    expect(parseConfig(JSON.parse(JSON.stringify(config)))).toEqual(config);
  });
  it('reports every field that would change the interface at once', () => {
    const err = issuesOf({
      name: 'gw',
      device: { type: 'packet', interface: 'eth1', name: 'ovl0', mtu: 1400, addresses: ['198.19.0.1/24'], mac: '02:00:00:00:00:09' },
      encap: { type: 'vxlan', vni: 5 },
      underlay: { local: '198.18.0.1' },
    });
    expect(err.issues.map((i) => i.path)).toEqual(['device.name', 'device.mtu', 'device.addresses', 'device.mac']);
  });
});
