// IKEv2 SA proposals and traffic selectors: strongSwan-style proposal strings, the defaults,
// the responder's choice and the initiator's check of it, the mapping of a Child SA onto the
// native ESP ciphers, and selector narrowing and prefix decomposition.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseSaKey } from '../../lib/config/sa';
import {
  DEFAULT_ESP_PROPOSALS,
  DEFAULT_IKE_PROPOSALS,
  checkChosen,
  childCipherOf,
  defaultProposals,
  espSaKey,
  keyBytesOf,
  formatProposal,
  parseProposal,
  parseProposals,
  selectProposal,
  verifyChosen,
  withSpi,
  withoutDh,
} from '../../lib/ike/proposals';
import { covers, formatAddress, formatSelector, narrow, selectorsFromCidrs, selectorsToCidrs } from '../../lib/ike/selectors';
import {
  AUTH_HMAC_SHA2_256_128,
  DH_CURVE25519,
  DH_ECP_256,
  DH_MODP_2048,
  ENCR_AES_CBC,
  ENCR_AES_GCM_16,
  ENCR_CHACHA20_POLY1305,
  PRF_HMAC_SHA2_256,
  PRF_HMAC_SHA2_512,
  PROTOCOL_ESP,
  PROTOCOL_IKE,
  TRANSFORM_DH,
  TRANSFORM_ENCR,
  TRANSFORM_ESN,
  TRANSFORM_INTEG,
  TRANSFORM_PRF,
  transformName,
  type OfferedTransform,
} from '../../lib/ike/transforms';
import type { Proposal, TrafficSelector } from '../../lib/ike/types';

const E = TRANSFORM_ENCR;
const P = TRANSFORM_PRF;
const I = TRANSFORM_INTEG;
const D = TRANSFORM_DH;
const N = TRANSFORM_ESN;
const t = (type: number, id: number, keyLength?: number): OfferedTransform => (keyLength === undefined ? { type, id } : { type, id, keyLength });
const proposal = (number: number, protocol: number, transforms: OfferedTransform[], spi = Buffer.alloc(0)): Proposal => ({ number, protocol, spi, transforms });

/**
 * Modelled on what a strongSwan 5.9 charon with `proposals = default` offers (proposal.c:
 * proposal_create_default, then proposal_create_default_aead): the classic suite first, then the
 * AEADs, each with its PRFs and groups, strongest first; the order within each strength class
 * depends on the crypto plugins loaded, so the group order here is one plausible order.
 */
const CHARON_GROUPS = [19, 20, 21, 28, 29, 30, 31, 32, 15, 16, 17, 18, 14];
const charonDefault = [
  proposal(1, PROTOCOL_IKE, [
    t(E, 12, 128), t(E, 12, 192), t(E, 12, 256),
    t(I, 12), t(I, 13), t(I, 14), t(I, 2), t(I, 5),
    t(P, 5), t(P, 6), t(P, 7), t(P, 4), t(P, 2),
    ...CHARON_GROUPS.map((g) => t(D, g)),
  ]),
  proposal(2, PROTOCOL_IKE, [
    t(E, 20, 128), t(E, 20, 192), t(E, 20, 256), t(E, 28),
    t(E, 19, 128), t(E, 19, 192), t(E, 19, 256),
    t(P, 5), t(P, 6), t(P, 7), t(P, 4), t(P, 2),
    ...CHARON_GROUPS.map((g) => t(D, g)),
  ]),
];

