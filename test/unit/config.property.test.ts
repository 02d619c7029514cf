// Property-based tests (fast-check) of the config layer (lib/config): configs built from
// arbitraries of every valid shape (device types, modes and their options, peers with endpoints
// in every written form, routes, MACs, ESP SAs) must validate, and must come back the same through
// what `overlayfwd check` prints (redacted YAML; the SA keys put back, since check never prints
// them); any mutation of one (a field removed, replaced by any value, an unknown key, an edit of
// the YAML text) must give either a config that round-trips too, or a ConfigError whose every
// issue names a field path: never a TypeError, another exception, or a message quoting an SA key.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import YAML from 'yaml';
import { printableConfig, redact } from '../../lib/cli/check';
import { isConfigError, parseConfig } from '../../lib/config';
import { loadConfigText, parseYamlText } from '../../lib/config/load';
import type { ResolvedConfig } from '../../lib/types';
import { PROPERTY_SCALE, runs } from '../helpers/property';

type Raw = Record<string, unknown>;

// OVERLAYFWD_PROPERTY_RUNS multiplies the runs for a longer search; a failure prints the seed
// and the shrunk counterexample that reproduce it.
const TIMEOUT = 30_000 * PROPERTY_SCALE;

const hex = (n: number) => n.toString(16);
// Names from their alphabets (a first character other than "." keeps "." and ".." out).
const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-';
const nameOf = (max: number, extra = '.') =>
  fc
    .tuple(fc.constantFrom(...NAME_CHARS), fc.string({ unit: fc.constantFrom(...NAME_CHARS, ...extra), maxLength: max - 1 }))
    .map(([first, rest]) => first + rest);
const ifName = nameOf(15);
const peerName = nameOf(21).filter((s) => s !== '__proto__');

type Family = 4 | 6;
type Mode = 'vxlan' | 'geneve' | 'gre' | 'gre-udp' | 'ipip' | 'esp';
const MODES_FOR: Record<'tap' | 'tun' | 'packet', Mode[]> = {
  tap: ['vxlan', 'geneve', 'gre', 'gre-udp', 'esp'],
  tun: ['geneve', 'gre', 'gre-udp', 'ipip', 'esp'],
  packet: ['vxlan', 'geneve', 'gre', 'gre-udp'],
};
const CIPHERS = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305'] as const;

/** Host `i` of the underlay, written in one of several equivalent forms for IPv6. */
function underlayAddress(family: Family, i: number, form: number): string {
  if (family === 4) return `198.18.${i >> 8}.${i & 255}`;
  const forms = [`fd00:198:18::${hex(i)}`, `FD00:198:18:0:0:0:0:${hex(i).toUpperCase()}`, `fd00:0198:0018::0:${hex(i)}`];
  return forms[form % forms.length]!;
}

function endpointInput(address: string, family: Family, port: number | undefined, form: number): unknown {
  if (port === undefined) return form % 3 === 2 ? { address } : family === 6 && form % 3 === 1 ? `[${address}]` : address;
  switch (form % 3) {
    case 0: return family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
    case 1: return { address, port };
    default: return address; // the port from encap.port
  }
}

/** A hex key of `bytes` bytes, unique per (peer, direction), never all zeros. */
function saKey(bytes: number, seed: number, salt: number): string {
  let s = '';
  for (let i = 0; i < bytes; i++) s += hex(((seed * 131 + i * 29 + salt * 7 + 1) & 0xff) | (i === 0 ? 1 : 0)).padStart(2, '0');
  return `${hex(seed).padStart(4, '0')}${s.slice(4)}`;
}

interface Shape {
  deviceType: 'tap' | 'tun' | 'packet';
  mode: Mode;
  family: Family;
  peers: number;
}

const shape: fc.Arbitrary<Shape> = fc
  .record({ deviceType: fc.constantFrom('tap' as const, 'tun' as const, 'packet' as const), family: fc.constantFrom(4 as const, 6 as const), peers: fc.integer({ min: 0, max: 5 }), pick: fc.nat() })
  .map(({ deviceType, family, peers, pick }) => {
    const modes = MODES_FOR[deviceType];
    return { deviceType, family, peers, mode: modes[pick % modes.length]! };
  });

