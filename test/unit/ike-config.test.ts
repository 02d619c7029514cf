// IKEv2 configuration: `ike:` at the top (defaults) and per peer, merged field by field; manual
// `sa` or negotiated `ike` per esp peer; every problem named by its field, and the pre-shared
// key in no message and no shown config.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, publicPeer } from '../../lib/config';
import { ikePeersOf } from '../../lib/ike/setup';
import { configToInput } from '../../lib/overlay';

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const PSK = 'a-pre-shared-key-long-enough-42';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ike-config-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function base(): Raw {
  return {
    name: 'ike0',
    device: { type: 'tun', addresses: ['198.19.0.1/24'] },
    encap: { type: 'esp' },
    underlay: { local: '198.18.0.1' },
    ike: { auth: 'psk', psk: PSK },
    peers: [
      { name: 'b', endpoint: '198.18.0.2', allowedIps: ['198.19.0.2/32'] },
      { name: 'c', endpoint: '198.18.0.3', allowedIps: ['198.19.0.3/32'], ike: { remoteId: '@c.test', rekeySeconds: 600 } },
    ],
  };
}

function issues(mutate: (c: Raw) => void): string[] {
  const c = base();
  mutate(c);
  try {
    parseConfig(c);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => `${i.path}: ${i.message}`);
    throw e;
  }
  return [];
}

describe('ike config', () => {
  it('merges the top-level defaults with each peer, and needs no encap.cipher', () => {
    const c = parseConfig(base());
    const [b, cc] = c.peers;
    expect(b!.ike).toMatchObject({ auth: 'psk', psk: PSK, rekeySeconds: 3600, ikeRekeySeconds: 14400, dpdSeconds: 30, start: 'on-start', port: 500 });
    expect(cc!.ike).toMatchObject({ auth: 'psk', remoteId: '@c.test', rekeySeconds: 600, lifetimeSeconds: 660 });
    expect(b!.sa).toBeUndefined();
    expect(c.encap.cipher).toBeUndefined();
    // Round trip: the resolved config resolves to itself again (peers changed at run time).
    expect(parseConfig(configToInput(c)).peers).toEqual(c.peers);
  });

  it('turns peers into sessions: selectors from the device and allowedIps, the PSK as bytes, ESP moving to 4500', () => {
    const c = parseConfig(base());
    const [b] = ikePeersOf(c, c.peers);
    expect(b!.session.auth).toEqual({ method: 'psk', psk: Buffer.from(PSK) });
    expect(b!.session.natPort).toBe(4500);
    expect(b!.endpoint).toEqual({ address: '198.18.0.2', port: 500 });
    expect(b!.session.localTs).toEqual([{ type: 7, protocol: 0, startPort: 0, endPort: 65535, startAddress: '198.19.0.1', endAddress: '198.19.0.1' }]);
    expect(b!.session.remoteTs[0]).toMatchObject({ startAddress: '198.19.0.2', endAddress: '198.19.0.2' });
    const raw = parseConfig({ ...base(), encap: { type: 'esp', udp: false } });
    expect(ikePeersOf(raw, raw.peers)[0]!.session.natPort).toBeNull();
  });

  it('never shows the pre-shared key', () => {
    const c = parseConfig(base());
    const shown = JSON.stringify(c.peers.map(publicPeer));
    expect(shown).not.toContain(PSK);
    expect(shown).toContain('(redacted)');
    const bad = issues((x) => (x.ike.psk = 'short-secret'));
    expect(bad.join('\n')).not.toContain('short-secret');
  });

  it('reads the key from pskFile', () => {
    const file = path.join(dir, 'psk');
    fs.writeFileSync(file, `${PSK}\n`);
    const c = parseConfig({ ...base(), ike: { auth: 'psk', pskFile: file } });
    expect(c.peers[0]!.ike!.psk).toBe(PSK);
    expect(publicPeer(c.peers[0]!).ike).not.toHaveProperty('psk');
  });

  const cases: Array<[string, (c: Raw) => void, RegExp]> = [
    ['no auth anywhere', (c) => delete c.ike.auth, /^peers\[0\]\.ike\.auth: required \(psk or certificate\)/],
    ['an unknown auth', (c) => (c.ike.auth = 'eap'), /^ike\.auth: must be one of: psk, certificate/],
    ['psk missing', (c) => delete c.ike.psk, /^peers\[0\]\.ike\.psk: required with auth: psk \(or pskFile\)/],
    ['psk too short', (c) => (c.ike.psk = 'short'), /^ike\.psk: must be at least 16 characters/],
    ['psk and pskFile', (c) => (c.ike.pskFile = '/nonexistent'), /^ike\.pskFile: give psk or pskFile, not both/],
    ['pskFile unreadable', (c) => (c.ike = { auth: 'psk', pskFile: '/nonexistent/psk' }), /^ike\.pskFile: cannot read \/nonexistent\/psk: ENOENT/],
    ['certificate without its files', (c) => (c.ike = { auth: 'certificate' }), /^peers\[0\]\.ike\.certificate: required with auth: certificate/],
    ['sa and ike on one peer', (c) => (c.peers[1].sa = { out: { spi: 1, key: '00' }, in: { spi: 2, key: '00' } }), /^peers\[1\]\.ike: give sa \(manual keys\) or ike \(negotiated\), not both/],
    ['ike on vxlan', (c) => (c.encap = { type: 'vxlan', vni: 1 }), /^peers\[1\]\.ike: used only with encap\.type esp/],
    ['an unknown ike key', (c) => (c.peers[1].ike.rekey = 5), /^peers\[1\]\.ike\.rekey: unknown key.*rekeySeconds/],
    ['a bad proposal', (c) => (c.ike.proposals = ['aes256gcm16-prfsha256-x25519', 'aes999-sha1']), /^ike\.proposals\[1\]: .*aes999/],
    ['a CBC ESP proposal (the data path is AEAD only)', (c) => (c.ike.espProposals = ['aes256-sha256']), /^ike\.espProposals\[0\]: /],
    ['a bad identity', (c) => (c.peers[1].ike.remoteId = 'ipv4:300.1.1.1'), /^peers\[1\]\.ike\.remoteId: /],
    ['lifetime not above rekey', (c) => (c.peers[1].ike.lifetimeSeconds = 600), /^peers\[1\]\.ike\.lifetimeSeconds: must be above rekeySeconds \(600\)/],
    ['a bad start', (c) => (c.ike.start = 'later'), /^ike\.start: must be one of: on-start, on-traffic, passive/],
    ['neither sa nor ike', (c) => delete c.ike, /^peers\[0\]\.sa: required for esp/],
  ];
  for (const [what, mutate, expected] of cases) {
    it(`refuses ${what}, naming the field`, () => {
      const found = issues(mutate);
      expect(found.some((l) => expected.test(l)), found.join('\n')).toBe(true);
      expect(found.join('\n')).not.toContain(PSK);
    });
  }
});