describe('proposal strings', () => {
  it('reads IKE proposals, AEAD and classic', () => {
    expect(parseProposal('aes256gcm16-prfsha256-x25519', PROTOCOL_IKE)).toEqual(
      proposal(1, PROTOCOL_IKE, [t(E, ENCR_AES_GCM_16, 256), t(P, PRF_HMAC_SHA2_256), t(D, DH_CURVE25519)]),
    );
    expect(parseProposal('chacha20poly1305-prfsha512-ecp256', PROTOCOL_IKE, 3)).toEqual(
      proposal(3, PROTOCOL_IKE, [t(E, ENCR_CHACHA20_POLY1305), t(P, PRF_HMAC_SHA2_512), t(D, DH_ECP_256)]),
    );
    // Without a PRF, the one of the integrity algorithm's hash (as strongSwan does).
    expect(parseProposal('aes128-sha256-modp2048', PROTOCOL_IKE)).toEqual(
      proposal(1, PROTOCOL_IKE, [t(E, ENCR_AES_CBC, 128), t(P, PRF_HMAC_SHA2_256), t(I, AUTH_HMAC_SHA2_256_128), t(D, DH_MODP_2048)]),
    );
    // Several of a kind keep their order; the kinds may come in any order.
    expect(formatProposal(parseProposal('x25519-aes256gcm16-ecp256-prfsha384-aes128gcm16-prfsha256', PROTOCOL_IKE))).toBe(
      'aes256gcm16-aes128gcm16-prfsha384-prfsha256-x25519-ecp256',
    );
    expect(parseProposal('AES256GCM16-PRFSHA256-Curve25519', PROTOCOL_IKE).transforms).toEqual(parseProposal('aes256gcm16-prfsha256-x25519', PROTOCOL_IKE).transforms);
  });

  it('reads ESP proposals: AEAD only, optional PFS, ESN offered both ways unless said', () => {
    expect(parseProposal('aes256gcm16-x25519-esn-noesn', PROTOCOL_ESP)).toEqual(
      proposal(1, PROTOCOL_ESP, [t(E, ENCR_AES_GCM_16, 256), t(D, DH_CURVE25519), t(N, 1), t(N, 0)]),
    );
    expect(parseProposal('aes128gcm16', PROTOCOL_ESP).transforms).toEqual([t(E, ENCR_AES_GCM_16, 128), t(N, 1), t(N, 0)]);
    expect(parseProposal('chacha20poly1305-noesn', PROTOCOL_ESP).transforms).toEqual([t(E, ENCR_CHACHA20_POLY1305), t(N, 0)]);
    expect(parseProposal('aes256gcm16-ecp256-none', PROTOCOL_ESP).transforms).toEqual([t(E, ENCR_AES_GCM_16, 256), t(D, DH_ECP_256), t(D, 0), t(N, 1), t(N, 0)]);
  });

  const errors: [string, 1 | 3, RegExp][] = [
    ['aes256gcm16-prfsha256-x448', PROTOCOL_IKE, /"x448" is not an algorithm this implementation supports/],
    ['aes256gcm16--x25519', PROTOCOL_IKE, /empty algorithm name/],
    ['', PROTOCOL_IKE, /empty algorithm name/],
    ['aes256gcm16-x25519', PROTOCOL_IKE, /an AEAD IKE proposal needs a PRF/],
    ['aes256-x25519', PROTOCOL_IKE, /needs an integrity algorithm/],
    ['aes256gcm16-sha256-prfsha256-x25519', PROTOCOL_IKE, /AEAD ciphers carry their own integrity; drop sha256/],
    ['aes256gcm16-aes256-sha256-x25519', PROTOCOL_IKE, /cannot share a proposal/],
    ['aes256gcm16-prfsha256', PROTOCOL_IKE, /no key exchange method/],
    ['aes256gcm16-prfsha256-x25519-esn', PROTOCOL_IKE, /esn\/noesn belong to ESP/],
    ['aes256gcm16-prfsha256-none', PROTOCOL_IKE, /"none" is for ESP/],
    ['prfsha256-x25519', PROTOCOL_IKE, /no encryption algorithm/],
    ['aes256gcm16-prfsha256-x25519-x25519', PROTOCOL_IKE, /"x25519" is listed twice/],
    ['aes128-sha256', PROTOCOL_ESP, /ESP proposals take only AEAD ciphers/],
    ['aes256gcm16-prfsha256', PROTOCOL_ESP, /PRFs belong to IKE proposals/],
    ['aes256gcm16-sha1', PROTOCOL_ESP, /"sha1" is not an algorithm/],
    ['aes256gcm16-constructor', PROTOCOL_ESP, /"constructor" is not an algorithm/],
  ];
  for (const [text, protocol, message] of errors) {
    it(`refuses "${text}" for ${protocol === PROTOCOL_IKE ? 'IKE' : 'ESP'} with a message that says why`, () => {
      expect(() => parseProposal(text, protocol)).toThrow(message);
    });
  }

  it('numbers several proposals and parses the defaults', () => {
    expect(parseProposals(['aes256gcm16', 'aes128gcm16'], PROTOCOL_ESP).map((p) => p.number)).toEqual([1, 2]);
    expect(() => parseProposals([], PROTOCOL_ESP)).toThrow(/no proposals/);
    expect(defaultProposals(PROTOCOL_IKE).map(formatProposal)).toEqual([...DEFAULT_IKE_PROPOSALS.slice(0, 3), 'aes256-prfsha256-sha256-modp2048']);
    expect(defaultProposals(PROTOCOL_ESP).map(formatProposal)).toEqual(DEFAULT_ESP_PROPOSALS.map((p) => `${p}-esn-noesn`));
  });

  it('names transforms in keyword style, unknown ones by number', () => {
    expect(transformName(t(E, ENCR_AES_GCM_16, 128))).toBe('aes128gcm16');
    expect(transformName(t(E, 3))).toBe('encryption#3');
    expect(transformName(t(E, 12, 192))).toBe('aes192');
    expect(transformName(t(D, 21))).toBe('key exchange#21');
    expect(transformName(t(N, 1))).toBe('esn');
  });
});