/** A valid raw config (as YAML would give it) of the given shape. */
function validConfig(s: Shape): fc.Arbitrary<Raw> {
  const udp = fc.boolean();
  const encap: fc.Arbitrary<Raw> = (() => {
    const port = fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined });
    const vni = fc.integer({ min: 0, max: 0xffffff });
    const gre = { key: fc.option(fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constant(null)), { nil: undefined }), checksum: fc.option(fc.boolean(), { nil: undefined }), sequence: fc.option(fc.boolean(), { nil: undefined }) };
    switch (s.mode) {
      case 'vxlan':
      case 'geneve': return fc.record({ type: fc.constant(s.mode), vni, port }, { requiredKeys: ['type', 'vni'] });
      case 'gre': return fc.record({ type: fc.constant('gre'), ...gre }, { requiredKeys: ['type'] });
      case 'gre-udp': return fc.record({ type: fc.constant('gre-udp'), port, ...gre }, { requiredKeys: ['type'] });
      case 'ipip': return fc.constant({ type: 'ipip' });
      case 'esp':
        return fc.record({ cipher: fc.constantFrom(...CIPHERS), udp, esn: fc.boolean(), port }, { requiredKeys: ['cipher'] }).map((e) => {
          const out: Raw = { type: 'esp', ...e };
          if (e.udp === false) delete out['port'];
          return out;
        });
    }
  })();
  const deviceMac = fc.option(fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.boolean()).map(([n, dash]) => `02${dash ? '-' : ':'}AA:00:00:${hex(n >> 8).padStart(2, '0')}:${hex(n & 255).padStart(2, '0')}`.replace(/:/g, dash ? '-' : ':')), { nil: undefined });

  return fc
    .record({
      name: ifName,
      encap,
      deviceName: fc.option(ifName, { nil: undefined }),
      mtu: fc.option(fc.oneof(fc.integer({ min: 576, max: 65535 }), fc.constant('auto')), { nil: undefined }),
      addresses: fc.uniqueArray(fc.integer({ min: 1, max: 250 }), { maxLength: 3 }),
      deviceMac,
      local: fc.integer({ min: 1, max: 0xffff }),
      peerIds: fc.uniqueArray(fc.integer({ min: 1, max: 0xffff }), { minLength: s.peers, maxLength: s.peers }),
      peerNames: fc.uniqueArray(peerName, { minLength: s.peers, maxLength: s.peers }),
      forms: fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
      routes: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 5, maxLength: 5 }),
      ports: fc.array(fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }), { minLength: 5, maxLength: 5 }),
      workers: fc.option(fc.integer({ min: 1, max: 64 }), { nil: undefined }),
      mssClamp: fc.option(fc.oneof(fc.constant('off'), fc.constant('auto'), fc.integer({ min: 88, max: 65495 })), { nil: undefined }),
      batchSize: fc.option(fc.integer({ min: 1, max: 1024 }), { nil: undefined }),
      busyPoll: fc.option(fc.integer({ min: 0, max: 10000 }), { nil: undefined }),
      cpuAffinity: fc.option(fc.array(fc.integer({ min: 0, max: 4095 }), { maxLength: 4 }), { nil: undefined }),
      fdb: fc.option(fc.record({ learning: fc.boolean(), ageingSeconds: fc.integer({ min: 1, max: 86400 }), maxEntries: fc.integer({ min: 16, max: 1_000_000 }) }, { requiredKeys: [] }), { nil: undefined }),
      offloads: fc.option(fc.record({ tso: fc.boolean(), udpGso: fc.boolean(), udpGro: fc.boolean(), uringWrites: fc.boolean() }, { requiredKeys: [] }), { nil: undefined }),
      sourcePorts: fc.option(fc.integer({ min: 1, max: 256 }), { nil: undefined }),
      udpChecksum: fc.option(fc.boolean(), { nil: undefined }),
      netns: fc.option(nameOf(30), { nil: undefined }),
      socket: fc.option(fc.tuple(nameOf(20, ''), nameOf(20)).map(([dir, file]) => `/run/${dir}/${file}`), { nil: undefined }),
      metrics: fc.option(fc.constantFrom('127.0.0.1:9469', '[::1]:9100', '0.0.0.0:9469'), { nil: undefined }),
      grace: fc.option(fc.integer({ min: 1, max: 3600 }), { nil: undefined }),
    })
    .map((g) => {
      const encapRaw = g.encap;
      const espUdp = s.mode === 'esp' ? encapRaw['udp'] !== false : false;
      const ipProtocol = s.mode === 'gre' || s.mode === 'ipip' || (s.mode === 'esp' && !espUdp);
      const cipher = encapRaw['cipher'] as (typeof CIPHERS)[number] | undefined;
      const keyBytes = cipher === 'aes-128-gcm' ? 20 : 36;
      const local = underlayAddress(s.family, g.local, g.forms[0]!);
      const peers = g.peerIds
        .filter((id) => id !== g.local)
        .map((id, p) => {
          const peer: Raw = {
            name: g.peerNames[p]!,
            endpoint: endpointInput(underlayAddress(s.family, id, g.forms[p]!), s.family, ipProtocol ? undefined : g.ports[p], g.forms[p + 1]!),
          };
          const routes = g.routes[p]!;
          if (routes > 0 && s.deviceType !== 'packet') {
            peer['allowedIps'] = [`198.19.${p}.${1 + (g.forms[p]! % 200)}/32`, `10.${p}.0.0/16`, `fd01:${hex(p)}::/48`].slice(0, routes);
          }
          if (s.deviceType !== 'tun' && routes > 1) peer['macs'] = Array.from({ length: routes - 1 }, (_, m) => `02:00:00:00:${hex(p).padStart(2, '0')}:${hex(m).padStart(2, '0')}`);
          if (s.mode === 'esp') {
            const inbound = { spi: 0x2000 + p, key: saKey(keyBytes, 2 * p + 1, g.local) };
            peer['sa'] = { out: { spi: `0x${hex(0x1000 + p)}`, key: saKey(keyBytes, 2 * p + 2, g.local) }, in: g.forms[p]! % 2 ? [inbound] : inbound };
          }
          return peer;
        });
      const device: Raw = { type: s.deviceType };
      if (s.deviceType === 'packet') {
        device['interface'] = g.deviceName ?? 'eth1';
      } else {
        if (g.deviceName !== undefined) device['name'] = g.deviceName;
        // IPv6 needs an MTU of at least 1280 (RFC 8200): a smaller one with an IPv6 address is
        // an error of its own, not a valid shape.
        const ipv6 = g.addresses.length > 1;
        if (g.mtu !== undefined) device['mtu'] = ipv6 && typeof g.mtu === 'number' ? Math.max(g.mtu, 1280) : g.mtu;
        if (g.addresses.length) device['addresses'] = g.addresses.map((a, i) => (i % 2 ? `fd00:198:19::${hex(a)}/64` : `198.19.${a}.1/24`));
        if (s.deviceType === 'tap' && g.deviceMac !== undefined) device['mac'] = g.deviceMac;
      }
      const config: Raw = { name: g.name, device, encap: encapRaw, underlay: { local }, peers };
      const sequence = encapRaw['sequence'] === true;
      if (sequence) config['workers'] = 1;
      else if (g.workers !== undefined) config['workers'] = g.workers;
      if (g.mssClamp !== undefined) config['mssClamp'] = g.mssClamp;
      if (g.batchSize !== undefined) config['batchSize'] = g.batchSize;
      if (g.busyPoll !== undefined) config['busyPollMicroseconds'] = g.busyPoll;
      if (g.cpuAffinity !== undefined) config['cpuAffinity'] = g.cpuAffinity;
      if (g.fdb !== undefined) config['fdb'] = g.fdb;
      if (g.offloads !== undefined) config['offloads'] = g.offloads;
      if (g.sourcePorts !== undefined) (config['underlay'] as Raw)['sourcePorts'] = g.sourcePorts;
      if (g.udpChecksum !== undefined) (config['underlay'] as Raw)['udpChecksum'] = g.udpChecksum;
      if (g.netns !== undefined) config['netns'] = g.netns;
      if (g.socket !== undefined) config['control'] = { socket: g.socket };
      if (g.metrics !== undefined) config['metrics'] = { listen: g.metrics };
      if (s.mode === 'esp' && g.grace !== undefined) config['esp'] = { rekeyGraceSeconds: g.grace };
      return config;
    });
}

