// ESP configuration: encap.type esp with its cipher and transport (UDP 4500 or IP protocol 50),
// per-peer security associations, the rekey input, the grace-period bookkeeping, and the rule
// that key material never appears in an error message.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  ESP_MAX_INBOUND_SAS,
  espKeyBytes,
  formatSpi,
  loadConfigFile,
  overheadFor,
  parseConfig,
  parsePeer,
  parseRekey,
  parseSpi,
  publicPeer,
} from '../../lib/config';
import { configToInput } from '../../lib/overlay';
import { PeerSlots, rekeyEvents, rekeySa, retireInbound } from '../../lib/peers';
import type { PeerSecurityAssociations, ResolvedConfig } from '../../lib/types';

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Distinct, recognisable keys: `n` repeated to the length, with a 4-byte salt of its own. */
function key(n: number, bytes = 20): string {
  const body = (n.toString(16).padStart(2, '0') + 'a5').repeat(bytes).slice(0, (bytes - 4) * 2);
  return `${body}5a17${n.toString(16).padStart(4, '0')}`;
}

const K = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => key(n));
const K256 = [1, 2, 3, 4].map((n) => key(0x40 + n, 36));

function espBase(): Raw {
  return {
    name: 'esp0',
    device: { type: 'tun', addresses: ['198.19.0.1/24'] },
    encap: { type: 'esp', cipher: 'aes-128-gcm' },
    underlay: { local: '198.18.0.1' },
    peers: [
      { name: 'b', endpoint: '198.18.0.2', allowedIps: ['198.19.0.2/32'], sa: { out: { spi: 0x1001, key: K[0] }, in: { spi: 0x2001, key: K[1] } } },
      { name: 'c', endpoint: '198.18.0.3', allowedIps: ['198.19.0.3/32'], sa: { out: { spi: '0x1001', key: K[2] }, in: { spi: '0x3001', key: K[3] } } },
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

/** Every key (and every 12-digit run of one, either case) that a test put anywhere. */
const SECRETS = [...K, ...K256];
function expectNoKeyMaterial(text: string): void {
  const lower = text.toLowerCase();
  for (const k of SECRETS) {
    for (let i = 0; i + 12 <= k.length; i += 4) {
      expect(lower.includes(k.slice(i, i + 12)), `key material (${k.slice(0, 4)}…) in: ${text}`).toBe(false);
    }
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ovlesp-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('encap.type esp', () => {
  it('resolves cipher, UDP 4500, the grace period, and SAs (SPIs as numbers, keys as lower-case hex, in as a list)', () => {
    const input = espBase();
    input.peers[0].sa.in.key = `0x${K[1]!.toUpperCase()}`;
    const cfg = parseConfig(input);
    expect(cfg.encap).toEqual({ type: 'esp', vni: 0, port: 4500, key: null, checksum: false, sequence: false, cipher: 'aes-128-gcm', udp: true, esn: true });
    expect(cfg.esp).toEqual({ rekeyGraceSeconds: 30 });
    expect(cfg.peers[0]).toEqual({
      name: 'b',
      endpoint: { address: '198.18.0.2', port: 4500 },
      allowedIps: ['198.19.0.2/32'],
      macs: [],
      sa: { out: { spi: 0x1001, key: K[0] }, in: [{ spi: 0x2001, key: K[1] }] },
    });
    expect(cfg.peers[1]!.sa).toEqual({ out: { spi: 0x1001, key: K[2] }, in: [{ spi: 0x3001, key: K[3] }] });
  });

  it('accepts its own output again (in as a list), and through YAML where 0x1001 is a number', () => {
    const cfg = parseConfig({ ...espBase(), esp: { rekeyGraceSeconds: 5 } });
    expect(cfg.esp).toEqual({ rekeyGraceSeconds: 5 });
    expect(parseConfig(JSON.parse(JSON.stringify(configToInput(cfg))))).toEqual(cfg);
    const file = path.join(tmp, 'esp.yaml');
    fs.writeFileSync(
      file,
      `name: esp0
device: { type: tun }
encap: { type: esp, cipher: aes-256-gcm, udp: true }
underlay: { local: 198.18.0.1 }
peers:
  - name: b
    endpoint: 198.18.0.2
    allowedIps: [198.19.0.2/32]
    sa:
      out: { spi: 0x1001, key: "${K256[0]}" }
      in:  { spi: 0x2001, key: "${K256[1]}" }
`,
    );
    expect(loadConfigFile(file).peers[0]!.sa).toEqual({ out: { spi: 0x1001, key: K256[0] }, in: [{ spi: 0x2001, key: K256[1] }] });
  });

  it('takes a key of the right length for each cipher: 20 bytes for aes-128-gcm, 36 for aes-256-gcm and chacha20-poly1305', () => {
    expect([espKeyBytes('aes-128-gcm'), espKeyBytes('aes-256-gcm'), espKeyBytes('chacha20-poly1305')]).toEqual([20, 36, 36]);
    for (const cipher of ['aes-256-gcm', 'chacha20-poly1305']) {
      const input = espBase();
      input.encap.cipher = cipher;
      input.peers = [{ ...input.peers[0], sa: { out: { spi: 1, key: K256[0] }, in: { spi: 2, key: K256[1] } } }];
      expect(parseConfig(input).encap.cipher).toBe(cipher);
    }
  });

  it('runs over IP protocol 50 with udp: false: no port anywhere', () => {
    const input = espBase();
    input.encap.udp = false;
    const cfg = parseConfig(input);
    expect(cfg.encap.udp).toBe(false);
    expect(cfg.encap.port).toBe(0);
    expect(cfg.peers.map((p) => p.endpoint.port)).toEqual([0, 0]);
    expect(parseConfig(configToInput(cfg))).toEqual(cfg);
  });

  it('carries Ethernet frames on a tap device', () => {
    const input = espBase();
    input.device = { type: 'tap' };
    input.peers[0].allowedIps = [];
    input.peers[0].macs = ['02:00:00:00:00:02'];
    expect(parseConfig(input).peers[0]!.macs).toEqual(['02:00:00:00:00:02']);
  });

  it('allows the same outbound SPI toward different peers (each receiver has its own SPI space)', () => {
    const cfg = parseConfig(espBase());
    expect(cfg.peers.map((p) => p.sa!.out.spi)).toEqual([0x1001, 0x1001]);
  });

  it('accepts inbound SAs as a list, newest first (as during a rekey)', () => {
    const input = espBase();
    input.peers[0].sa.in = [
      { spi: 0x2002, key: K[4] },
      { spi: 0x2001, key: K[1] },
    ];
    expect(parseConfig(input).peers[0]!.sa!.in.map((x) => x.spi)).toEqual([0x2002, 0x2001]);
  });

  it('counts the most a packet can grow in the overhead: outer IP, UDP, 16 in front, 21 behind, 14 on tap', () => {
    const at = (mutate: (c: Raw) => void) => {
      const input = espBase();
      mutate(input);
      return overheadFor(parseConfig(input));
    };
    expect(at(() => {})).toBe(20 + 8 + 16 + 21); // 65
    expect(at((c) => (c.encap.udp = false))).toBe(20 + 16 + 21); // 57
    const v6 = (c: Raw) => {
      c.underlay.local = 'fd00::1';
      c.peers[0].endpoint = 'fd00::2';
      c.peers[1].endpoint = 'fd00::3';
    };
    expect(at(v6)).toBe(40 + 8 + 16 + 21); // 85
    expect(at((c) => (v6(c), (c.encap.udp = false)))).toBe(40 + 16 + 21); // 77
    expect(at((c) => ((c.device = { type: 'tap' }), (c.peers[0].allowedIps = []), (c.peers[1].allowedIps = [])))).toBe(20 + 8 + 16 + 21 + 14); // 79
  });
});

// [description, mutation of espBase(), path, message pattern]
const broken: Array<[string, (c: Raw) => void, string, RegExp]> = [
  ['cipher missing', (c) => delete c.encap.cipher, 'encap.cipher', /^required for esp \(one of: aes-128-gcm, aes-256-gcm, chacha20-poly1305\)$/],
  ['cipher unknown', (c) => (c.encap.cipher = 'aes-gcm'), 'encap.cipher', /^"aes-gcm" is not an ESP cipher \(one of: aes-128-gcm, aes-256-gcm, chacha20-poly1305\)$/],
  ['cipher not a string', (c) => (c.encap.cipher = 128), 'encap.cipher', /is not an ESP cipher/],
  ['cipher on vxlan', (c) => ((c.encap = { type: 'vxlan', vni: 1, cipher: 'aes-128-gcm' }), (c.device = {}), (c.peers = [])), 'encap.cipher', /^not used by vxlan \(esp only\)$/],
  ['udp on gre', (c) => ((c.encap = { type: 'gre', udp: true }), (c.peers = [])), 'encap.udp', /^not used by gre \(esp only\)$/],
  ['esn on gre', (c) => ((c.encap = { type: 'gre', esn: false }), (c.peers = [])), 'encap.esn', /^not used by gre \(esp only\)$/],
  ['esn not a boolean', (c) => (c.encap.esn = 'no'), 'encap.esn', /must be true or false/],
  ['udp not a boolean', (c) => (c.encap.udp = 'yes'), 'encap.udp', /^must be true or false$/],
  ['a port with udp: false', (c) => ((c.encap.udp = false), (c.encap.port = 4500)), 'encap.port', /^not used by esp with udp: false \(IP protocol 50, no UDP port\)$/],
  ['an endpoint port with udp: false', (c) => ((c.encap.udp = false), (c.peers[1].endpoint = '198.18.0.3:4500')), 'peers[1].endpoint', /^esp with udp: false has no UDP port \(IP protocol 50\); give the address alone$/],
  ['a vni on esp', (c) => (c.encap.vni = 5), 'encap.vni', /^not used by esp$/],
  ['a GRE key on esp', (c) => (c.encap.key = 5), 'encap.key', /^not used by esp \(GRE modes only\)$/],
  ['GRE sequence numbers on esp', (c) => (c.encap.sequence = true), 'encap.sequence', /^not used by esp \(GRE modes only\)$/],
  ['esp on a packet device', (c) => ((c.device = { type: 'packet', interface: 'eth1' }), (c.peers[0].allowedIps = []), (c.peers[1].allowedIps = [])), 'encap.type', /^esp on device.type packet is not supported yet/],
  ['an esp section on vxlan', (c) => ((c.encap = { type: 'vxlan', vni: 1 }), (c.device = {}), (c.peers = []), (c.esp = { rekeyGraceSeconds: 5 })), 'esp', /^used only with encap.type esp \(this config runs vxlan\)$/],
  ['esp.rekeyGraceSeconds 0', (c) => (c.esp = { rekeyGraceSeconds: 0 }), 'esp.rekeyGraceSeconds', /^must be an integer from 1 to 3600$/],
  ['esp.rekeyGraceSeconds 3601', (c) => (c.esp = { rekeyGraceSeconds: 3601 }), 'esp.rekeyGraceSeconds', /^must be an integer from 1 to 3600$/],
  ['esp unknown key', (c) => (c.esp = { graceSeconds: 5 }), 'esp.graceSeconds', /unknown key/],
  ['sa missing', (c) => delete c.peers[1].sa, 'peers[1].sa', /^required for esp: \{ out: \{ spi, key \}, in: \{ spi, key \} \}/],
  ['sa null', (c) => (c.peers[1].sa = null), 'peers[1].sa', /^required for esp/],
  ['sa on gre', (c) => ((c.encap = { type: 'gre' }), (c.peers[1].sa = { out: { spi: 1, key: K[5] }, in: { spi: 2, key: K[6] } }), delete c.peers[0].sa), 'peers[1].sa', /^used only with encap.type esp \(gre is not encrypted\)$/],
  ['sa not a mapping', (c) => (c.peers[1].sa = K[5]), 'peers[1].sa', /^must be a mapping with out and in$/],
  ['sa.out missing', (c) => delete c.peers[1].sa.out, 'peers[1].sa.out', /^required$/],
  ['sa.in missing', (c) => delete c.peers[1].sa.in, 'peers[1].sa.in', /^required$/],
  ['sa unknown key', (c) => (c.peers[1].sa.outbound = { spi: 9, key: K[5] }), 'peers[1].sa.outbound', /^unknown key \(known: out, in\)$/],
  ['sa.out unknown key holding a key', (c) => (c.peers[1].sa.out.kye = K[5]), 'peers[1].sa.out.kye', /^unknown key \(did you mean "key"\?\)$/],
  ['spi missing', (c) => delete c.peers[1].sa.out.spi, 'peers[1].sa.out.spi', /^required$/],
  ['spi 0', (c) => (c.peers[1].sa.out.spi = 0), 'peers[1].sa.out.spi', /^SPI 0 is reserved \(RFC 4303 §2\.1\)/],
  ['spi "0x0"', (c) => (c.peers[1].sa.in.spi = '0x0'), 'peers[1].sa.in.spi', /^SPI 0 is reserved/],
  ['spi 2^32', (c) => (c.peers[1].sa.out.spi = 2 ** 32), 'peers[1].sa.out.spi', /^must be an integer from 1 to 4294967295, or a hex string such as "0x1001"$/],
  ['spi negative', (c) => (c.peers[1].sa.out.spi = -1), 'peers[1].sa.out.spi', /^must be an integer from 1 to 4294967295/],
  ['spi fractional', (c) => (c.peers[1].sa.out.spi = 1.5), 'peers[1].sa.out.spi', /^must be an integer from 1 to 4294967295/],
  ['spi hex of 9 digits', (c) => (c.peers[1].sa.out.spi = '0x100000000'), 'peers[1].sa.out.spi', /^must be an integer from 1 to 4294967295/],
  ['spi a word', (c) => (c.peers[1].sa.out.spi = 'one'), 'peers[1].sa.out.spi', /^must be an integer from 1 to 4294967295/],
  ['spi holding a key', (c) => (c.peers[1].sa.out.spi = K[5]), 'peers[1].sa.out.spi', /^must be an integer from 1 to 4294967295/],
  ['key missing', (c) => delete c.peers[1].sa.in.key, 'peers[1].sa.in.key', /^required$/],
  ['key 19 bytes for aes-128-gcm', (c) => (c.peers[1].sa.out.key = K[5]!.slice(2)), 'peers[1].sa.out.key', /^must be a hex string of 20 bytes \(40 hex digits: the 16-byte aes-128-gcm key followed by a 4-byte salt\); got 38 hex digits$/],
  ['key 21 bytes for aes-128-gcm', (c) => (c.peers[1].sa.out.key = `${K[5]}ab`), 'peers[1].sa.out.key', /^must be a hex string of 20 bytes .*; got 42 hex digits$/],
  ['a 20-byte key for aes-256-gcm', (c) => (c.encap.cipher = 'aes-256-gcm'), 'peers[0].sa.out.key', /^must be a hex string of 36 bytes \(72 hex digits: the 32-byte aes-256-gcm key followed by a 4-byte salt\); got 40 hex digits$/],
  ['a 20-byte key for chacha20-poly1305', (c) => (c.encap.cipher = 'chacha20-poly1305'), 'peers[1].sa.in.key', /^must be a hex string of 36 bytes \(72 hex digits: the 32-byte chacha20-poly1305 key followed by a 4-byte salt\)/],
  ['key not hex', (c) => (c.peers[1].sa.out.key = `${K[5]!.slice(0, 38)}zz`), 'peers[1].sa.out.key', /^must be a hex string of 20 bytes .*; it holds characters that are not hex digits$/],
  ['key a number', (c) => (c.peers[1].sa.out.key = 1234567890), 'peers[1].sa.out.key', /^must be a hex string .*, quoted in YAML$/],
  ['key all zeros', (c) => (c.peers[1].sa.out.key = '0'.repeat(40)), 'peers[1].sa.out.key', /^must not be all zeros$/],
  ['in an empty list', (c) => (c.peers[1].sa.in = []), 'peers[1].sa.in', /^must not be empty/],
  ['in a list of 5', (c) => (c.peers[1].sa.in = [3, 4, 5, 6, 7].map((n) => ({ spi: 0x3000 + n, key: K[n] }))), 'peers[1].sa.in', new RegExp(`^at most ${ESP_MAX_INBOUND_SAS} inbound SAs`)],
  ['in a list with an SPI twice', (c) => (c.peers[1].sa.in = [{ spi: 0x3001, key: K[3] }, { spi: 0x3001, key: K[4] }]), 'peers[1].sa.in[1].spi', /^SPI 0x00003001 is listed twice \(also sa.in\[0\]\)$/],
  ['an entry of an in list broken', (c) => (c.peers[1].sa.in = [{ spi: 0x3001, key: K[3] }, { spi: 0x3002 }]), 'peers[1].sa.in[1].key', /^required$/],
  ['an inbound SPI of another peer', (c) => (c.peers[1].sa.in.spi = 0x2001), 'peers[1].sa.in.spi', /^SPI 0x00002001 is already an inbound SPI of peer "b" \(peers\[0\]\) \(inbound SPIs must be unique/],
  ['an inbound SPI of another peer, in a list', (c) => (c.peers[1].sa.in = [{ spi: 0x3001, key: K[3] }, { spi: '0x2001', key: K[4] }]), 'peers[1].sa.in[1].spi', /already an inbound SPI of peer "b"/],
  ['the same key out and in', (c) => (c.peers[0].sa.in.key = K[0]), 'peers[0].sa.in.key', /^the same key as peers\[0\]\.sa\.out\.key: every SA needs a key of its own \(a shared key would repeat nonces\)$/],
  ['the same key at two peers', (c) => (c.peers[1].sa.out.key = K[1]), 'peers[1].sa.out.key', /^the same key as peers\[0\]\.sa\.in\.key/],
  ['the same cipher key with another salt', (c) => (c.peers[1].sa.in.key = `${K[0]!.slice(0, 32)}01020304`), 'peers[1].sa.in.key', /^the same key as peers\[0\]\.sa\.out\.key/],
];

describe('parseConfig rejects broken ESP configs, naming the field and never the key', () => {
  it.each(broken)('%s', (_what, mutate, at, pattern) => {
    const input = espBase();
    mutate(input);
    const err = issuesOf(input);
    const matching = err.issues.filter((i) => i.path === at);
    expect(matching.map((i) => i.message), `issues: ${err.message}`).toEqual(expect.arrayContaining([expect.stringMatching(pattern)]));
    expect(err.message.split('\n')).toEqual(err.issues.map((i) => `${i.path}: ${i.message}`));
    expectNoKeyMaterial(err.message);
    expectNoKeyMaterial(JSON.stringify(err.issues));
  });

  it('reports SA problems of several peers at once, with the broken root too', () => {
    const input = espBase();
    input.name = 'this-name-is-too-long';
    input.peers[0].sa.out.spi = 0;
    input.peers[1].sa.in.key = 'abc';
    const paths = issuesOf(input).issues.map((i) => i.path);
    expect(paths).toEqual(['name', 'peers[0].sa.out.spi', 'peers[1].sa.in.key']);
  });

  it('checks keys against the cipher as written even when another encap field is broken', () => {
    const input = espBase();
    input.encap.udp = 'no';
    input.peers[1].sa.out.key = K256[0];
    const err = issuesOf(input);
    expect(err.issues.map((i) => i.path)).toEqual(['encap.udp', 'peers[1].sa.out.key']);
    expectNoKeyMaterial(err.message);
  });
});

describe('parseSpi / formatSpi', () => {
  it.each([
    [1, 1],
    [0xffffffff, 0xffffffff],
    ['0x1001', 0x1001],
    ['0XFFFFFFFF', 0xffffffff],
    ['4097', 4097],
  ])('%j → %d', (input, value) => expect(parseSpi(input)).toEqual({ ok: true, value }));
  it('formats 8 hex digits', () => expect([formatSpi(0x1001), formatSpi(0xffffffff)]).toEqual(['0x00001001', '0xffffffff']));
});

describe('parsePeer in esp mode', () => {
  const config = parseConfig(espBase());
  it('resolves the SAs with the config cipher and checks them against the existing peers', () => {
    const peer = parsePeer({ name: 'd', endpoint: '198.18.0.4', sa: { out: { spi: 7, key: K[4] }, in: { spi: 8, key: K[5] } } }, 'peer', config);
    expect(peer.sa).toEqual({ out: { spi: 7, key: K[4] }, in: [{ spi: 8, key: K[5] }] });
    expect(peer.endpoint.port).toBe(4500);
    const bad = (input: unknown) => {
      try {
        parsePeer(input, 'peer', config);
      } catch (err) {
        return (err as ConfigError).message;
      }
      return 'accepted';
    };
    expect(bad({ name: 'd', endpoint: '198.18.0.4' })).toMatch(/^peer\.sa: required for esp/);
    expect(bad({ name: 'd', endpoint: '198.18.0.4', sa: { out: { spi: 7, key: K[4] }, in: { spi: 0x3001, key: K[5] } } })).toMatch(
      /^peer\.sa\.in\.spi: SPI 0x00003001 is already an inbound SPI of peer "c"/,
    );
    const reused = bad({ name: 'd', endpoint: '198.18.0.4', sa: { out: { spi: 7, key: K[0] }, in: { spi: 8, key: K[5] } } });
    expect(reused).toMatch(/^peer\.sa\.out\.key: the same key as peer "b" sa\.out\.key/m);
    expectNoKeyMaterial(reused);
    const long = bad({ name: 'd', endpoint: '198.18.0.4', sa: { out: { spi: 7, key: K[4] }, in: { spi: 8, key: K256[0] } } });
    expect(long).toMatch(/^peer\.sa\.in\.key: must be a hex string of 20 bytes .*; got 72 hex digits$/m);
    expectNoKeyMaterial(long);
  });
  it('refuses an endpoint port over IP protocol 50', () => {
    const raw = parseConfig({ ...espBase(), encap: { type: 'esp', cipher: 'aes-128-gcm', udp: false } });
    expect(() => parsePeer({ name: 'd', endpoint: '198.18.0.4:4500', sa: { out: { spi: 7, key: K[4] }, in: { spi: 8, key: K[5] } } }, 'peer', raw)).toThrow(
      /peer\.endpoint: esp with udp: false has no UDP port/,
    );
  });
});

describe('publicPeer', () => {
  it('shows SPIs and never keys', () => {
    const config = parseConfig(espBase());
    const shown = config.peers.map(publicPeer);
    expect(shown[0]).toEqual({ name: 'b', endpoint: { address: '198.18.0.2', port: 4500 }, allowedIps: ['198.19.0.2/32'], macs: [], sa: { out: { spi: 0x1001 }, in: [{ spi: 0x2001 }] } });
    expectNoKeyMaterial(JSON.stringify(shown));
    // The peer itself is left alone.
    expect(config.peers[0]!.sa!.out.key).toBe(K[0]);
  });
});

describe('PeerSlots.compile', () => {
  it('hands the SAs to the addon (keys included: the data path needs them)', () => {
    const config = parseConfig(espBase());
    const slots = new PeerSlots(4);
    slots.replace(config.peers, () => new BigUint64Array(0) as never);
    expect(slots.compile().map((p) => p.sa)).toEqual([
      { out: { spi: 0x1001, key: K[0] }, in: [{ spi: 0x2001, key: K[1] }] },
      { out: { spi: 0x1001, key: K[2] }, in: [{ spi: 0x3001, key: K[3] }] },
    ]);
  });
});

describe('parseRekey', () => {
  const config: ResolvedConfig = parseConfig(espBase());
  const reject = (input: unknown, cfg: ResolvedConfig = config, name = 'b'): ConfigError => {
    try {
      parseRekey(input, cfg, name);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expectNoKeyMaterial((err as Error).message);
      return err as ConfigError;
    }
    throw new Error('expected a ConfigError');
  };

  it('takes in, out or both, with SPIs in either form and canonical keys', () => {
    expect(parseRekey({ in: { spi: '0x2002', key: K[4]!.toUpperCase() }, out: { spi: 0x1002, key: K[5] } }, config, 'b')).toEqual({
      in: { spi: 0x2002, key: K[4] },
      out: { spi: 0x1002, key: K[5] },
    });
    expect(parseRekey({ in: { spi: 0x2002, key: K[4] } }, config, 'b')).toEqual({ in: { spi: 0x2002, key: K[4] } });
    expect(parseRekey({ out: { spi: 0x1002, key: K[4] } }, config, 'b')).toEqual({ out: { spi: 0x1002, key: K[4] } });
  });

  it.each<[string, unknown, string, RegExp]>([
    ['nothing', {}, 'rekey', /^needs in, out or both/],
    ['not a mapping', K[4], 'rekey', /^must be a mapping with in and out$/],
    ['an unknown direction', { inbound: { spi: 1, key: K[4] } }, 'rekey.inbound', /^unknown key \(known: in, out\)$/],
    ['SPI 0', { in: { spi: 0, key: K[4] } }, 'rekey.in.spi', /^SPI 0 is reserved/],
    ['a short key', { out: { spi: 0x1002, key: K[4]!.slice(4) } }, 'rekey.out.key', /^must be a hex string of 20 bytes .*; got 36 hex digits$/],
    ['the current inbound SPI', { in: { spi: 0x2001, key: K[4] } }, 'rekey.in.spi', /^SPI 0x00002001 is already an inbound SPI of this peer \(a new SA needs a new SPI\)$/],
    ["another peer's inbound SPI", { in: { spi: 0x3001, key: K[4] } }, 'rekey.in.spi', /^SPI 0x00003001 is already an inbound SPI of peer "c"$/],
    ['the current outbound SPI', { out: { spi: 0x1001, key: K[4] } }, 'rekey.out.spi', /^SPI 0x00001001 is the current outbound SPI/],
    ['a key in use', { out: { spi: 0x1002, key: K[3] } }, 'rekey.out.key', /^the same key as an SA in use \(peer "c" sa\.in\[0\]\)/],
    ['the current key under a new SPI', { in: { spi: 0x2002, key: K[1] } }, 'rekey.in.key', /^the same key as an SA in use \(peer "b" sa\.in\[0\]\)/],
    ['one key for both directions', { in: { spi: 0x2002, key: K[4] }, out: { spi: 0x1002, key: K[4] } }, 'rekey.out.key', /^the same key as rekey\.in\.key/],
  ])('refuses %s', (_what, input, at, pattern) => {
    const err = reject(input);
    expect(err.issues.filter((i) => i.path === at).map((i) => i.message), err.message).toEqual(expect.arrayContaining([expect.stringMatching(pattern)]));
  });

  it('refuses an unknown peer, a mode without ESP, and a fifth inbound SA', () => {
    expect(reject({ in: { spi: 9, key: K[4] } }, config, 'zz').message).toBe('rekey: no peer named "zz"');
    const gre = parseConfig({ name: 'g', device: { type: 'tun' }, encap: { type: 'gre' }, underlay: { local: '198.18.0.1' } });
    expect(reject({ in: { spi: 9, key: K[4] } }, gre).message).toBe('rekey: needs encap.type esp (this overlay runs gre)');
    const full = espBase();
    full.peers[0].sa.in = [4, 5, 6, 7].map((n) => ({ spi: 0x2000 + n, key: K[n] }));
    expect(reject({ in: { spi: 0x2009, key: K256[0]!.slice(0, 40) } }, parseConfig(full)).message).toMatch(/^rekey\.in: the peer already holds 4 inbound SAs, 3 of them in a rekey's grace period/);
  });
});

describe('rekey bookkeeping', () => {
  const current: PeerSecurityAssociations = { out: { spi: 0x1001, key: K[0]! }, in: [{ spi: 0x2001, key: K[1]! }] };

  it('replaces the outbound SA at once and puts the new inbound SA in front of the old, which starts its grace period', () => {
    const { next, retiring } = rekeySa(current, { in: { spi: 0x2002, key: K[4]! }, out: { spi: 0x1002, key: K[5]! } });
    expect(next).toEqual({ out: { spi: 0x1002, key: K[5] }, in: [{ spi: 0x2002, key: K[4] }, { spi: 0x2001, key: K[1] }] });
    expect(retiring).toEqual({ spi: 0x2001, key: K[1] });
    // The input is not changed.
    expect(current.in).toHaveLength(1);
  });

  it('retires nothing when only the outbound SA changes', () => {
    const { next, retiring } = rekeySa(current, { out: { spi: 0x1002, key: K[5]! } });
    expect(next).toEqual({ out: { spi: 0x1002, key: K[5] }, in: [{ spi: 0x2001, key: K[1] }] });
    expect(retiring).toBeNull();
  });

  it('removes a retired inbound SA once its grace period is over, and never the newest one', () => {
    const first = rekeySa(current, { in: { spi: 0x2002, key: K[4]! } });
    const second = rekeySa(first.next, { in: { spi: 0x2003, key: K[5]! } });
    expect(second.retiring).toEqual({ spi: 0x2002, key: K[4] });
    expect(second.next.in.map((x) => x.spi)).toEqual([0x2003, 0x2002, 0x2001]);
    // The first grace period ends: 0x2001 goes; then the second: 0x2002 goes.
    const afterFirst = retireInbound(second.next, first.retiring!);
    expect(afterFirst!.in.map((x) => x.spi)).toEqual([0x2003, 0x2002]);
    const afterSecond = retireInbound(afterFirst!, second.retiring!);
    expect(afterSecond).toEqual({ out: current.out, in: [{ spi: 0x2003, key: K[5] }] });
    // Gone already, the newest, or the same SPI with another key: nothing to do.
    expect(retireInbound(afterSecond!, first.retiring!)).toBeNull();
    expect(retireInbound(afterSecond!, { spi: 0x2003, key: K[5]! })).toBeNull();
    expect(retireInbound(second.next, { spi: 0x2002, key: K[6]! })).toBeNull();
  });
});

describe('IP-protocol modes round-trip (endpoints without a port)', () => {
  it.each([
    ['gre', { type: 'gre', key: 3 }],
    ['esp over IP protocol 50', { type: 'esp', cipher: 'aes-128-gcm', udp: false }],
  ])('%s: configToInput parses back to the same config (as peers.add/remove/rekey do)', (_what, encap) => {
    const input = espBase();
    input.encap = encap;
    if (encap.type !== 'esp') for (const p of input.peers) delete p.sa;
    const cfg = parseConfig(input);
    expect(cfg.peers[0]!.endpoint.port).toBe(0);
    expect(parseConfig(configToInput(cfg))).toEqual(cfg);
  });
});

describe('rekeyEvents (the rekeyNeeded event)', () => {
  const status = (slot: number, spi: number, sequence: bigint, nearingLimit: boolean, exhausted: boolean) => ({ slot, spi, sequence, nearingLimit, exhausted });
  const names = new Map([
    [0, 'b'],
    [1, 'c'],
  ]);
  const peerOf = (slot: number) => names.get(slot);

  it('reports an SA once when it nears its limit, once more when it runs out, and nothing in between', () => {
    const reported = new Map<string, 'nearing' | 'exhausted'>();
    expect(rekeyEvents([status(0, 0x1001, 5n, false, false), status(1, 0x1001, 9n, false, false)], peerOf, reported)).toEqual([]);
    const near = 2n ** 64n - 2n ** 32n;
    expect(rekeyEvents([status(0, 0x1001, near, true, false)], peerOf, reported)).toEqual([{ peer: 'b', spi: 0x1001, sequence: near, exhausted: false }]);
    expect(rekeyEvents([status(0, 0x1001, near + 7n, true, false)], peerOf, reported)).toEqual([]);
    const end = 2n ** 64n - 1n;
    expect(rekeyEvents([status(0, 0x1001, end, true, true)], peerOf, reported)).toEqual([{ peer: 'b', spi: 0x1001, sequence: end, exhausted: true }]);
    expect(rekeyEvents([status(0, 0x1001, end, true, true)], peerOf, reported)).toEqual([]);
  });

  it('reports an SA found exhausted once, ignores slots without a peer, and forgets SAs that are gone', () => {
    const reported = new Map<string, 'nearing' | 'exhausted'>();
    expect(rekeyEvents([status(1, 0x3001, 10n, true, true), status(7, 0x9, 1n, true, false)], peerOf, reported)).toEqual([
      { peer: 'c', spi: 0x3001, sequence: 10n, exhausted: true },
    ]);
    // Rekeyed: the old SA is gone; a later SA under the same SPI is news again.
    expect(rekeyEvents([status(1, 0x3002, 1n, false, false)], peerOf, reported)).toEqual([]);
    expect(reported.size).toBe(0);
    expect(rekeyEvents([status(1, 0x3001, 10n, true, false)], peerOf, reported)).toHaveLength(1);
  });
});