describe('choosing a proposal (responder)', () => {
  const ours = defaultProposals(PROTOCOL_IKE);

  it("accepts a default strongSwan charon, preferring the proposal that fits its KE group", () => {
    const withEcp = selectProposal(charonDefault, ours, PROTOCOL_IKE, { keGroup: DH_ECP_256 });
    expect(withEcp?.proposal.number).toBe(2);
    expect(formatProposal(withEcp!.proposal)).toBe('aes128gcm16-prfsha256-ecp256');
    expect(withEcp?.suite).toEqual({ encr: { id: ENCR_AES_GCM_16, keyLength: 128 }, prf: PRF_HMAC_SHA2_256, dh: DH_ECP_256 });
    // With x25519, charon's first acceptable AEAD (its order) in our first proposal.
    const withX25519 = selectProposal(charonDefault, ours, PROTOCOL_IKE, { keGroup: DH_CURVE25519 });
    expect(formatProposal(withX25519!.proposal)).toBe('aes256gcm16-prfsha256-x25519');
  });

  it('falls back to the initiator-order choice when no proposal fits the KE group (INVALID_KE_PAYLOAD follows)', () => {
    const chosen = selectProposal(charonDefault, ours, PROTOCOL_IKE, { keGroup: 21 });
    expect(chosen?.proposal.number).toBe(1);
    expect(formatProposal(chosen!.proposal)).toBe('aes256-prfsha256-sha256-modp2048');
    expect(chosen?.suite).toEqual({ encr: { id: ENCR_AES_CBC, keyLength: 256 }, prf: PRF_HMAC_SHA2_256, integ: AUTH_HMAC_SHA2_256_128, dh: DH_MODP_2048 });
  });

  it('reads the proposals of a real charon 5.9.8 IKE_SA_INIT as strongSwan means the same strings', () => {
    // Hand-decoded from the SA payload of the captured request (test/unit/ike-crypto.test.ts),
    // sent for proposals = aes256gcm16-prfsha256-x25519, aes128-sha256-modp2048: charon adds
    // prfsha256 to the second and writes integrity before the PRF.
    const sent = [
      proposal(1, PROTOCOL_IKE, [t(E, 20, 256), t(P, 5), t(D, 31)]),
      proposal(2, PROTOCOL_IKE, [t(E, 12, 128), t(I, 12), t(P, 5), t(D, 14)]),
    ];
    const ours = parseProposals(['aes256gcm16-prfsha256-x25519', 'aes128-sha256-modp2048'], PROTOCOL_IKE);
    const byType = (p: Proposal) => [...p.transforms].sort((a, b) => a.type - b.type);
    expect(ours.map(byType)).toEqual(sent.map(byType));
    expect(formatProposal(selectProposal(sent, defaultProposals(PROTOCOL_IKE), PROTOCOL_IKE, { keGroup: 31 })!.proposal)).toBe('aes256gcm16-prfsha256-x25519');
    // What charon answered: proposal 1 as it was.
    expect(checkChosen(sent[0]!, ours, PROTOCOL_IKE)).toEqual({ encr: { id: ENCR_AES_GCM_16, keyLength: 256 }, prf: PRF_HMAC_SHA2_256, dh: DH_CURVE25519 });
  });

  it("prefers the initiator's order of proposals and transforms", () => {
    const offered = [proposal(1, PROTOCOL_IKE, [t(E, 28), t(E, 20, 256), t(P, 7), t(P, 5), t(D, 19), t(D, 31)])];
    const configured = parseProposals(['aes256gcm16-chacha20poly1305-prfsha256-prfsha512-x25519-ecp256'], PROTOCOL_IKE);
    expect(formatProposal(selectProposal(offered, configured, PROTOCOL_IKE)!.proposal)).toBe('chacha20poly1305-prfsha512-ecp256');
  });

  it('skips a transform with an unknown attribute, and a proposal with a transform type IKE does not have', () => {
    const offered = [
      proposal(1, PROTOCOL_IKE, [t(E, 20, 256), t(P, 5), t(D, 31), t(6, 1)]),
      proposal(2, PROTOCOL_IKE, [{ ...t(E, 20, 256), unknownAttribute: true }, t(E, 20, 128), t(P, 5), t(D, 19)]),
    ];
    const chosen = selectProposal(offered, ours, PROTOCOL_IKE);
    expect(chosen?.proposal.number).toBe(2);
    expect(formatProposal(chosen!.proposal)).toBe('aes128gcm16-prfsha256-ecp256');
  });

  it('keeps the initiator SPI and proposal number, and finds nothing without a full set', () => {
    const spi = Buffer.from('0102030405060708', 'hex');
    const chosen = selectProposal([proposal(7, PROTOCOL_IKE, [t(E, 20, 256), t(P, 5), t(D, 31)], spi)], ours, PROTOCOL_IKE);
    expect(chosen?.proposal.number).toBe(7);
    expect(chosen?.proposal.spi).toEqual(spi);
    expect(selectProposal([proposal(1, PROTOCOL_IKE, [t(E, 20, 256), t(D, 31)])], ours, PROTOCOL_IKE)).toBeNull(); // no PRF
    expect(selectProposal([proposal(1, PROTOCOL_IKE, [t(E, 12, 256), t(P, 5), t(D, 14)])], ours, PROTOCOL_IKE)).toBeNull(); // CBC, no integrity
    expect(selectProposal([proposal(1, PROTOCOL_IKE, [t(E, 20), t(P, 5), t(D, 31)])], ours, PROTOCOL_IKE)).toBeNull(); // GCM without key length
    expect(selectProposal([proposal(1, PROTOCOL_ESP, [t(E, 20, 256), t(N, 0)])], ours, PROTOCOL_IKE)).toBeNull(); // wrong protocol
  });

  const esp = defaultProposals(PROTOCOL_ESP);

  it('chooses ESP: AEAD, ESN in the initiator order, no CBC', () => {
    const chosen = selectProposal([proposal(1, PROTOCOL_ESP, [t(E, 20, 128), t(N, 1), t(N, 0)], Buffer.from('c0ffee01', 'hex'))], esp, PROTOCOL_ESP);
    expect(chosen?.suite).toEqual({ encr: { id: ENCR_AES_GCM_16, keyLength: 128 }, dh: 0, esn: true });
    expect(chosen?.proposal.spi.toString('hex')).toBe('c0ffee01');
    expect(selectProposal([proposal(1, PROTOCOL_ESP, [t(E, 28), t(N, 0)])], esp, PROTOCOL_ESP)?.suite).toEqual({ encr: { id: ENCR_CHACHA20_POLY1305 }, dh: 0, esn: false });
    // strongSwan's default ESP proposal: AES-CBC with HMAC, which the data path cannot run.
    const charonEsp = proposal(1, PROTOCOL_ESP, [t(E, 12, 128), t(E, 12, 192), t(E, 12, 256), t(I, 12), t(I, 13), t(I, 14), t(I, 2), t(I, 5), t(N, 0)]);
    expect(selectProposal([charonEsp], esp, PROTOCOL_ESP)).toBeNull();
    expect(selectProposal([proposal(1, PROTOCOL_ESP, [t(E, 20, 128)])], esp, PROTOCOL_ESP)).toBeNull(); // ESN is mandatory
    expect(selectProposal([proposal(1, PROTOCOL_ESP, [t(E, 20, 128), t(P, 5), t(N, 0)])], esp, PROTOCOL_ESP)).toBeNull(); // PRF in ESP
  });

  it('chooses ESP PFS groups: both sides must agree on one, or on none', () => {
    const pfs = parseProposals(['aes256gcm16-x25519'], PROTOCOL_ESP);
    const pfsOrNot = parseProposals(['aes256gcm16-x25519-none'], PROTOCOL_ESP);
    const withGroup = proposal(1, PROTOCOL_ESP, [t(E, 20, 256), t(D, 19), t(D, 31), t(N, 1)]);
    const without = proposal(1, PROTOCOL_ESP, [t(E, 20, 256), t(N, 1)]);
    expect(selectProposal([withGroup], pfs, PROTOCOL_ESP)?.suite.dh).toBe(DH_CURVE25519);
    expect(formatProposal(selectProposal([withGroup], pfs, PROTOCOL_ESP)!.proposal)).toBe('aes256gcm16-x25519-esn');
    expect(selectProposal([without], pfs, PROTOCOL_ESP)).toBeNull();
    expect(selectProposal([without], pfsOrNot, PROTOCOL_ESP)?.suite.dh).toBe(0);
    expect(selectProposal([withGroup], esp, PROTOCOL_ESP)).toBeNull(); // the initiator insists on PFS, we have none
    // With a KE payload of group 19, the proposal with 19 wins over the initiator's first group.
    expect(selectProposal([withGroup], parseProposals(['aes256gcm16-x25519-ecp256'], PROTOCOL_ESP), PROTOCOL_ESP, { keGroup: 19 })?.suite.dh).toBe(19);
  });

  it('ignores key exchange transforms for a Child SA made in IKE_AUTH, keeping our PFS group for rekeys', () => {
    const configured = parseProposals(['aes256gcm16-ecp256'], PROTOCOL_ESP);
    const offered = proposal(1, PROTOCOL_ESP, [t(E, 20, 256), t(D, 31), t(N, 1), t(N, 0)]);
    expect(selectProposal([offered], configured, PROTOCOL_ESP)).toBeNull();
    const chosen = selectProposal([offered], configured, PROTOCOL_ESP, { ignoreDh: true });
    expect(formatProposal(chosen!.proposal)).toBe('aes256gcm16-esn');
    expect(chosen?.suite).toEqual({ encr: { id: ENCR_AES_GCM_16, keyLength: 256 }, dh: DH_ECP_256, esn: true });
    expect(withoutDh(configured)[0]!.transforms.some((x) => x.type === TRANSFORM_DH)).toBe(false);
    expect(withSpi(configured, Buffer.from('00000001', 'hex'))[0]!.spi.toString('hex')).toBe('00000001');
  });
});

