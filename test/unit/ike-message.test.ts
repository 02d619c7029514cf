// The IKEv2 message codec (lib/ike/message.ts, sk.ts) against hand-built messages, a real
// strongSwan 5.9.8 exchange read back byte for byte (with tshark's reading of the same capture as
// an independent second opinion), a table of malformed messages that each must be refused for
// its own reason, and random mutations that must never make the decoder throw.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  decodeHeader,
  decodeMessage,
  encodeHeader,
  decodePayloads,
  encodeMessage,
  encodePayloads,
  MAX_MESSAGE_BYTES,
  MAX_PAYLOADS,
  MAX_PROPOSALS,
  MAX_TRANSFORMS,
  payloadTypeOf,
  Reason,
  transformUnderstood,
  type CodecResult,
  type DecodedMessage,
} from '../../lib/ike/message';
import { openMessage, sealMessage, SkReason } from '../../lib/ike/sk';
import type { IkeHeader, Payload, SkCipher } from '../../lib/ike/types';
import {
  AuthMethod,
  CertEncoding,
  Exchange,
  IdType,
  IKE_VERSION,
  notifyTypeName,
  NotifyType,
  PayloadType,
  ProtocolId,
  TransformType,
  TsType,
} from '../../lib/ike/wire';

type Header = Omit<IkeHeader, 'nextPayload' | 'length'>;

const ALL_REASONS = new Set<string>([...Object.values(Reason), ...Object.values(SkReason)]);

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

function header(overrides: Partial<Header> = {}): Header {
  return {
    initiatorSpi: hex('0102030405060708'),
    responderSpi: hex('1112131415161718'),
    version: IKE_VERSION,
    exchange: Exchange.IKE_SA_INIT,
    initiator: true,
    response: false,
    messageId: 0,
    ...overrides,
  };
}

function decodeOk(buf: Buffer): DecodedMessage {
  const result = decodeMessage(buf);
  if (!result.ok) throw new Error(`decode failed: ${result.reason}`);
  return result.value;
}

function expectReason<T>(result: CodecResult<T>, reason: string): void {
  expect(result.ok ? 'ok' : result.reason).toBe(reason);
}

// A test-only SkCipher: AES-256-GCM with a 16-byte ICV as RFC 5282 uses it in IKEv2. The key is
// 32 bytes of AES key and a 4-byte salt (RFC 5282 §7.1); the nonce is salt | 8-byte explicit IV
// (§4); the plaintext is the inner payloads, padding and the Pad Length byte (RFC 7296 §3.14).
// `iv` and `padding` may be fixed to reproduce someone else's message bit for bit.
class TestGcm implements SkCipher {
  readonly ivBytes = 8;
  readonly icvBytes = 16;
  readonly blockBytes = 1;
  private counter = 0n;
  iv: Buffer | undefined;
  padding: Buffer = Buffer.alloc(0);

  constructor(private readonly key: Buffer) {
    expect(key.length).toBe(36);
  }

  sealedLength(plaintextBytes: number): number {
    return this.ivBytes + plaintextBytes + this.padding.length + 1 + this.icvBytes;
  }

  seal(aad: Buffer, plaintext: Buffer): Buffer {
    const iv = this.iv ?? Buffer.alloc(8);
    if (!this.iv) iv.writeBigUInt64BE(++this.counter);
    const cipher = createCipheriv('aes-256-gcm', this.key.subarray(0, 32), Buffer.concat([this.key.subarray(32), iv]), { authTagLength: 16 });
    cipher.setAAD(aad);
    const body = Buffer.concat([plaintext, this.padding, Buffer.from([this.padding.length])]);
    const ciphertext = Buffer.concat([cipher.update(body), cipher.final()]);
    return Buffer.concat([iv, ciphertext, cipher.getAuthTag()]);
  }

  /** The whole decrypted plaintext (padding and Pad Length included), or null. */
  decrypt(aad: Buffer, body: Buffer): Buffer | null {
    if (body.length < this.ivBytes + 1 + this.icvBytes) return null;
    const iv = body.subarray(0, 8);
    const decipher = createDecipheriv('aes-256-gcm', this.key.subarray(0, 32), Buffer.concat([this.key.subarray(32), iv]), { authTagLength: 16 });
    decipher.setAAD(aad);
    decipher.setAuthTag(body.subarray(body.length - 16));
    try {
      return Buffer.concat([decipher.update(body.subarray(8, body.length - 16)), decipher.final()]);
    } catch {
      return null;
    }
  }

  open(aad: Buffer, body: Buffer): Buffer | null {
    const plaintext = this.decrypt(aad, body);
    if (!plaintext) return null;
    const padLength = plaintext[plaintext.length - 1]!;
    if (padLength + 1 > plaintext.length) return null;
    return plaintext.subarray(0, plaintext.length - 1 - padLength);
  }
}

const KEY = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f a0a1a2a3');

// ---------------------------------------------------------------------------------------------
// Raw builders for the malformed table: every length and marker can be made to lie.

interface Raw {
  type: number;
  body: Buffer | number[];
  critical?: boolean;
  /** Payload Length as written (default: the truth). */
  length?: number;
  /** Next Payload as written (default: the type of the next one, 0 for the last). */
  next?: number;
}

function rawChain(chain: Raw[]): Buffer {
  return Buffer.concat(
    chain.map((p, i) => {
      const body = Buffer.from(p.body);
      const head = Buffer.alloc(4);
      head[0] = p.next ?? chain[i + 1]?.type ?? 0;
      head[1] = p.critical ? 0x80 : 0;
      head.writeUInt16BE(p.length ?? 4 + body.length, 2);
      return Buffer.concat([head, body]);
    }),
  );
}

function rawMessage(chain: Raw[], options: { first?: number; length?: number; version?: number; trailing?: number } = {}): Buffer {
  const payloads = Buffer.concat([rawChain(chain), Buffer.alloc(options.trailing ?? 0)]);
  const head = Buffer.alloc(28);
  hex('0102030405060708 1112131415161718').copy(head, 0);
  head[16] = options.first ?? chain[0]?.type ?? 0;
  head[17] = options.version ?? 0x20;
  head[18] = Exchange.IKE_SA_INIT;
  head[19] = 0x08;
  head.writeUInt32BE(options.length ?? 28 + payloads.length, 24);
  return Buffer.concat([head, payloads]);
}

function u16(v: number): number[] {
  return [v >> 8, v & 0xff];
}

interface RawTransform {
  last?: number;
  length?: number;
  type?: number;
  id?: number;
  attributes?: number[];
}

function rawTransform(t: RawTransform = {}): number[] {
  const attributes = t.attributes ?? [];
  return [t.last ?? 0, 0, ...u16(t.length ?? 8 + attributes.length), t.type ?? TransformType.ENCR, 0, ...u16(t.id ?? 20), ...attributes];
}

interface RawProposal {
  last?: number;
  length?: number;
  number?: number;
  protocol?: number;
  spi?: number[];
  count?: number;
  transforms?: number[][];
}

function rawProposal(p: RawProposal = {}): number[] {
  const transforms = p.transforms ?? [rawTransform({ attributes: [0x80, 0x0e, 0x01, 0x00] })];
  const spi = p.spi ?? [];
  const body = transforms.flat();
  return [
    p.last ?? 0,
    0,
    ...u16(p.length ?? 8 + spi.length + body.length),
    p.number ?? 1,
    p.protocol ?? ProtocolId.IKE,
    spi.length,
    p.count ?? transforms.length,
    ...spi,
    ...body,
  ];
}