const anyValid: fc.Arbitrary<Raw> = shape.chain(validConfig);

/** What `overlayfwd check` prints for `config`, as YAML (without its comment line). */
function checkOutput(config: ResolvedConfig): string {
  return YAML.stringify(redact(printableConfig(config)), { lineWidth: 0 });
}

/** check's YAML read back, with the SA keys (which it redacts) put back from `config`. */
function readBack(text: string, config: ResolvedConfig): unknown {
  const data = parseYamlText(text, 'check') as Raw;
  const peers = (data['peers'] ?? []) as Raw[];
  config.peers.forEach((peer, i) => {
    if (!peer.sa) return;
    const sa = peers[i]!['sa'] as Raw;
    (sa['out'] as Raw)['key'] = peer.sa.out.key;
    const inbound = sa['in'];
    if (Array.isArray(inbound)) inbound.forEach((x: Raw, j) => (x['key'] = peer.sa!.in[j]!.key));
    else (inbound as Raw)['key'] = peer.sa.in[0]!.key;
  });
  return data;
}

/** The round trip every valid config must survive, and check's output must not show a key. */
function expectRoundTrip(config: ResolvedConfig): void {
  const text = checkOutput(config);
  for (const peer of config.peers) {
    if (!peer.sa) continue;
    for (const sa of [peer.sa.out, ...peer.sa.in]) expect(text.includes(sa.key.slice(0, 16))).toBe(false);
  }
  const again = parseConfig(readBack(text, config));
  expect(again).toEqual(config);
  expect(checkOutput(again)).toBe(text);
}