describe("checking the responder's choice (initiator)", () => {
  const offered = defaultProposals(PROTOCOL_IKE);

  it('accepts one of our proposals cut down to one transform per type', () => {
    const chosen = proposal(2, PROTOCOL_IKE, [t(E, 20, 128), t(P, 5), t(D, 19)], Buffer.alloc(8, 1));
    expect(verifyChosen(chosen, offered, PROTOCOL_IKE)).toEqual({ ok: true, suite: { encr: { id: ENCR_AES_GCM_16, keyLength: 128 }, prf: PRF_HMAC_SHA2_256, dh: DH_ECP_256 } });
    expect(checkChosen(chosen, offered, PROTOCOL_IKE)).toEqual({ encr: { id: ENCR_AES_GCM_16, keyLength: 128 }, prf: PRF_HMAC_SHA2_256, dh: DH_ECP_256 });
    // An explicit NONE integrity with the AEAD is harmless.
    expect(verifyChosen([proposal(2, PROTOCOL_IKE, [t(E, 20, 128), t(P, 5), t(I, 0), t(D, 19)])], offered, PROTOCOL_IKE).ok).toBe(true);
    expect(verifyChosen(proposal(4, PROTOCOL_IKE, [t(E, 12, 256), t(P, 5), t(I, 12), t(D, 14)]), offered, PROTOCOL_IKE).ok).toBe(true);
  });

  const bad: [string, Proposal | Proposal[], RegExp][] = [
    ['two proposals', [proposal(1, PROTOCOL_IKE, [t(E, 20, 256), t(P, 5), t(D, 31)]), proposal(2, PROTOCOL_IKE, [t(E, 20, 128), t(P, 5), t(D, 19)])], /exactly one proposal/],
    ['no proposal', [], /exactly one proposal .*, it holds 0/],
    ['a number we did not use', proposal(9, PROTOCOL_IKE, [t(E, 20, 256), t(P, 5), t(D, 31)]), /proposal 9, which we did not offer/],
    ['a transform from another proposal', proposal(1, PROTOCOL_IKE, [t(E, 20, 256), t(P, 5), t(D, 19)]), /chose ecp256, which proposal 1 did not offer/],
    ['two transforms of a type', proposal(1, PROTOCOL_IKE, [t(E, 20, 256), t(P, 5), t(D, 31), t(D, 31)]), /more than one key exchange/],
    ['no PRF', proposal(1, PROTOCOL_IKE, [t(E, 20, 256), t(D, 31)]), /no PRF transform/],
    ['an unknown attribute', proposal(1, PROTOCOL_IKE, [{ ...t(E, 20, 256), unknownAttribute: true }, t(P, 5), t(D, 31)]), /unknown attribute/],
    ['an ESN transform in IKE', proposal(1, PROTOCOL_IKE, [t(E, 20, 256), t(P, 5), t(D, 31), t(N, 0)]), /ESN transform/],
  ];
  for (const [what, chosen, reason] of bad) {
    it(`refuses ${what}`, () => {
      const result = verifyChosen(chosen, offered, PROTOCOL_IKE);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.reason).toMatch(reason);
      expect(checkChosen(chosen, offered, PROTOCOL_IKE)).toBeNull();
    });
  }

  it('checks ESP choices: ESN required, PFS kept when we required it, DH ignored for IKE_AUTH', () => {
    const esp = parseProposals(['aes256gcm16-x25519', 'aes128gcm16'], PROTOCOL_ESP);
    expect(checkChosen(proposal(1, PROTOCOL_ESP, [t(E, 20, 256), t(D, 31), t(N, 1)]), esp, PROTOCOL_ESP)).toEqual({ encr: { id: ENCR_AES_GCM_16, keyLength: 256 }, dh: DH_CURVE25519, esn: true });
    expect(verifyChosen(proposal(1, PROTOCOL_ESP, [t(E, 20, 256), t(N, 1)]), esp, PROTOCOL_ESP)).toEqual({ ok: false, reason: 'the responder dropped the PFS group that every option of the proposal requires' });
    expect(verifyChosen(proposal(2, PROTOCOL_ESP, [t(E, 20, 128)]), esp, PROTOCOL_ESP)).toEqual({ ok: false, reason: "the responder's proposal has no ESN transform" });
    expect(checkChosen(proposal(1, PROTOCOL_ESP, [t(E, 20, 256), t(N, 0)]), esp, PROTOCOL_ESP, { ignoreDh: true })).toEqual({ encr: { id: ENCR_AES_GCM_16, keyLength: 256 }, dh: DH_CURVE25519, esn: false });
    // What the session offers without PFS: the configured proposals with DH dropped.
    expect(checkChosen(proposal(1, PROTOCOL_ESP, [t(E, 20, 256), t(N, 1)]), withoutDh(esp), PROTOCOL_ESP)).toEqual({ encr: { id: ENCR_AES_GCM_16, keyLength: 256 }, dh: 0, esn: true });
  });
});