function rawTs(type: number, length: number, addressBytes: number): number[] {
  return [type, 0, ...u16(length), 0, 0, 0xff, 0xff, ...Array<number>(2 * addressBytes).fill(7)];
}

const V4_TS = rawTs(7, 16, 4);
const NONCE = Array<number>(32).fill(0x4e);

// ---------------------------------------------------------------------------------------------
// A message with every payload type.

const everyPayload: Payload[] = [
  {
    type: 'sa',
    critical: false,
    proposals: [
      {
        number: 1,
        protocol: ProtocolId.IKE,
        spi: Buffer.alloc(0),
        transforms: [
          { type: TransformType.ENCR, id: 20, keyLength: 256 },
          { type: TransformType.PRF, id: 5 },
          { type: TransformType.DH, id: 31 },
        ],
      },
      {
        number: 2,
        protocol: ProtocolId.IKE,
        spi: Buffer.alloc(0),
        transforms: [
          { type: TransformType.ENCR, id: 12, keyLength: 128 },
          { type: TransformType.INTEG, id: 12 },
          { type: TransformType.PRF, id: 5 },
          { type: TransformType.DH, id: 14 },
        ],
      },
    ],
  },
  { type: 'ke', critical: false, group: 31, data: Buffer.alloc(32, 0x31) },
  { type: 'nonce', critical: false, data: Buffer.alloc(32, 0x4e) },
  { type: 'notify', critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: NotifyType.NAT_DETECTION_SOURCE_IP, data: Buffer.alloc(20, 1) },
  { type: 'notify', critical: false, protocol: ProtocolId.ESP, spi: hex('c0ffee01'), notifyType: NotifyType.REKEY_SA, data: Buffer.alloc(0) },
  { type: 'notify', critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: NotifyType.SIGNATURE_HASH_ALGORITHMS, data: hex('0002000300040005') },
  { type: 'idi', critical: false, idType: IdType.ID_FQDN, data: Buffer.from('a.example') },
  { type: 'idr', critical: false, idType: IdType.ID_IPV4_ADDR, data: hex('c6120002') },
  { type: 'idr', critical: false, idType: IdType.ID_IPV6_ADDR, data: hex('20010db8000000000000000000000001') },
  { type: 'auth', critical: false, method: AuthMethod.SHARED_KEY_MIC, data: Buffer.alloc(32, 0xa5) },
  { type: 'auth', critical: false, method: AuthMethod.DIGITAL_SIGNATURE, data: Buffer.concat([Buffer.from([3]), hex('300100'), Buffer.alloc(64, 0x5a)]) },
  {
    type: 'tsi',
    critical: false,
    selectors: [
      { type: TsType.IPV4_ADDR_RANGE, protocol: 0, startPort: 0, endPort: 65535, startAddress: '198.19.1.0', endAddress: '198.19.1.255' },
      { type: TsType.IPV6_ADDR_RANGE, protocol: 17, startPort: 4500, endPort: 4500, startAddress: '2001:db8:1::', endAddress: '2001:db8:1:0:ffff:ffff:ffff:ffff' },
    ],
  },
  {
    type: 'tsr',
    critical: false,
    selectors: [
      { type: TsType.IPV6_ADDR_RANGE, protocol: 0, startPort: 0, endPort: 65535, startAddress: '::', endAddress: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' },
      { type: TsType.IPV6_ADDR_RANGE, protocol: 1, startPort: 65535, endPort: 0, startAddress: 'fe80::1', endAddress: '2001:db8::1:0:0:1' },
    ],
  },
  { type: 'delete', critical: false, protocol: ProtocolId.ESP, spis: [hex('00000101'), hex('00000102')] },
  { type: 'delete', critical: false, protocol: ProtocolId.IKE, spis: [] },
  { type: 'cert', critical: false, encoding: CertEncoding.X509_SIGNATURE, data: hex('3082000430020500') },
  { type: 'certreq', critical: false, encoding: CertEncoding.X509_SIGNATURE, data: Buffer.alloc(40, 0xca) },
  { type: 'certreq', critical: false, encoding: CertEncoding.X509_SIGNATURE, data: Buffer.alloc(0) },
  { type: 'vendor', critical: false, data: Buffer.from('overlayfwd') },
  { type: 'unknown', critical: false, payloadType: PayloadType.CP, data: hex('0100000000010000') },
  { type: 'unknown', critical: false, payloadType: 200, data: Buffer.alloc(0) },
  { type: 'nonce', critical: true, data: Buffer.alloc(16, 1) },
];

describe('wire numbers', () => {
  it('has the IANA values', () => {
    expect([Exchange.IKE_SA_INIT, Exchange.IKE_AUTH, Exchange.CREATE_CHILD_SA, Exchange.INFORMATIONAL]).toEqual([34, 35, 36, 37]);
    expect([PayloadType.SA, PayloadType.Notify, PayloadType.TSr, PayloadType.SK, PayloadType.SKF]).toEqual([33, 41, 45, 46, 53]);
    expect([NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, NotifyType.INVALID_KE_PAYLOAD, NotifyType.CHILD_SA_NOT_FOUND]).toEqual([1, 17, 44]);
    expect([NotifyType.INITIAL_CONTACT, NotifyType.COOKIE, NotifyType.MOBIKE_SUPPORTED, NotifyType.SIGNATURE_HASH_ALGORITHMS]).toEqual([16384, 16390, 16396, 16431]);
    expect([IdType.ID_IPV6_ADDR, IdType.ID_KEY_ID, AuthMethod.DIGITAL_SIGNATURE]).toEqual([5, 11, 14]);
  });

  it('names notify types for the log', () => {
    expect(notifyTypeName(24)).toBe('AUTHENTICATION_FAILED');
    expect(notifyTypeName(16430)).toBe('IKEV2_FRAGMENTATION_SUPPORTED');
    expect(notifyTypeName(42)).toBe('error 42');
    expect(notifyTypeName(16418)).toBe('status 16418');
  });
});

describe('round trips', () => {
  it('every payload type, in one unprotected message', () => {
    const bytes = encodeMessage(header(), everyPayload);
    const decoded = decodeOk(bytes);
    expect(decoded.payloads).toEqual(everyPayload);
    expect(decoded.sk).toBeUndefined();
    expect(decoded.header).toMatchObject({ ...header(), nextPayload: PayloadType.SA, length: bytes.length });
    // Re-encoding what was decoded gives the same bytes.
    expect(encodeMessage(decoded.header, decoded.payloads).equals(bytes)).toBe(true);
  });

  it('each payload type on its own, as a chain', () => {
    for (const payload of everyPayload) {
      const { first, bytes } = encodePayloads([payload]);
      const decoded = decodePayloads(bytes, first);
      expect(decoded).toEqual({ ok: true, value: [payload] });
    }
  });

  it('header flags, message ID and the empty message', () => {
    const h = header({ exchange: Exchange.INFORMATIONAL, initiator: false, response: true, messageId: 0xfffffffe });
    const bytes = encodeMessage(h, []);
    expect(bytes.length).toBe(28);
    expect(bytes[19]).toBe(0x20);
    expect(decodeOk(bytes)).toEqual({ header: { ...h, nextPayload: 0, length: 28 }, payloads: [] });
    expect(decodeHeader(bytes)).toEqual({ ok: true, value: { ...h, nextPayload: 0, length: 28 } });
  });

  it('ignores the X and V flags, the minor version and the reserved fields on receipt (RFC 7296 §3.1, §3.2)', () => {
    const bytes = encodeMessage(header(), [everyPayload[1]!, everyPayload[6]!]);
    bytes[17] = 0x21; // minor version 1
    bytes[19] = bytes[19]! | 0x10 | 0x07 | 0xc0; // V and the X bits
    bytes[28 + 1] = bytes[28 + 1]! | 0x7f; // the generic header's RESERVED bits
    bytes.writeUInt16BE(0xffff, 28 + 6); // KE RESERVED
    const decoded = decodeOk(bytes);
    expect(decoded.header).toMatchObject({ version: 0x21, initiator: true, response: false });
    expect(decoded.payloads).toEqual([everyPayload[1], everyPayload[6]]);
  });

  it('reports a Notify protocol without an SPI as 0, and sends it as 0 (§3.10)', () => {
    const notify: Payload = { type: 'notify', critical: false, protocol: ProtocolId.IKE, spi: Buffer.alloc(0), notifyType: NotifyType.INITIAL_CONTACT, data: Buffer.alloc(0) };
    const { first, bytes } = encodePayloads([notify]);
    expect(bytes[4]).toBe(0);
    bytes[4] = 1;
    expect(decodePayloads(bytes, first)).toEqual({ ok: true, value: [{ ...notify, protocol: 0 }] });
  });

  it('marks a transform with an attribute it does not know, and keeps the rest (§3.3.6)', () => {
    const sa = rawProposal({ transforms: [rawTransform({ last: 3, attributes: [0x80, 0x0e, 0x00, 0x80, 0x00, 0x11, 0x00, 0x02, 0xab, 0xcd] }), rawTransform({ type: 2, id: 5 })] });
    const decoded = decodeOk(rawMessage([{ type: PayloadType.SA, body: sa }]));
    const sap = decoded.payloads[0];
    if (sap?.type !== 'sa') throw new Error('no SA');
    const [odd, plain] = sap.proposals[0]!.transforms;
    expect(odd).toEqual({ type: 1, id: 20, keyLength: 128, unknownAttribute: true });
    expect(transformUnderstood(odd!)).toBe(false);
    expect(plain).toEqual({ type: 2, id: 5 });
    expect(transformUnderstood(plain!)).toBe(true);
    expect(() => encodeMessage(header(), decoded.payloads)).toThrow(RangeError);
  });

  it('keeps a proposal of a protocol it does not know, with its SPI', () => {
    const decoded = decodeOk(rawMessage([{ type: PayloadType.SA, body: rawProposal({ protocol: 9, spi: [1, 2, 3] }) }]));
    expect(decoded.payloads[0]).toMatchObject({ type: 'sa', proposals: [{ protocol: 9, spi: Buffer.from([1, 2, 3]) }] });
  });

  it('prints IPv6 selector addresses as node:net does', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'],
      ['::ffff:198.19.0.1', '::ffff:198.19.0.1'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['FE80::ABCD', 'fe80::abcd'],
    ];
    for (const [given, printed] of cases) {
      const ts: Payload = { type: 'tsi', critical: false, selectors: [{ type: 8, protocol: 0, startPort: 0, endPort: 0, startAddress: given, endAddress: given }] };
      const { first, bytes } = encodePayloads([ts]);
      const decoded = decodePayloads(bytes, first);
      expect(decoded.ok && decoded.value[0]).toMatchObject({ selectors: [{ startAddress: printed, endAddress: printed }] });
    }
  });

  it('refuses to encode what it would refuse to decode', () => {
    const bad: Payload[] = [
      { type: 'nonce', critical: false, data: Buffer.alloc(15) },
      { type: 'ke', critical: false, group: 31, data: Buffer.alloc(0) },
      { type: 'notify', critical: false, protocol: ProtocolId.IKE, spi: Buffer.alloc(8), notifyType: 1, data: Buffer.from([1]) },
      { type: 'notify', critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: NotifyType.COOKIE, data: Buffer.alloc(65) },
      { type: 'idi', critical: false, idType: IdType.ID_IPV4_ADDR, data: Buffer.alloc(16) },
      { type: 'tsi', critical: false, selectors: [] },
      { type: 'tsi', critical: false, selectors: [{ type: 7, protocol: 0, startPort: 0, endPort: 0, startAddress: '2001:db8::1', endAddress: '2001:db8::1' }] },
      { type: 'tsi', critical: false, selectors: [{ type: 8, protocol: 0, startPort: 0, endPort: 0, startAddress: 'fe80::1%eth0', endAddress: 'fe80::1' }] },
      { type: 'delete', critical: false, protocol: ProtocolId.IKE, spis: [Buffer.alloc(8)] },
      { type: 'delete', critical: false, protocol: ProtocolId.ESP, spis: [Buffer.alloc(4), Buffer.alloc(8)] },
      { type: 'sa', critical: false, proposals: [] },
      { type: 'sa', critical: false, proposals: [{ number: 1, protocol: ProtocolId.ESP, spi: Buffer.alloc(8), transforms: [] }] },
      { type: 'unknown', critical: false, payloadType: PayloadType.SK, data: Buffer.alloc(0) },
      { type: 'unknown', critical: false, payloadType: PayloadType.Nonce, data: Buffer.alloc(16) },
      { type: 'vendor', critical: false, data: Buffer.alloc(70000) },
    ];
    for (const payload of bad) expect(() => encodeMessage(header(), [payload]), JSON.stringify(payload).slice(0, 80)).toThrow(RangeError);
    expect(() => encodeMessage(header({ initiatorSpi: Buffer.alloc(4) }), [])).toThrow(RangeError);
    expect(() => encodeMessage(header({ version: 0x10 }), [])).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// strongSwan 5.9.8: IKE_SA_INIT, IKE_AUTH (PSK), Child SA rekey, IKE SA rekey, Deletes.

interface TsharkView {
  exchange: number[];
  payloads: number[];
  notifies: number[];
  proposalNumbers: number[];
  protocols: number[];
  spis: string[];
  transformTypes: number[];
  keyLengths: number[];
  dhGroup: number[];
  nonce: string[];
  idTypes: number[];
  fqdns: string[];
  authMethods: number[];
  tsStartV4: string[];
  tsEndV4: string[];
  tsStartV6: string[];
  tsEndV6: string[];
  deleteProtocols: number[];
  deleteSpis: string[];
  vendorIds: string[];
}

interface Capture {
  keys: { skEi: string; skEr: string }[];
  messages: { from: 'a' | 'b'; port: number; hex: string; tshark: TsharkView }[];
}

const capture = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'ike', 'strongswan-5.9.8.json'), 'utf8')) as Capture;

/** What tshark shows of a message, computed from our decoding of it. */
function viewOf(h: IkeHeader, payloads: Payload[], encrypted: boolean): TsharkView {
  const v: TsharkView = {
    exchange: [h.exchange],
    payloads: encrypted ? [PayloadType.SK] : [],
    notifies: [],
    proposalNumbers: [],
    protocols: [],
    spis: [],
    transformTypes: [],
    keyLengths: [],
    dhGroup: [],
    nonce: [],
    idTypes: [],
    fqdns: [],
    authMethods: [],
    tsStartV4: [],
    tsEndV4: [],
    tsStartV6: [],
    tsEndV6: [],
    deleteProtocols: [],
    deleteSpis: [],
    vendorIds: [],
  };
  for (const p of payloads) {
    v.payloads.push(payloadTypeOf(p));
    switch (p.type) {
      case 'sa':
        for (const proposal of p.proposals) {
          v.payloads.push(2, ...proposal.transforms.map(() => 3));
          v.proposalNumbers.push(proposal.number);
          v.protocols.push(proposal.protocol);
          if (proposal.spi.length) v.spis.push(proposal.spi.toString('hex'));
          for (const t of proposal.transforms) {
            v.transformTypes.push(t.type);
            if (t.keyLength !== undefined) v.keyLengths.push(t.keyLength);
          }
        }
        break;
      case 'notify':
        v.notifies.push(p.notifyType);
        if (p.spi.length) v.spis.push(p.spi.toString('hex'));
        break;
      case 'ke':
        v.dhGroup.push(p.group);
        break;
      case 'nonce':
        v.nonce.push(p.data.toString('hex'));
        break;
      case 'idi':
      case 'idr':
        v.idTypes.push(p.idType);
        if (p.idType === IdType.ID_FQDN) v.fqdns.push(p.data.toString('latin1'));
        break;
      case 'auth':
        v.authMethods.push(p.method);
        break;
      case 'tsi':
      case 'tsr':
        for (const ts of p.selectors) {
          if (ts.type === 7) {
            v.tsStartV4.push(ts.startAddress);
            v.tsEndV4.push(ts.endAddress);
          } else {
            v.tsStartV6.push(ts.startAddress);
            v.tsEndV6.push(ts.endAddress);
          }
        }
        break;
      case 'delete':
        v.deleteProtocols.push(p.protocol);
        v.deleteSpis.push(...p.spis.map((s) => s.toString('hex')));
        break;
      case 'vendor':
        v.vendorIds.push(p.data.toString('hex'));
        break;
    }
  }
  return v;
}

describe('strongSwan 5.9.8 capture', () => {
  const messages = capture.messages.map((m) => ({ ...m, bytes: hex(m.hex) }));

  it('holds the exchanges the capture script ran', () => {
    expect(messages.map((m) => decodeOk(m.bytes).header.exchange)).toEqual([34, 34, 35, 35, 36, 36, 37, 37, 36, 36, 37, 37, 37, 37, 37, 37]);
    expect(messages.map((m) => m.from)).toEqual(['a', 'b', 'a', 'b', 'a', 'b', 'a', 'b', 'a', 'b', 'a', 'b', 'a', 'b', 'a', 'b']);
  });

  it('decodes the IKE_SA_INIT request and response as tshark reads them, and re-encodes them byte for byte', () => {
    for (const m of messages.slice(0, 2)) {
      const decoded = decodeOk(m.bytes);
      expect(decoded.sk).toBeUndefined();
      expect(viewOf(decoded.header, decoded.payloads, false)).toEqual(m.tshark);
      expect(encodeMessage(decoded.header, decoded.payloads).equals(m.bytes)).toBe(true);
    }
    const request = decodeOk(messages[0]!.bytes);
    expect(request.header).toMatchObject({ exchange: 34, initiator: true, response: false, messageId: 0, version: 0x20, responderSpi: Buffer.alloc(8) });
    const sa = request.payloads[0];
    expect(sa).toEqual({
      type: 'sa',
      critical: false,
      proposals: [
        { number: 1, protocol: 1, spi: Buffer.alloc(0), transforms: [{ type: 1, id: 20, keyLength: 256 }, { type: 2, id: 5 }, { type: 4, id: 31 }] },
        { number: 2, protocol: 1, spi: Buffer.alloc(0), transforms: [{ type: 1, id: 12, keyLength: 128 }, { type: 3, id: 12 }, { type: 2, id: 5 }, { type: 4, id: 14 }] },
      ],
    });
    expect(request.payloads.find((p) => p.type === 'ke')).toMatchObject({ group: 31, data: expect.any(Buffer) });
    const response = decodeOk(messages[1]!.bytes);
    expect(response.header).toMatchObject({ initiator: false, response: true, initiatorSpi: request.header.initiatorSpi });
  });

  it('opens every encrypted message with the keys charon logged, as tshark decrypted them', () => {
    // Which IKE SA a message belongs to goes by its initiator SPI: the first from IKE_SA_INIT, the
    // second from the IKE proposal's SPI in the rekeying CREATE_CHILD_SA request.
    const saOf = new Map<string, number>([[decodeOk(messages[0]!.bytes).header.initiatorSpi.toString('hex'), 0]]);
    for (const m of messages.slice(2)) {
      const decoded = decodeOk(m.bytes);
      expect(decoded.payloads).toEqual([]);
      expect(decoded.sk).toMatchObject({ offset: 28, critical: false });
      const sa = saOf.get(decoded.header.initiatorSpi.toString('hex'));
      expect(sa).toBeDefined();
      const keys = capture.keys[sa!]!;
      // The original initiator (I flag) seals with SK_ei, the responder with SK_er.
      const cipher = new TestGcm(hex(decoded.header.initiator ? keys.skEi : keys.skEr));
      const inner = openMessage(m.bytes, decoded, cipher);
      if (!inner.ok) throw new Error(`open failed: ${inner.reason}`);
      expect(viewOf(decoded.header, inner.value, true)).toEqual(m.tshark);
      for (const p of inner.value) {
        if (p.type === 'sa' && p.proposals[0]?.protocol === ProtocolId.IKE && !decoded.header.response) saOf.set(p.proposals[0].spi.toString('hex'), sa! + 1);
      }
      // With strongSwan's IV and padding, sealMessage rebuilds the very datagram: the header,
      // the SK header, the AAD and the inner payloads are laid out as strongSwan lays them out.
      const body = m.bytes.subarray(decoded.sk!.offset + 4);
      const plaintext = cipher.decrypt(m.bytes.subarray(0, decoded.sk!.offset + 4), body)!;
      const padLength = plaintext[plaintext.length - 1]!;
      cipher.iv = body.subarray(0, 8);
      cipher.padding = plaintext.subarray(plaintext.length - 1 - padLength, plaintext.length - 1);
      expect(sealMessage(decoded.header, inner.value, cipher).equals(m.bytes)).toBe(true);
    }
    expect(saOf.size).toBe(2);
  });

  it('reads the IKE_AUTH request: identities, PSK AUTH, ESP proposals, IPv4 and IPv6 selectors', () => {
    const m = messages[2]!;
    const decoded = decodeOk(m.bytes);
    const inner = openMessage(m.bytes, decoded, new TestGcm(hex(capture.keys[0]!.skEi)));
    if (!inner.ok) throw new Error(inner.reason);
    const tsi = inner.value.find((p) => p.type === 'tsi');
    expect(tsi).toEqual({
      type: 'tsi',
      critical: false,
      selectors: [
        { type: 7, protocol: 0, startPort: 0, endPort: 65535, startAddress: '198.19.1.0', endAddress: '198.19.1.255' },
        { type: 8, protocol: 0, startPort: 0, endPort: 65535, startAddress: '2001:db8:1::', endAddress: '2001:db8:1:0:ffff:ffff:ffff:ffff' },
      ],
    });
    expect(inner.value.find((p) => p.type === 'idi')).toEqual({ type: 'idi', critical: false, idType: IdType.ID_FQDN, data: Buffer.from('a.ikc.example') });
    expect(inner.value.find((p) => p.type === 'auth')).toMatchObject({ method: AuthMethod.SHARED_KEY_MIC });
    expect(inner.value.find((p) => p.type === 'sa')).toMatchObject({ proposals: [{ protocol: ProtocolId.ESP, spi: expect.any(Buffer) }, { protocol: ProtocolId.ESP }] });
  });
});

// ---------------------------------------------------------------------------------------------
// Malformed messages: each refused for its own reason.

const ikeSaInit = hex(capture.messages[0]!.hex);
const sa = (body: number[]): Raw => ({ type: PayloadType.SA, body });
const notify = (protocol: number, spiSize: number, type: number, rest: number[]): Raw => ({ type: PayloadType.Notify, body: [protocol, spiSize, ...u16(type), ...rest] });

const malformed: { name: string; bytes: Buffer; reason: string; criticalType?: number }[] = [
  // The header.
  { name: '27 bytes', bytes: ikeSaInit.subarray(0, 27), reason: Reason.tooShort },
  { name: 'empty datagram', bytes: Buffer.alloc(0), reason: Reason.tooShort },
  { name: 'larger than any UDP payload', bytes: rawMessage([{ type: PayloadType.Vendor, body: Buffer.alloc(MAX_MESSAGE_BYTES - 32 + 1) }]), reason: Reason.tooLarge },
  { name: 'IKEv1 (major version 1)', bytes: rawMessage([], { version: 0x10 }), reason: Reason.majorVersion },
  { name: 'major version 3', bytes: rawMessage([], { version: 0x30 }), reason: Reason.majorVersion },
  { name: 'length field 20', bytes: rawMessage([], { length: 20 }), reason: Reason.lengthBelowHeader },
  { name: 'length field one more than the datagram', bytes: rawMessage([{ type: 40, body: NONCE }], { length: 28 + 36 + 1 }), reason: Reason.lengthMismatch },
  { name: 'length field one less than the datagram', bytes: rawMessage([{ type: 40, body: NONCE }], { length: 28 + 36 - 1 }), reason: Reason.lengthMismatch },
  { name: 'datagram truncated in the middle', bytes: ikeSaInit.subarray(0, 100), reason: Reason.lengthMismatch },
  // The payload chain.
  { name: 'first payload named, none there', bytes: rawMessage([], { first: PayloadType.Nonce }), reason: Reason.payloadTruncated },
  { name: 'payload header cut short', bytes: rawMessage([], { first: PayloadType.Nonce, trailing: 3 }), reason: Reason.payloadTruncated },
  { name: 'payload length 3', bytes: rawMessage([{ type: 40, body: NONCE, length: 3 }]), reason: Reason.payloadLength },
  { name: 'payload length 0', bytes: rawMessage([{ type: 40, body: NONCE, length: 0 }]), reason: Reason.payloadLength },
  { name: 'payload length past the end', bytes: rawMessage([{ type: 40, body: NONCE, length: 37 }]), reason: Reason.payloadOverrun },
  { name: 'next payload named after the last', bytes: rawMessage([{ type: 40, body: NONCE, next: PayloadType.Vendor }]), reason: Reason.payloadTruncated },
  { name: 'bytes after the last payload', bytes: rawMessage([{ type: 40, body: NONCE }], { trailing: 4 }), reason: Reason.trailingBytes },
  { name: `${MAX_PAYLOADS + 1} payloads`, bytes: rawMessage(Array.from({ length: MAX_PAYLOADS + 1 }, () => ({ type: PayloadType.Vendor, body: [] }))), reason: Reason.tooManyPayloads },
  { name: 'unknown critical payload', bytes: rawMessage([{ type: 40, body: NONCE }, { type: 99, body: [1, 2], critical: true }]), reason: Reason.criticalPayload, criticalType: 99 },
  { name: 'critical CP payload (not understood)', bytes: rawMessage([{ type: PayloadType.CP, body: [1, 0, 0, 0], critical: true }]), reason: Reason.criticalPayload, criticalType: 47 },
  { name: 'SK payload not last', bytes: rawMessage([{ type: PayloadType.SK, body: Buffer.alloc(30), next: 0 }, { type: PayloadType.Nonce, body: NONCE }]), reason: Reason.skNotLast },
  { name: 'SKF fragment', bytes: rawMessage([{ type: PayloadType.SKF, body: [0, 1, 0, 1, ...Array<number>(30).fill(0)] }]), reason: Reason.fragment },
  // SA.
  { name: 'SA without proposals', bytes: rawMessage([sa([])]), reason: Reason.saEmpty },
  { name: 'proposal of 7 bytes', bytes: rawMessage([sa(rawProposal().slice(0, 7))]), reason: Reason.proposalTruncated },
  { name: 'proposal length past the SA payload', bytes: rawMessage([sa(rawProposal({ length: 21 }))]), reason: Reason.proposalLength },
  { name: 'proposal length below its SPI', bytes: rawMessage([sa(rawProposal({ protocol: 3, spi: [1, 2, 3, 4], length: 10, transforms: [] }))]), reason: Reason.proposalLength },
  { name: 'proposal marker 1', bytes: rawMessage([sa(rawProposal({ last: 1 }))]), reason: Reason.proposalLast },
  { name: 'last proposal marked 2 (more)', bytes: rawMessage([sa(rawProposal({ last: 2 }))]), reason: Reason.proposalLast },
  { name: 'first of two proposals marked 0 (last)', bytes: rawMessage([sa([...rawProposal({ last: 0 }), ...rawProposal({ number: 2 })])]), reason: Reason.proposalLast },
  { name: 'proposals numbered 1, 3', bytes: rawMessage([sa([...rawProposal({ last: 2 }), ...rawProposal({ number: 3 })])]), reason: Reason.proposalNumber },
  { name: 'proposal number 0', bytes: rawMessage([sa(rawProposal({ number: 0 }))]), reason: Reason.proposalNumber },
  {
    name: `${MAX_PROPOSALS + 1} proposals`,
    bytes: rawMessage([sa(Array.from({ length: MAX_PROPOSALS + 1 }, (_, i) => rawProposal({ last: i === MAX_PROPOSALS ? 0 : 2, number: i + 1 })).flat())]),
    reason: Reason.tooManyProposals,
  },
  { name: 'ESP proposal with an 8-byte SPI', bytes: rawMessage([sa(rawProposal({ protocol: 3, spi: [1, 2, 3, 4, 5, 6, 7, 8] }))]), reason: Reason.proposalSpiSize },
  { name: 'IKE proposal with a 4-byte SPI', bytes: rawMessage([sa(rawProposal({ protocol: 1, spi: [1, 2, 3, 4] }))]), reason: Reason.proposalSpiSize },
  { name: 'transform count 2, one transform', bytes: rawMessage([sa(rawProposal({ count: 2 }))]), reason: Reason.transformCount },
  { name: 'transform count 1, two transforms', bytes: rawMessage([sa(rawProposal({ count: 1, transforms: [rawTransform({ last: 3 }), rawTransform()] }))]), reason: Reason.transformCount },
  { name: `transform count ${MAX_TRANSFORMS + 1}`, bytes: rawMessage([sa(rawProposal({ count: MAX_TRANSFORMS + 1 }))]), reason: Reason.tooManyTransforms },
  { name: 'transform of 7 bytes', bytes: rawMessage([sa(rawProposal({ transforms: [rawTransform().slice(0, 7)] }))]), reason: Reason.transformTruncated },
  { name: 'transform length 7', bytes: rawMessage([sa(rawProposal({ transforms: [rawTransform({ length: 7 })] }))]), reason: Reason.transformLength },
  { name: 'transform length past the proposal', bytes: rawMessage([sa(rawProposal({ transforms: [rawTransform({ length: 12 })] }))]), reason: Reason.transformLength },
  { name: 'transform marker 2', bytes: rawMessage([sa(rawProposal({ transforms: [rawTransform({ last: 2 })] }))]), reason: Reason.transformLast },
  { name: 'first of two transforms marked 0 (last)', bytes: rawMessage([sa(rawProposal({ transforms: [rawTransform({ last: 0 }), rawTransform()] }))]), reason: Reason.transformLast },
  { name: 'last transform marked 3 (more)', bytes: rawMessage([sa(rawProposal({ transforms: [rawTransform({ last: 3 })] }))]), reason: Reason.transformLast },
  { name: 'attribute of 2 bytes', bytes: rawMessage([sa(rawProposal({ transforms: [rawTransform({ attributes: [0x80, 0x0e] })] }))]), reason: Reason.attributeTruncated },
  { name: 'TLV attribute longer than the transform', bytes: rawMessage([sa(rawProposal({ transforms: [rawTransform({ attributes: [0, 0x11, 0, 5, 1, 2, 3, 4] })] }))]), reason: Reason.attributeOverrun },
  { name: 'key length as TLV', bytes: rawMessage([sa(rawProposal({ transforms: [rawTransform({ attributes: [0x00, 0x0e, 0x00, 0x02, 0x01, 0x00] })] }))]), reason: Reason.keyLengthFormat },
  { name: 'two key lengths', bytes: rawMessage([sa(rawProposal({ transforms: [rawTransform({ attributes: [0x80, 14, 1, 0, 0x80, 14, 0, 0x80] })] }))]), reason: Reason.keyLengthDuplicate },
  // KE, ID, CERT, CERTREQ, AUTH, Nonce.
  { name: 'KE of 3 bytes', bytes: rawMessage([{ type: PayloadType.KE, body: [0, 31, 0] }]), reason: Reason.keShort },
  { name: 'KE without data', bytes: rawMessage([{ type: PayloadType.KE, body: [0, 31, 0, 0] }]), reason: Reason.keEmpty },
  { name: 'nonce of 15 bytes', bytes: rawMessage([{ type: 40, body: Array<number>(15).fill(1) }]), reason: Reason.nonceSize },
  { name: 'nonce of 257 bytes', bytes: rawMessage([{ type: 40, body: Array<number>(257).fill(1) }]), reason: Reason.nonceSize },
  { name: 'ID of 3 bytes', bytes: rawMessage([{ type: PayloadType.IDi, body: [2, 0, 0] }]), reason: Reason.idShort },
  { name: 'ID_IPV4_ADDR of 5 bytes', bytes: rawMessage([{ type: PayloadType.IDi, body: [1, 0, 0, 0, 198, 18, 0, 1, 0] }]), reason: Reason.idData },
  { name: 'ID_IPV6_ADDR of 4 bytes', bytes: rawMessage([{ type: PayloadType.IDr, body: [5, 0, 0, 0, 198, 18, 0, 1] }]), reason: Reason.idData },
  { name: 'empty ID_FQDN', bytes: rawMessage([{ type: PayloadType.IDr, body: [2, 0, 0, 0] }]), reason: Reason.idData },
  { name: 'CERT without encoding', bytes: rawMessage([{ type: PayloadType.CERT, body: [] }]), reason: Reason.certShort },
  { name: 'CERT without data', bytes: rawMessage([{ type: PayloadType.CERT, body: [4] }]), reason: Reason.certEmpty },
  { name: 'CERTREQ without encoding', bytes: rawMessage([{ type: PayloadType.CERTREQ, body: [] }]), reason: Reason.certreqShort },
  { name: 'X.509 CERTREQ of 21 bytes', bytes: rawMessage([{ type: PayloadType.CERTREQ, body: [4, ...Array<number>(21).fill(0)] }]), reason: Reason.certreqHashes },
  { name: 'AUTH of 3 bytes', bytes: rawMessage([{ type: PayloadType.AUTH, body: [2, 0, 0] }]), reason: Reason.authShort },
  { name: 'AUTH without data', bytes: rawMessage([{ type: PayloadType.AUTH, body: [2, 0, 0, 0] }]), reason: Reason.authEmpty },
  { name: 'signature AUTH, no signature', bytes: rawMessage([{ type: PayloadType.AUTH, body: [14, 0, 0, 0, 3, 0x30, 0x01, 0x00] }]), reason: Reason.authSignature },
  // Notify, Delete.
  { name: 'Notify of 3 bytes', bytes: rawMessage([{ type: PayloadType.Notify, body: [0, 0, 0x40] }]), reason: Reason.notifyShort },
  { name: 'Notify SPI size past the payload', bytes: rawMessage([notify(3, 4, NotifyType.REKEY_SA, [1, 2, 3])]), reason: Reason.notifySpiOverrun },
  { name: 'Notify for the IKE SA with an SPI', bytes: rawMessage([notify(1, 8, NotifyType.INITIAL_CONTACT, [1, 2, 3, 4, 5, 6, 7, 8])]), reason: Reason.notifySpiSize },
  { name: 'Notify for ESP with an 8-byte SPI', bytes: rawMessage([notify(3, 8, NotifyType.REKEY_SA, [1, 2, 3, 4, 5, 6, 7, 8])]), reason: Reason.notifySpiSize },
  { name: 'INVALID_KE_PAYLOAD of 3 bytes', bytes: rawMessage([notify(0, 0, NotifyType.INVALID_KE_PAYLOAD, [0, 31, 0])]), reason: Reason.notifyData },
  { name: 'NAT_DETECTION_SOURCE_IP of 19 bytes', bytes: rawMessage([notify(0, 0, NotifyType.NAT_DETECTION_SOURCE_IP, Array<number>(19).fill(0))]), reason: Reason.notifyData },
  { name: 'COOKIE of 65 bytes', bytes: rawMessage([notify(0, 0, NotifyType.COOKIE, Array<number>(65).fill(0))]), reason: Reason.notifyData },
  { name: 'empty COOKIE', bytes: rawMessage([notify(0, 0, NotifyType.COOKIE, [])]), reason: Reason.notifyData },
  { name: 'SIGNATURE_HASH_ALGORITHMS of 3 bytes', bytes: rawMessage([notify(0, 0, NotifyType.SIGNATURE_HASH_ALGORITHMS, [0, 2, 0])]), reason: Reason.notifyData },
  { name: 'Delete of 3 bytes', bytes: rawMessage([{ type: PayloadType.Delete, body: [3, 4, 0] }]), reason: Reason.deleteShort },
  { name: 'Delete count 2, one SPI', bytes: rawMessage([{ type: PayloadType.Delete, body: [3, 4, 0, 2, 1, 2, 3, 4] }]), reason: Reason.deleteLength },
  { name: 'Delete count 1, SPI and a byte', bytes: rawMessage([{ type: PayloadType.Delete, body: [3, 4, 0, 1, 1, 2, 3, 4, 5] }]), reason: Reason.deleteLength },
  { name: 'Delete for the IKE SA with an SPI', bytes: rawMessage([{ type: PayloadType.Delete, body: [1, 8, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8] }]), reason: Reason.deleteSpiSize },
  { name: 'Delete for ESP with 2-byte SPIs', bytes: rawMessage([{ type: PayloadType.Delete, body: [3, 2, 0, 2, 1, 2, 3, 4] }]), reason: Reason.deleteSpiSize },
  { name: 'Delete for an unknown protocol', bytes: rawMessage([{ type: PayloadType.Delete, body: [7, 4, 0, 1, 1, 2, 3, 4] }]), reason: Reason.deleteSpiSize },
  // TSi, TSr.
  { name: 'TS of 3 bytes', bytes: rawMessage([{ type: PayloadType.TSi, body: [1, 0, 0] }]), reason: Reason.tsShort },
  { name: 'TS with count 0', bytes: rawMessage([{ type: PayloadType.TSi, body: [0, 0, 0, 0] }]), reason: Reason.tsEmpty },
  { name: 'TS count 2, one selector', bytes: rawMessage([{ type: PayloadType.TSi, body: [2, 0, 0, 0, ...V4_TS] }]), reason: Reason.tsCount },
  { name: 'TS count 1, two selectors', bytes: rawMessage([{ type: PayloadType.TSr, body: [1, 0, 0, 0, ...V4_TS, ...V4_TS] }]), reason: Reason.tsCount },
  { name: 'selector of 3 bytes', bytes: rawMessage([{ type: PayloadType.TSi, body: [1, 0, 0, 0, 7, 0, 0] }]), reason: Reason.tsTruncated },
  { name: 'TS_FC_ADDR_RANGE (9)', bytes: rawMessage([{ type: PayloadType.TSi, body: [1, 0, 0, 0, ...rawTs(9, 16, 4)] }]), reason: Reason.tsType },
  { name: 'IPv4 selector of length 40', bytes: rawMessage([{ type: PayloadType.TSi, body: [1, 0, 0, 0, ...rawTs(7, 40, 16)] }]), reason: Reason.tsLength },
  { name: 'IPv6 selector of length 16', bytes: rawMessage([{ type: PayloadType.TSi, body: [1, 0, 0, 0, ...rawTs(8, 16, 4)] }]), reason: Reason.tsLength },
  { name: 'IPv6 selector cut short', bytes: rawMessage([{ type: PayloadType.TSi, body: [1, 0, 0, 0, ...rawTs(8, 40, 16).slice(0, 30)] }]), reason: Reason.tsOverrun },
];

describe('malformed messages', () => {
  it('has a case for most reasons', () => {
    expect(malformed.length).toBeGreaterThanOrEqual(30);
    const covered = new Set(malformed.map((c) => c.reason));
    const untested = Object.values(Reason).filter((r) => !covered.has(r));
    // Covered elsewhere: nested SK and a bad offset (decodePayloads), the decoder fault (never).
    expect(untested.sort()).toEqual([Reason.badOffset, Reason.decoderFault, Reason.skNested].sort());
  });

  it.each(malformed)('$name: $reason', ({ bytes, reason, criticalType }) => {
    const result = decodeMessage(bytes);
    expectReason(result, reason);
    if (!result.ok) expect(result.criticalType).toBe(criticalType);
  });

  it('hands back the header with refusals after it, so the session can answer', () => {
    const version = decodeMessage(rawMessage([], { version: 0x30 }));
    expect(version).toMatchObject({ ok: false, reason: Reason.majorVersion, header: { version: 0x30, messageId: 0, initiator: true } });
    const critical = decodeMessage(rawMessage([{ type: 99, body: [], critical: true }]));
    expect(critical).toMatchObject({ ok: false, criticalType: 99, header: { nextPayload: 99 } });
    expect(decodeMessage(Buffer.alloc(10))).toEqual({ ok: false, reason: Reason.tooShort });
  });

  it('keeps an unknown payload without the critical bit', () => {
    const decoded = decodeOk(rawMessage([{ type: 99, body: [1, 2] }, { type: 40, body: NONCE }]));
    expect(decoded.payloads[0]).toEqual({ type: 'unknown', critical: false, payloadType: 99, data: Buffer.from([1, 2]) });
  });

  it('decodePayloads refuses an SK payload inside, and offsets outside the buffer', () => {
    const chain = rawChain([{ type: 40, body: NONCE }, { type: PayloadType.SK, body: Buffer.alloc(25) }]);
    expectReason(decodePayloads(chain, PayloadType.Nonce), Reason.skNested);
    expectReason(decodePayloads(chain, PayloadType.Nonce, chain.length + 1), Reason.badOffset);
    expectReason(decodePayloads(chain, PayloadType.Nonce, -1), Reason.badOffset);
    expect(decodePayloads(chain, 0, chain.length)).toEqual({ ok: true, value: [] });
  });

  it('refuses every truncation of a real IKE_SA_INIT and IKE_AUTH, whatever the length field says', () => {
    for (const whole of [ikeSaInit, hex(capture.messages[2]!.hex)]) {
      for (let n = 0; n < whole.length; n++) {
        const cut = Buffer.from(whole.subarray(0, n));
        expectReason(decodeMessage(cut), n < 28 ? Reason.tooShort : Reason.lengthMismatch);
        if (n < 28) continue;
        // The length field made to agree: the lie moves into the payload chain.
        cut.writeUInt32BE(n, 24);
        const result = decodeMessage(cut);
        expect(result.ok, `cut at ${n}`).toBe(false);
        if (!result.ok) {
          expect(ALL_REASONS.has(result.reason)).toBe(true);
          expect(result.reason).not.toBe(Reason.decoderFault);
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Random mutations: decode never throws, and anything it accepts survives a re-encode.

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('random mutations', () => {
  const corpus = [ikeSaInit, hex(capture.messages[1]!.hex), encodeMessage(header(), everyPayload)];
  // The inner payloads of the strongSwan IKE_AUTH and CREATE_CHILD_SA requests, as unprotected
  // messages, so the mutations reach ID, AUTH, TS, Delete and the ESP proposals too.
  for (const i of [2, 3, 4, 6]) {
    const m = hex(capture.messages[i]!.hex);
    const decoded = decodeOk(m);
    const inner = openMessage(m, decoded, new TestGcm(hex(decoded.header.initiator ? capture.keys[0]!.skEi : capture.keys[0]!.skEr)));
    if (!inner.ok) throw new Error(inner.reason);
    corpus.push(encodeMessage(decoded.header, inner.value));
  }

  it('never throws and always answers ok or a known reason (20000 mutations)', () => {
    const seed = 0x1cec0de;
    const random = mulberry32(seed);
    const pick = (n: number) => Math.floor(random() * n);
    const reasons = new Map<string, number>();
    let accepted = 0;
    for (let i = 0; i < 20000; i++) {
      const base = corpus[pick(corpus.length)]!;
      let bytes = Buffer.from(base);
      const mutations = 1 + pick(4);
      for (let j = 0; j < mutations; j++) {
        const at = pick(bytes.length);
        switch (pick(6)) {
          case 0: // flip a bit
            bytes[at] = bytes[at]! ^ (1 << pick(8));
            break;
          case 1: // a random byte
            bytes[at] = pick(256);
            break;
          case 2: // an interesting byte: a length, a marker, a type
            bytes[at] = [0, 1, 2, 3, 4, 7, 8, 0x7f, 0x80, 0xff, 33, 46, 53][pick(13)]!;
            break;
          case 3: // cut
            bytes = bytes.subarray(0, at);
            break;
          case 4: // insert bytes
            bytes = Buffer.concat([bytes.subarray(0, at), Buffer.alloc(1 + pick(8), pick(256)), bytes.subarray(at)]);
            break;
          case 5: // a random 16-bit value, where lengths live
            if (at + 1 < bytes.length) bytes.writeUInt16BE(pick(65536), at);
            break;
        }
      }
      // Usually make the header's Length agree, so the mutation is judged deeper down.
      if (bytes.length >= 28 && random() < 0.8) bytes.writeUInt32BE(bytes.length, 24);
      let result: CodecResult<DecodedMessage>;
      try {
        result = decodeMessage(bytes);
      } catch (err) {
        throw new Error(`seed ${seed} iteration ${i}: threw ${String(err)} on ${bytes.toString('hex')}`);
      }
      if (result.ok) {
        accepted++;
        // What was accepted re-encodes, unless it holds a transform that cannot be sent, and
        // the re-encoding decodes to the same message.
        const sendable = result.value.payloads.every((p) => p.type !== 'sa' || p.proposals.every((q) => q.transforms.every(transformUnderstood)));
        if (sendable && !result.value.sk) {
          const again = decodeMessage(encodeMessage(result.value.header, result.value.payloads));
          expect(again.ok && again.value.payloads).toEqual(result.value.payloads);
        }
      } else {
        expect(ALL_REASONS.has(result.reason), result.reason).toBe(true);
        expect(result.reason, `seed ${seed} iteration ${i}: ${bytes.toString('hex')}`).not.toBe(Reason.decoderFault);
        reasons.set(result.reason, (reasons.get(result.reason) ?? 0) + 1);
      }
    }
    // The mutations reached deep: many different reasons, and some mutants were still valid.
    expect(reasons.size).toBeGreaterThan(30);
    expect(accepted).toBeGreaterThan(100);
  });

  it('decodePayloads and decodeHeader never throw either', () => {
    const random = mulberry32(7);
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.from(Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256)));
      const first = Math.floor(random() * 256);
      expect(() => decodePayloads(bytes, first)).not.toThrow();
      expect(() => decodeHeader(bytes)).not.toThrow();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// SK: seal and open.

describe('SK payload', () => {
  const inner: Payload[] = [everyPayload[6]!, everyPayload[9]!, everyPayload[0]!, everyPayload[11]!, everyPayload[12]!];
  const authHeader = header({ exchange: Exchange.IKE_AUTH, messageId: 1 });

  it('seals and opens with AES-256-GCM (RFC 5282)', () => {
    const sealed = sealMessage(authHeader, inner, new TestGcm(KEY));
    const decoded = decodeOk(sealed);
    expect(decoded.payloads).toEqual([]);
    expect(decoded.sk).toEqual({ offset: 28, firstInner: PayloadType.IDi, critical: false });
    expect(decoded.header).toMatchObject({ nextPayload: PayloadType.SK, length: sealed.length });
    expect(openMessage(sealed, decoded, new TestGcm(KEY))).toEqual({ ok: true, value: inner });
  });

  it('seals an empty message (a liveness check) and opens it to no payloads', () => {
    const cipher = new TestGcm(KEY);
    const sealed = sealMessage(header({ exchange: Exchange.INFORMATIONAL, messageId: 7 }), [], cipher);
    expect(sealed.length).toBe(28 + 4 + 8 + 1 + 16);
    const decoded = decodeOk(sealed);
    expect(decoded.sk).toEqual({ offset: 28, firstInner: 0, critical: false });
    expect(openMessage(sealed, decoded, cipher)).toEqual({ ok: true, value: [] });
  });

  it('hands the cipher the final header and SK header as AAD, and pads through the cipher', () => {
    const seen: Buffer[] = [];
    const gcm = new TestGcm(KEY);
    gcm.padding = Buffer.from([0, 0, 0]);
    const spy: SkCipher = {
      ivBytes: 8,
      icvBytes: 16,
      blockBytes: 1,
      sealedLength: (n) => gcm.sealedLength(n),
      seal: (aad, plaintext) => (seen.push(Buffer.from(aad)), gcm.seal(aad, plaintext)),
      open: (aad, body) => (seen.push(Buffer.from(aad)), gcm.open(aad, body)),
    };
    const sealed = sealMessage(authHeader, inner, spy);
    expect(seen[0]!.equals(sealed.subarray(0, 32))).toBe(true);
    expect(sealed.readUInt32BE(24)).toBe(sealed.length);
    expect(sealed.readUInt16BE(30)).toBe(sealed.length - 28);
    expect(openMessage(sealed, decodeOk(sealed), spy)).toEqual({ ok: true, value: inner });
    expect(seen[1]!.equals(seen[0]!)).toBe(true);
  });

  it('refuses any tampering: header, SK header, IV, ciphertext, ICV', () => {
    const sealed = sealMessage(authHeader, inner, new TestGcm(KEY));
    // Message ID, flags, SK header's reserved bits, IV, ciphertext, ICV.
    for (const at of [20, 23, 29, 32, 39, 40, 100, sealed.length - 17, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[at] = bad[at]! ^ 0x01;
      const decoded = decodeMessage(bad);
      if (!decoded.ok) throw new Error(decoded.reason);
      expectReason(openMessage(bad, decoded.value, new TestGcm(KEY)), SkReason.integrity);
    }
    const wrongKey = Buffer.from(KEY);
    wrongKey[0] = wrongKey[0]! ^ 1;
    expectReason(openMessage(sealed, decodeOk(sealed), new TestGcm(wrongKey)), SkReason.integrity);
  });

  it('refuses a message without SK, an SK body too short, and a cipher that throws', () => {
    expectReason(openMessage(ikeSaInit, decodeOk(ikeSaInit), new TestGcm(KEY)), SkReason.noSk);
    const short = rawMessage([{ type: PayloadType.SK, body: Buffer.alloc(24), next: PayloadType.Nonce }]);
    expectReason(openMessage(short, decodeOk(short), new TestGcm(KEY)), SkReason.tooShort);
    const sealed = sealMessage(authHeader, inner, new TestGcm(KEY));
    const gcm = new TestGcm(KEY);
    const throwing: SkCipher = { ivBytes: 8, icvBytes: 16, blockBytes: 1, sealedLength: () => 0, seal: (aad, p) => gcm.seal(aad, p), open: () => { throw new Error('boom'); } };
    expectReason(openMessage(sealed, decodeOk(sealed), throwing), SkReason.cipherFault);
  });

  it('refuses inner payloads that do not decode, for their own reason', () => {
    const cipher = new TestGcm(KEY);
    // SK payloads around plaintexts that sealMessage would never produce.
    const seal = (plaintext: Buffer, first: number): Buffer => {
      const skLength = 4 + cipher.sealedLength(plaintext.length);
      const aad = Buffer.concat([encodeHeader(authHeader, PayloadType.SK, 28 + skLength), Buffer.from([first, 0, skLength >> 8, skLength & 0xff])]);
      return Buffer.concat([aad, cipher.seal(aad, plaintext)]);
    };
    const shortNonce = rawChain([{ type: 40, body: Array<number>(15).fill(0) }]);
    const a = seal(shortNonce, PayloadType.Nonce);
    expectReason(openMessage(a, decodeOk(a), cipher), Reason.nonceSize);
    const nested = rawChain([{ type: PayloadType.SK, body: Buffer.alloc(25) }]);
    const b = seal(nested, PayloadType.SK);
    expectReason(openMessage(b, decodeOk(b), cipher), Reason.skNested);
    const critical = rawChain([{ type: 77, body: [], critical: true }]);
    const c = seal(critical, 77);
    expect(openMessage(c, decodeOk(c), cipher)).toEqual({ ok: false, reason: Reason.criticalPayload, criticalType: 77 });
  });

  it('refuses to seal a message that would not fit, and a cipher that lies about its length', () => {
    const big: Payload[] = Array.from({ length: 2 }, () => ({ type: 'vendor', critical: false, data: Buffer.alloc(40000) }));
    expect(() => sealMessage(authHeader, big, new TestGcm(KEY))).toThrow(RangeError);
    const liar: SkCipher = { ivBytes: 8, icvBytes: 16, blockBytes: 1, sealedLength: () => 10, seal: () => Buffer.alloc(11), open: () => null };
    expect(() => sealMessage(authHeader, inner, liar)).toThrow(/sealedLength/);
  });
});