const ROOT_KEYS = new Set(['name', 'netns', 'device', 'encap', 'underlay', 'workers', 'cpuAffinity', 'busyPollMicroseconds', 'mssClamp', 'batchSize', 'fdb', 'offloads', 'limits', 'esp', 'ike', 'peers', 'control', 'registry', 'node', 'metrics']);

/** Every issue names where it is: a field path from the root (or the whole input), and says something. */
function expectFieldIssues(err: unknown, input: unknown, keys: readonly string[]): void {
  if (!isConfigError(err)) throw err;
  expect(err.issues.length).toBeGreaterThan(0);
  const given = input !== null && typeof input === 'object' ? Object.keys(input) : [];
  for (const issue of err.issues) {
    expect(typeof issue.message).toBe('string');
    expect(issue.message.length).toBeGreaterThan(0);
    expect(typeof issue.path).toBe('string');
    if (issue.path === '(config)' || issue.path === '(file)') continue;
    // The path starts with a key of the root: one the schema knows, or one the input has (an
    // unknown key is reported where it is, whatever characters it holds). An empty key at the
    // root makes an empty path ("": unknown key ...), the one case without a visible name.
    const roots = [...ROOT_KEYS, ...given];
    const named = roots.some((k) => issue.path === k || issue.path.startsWith(`${k}.`) || issue.path.startsWith(`${k}[`));
    expect(named, `issue at "${issue.path}": ${issue.message}`).toBe(true);
    // An SA key is never quoted, wherever it was put.
    for (const key of keys) expect(issue.message.includes(key.slice(0, 16)), `${issue.path} quotes a key`).toBe(false);
  }
}

function saKeysOf(raw: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) (k === 'key' && typeof x === 'string' && x.length >= 40 ? out.push(x.toLowerCase()) : walk(x));
  };
  walk((raw as Raw)['peers']);
  return out;
}

/** Paths into a raw config: every mapping key and list index, depth first. */
function pathsOf(value: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (Array.isArray(value)) value.forEach((v, i) => pathsOf(v, [...at, i], out));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) pathsOf(v, [...at, k], out);
  out.push(at);
  return out;
}

type Mutation = { kind: 'delete' | 'replace' | 'unknownKey' | 'string'; pick: number; value: unknown; key: string; edit: [number, string] };

const hostileValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, '', ' ', '0x', '-1', '1e400', 'NaN', '__proto__', 'constructor', 'auto', 'off', '::', '0.0.0.0', 'ff02::1', '224.0.0.1', '%', '198.18.0.1%eth0'),
  fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -0, 1e300, Number.NaN, Infinity, -Infinity, 2 ** 32, 0.5),
  fc.anything({ maxDepth: 2, withObjectString: true, withNullPrototype: true }),
);

const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('delete' as const, 'replace' as const, 'replace' as const, 'unknownKey' as const, 'string' as const),
  pick: fc.nat(),
  value: hostileValue,
  key: fc.oneof(fc.constantFrom('Name', 'mtu ', 'peer', 'endpoints', 'vni', '__proto__', 'constructor', 'toString'), fc.string({ maxLength: 8 })),
  edit: fc.tuple(fc.nat(), fc.string({ maxLength: 4 })),
});

function mutate(config: Raw, m: Mutation): unknown {
  const copy = structuredClone(config);
  const paths = pathsOf(copy);
  const path = paths[m.pick % paths.length]!;
  if (path.length === 0) return m.kind === 'replace' ? m.value : copy;
  let parent: any = copy; // eslint-disable-line @typescript-eslint/no-explicit-any
  for (const step of path.slice(0, -1)) parent = parent[step];
  const last = path[path.length - 1]!;
  switch (m.kind) {
    case 'delete':
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else delete parent[last];
      break;
    case 'replace':
      parent[last] = m.value;
      break;
    case 'unknownKey': {
      const target = parent[last];
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) Object.defineProperty(target, m.key, { value: m.value, enumerable: true, configurable: true, writable: true });
      else parent[last] = m.value;
      break;
    }
    case 'string': {
      const v = parent[last];
      const text = typeof v === 'string' ? v : JSON.stringify(v) ?? '';
      const at = m.edit[0] % (text.length + 1);
      parent[last] = text.slice(0, at) + m.edit[1] + text.slice(at + 1);
      break;
    }
  }
  return copy;
}

describe('config: properties', () => {
  it('every config of a valid shape validates and round-trips through check\'s YAML (SA keys never printed)', () => {
    fc.assert(
      fc.property(anyValid, (raw) => {
        let config: ResolvedConfig;
        try {
          config = parseConfig(raw);
        } catch (e) {
          throw new Error(`a valid config was refused: ${e instanceof Error ? e.message : String(e)}\n${JSON.stringify(raw)}`);
        }
        expectRoundTrip(config);
      }),
      runs(60),
    );
  }, TIMEOUT);

  it('a mutated config is valid (and round-trips) or a ConfigError whose issues name field paths, never another error', () => {
    fc.assert(
      fc.property(anyValid, fc.array(mutation, { minLength: 1, maxLength: 3 }), (raw, mutations) => {
        let input: unknown = raw;
        for (const m of mutations) input = input !== null && typeof input === 'object' && !Array.isArray(input) ? mutate(input as Raw, m) : input;
        const keys = saKeysOf(raw);
        let config: ResolvedConfig;
        try {
          config = parseConfig(input);
        } catch (e) {
          expectFieldIssues(e, input, keys);
          return;
        }
        expectRoundTrip(config);
      }),
      runs(150),
    );
  }, TIMEOUT);

  it('edited YAML text loads as a config or fails as a ConfigError, never otherwise', () => {
    const edits = fc.array(fc.tuple(fc.nat(), fc.nat({ max: 8 }), fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom(': ', '- ', '\n', '  ', '&a ', '*a', '!!binary ', '{', '[', '"', "'", '---\n', '#', '? ', '|\n', '\t'))), { minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(anyValid, edits, (raw, changes) => {
        let text = YAML.stringify(raw);
        for (const [at, cut, insert] of changes) {
          const i = at % (text.length + 1);
          text = text.slice(0, i) + insert + text.slice(i + cut);
        }
        let data: unknown;
        try {
          data = parseYamlText(text, 'edited.yaml');
        } catch (e) {
          expectFieldIssues(e, undefined, saKeysOf(raw));
          return;
        }
        try {
          loadConfigText(text, 'edited.yaml');
        } catch (e) {
          expectFieldIssues(e, data, saKeysOf(raw));
        }
      }),
      runs(100),
    );
  }, TIMEOUT);
});