describe('native ESP mapping', () => {
  it('maps the AEAD Child SAs to the data path ciphers and key sizes (key | 4-byte salt)', () => {
    const gcm128 = { encr: { id: ENCR_AES_GCM_16, keyLength: 128 }, dh: 0, esn: true };
    const gcm256 = { encr: { id: ENCR_AES_GCM_16, keyLength: 256 }, dh: 0, esn: true };
    const chacha = { encr: { id: ENCR_CHACHA20_POLY1305 }, dh: 0, esn: false };
    expect([childCipherOf(gcm128), childCipherOf(gcm256), childCipherOf(chacha)]).toEqual(['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305']);
    expect([keyBytesOf(gcm128), keyBytesOf(gcm256), keyBytesOf(chacha)]).toEqual([20, 36, 36]);
    expect(() => childCipherOf({ encr: { id: ENCR_AES_CBC, keyLength: 256 }, integ: 12, dh: 0, esn: true })).toThrow(/not one of the native ESP ciphers/);
  });

  it('writes a direction of KEYMAT as an SA key that the config layer accepts', () => {
    const suite = { encr: { id: ENCR_CHACHA20_POLY1305 }, dh: 0, esn: true };
    const keymat = Buffer.from([...Array(36).keys()].map((i) => i + 1));
    const key = espSaKey(suite, keymat);
    expect(key).toBe(keymat.toString('hex'));
    expect(parseSaKey(key, 'chacha20-poly1305')).toEqual({ ok: true, value: key });
    expect(() => espSaKey(suite, keymat.subarray(1))).toThrow(/36 bytes, got 35/);
  });
});

describe('traffic selectors', () => {
  const v4 = (start: string, end: string, protocol = 0, startPort = 0, endPort = 65535): TrafficSelector => ({ type: 7, protocol, startPort, endPort, startAddress: start, endAddress: end });
  const v6 = (start: string, end: string): TrafficSelector => ({ type: 8, protocol: 0, startPort: 0, endPort: 65535, startAddress: start, endAddress: end });

  it('turns prefixes into selectors, IPv4 and IPv6', () => {
    expect(selectorsFromCidrs(['10.1.0.0/16', '198.18.0.7', 'fd00:1::/64', '::/0'])).toEqual([
      v4('10.1.0.0', '10.1.255.255'),
      v4('198.18.0.7', '198.18.0.7'),
      v6('fd00:1::', 'fd00:1::ffff:ffff:ffff:ffff'),
      v6('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ]);
    expect(() => selectorsFromCidrs(['10.1.0.1/16'])).toThrow(/host bits set \(the prefix is 10.1.0.0\/16\)/);
    expect(() => selectorsFromCidrs(['10.1.0.0/33'])).toThrow(/0 to 32/);
    expect(() => selectorsFromCidrs(['fe80::1%eth0/128'])).toThrow(/not an address prefix|not an IPv6 address/);
    expect(() => selectorsFromCidrs(['host.example/24'])).toThrow(/not an address prefix/);
  });

  it('narrows to the intersection (RFC 7296 §2.9), empty when nothing is shared', () => {
    const allowed = selectorsFromCidrs(['10.1.0.0/24', '10.2.0.0/16', 'fd00::/16']);
    expect(narrow(selectorsFromCidrs(['10.0.0.0/8']), allowed)).toEqual([v4('10.1.0.0', '10.1.0.255'), v4('10.2.0.0', '10.2.255.255')]);
    expect(narrow([v4('10.1.0.128', '10.3.0.0')], allowed)).toEqual([v4('10.1.0.128', '10.1.0.255'), v4('10.2.0.0', '10.2.255.255')]);
    expect(narrow(selectorsFromCidrs(['192.0.2.0/24']), allowed)).toEqual([]);
    expect(narrow(selectorsFromCidrs(['fd00:1::/32', '::/0']), allowed)).toEqual([v6('fd00:1::', 'fd00:1:ffff:ffff:ffff:ffff:ffff:ffff'), v6('fd00::', 'fd00:ffff:ffff:ffff:ffff:ffff:ffff:ffff')]);
  });

  it('drops protocol- or port-restricted intersections unless asked to keep them', () => {
    const allowed = selectorsFromCidrs(['10.1.0.0/24']);
    // strongSwan's trap policies put the triggering packet's selector first (RFC 7296 §2.9).
    const proposed = [v4('10.1.0.5', '10.1.0.5', 6, 443, 443), ...selectorsFromCidrs(['10.1.0.0/24'])];
    expect(narrow(proposed, allowed)).toEqual([v4('10.1.0.0', '10.1.0.255')]);
    expect(narrow(proposed, allowed, { wholeAddressRangesOnly: false })).toEqual([v4('10.1.0.5', '10.1.0.5', 6, 443, 443), v4('10.1.0.0', '10.1.0.255')]);
    expect(narrow([v4('10.1.0.0', '10.1.0.255', 17)], [v4('10.1.0.0', '10.1.0.255', 6)], { wholeAddressRangesOnly: false })).toEqual([]);
    expect(narrow([v4('10.1.0.0', '10.1.0.255', 17, 0, 100)], [v4('10.1.0.0', '10.1.0.255', 0, 200, 300)], { wholeAddressRangesOnly: false })).toEqual([]);
  });

  it('decomposes ranges into exact prefixes, including ranges that are not one prefix', () => {
    expect(selectorsToCidrs([v4('10.0.0.1', '10.0.0.6')])).toEqual(['10.0.0.1/32', '10.0.0.2/31', '10.0.0.4/31', '10.0.0.6/32']);
    expect(selectorsToCidrs([v4('0.0.0.0', '255.255.255.255'), v4('10.0.0.0', '10.0.0.255')])).toEqual(['0.0.0.0/0', '10.0.0.0/24']);
    expect(selectorsToCidrs([v4('10.0.0.255', '10.0.1.0')])).toEqual(['10.0.0.255/32', '10.0.1.0/32']);
    expect(selectorsToCidrs([v6('2001:db8::1', '2001:db8::6')])).toEqual(['2001:db8::1/128', '2001:db8::2/127', '2001:db8::4/127', '2001:db8::6/128']);
    expect(selectorsToCidrs(selectorsFromCidrs(['fd00:1::/64', '::/0']))).toEqual(['fd00:1::/64', '::/0']);
    expect(() => selectorsToCidrs([v4('10.0.0.9', '10.0.0.1')])).toThrow(/ends before it starts/);
  });

  it('tells whether prefixes cover selectors', () => {
    expect(covers([v4('10.0.0.0', '10.0.0.255')], ['10.0.0.0/25', '10.0.0.128/25'])).toBe(true);
    expect(covers([v4('10.0.0.0', '10.0.0.255')], ['10.0.0.0/25'])).toBe(false);
    expect(covers([v4('10.0.0.1', '10.0.0.6')], ['10.0.0.0/29'])).toBe(true);
    expect(covers([v6('fd00::1', 'fd00::ff')], ['fd00::/120'])).toBe(true);
    expect(covers([v6('fd00::1', 'fd00::1:0')], ['fd00::/120', '10.0.0.0/8'])).toBe(false);
    expect(covers([], [])).toBe(true);
  });

  it('prints IPv6 as RFC 5952 does, and selectors for logs', () => {
    const six = (s: string) => BigInt(`0x${s}`);
    expect(formatAddress(six('20010db8000000000000000000000001'), 6)).toBe('2001:db8::1');
    expect(formatAddress(0n, 6)).toBe('::');
    expect(formatAddress(1n, 6)).toBe('::1');
    expect(formatAddress(six('20010db8000000010001000100010001'), 6)).toBe('2001:db8:0:1:1:1:1:1');
    expect(formatAddress(six('20010db8000000000001000000000001'), 6)).toBe('2001:db8::1:0:0:1');
    // As node:net (inet_ntop) prints them, for the same literal on both sides of a comparison.
    for (const address of ['::ffff:1.2.3.4', '::1.2.3.4', '::2', '64:ff9b::102:304', '1:0:0:2:0:0:0:3', 'FE80::']) {
      expect(selectorsFromCidrs([address])[0]!.startAddress).toBe(new net.SocketAddress({ address, family: 'ipv6' }).address);
    }
    expect(formatSelector(v4('10.0.0.0', '10.0.0.255'))).toBe('10.0.0.0/24');
    expect(formatSelector(v4('10.0.0.1', '10.0.0.6'))).toBe('10.0.0.1-10.0.0.6');
    expect(formatSelector(v4('10.1.0.5', '10.1.0.5', 6, 443, 443))).toBe('10.1.0.5/32[6/443]');
  });
});
