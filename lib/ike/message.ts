// IKEv2 message codec (RFC 7296 §3): the header and the chain of payloads, strict and pure.
// Bytes in, a message or a reason out. The decoder never throws and never allocates more than a
// small multiple of its input; the encoder throws a RangeError on values that do not fit their
// fields (a bug in the caller, never something from the wire).
//
// The IKE header (§3.1):
//
//                        1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                       IKE SA Initiator's SPI                  |
//   |                                                               |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                       IKE SA Responder's SPI                  |
//   |                                                               |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                          Message ID                           |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                            Length                             |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
//   Flags: |X|X|R|V|I|X|X|X|
//
// Every payload starts with the generic payload header (§3.2):
//
//                        1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   | Next Payload  |C|  RESERVED   |         Payload Length        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Payload Length counts the generic header. Each payload names the type of the one after it; the
// header names the first. The chain must fill the message exactly: bytes after the last payload
// are a lie about the length somewhere, and are refused.
//
// What we accept, and why:
// - Major version 2 only. Any other major version is reported under its own reason, with the
//   header, so the session can answer INVALID_MAJOR_VERSION (§2.5). The minor version "MUST be
//   ignored by a node with a smaller minor version number" (§2.5): ignored.
// - The X and V flag bits and every RESERVED field are "ignored on receipt" (§3.1, §3.2, and
//   each payload section): ignored, never refused. They are sent as zero.
// - The Length field must be the datagram's length: IKE over UDP has one message per datagram
//   (§2), so a difference is truncation or garbage.
// - A payload type we do not know, with the critical bit set, rejects the whole message
//   (§2.5: the receiver MUST reject it and answer UNSUPPORTED_CRITICAL_PAYLOAD naming the
//   type). Without the critical bit it is kept as `unknown` for the log and skipped.
// - The Encrypted payload (SK, §3.14) must be the last payload; its Next Payload is the type
//   of the first payload inside it. decodeMessage returns where it is and sk.ts opens it.
// - Encrypted fragments (SKF, RFC 7383) are refused under their own reason: we do not
//   announce IKEV2_FRAGMENTATION_SUPPORTED, so a peer that follows the RFC never sends them.
// - Bounds: at most MAX_MESSAGE_BYTES per message, MAX_PAYLOADS payloads, MAX_PROPOSALS
//   proposals per SA payload and MAX_TRANSFORMS transforms per proposal; nothing a peer says
//   makes us allocate more than the message it sent.
//
// Decoded Buffers are copies: the datagram's buffer may come from a queue that reuses it.
import { isIPv4, isIPv6, SocketAddress } from 'node:net';
import type { IkeHeader, Payload, Proposal, TrafficSelector, Transform } from './types';
import {
  ATTRIBUTE_FORMAT_TV,
  AuthMethod,
  CERTREQ_HASH_BYTES,
  CertEncoding,
  COOKIE_MAX_BYTES,
  HeaderFlag,
  IdType,
  IKE_HEADER_BYTES,
  IKE_MAJOR_VERSION,
  IKE_SPI_BYTES,
  LAST_SUBSTRUCTURE,
  MORE_PROPOSALS,
  MORE_TRANSFORMS,
  NAT_DETECTION_HASH_BYTES,
  NONCE_MAX_BYTES,
  NONCE_MIN_BYTES,
  NotifyType,
  PAYLOAD_CRITICAL,
  PAYLOAD_HEADER_BYTES,
  PayloadType,
  ProtocolId,
  TransformAttribute,
  TsType,
} from './wire';

/** The largest message we read or write: the largest UDP payload. */
export const MAX_MESSAGE_BYTES = 65535;
/** Payloads in one chain (a message, or the inside of its SK payload). strongSwan sends ~12 at most. */
export const MAX_PAYLOADS = 64;
export const MAX_PROPOSALS = 32;
export const MAX_TRANSFORMS = 64;

/**
 * Why a message was refused: fixed strings, one per check, so they can key counters. Nothing in
 * them comes from the message.
 */
export const Reason = {
  // The header.
  tooShort: 'message shorter than the IKE header',
  tooLarge: 'message too large',
  majorVersion: 'unsupported major version',
  lengthBelowHeader: 'length field shorter than the IKE header',
  lengthMismatch: 'length field does not match the datagram',
  // The payload chain.
  payloadTruncated: 'truncated payload header',
  payloadLength: 'payload length below 4',
  payloadOverrun: 'payload runs past the end of the message',
  trailingBytes: 'bytes after the last payload',
  tooManyPayloads: 'too many payloads',
  criticalPayload: 'unsupported critical payload',
  skNotLast: 'SK payload is not the last payload',
  skNested: 'nested SK payload',
  fragment: 'unsupported fragment (SKF payload)',
  badOffset: 'offset outside the buffer',
  // SA (§3.3).
  saEmpty: 'SA payload without proposals',
  tooManyProposals: 'too many proposals',
  proposalTruncated: 'truncated proposal',
  proposalLength: 'proposal length does not fit',
  proposalLast: 'proposal last-substructure marker wrong',
  proposalNumber: 'proposal numbers not consecutive from 1',
  proposalSpiSize: 'proposal SPI size does not fit its protocol',
  tooManyTransforms: 'too many transforms',
  transformCount: 'transform count does not match',
  transformTruncated: 'truncated transform',
  transformLength: 'transform length does not fit',
  transformLast: 'transform last-substructure marker wrong',
  attributeTruncated: 'truncated transform attribute',
  attributeOverrun: 'transform attribute runs past the transform',
  keyLengthFormat: 'key length attribute not in TV format',
  keyLengthDuplicate: 'duplicate key length attribute',
  // KE (§3.4), ID (§3.5), CERT (§3.6), CERTREQ (§3.7), AUTH (§3.8), Nonce (§3.9).
  keShort: 'KE payload too short',
  keEmpty: 'KE payload without key exchange data',
  idShort: 'ID payload too short',
  idData: 'identification data does not fit its type',
  certShort: 'CERT payload too short',
  certEmpty: 'CERT payload without certificate data',
  certreqShort: 'CERTREQ payload too short',
  certreqHashes: 'CERTREQ authorities are not whole SHA-1 hashes',
  authShort: 'AUTH payload too short',
  authEmpty: 'AUTH payload without authentication data',
  authSignature: 'signature AUTH algorithm identifier runs past the data',
  nonceSize: 'nonce size outside 16..256 bytes',
  // Notify (§3.10), Delete (§3.11).
  notifyShort: 'Notify payload too short',
  notifySpiOverrun: 'notify SPI runs past the payload',
  notifySpiSize: 'notify SPI size does not fit its protocol',
  notifyData: 'notification data does not fit its type',
  deleteShort: 'Delete payload too short',
  deleteLength: 'Delete SPI size times count does not match the payload length',
  deleteSpiSize: 'Delete SPI size does not fit its protocol',
  // TSi/TSr (§3.13).
  tsShort: 'TS payload too short',
  tsEmpty: 'TS payload without selectors',
  tsCount: 'traffic selector count does not match',
  tsTruncated: 'truncated traffic selector',
  tsType: 'unsupported traffic selector type',
  tsLength: 'traffic selector length does not fit its type',
  tsOverrun: 'traffic selector runs past the payload',
  // Never expected: an exception inside the decoder, turned into a reason instead of a crash.
  decoderFault: 'decoder fault',
} as const;

/** A refusal. `criticalType` comes with Reason.criticalPayload (the type to name in the answer);
 * `header` with every refusal of decodeMessage that comes after the header could be read. */
export interface DecodeFailure {
  ok: false;
  reason: string;
  criticalType?: number;
  header?: IkeHeader;
}

/** DecodeResult (types.ts) with the extra fields of DecodeFailure; assignable to it. */
export type CodecResult<T> = { ok: true; value: T } | DecodeFailure;

/**
 * A transform as decoded. RFC 7296 §3.3.6: a transform "that contains a Transform Attribute it
 * does not understand" MUST be considered unacceptable, while other transforms of the same type
 * are processed as usual. So the decoder does not refuse the message: it marks the transform
 * (keeping its key length, if any) and drops the attribute's bytes. Proposal selection must skip
 * transforms for which transformUnderstood() is false. The encoder refuses them.
 */
export type DecodedTransform = Transform & { unknownAttribute?: true };

/** False for a transform that carried an attribute we do not know (see DecodedTransform). */
export function transformUnderstood(transform: Transform): boolean {
  return (transform as DecodedTransform).unknownAttribute !== true;
}

/** Where the SK payload of a message is: the start of its generic header, and the type of the
 * first payload inside it (its Next Payload field). */
export interface SkLocation {
  offset: number;
  firstInner: number;
  critical: boolean;
}

export interface DecodedMessage {
  header: IkeHeader;
  /** The unencrypted payloads, in order; the SK payload is not among them. */
  payloads: Payload[];
  sk?: SkLocation;
}

type KnownType = Exclude<Payload['type'], 'unknown'>;

const KNOWN_TYPES: Record<KnownType, number> = {
  sa: PayloadType.SA,
  ke: PayloadType.KE,
  idi: PayloadType.IDi,
  idr: PayloadType.IDr,
  cert: PayloadType.CERT,
  certreq: PayloadType.CERTREQ,
  auth: PayloadType.AUTH,
  nonce: PayloadType.Nonce,
  notify: PayloadType.Notify,
  delete: PayloadType.Delete,
  vendor: PayloadType.Vendor,
  tsi: PayloadType.TSi,
  tsr: PayloadType.TSr,
};
const KNOWN_NAMES = new Map(Object.entries(KNOWN_TYPES).map(([name, type]) => [type, name as KnownType]));

/** The payload type number of a payload (its `payloadType` for `unknown`). */
export function payloadTypeOf(payload: Payload): number {
  return payload.type === 'unknown' ? payload.payloadType : KNOWN_TYPES[payload.type];
}

function fail(reason: string): DecodeFailure {
  return { ok: false, reason };
}

function copy(buf: Buffer, start: number, end: number): Buffer {
  return Buffer.from(buf.subarray(start, end));
}

// Every bounds check below comes before the read it protects; this catch is for the check we
// got wrong, so that a bug costs a dropped message and a counter, not the process.
function guarded<T>(decode: () => CodecResult<T>): CodecResult<T> {
  try {
    return decode();
  } catch {
    return fail(Reason.decoderFault);
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** The fixed header, checked against the datagram it came in: size, major version, Length. */
export function decodeHeader(buf: Buffer): CodecResult<IkeHeader> {
  return guarded(() => readHeader(buf));
}

function readHeader(buf: Buffer): CodecResult<IkeHeader> {
  if (buf.length < IKE_HEADER_BYTES) return fail(Reason.tooShort);
  if (buf.length > MAX_MESSAGE_BYTES) return fail(Reason.tooLarge);
  const flags = buf[19]!;
  const header: IkeHeader = {
    initiatorSpi: copy(buf, 0, 8),
    responderSpi: copy(buf, 8, 16),
    nextPayload: buf[16]!,
    version: buf[17]!,
    exchange: buf[18]!,
    initiator: (flags & HeaderFlag.INITIATOR) !== 0,
    response: (flags & HeaderFlag.RESPONSE) !== 0,
    messageId: buf.readUInt32BE(20),
    length: buf.readUInt32BE(24),
  };
  if (header.version >> 4 !== IKE_MAJOR_VERSION) return { ok: false, reason: Reason.majorVersion, header };
  if (header.length < IKE_HEADER_BYTES) return { ok: false, reason: Reason.lengthBelowHeader, header };
  if (header.length !== buf.length) return { ok: false, reason: Reason.lengthMismatch, header };
  return { ok: true, value: header };
}

/**
 * A whole datagram: the header and the unencrypted payload chain. The SK payload, if any, is
 * the last one; it is not decoded here (see sk.ts openMessage) but located in `sk`.
 */
export function decodeMessage(buf: Buffer): CodecResult<DecodedMessage> {
  return guarded(() => {
    const header = readHeader(buf);
    if (!header.ok) return header;
    const chain = walkChain(buf, header.value.nextPayload, IKE_HEADER_BYTES, buf.length, true);
    if (!chain.ok) return { ...chain, header: header.value };
    const value: DecodedMessage = { header: header.value, payloads: chain.value.payloads };
    if (chain.value.sk) value.sk = chain.value.sk;
    return { ok: true, value };
  });
}

/**
 * A payload chain that starts at `offset` with a payload of type `first` and fills `buf` to its
 * end: the plaintext of an SK payload (first = SkLocation.firstInner), or the payloads of a
 * message after its header. An SK payload in it is refused (SK payloads do not nest).
 */
export function decodePayloads(buf: Buffer, first: number, offset = 0): CodecResult<Payload[]> {
  return guarded(() => {
    if (buf.length > MAX_MESSAGE_BYTES) return fail(Reason.tooLarge);
    if (!Number.isInteger(offset) || offset < 0 || offset > buf.length) return fail(Reason.badOffset);
    const chain = walkChain(buf, first, offset, buf.length, false);
    return chain.ok ? { ok: true, value: chain.value.payloads } : chain;
  });
}

type Body = Payload | DecodeFailure;

function walkChain(
  buf: Buffer,
  first: number,
  start: number,
  end: number,
  outer: boolean,
): CodecResult<{ payloads: Payload[]; sk?: SkLocation }> {
  const payloads: Payload[] = [];
  let type = first;
  let off = start;
  while (type !== PayloadType.NONE) {
    if (payloads.length >= MAX_PAYLOADS) return fail(Reason.tooManyPayloads);
    if (end - off < PAYLOAD_HEADER_BYTES) return fail(Reason.payloadTruncated);
    const next = buf[off]!;
    const critical = (buf[off + 1]! & PAYLOAD_CRITICAL) !== 0;
    const length = buf.readUInt16BE(off + 2);
    if (length < PAYLOAD_HEADER_BYTES) return fail(Reason.payloadLength);
    if (length > end - off) return fail(Reason.payloadOverrun);
    if (type === PayloadType.SK) {
      if (!outer) return fail(Reason.skNested);
      if (off + length !== end) return fail(Reason.skNotLast);
      return { ok: true, value: { payloads, sk: { offset: off, firstInner: next, critical } } };
    }
    if (type === PayloadType.SKF) return fail(Reason.fragment);
    const body = decodeBody(type, critical, buf, off + PAYLOAD_HEADER_BYTES, off + length);
    if ('ok' in body) return body;
    payloads.push(body);
    off += length;
    type = next;
  }
  if (off !== end) return fail(Reason.trailingBytes);
  return { ok: true, value: { payloads } };
}

function decodeBody(type: number, critical: boolean, buf: Buffer, start: number, end: number): Body {
  const name = KNOWN_NAMES.get(type);
  switch (name) {
    case 'sa':
      return decodeSa(critical, buf, start, end);
    case 'ke':
      return decodeKe(critical, buf, start, end);
    case 'idi':
    case 'idr':
      return decodeId(name, critical, buf, start, end);
    case 'cert':
      return decodeCert(critical, buf, start, end);
    case 'certreq':
      return decodeCertreq(critical, buf, start, end);
    case 'auth':
      return decodeAuth(critical, buf, start, end);
    case 'nonce':
      return decodeNonce(critical, buf, start, end);
    case 'notify':
      return decodeNotify(critical, buf, start, end);
    case 'delete':
      return decodeDelete(critical, buf, start, end);
    case 'vendor':
      return { type: 'vendor', critical, data: copy(buf, start, end) };
    case 'tsi':
    case 'tsr':
      return decodeTs(name, critical, buf, start, end);
    default:
      // §2.5: "If the critical flag is set and the payload type is unrecognized, the message
      // MUST be rejected and the response to the IKE request containing that payload MUST
      // include a Notify payload UNSUPPORTED_CRITICAL_PAYLOAD".
      if (critical) return { ok: false, reason: Reason.criticalPayload, criticalType: type };
      return { type: 'unknown', critical, payloadType: type, data: copy(buf, start, end) };
  }
}

// Security Association payload (§3.3): one or more proposals.
//
//                        1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   | Last Substruc |   RESERVED    |         Proposal Length       |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   ~                        SPI (variable)                         ~
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   ~                        <Transforms>                           ~
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Last Substruc is 0 on the last proposal and 2 on the others; Proposal Length covers the SPI
// and the transforms. The first proposal is number 1 and each next one is one more (§3.3.1);
// a response carries one proposal with the number it accepted, which is never 0.
// SPI Size: 0 (IKE_SA_INIT) or 8 (rekey) for IKE, 4 for AH and ESP (§3.3.1). A protocol we do
// not know is kept with whatever SPI it has; proposal selection never picks it.
function decodeSa(critical: boolean, buf: Buffer, start: number, end: number): Body {
  const proposals: Proposal[] = [];
  let off = start;
  while (off < end) {
    if (proposals.length >= MAX_PROPOSALS) return fail(Reason.tooManyProposals);
    if (end - off < 8) return fail(Reason.proposalTruncated);
    const last = buf[off]!;
    const length = buf.readUInt16BE(off + 2);
    const number = buf[off + 4]!;
    const protocol = buf[off + 5]!;
    const spiSize = buf[off + 6]!;
    const count = buf[off + 7]!;
    if (last !== LAST_SUBSTRUCTURE && last !== MORE_PROPOSALS) return fail(Reason.proposalLast);
    if (length < 8 + spiSize || length > end - off) return fail(Reason.proposalLength);
    if (!proposalSpiSizeFits(protocol, spiSize)) return fail(Reason.proposalSpiSize);
    if (count > MAX_TRANSFORMS) return fail(Reason.tooManyTransforms);
    const transforms = decodeTransforms(buf, off + 8 + spiSize, off + length, count);
    if (!Array.isArray(transforms)) return transforms;
    proposals.push({ number, protocol, spi: copy(buf, off + 8, off + 8 + spiSize), transforms });
    off += length;
    // The marker must agree with where the proposal is: 0 exactly on the last one.
    if ((last === LAST_SUBSTRUCTURE) !== (off === end)) return fail(Reason.proposalLast);
  }
  if (proposals.length === 0) return fail(Reason.saEmpty);
  if (proposals.length === 1 ? proposals[0]!.number === 0 : proposals.some((p, i) => p.number !== i + 1)) {
    return fail(Reason.proposalNumber);
  }
  return { type: 'sa', critical, proposals };
}

/** AH and ESP: the protocols of Child SAs, whose SPIs are 4 bytes. */
function isChildProtocol(protocol: number): boolean {
  return protocol === ProtocolId.AH || protocol === ProtocolId.ESP;
}

function proposalSpiSizeFits(protocol: number, spiSize: number): boolean {
  switch (protocol) {
    case ProtocolId.IKE:
      return spiSize === 0 || spiSize === IKE_SPI_BYTES;
    case ProtocolId.AH:
    case ProtocolId.ESP:
      return spiSize === 4;
    default:
      return true;
  }
}

// Transform substructure (§3.3.2), inside a proposal:
//
//                        1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   | Last Substruc |   RESERVED    |        Transform Length       |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |Transform Type |   RESERVED    |          Transform ID         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   ~                      Transform Attributes                     ~
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Last Substruc is 0 on the last transform of the proposal and 3 on the others. The transforms
// must fill the proposal exactly and there must be as many as Num Transforms says.
function decodeTransforms(buf: Buffer, start: number, end: number, count: number): DecodedTransform[] | DecodeFailure {
  const transforms: DecodedTransform[] = [];
  let off = start;
  while (off < end) {
    if (transforms.length >= count) return fail(Reason.transformCount);
    if (end - off < 8) return fail(Reason.transformTruncated);
    const last = buf[off]!;
    const length = buf.readUInt16BE(off + 2);
    if (last !== LAST_SUBSTRUCTURE && last !== MORE_TRANSFORMS) return fail(Reason.transformLast);
    if (length < 8 || length > end - off) return fail(Reason.transformLength);
    const transform: DecodedTransform = { type: buf[off + 4]!, id: buf.readUInt16BE(off + 6) };
    const attributes = decodeAttributes(buf, off + 8, off + length, transform);
    if (attributes) return attributes;
    transforms.push(transform);
    off += length;
    if ((last === LAST_SUBSTRUCTURE) !== (off === end)) return fail(Reason.transformLast);
  }
  if (transforms.length !== count) return fail(Reason.transformCount);
  return transforms;
}

// Transform attribute (§3.3.5):
//
//                        1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |A|       Attribute Type        |    AF=0  Attribute Length     |
//   |F|                             |    AF=1  Attribute Value      |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                   AF=0  Attribute Value                       |
//   |                   AF=1  Not Transmitted                       |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// AF=1 (TV): the value is the 2 bytes in the header. AF=0 (TLV): Attribute Length bytes follow.
// Key Length (14) is the only attribute defined and it is TV; a TLV Key Length, or two of them,
// is malformed. Any other attribute marks the transform (see DecodedTransform).
function decodeAttributes(buf: Buffer, start: number, end: number, transform: DecodedTransform): DecodeFailure | undefined {
  let off = start;
  while (off < end) {
    if (end - off < 4) return fail(Reason.attributeTruncated);
    const word = buf.readUInt16BE(off);
    const tv = (word & ATTRIBUTE_FORMAT_TV) !== 0;
    const type = word & ~ATTRIBUTE_FORMAT_TV;
    const second = buf.readUInt16BE(off + 2);
    const length = tv ? 4 : 4 + second;
    if (length > end - off) return fail(Reason.attributeOverrun);
    if (type === TransformAttribute.KEY_LENGTH) {
      if (!tv) return fail(Reason.keyLengthFormat);
      if (transform.keyLength !== undefined) return fail(Reason.keyLengthDuplicate);
      transform.keyLength = second;
    } else {
      transform.unknownAttribute = true;
    }
    off += length;
  }
  return undefined;
}

// Key Exchange payload (§3.4):
//
//   |   Diffie-Hellman Group Num    |           RESERVED            |
//   ~                       Key Exchange Data                       ~
//
// The data's length depends on the group; crypto checks it. Empty data is no key exchange.
function decodeKe(critical: boolean, buf: Buffer, start: number, end: number): Body {
  if (end - start < 4) return fail(Reason.keShort);
  if (end - start === 4) return fail(Reason.keEmpty);
  return { type: 'ke', critical, group: buf.readUInt16BE(start), data: copy(buf, start + 4, end) };
}

// Identification payloads IDi, IDr (§3.5):
//
//   |   ID Type     |                 RESERVED                      |
//   ~                   Identification Data                         ~
//
// ID_IPV4_ADDR is 4 bytes and ID_IPV6_ADDR 16; every other type needs some data.
function decodeId(type: 'idi' | 'idr', critical: boolean, buf: Buffer, start: number, end: number): Body {
  if (end - start < 4) return fail(Reason.idShort);
  const idType = buf[start]!;
  const bytes = end - start - 4;
  const fits = idType === IdType.ID_IPV4_ADDR ? bytes === 4 : idType === IdType.ID_IPV6_ADDR ? bytes === 16 : bytes > 0;
  if (!fits) return fail(Reason.idData);
  return { type, critical, idType, data: copy(buf, start + 4, end) };
}

// Certificate payload (§3.6):        Certificate Request payload (§3.7):
//
//   | Cert Encoding |                 | Cert Encoding |
//   ~       Certificate Data      ~   ~    Certification Authority    ~
//
// For X.509 (encoding 4), the CERTREQ's Certification Authority field is a concatenation of
// 20-byte SHA-1 hashes of CA public keys; it may be empty (no preference).
function decodeCert(critical: boolean, buf: Buffer, start: number, end: number): Body {
  if (end - start < 1) return fail(Reason.certShort);
  if (end - start === 1) return fail(Reason.certEmpty);
  return { type: 'cert', critical, encoding: buf[start]!, data: copy(buf, start + 1, end) };
}

function decodeCertreq(critical: boolean, buf: Buffer, start: number, end: number): Body {
  if (end - start < 1) return fail(Reason.certreqShort);
  const encoding = buf[start]!;
  if (encoding === CertEncoding.X509_SIGNATURE && (end - start - 1) % CERTREQ_HASH_BYTES !== 0) {
    return fail(Reason.certreqHashes);
  }
  return { type: 'certreq', critical, encoding, data: copy(buf, start + 1, end) };
}

// Authentication payload (§3.8):
//
//   | Auth Method   |                RESERVED                       |
//   ~                      Authentication Data                      ~
//
// With Digital Signature (14, RFC 7427 §3) the data starts with a one-byte length and that many
// bytes of ASN.1 AlgorithmIdentifier, and the signature follows; auth.ts reads them, the codec
// only checks that the length does not lie and leaves a signature.
function decodeAuth(critical: boolean, buf: Buffer, start: number, end: number): Body {
  if (end - start < 4) return fail(Reason.authShort);
  const method = buf[start]!;
  const bytes = end - start - 4;
  if (bytes === 0) return fail(Reason.authEmpty);
  if (method === AuthMethod.DIGITAL_SIGNATURE && 1 + buf[start + 4]! >= bytes) return fail(Reason.authSignature);
  return { type: 'auth', critical, method, data: copy(buf, start + 4, end) };
}

// Nonce payload (§3.9): the data alone, "between 16 and 256 octets, inclusive".
function decodeNonce(critical: boolean, buf: Buffer, start: number, end: number): Body {
  const bytes = end - start;
  if (bytes < NONCE_MIN_BYTES || bytes > NONCE_MAX_BYTES) return fail(Reason.nonceSize);
  return { type: 'nonce', critical, data: copy(buf, start, end) };
}

// Notify payload (§3.10):
//
//   |  Protocol ID  |   SPI Size    |      Notify Message Type      |
//   ~                Security Parameter Index (SPI)                 ~
//   ~                       Notification Data                       ~
//
// An SPI is there only for notifications about a Child SA (protocol AH or ESP, 4 bytes). For
// the IKE SA and for none, SPI Size MUST be zero, and then the Protocol ID "MUST be sent as
// zero and MUST be ignored on receipt": we report it as 0 whatever it was.
// The notifications whose data the session reads have fixed sizes, checked here:
// INVALID_KE_PAYLOAD a 2-byte group (§3.10.1), UNSUPPORTED_CRITICAL_PAYLOAD a 1-byte payload
// type (§3.10.1), NAT_DETECTION_* a SHA-1 hash (§2.23), COOKIE 1 to 64 bytes (§2.6),
// SIGNATURE_HASH_ALGORITHMS a non-empty list of 2-byte identifiers (RFC 7427 §4).
function decodeNotify(critical: boolean, buf: Buffer, start: number, end: number): Body {
  if (end - start < 4) return fail(Reason.notifyShort);
  const spiSize = buf[start + 1]!;
  const notifyType = buf.readUInt16BE(start + 2);
  if (spiSize > end - start - 4) return fail(Reason.notifySpiOverrun);
  let protocol = buf[start]!;
  if (spiSize === 0) protocol = 0;
  else if (!(isChildProtocol(protocol) && spiSize === 4)) return fail(Reason.notifySpiSize);
  const dataStart = start + 4 + spiSize;
  if (!notifyDataFits(notifyType, end - dataStart)) return fail(Reason.notifyData);
  return { type: 'notify', critical, protocol, spi: copy(buf, start + 4, dataStart), notifyType, data: copy(buf, dataStart, end) };
}

function notifyDataFits(notifyType: number, bytes: number): boolean {
  switch (notifyType) {
    case NotifyType.INVALID_KE_PAYLOAD:
      return bytes === 2;
    case NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD:
      return bytes === 1;
    case NotifyType.NAT_DETECTION_SOURCE_IP:
    case NotifyType.NAT_DETECTION_DESTINATION_IP:
      return bytes === NAT_DETECTION_HASH_BYTES;
    case NotifyType.COOKIE:
      return bytes >= 1 && bytes <= COOKIE_MAX_BYTES;
    case NotifyType.SIGNATURE_HASH_ALGORITHMS:
      return bytes >= 2 && bytes % 2 === 0;
    default:
      return true;
  }
}

// Delete payload (§3.11):
//
//   | Protocol ID   |   SPI Size    |          Num of SPIs          |
//   ~               Security Parameter Index(es) (SPI)              ~
//
// The IKE SA is deleted with protocol 1, SPI Size 0 and no SPIs (its SPIs are in the header);
// Child SAs with protocol AH or ESP and 4-byte SPIs. The SPIs fill the payload exactly.
function decodeDelete(critical: boolean, buf: Buffer, start: number, end: number): Body {
  if (end - start < 4) return fail(Reason.deleteShort);
  const protocol = buf[start]!;
  const spiSize = buf[start + 1]!;
  const count = buf.readUInt16BE(start + 2);
  if (end - start - 4 !== spiSize * count) return fail(Reason.deleteLength);
  const fits = protocol === ProtocolId.IKE ? spiSize === 0 && count === 0 : isChildProtocol(protocol) && spiSize === 4;
  if (!fits) return fail(Reason.deleteSpiSize);
  const spis: Buffer[] = [];
  for (let off = start + 4; off < end; off += spiSize) spis.push(copy(buf, off, off + spiSize));
  return { type: 'delete', critical, protocol, spis };
}

// Traffic Selector payloads TSi, TSr (§3.13):
//
//   | Number of TSs |                 RESERVED                      |
//   ~                       <Traffic Selectors>                     ~
//
// Traffic selector (§3.13.1):
//
//                        1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |   TS Type     |IP Protocol ID*|       Selector Length         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |           Start Port*         |           End Port*           |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   ~                         Starting Address*                     ~
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   ~                         Ending Address*                       ~
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// TS_IPV4_ADDR_RANGE (7) is 16 bytes, TS_IPV6_ADDR_RANGE (8) is 40. Any other type (e.g.
// TS_FC_ADDR_RANGE, RFC 4595; TS_SECLABEL, RFC 9478) is refused: a selector we cannot read is
// one we cannot honour, and narrowing it away would change what the peer asked for. Ports and
// addresses are not ordered here (start > end ports is the OPAQUE encoding, §3.13.1); the
// selector code judges them.
function decodeTs(type: 'tsi' | 'tsr', critical: boolean, buf: Buffer, start: number, end: number): Body {
  if (end - start < 4) return fail(Reason.tsShort);
  const count = buf[start]!;
  if (count === 0) return fail(Reason.tsEmpty);
  const selectors: TrafficSelector[] = [];
  let off = start + 4;
  while (off < end) {
    if (selectors.length >= count) return fail(Reason.tsCount);
    if (end - off < 4) return fail(Reason.tsTruncated);
    const tsType = buf[off]!;
    const length = buf.readUInt16BE(off + 2);
    if (tsType !== TsType.IPV4_ADDR_RANGE && tsType !== TsType.IPV6_ADDR_RANGE) return fail(Reason.tsType);
    const addressBytes = tsType === TsType.IPV4_ADDR_RANGE ? 4 : 16;
    if (length !== 8 + 2 * addressBytes) return fail(Reason.tsLength);
    if (length > end - off) return fail(Reason.tsOverrun);
    const a = off + 8;
    selectors.push({
      type: tsType,
      protocol: buf[off + 1]!,
      startPort: buf.readUInt16BE(off + 4),
      endPort: buf.readUInt16BE(off + 6),
      startAddress: formatAddress(buf, a, addressBytes),
      endAddress: formatAddress(buf, a + addressBytes, addressBytes),
    });
    off += length;
  }
  if (selectors.length !== count) return fail(Reason.tsCount);
  return { type, critical, selectors };
}

/** Address literal of 4 or 16 bytes: IPv4 dotted; IPv6 the way node:net prints it (libuv). */
function formatAddress(buf: Buffer, off: number, bytes: number): string {
  if (bytes === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(off + i).toString(16));
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

// ---------------------------------------------------------------------------------------------
// Encoding

function need(condition: boolean, what: string): asserts condition {
  if (!condition) throw new RangeError(`IKE encoder: ${what}`);
}

function isUint(value: number, bits: 8 | 16 | 32): boolean {
  return Number.isInteger(value) && value >= 0 && value < 2 ** bits;
}

/**
 * The 28-byte header with `nextPayload` and `length` filled in. Flags carry I and R; X and V are
 * sent as zero.
 */
export function encodeHeader(header: Omit<IkeHeader, 'nextPayload' | 'length'>, nextPayload: number, length: number): Buffer {
  need(header.initiatorSpi.length === IKE_SPI_BYTES && header.responderSpi.length === IKE_SPI_BYTES, 'SPIs are 8 bytes');
  need(isUint(header.version, 8) && header.version >> 4 === IKE_MAJOR_VERSION, 'version must be 2.x');
  need(isUint(header.exchange, 8), 'exchange type is one byte');
  need(isUint(header.messageId, 32), 'message ID is 32 bits');
  need(isUint(nextPayload, 8), 'next payload is one byte');
  need(length >= IKE_HEADER_BYTES && length <= MAX_MESSAGE_BYTES, `message of ${length} bytes (at most ${MAX_MESSAGE_BYTES})`);
  const out = Buffer.alloc(IKE_HEADER_BYTES);
  header.initiatorSpi.copy(out, 0);
  header.responderSpi.copy(out, 8);
  out[16] = nextPayload;
  out[17] = header.version;
  out[18] = header.exchange;
  out[19] = (header.initiator ? HeaderFlag.INITIATOR : 0) | (header.response ? HeaderFlag.RESPONSE : 0);
  out.writeUInt32BE(header.messageId, 20);
  out.writeUInt32BE(length, 24);
  return out;
}

/** An unprotected message (IKE_SA_INIT, or an INVALID_MAJOR_VERSION / INVALID_KE_PAYLOAD answer). */
export function encodeMessage(header: Omit<IkeHeader, 'nextPayload' | 'length'>, payloads: Payload[]): Buffer {
  const { first, bytes } = encodePayloads(payloads);
  return Buffer.concat([encodeHeader(header, first, IKE_HEADER_BYTES + bytes.length), bytes]);
}

/**
 * A payload chain without a header: the plaintext of an SK payload, and the type of its first
 * payload (0 for none) for the SK payload's Next Payload field.
 */
export function encodePayloads(payloads: Payload[]): { first: number; bytes: Buffer } {
  need(payloads.length <= MAX_PAYLOADS, `${payloads.length} payloads (at most ${MAX_PAYLOADS})`);
  const types = payloads.map(payloadTypeOf);
  const bodies = payloads.map(encodeBody);
  const out = Buffer.alloc(bodies.reduce((sum, body) => sum + PAYLOAD_HEADER_BYTES + body.length, 0));
  let off = 0;
  bodies.forEach((body, i) => {
    const length = PAYLOAD_HEADER_BYTES + body.length;
    need(length <= 0xffff, `${payloads[i]!.type} payload of ${length} bytes`);
    out[off] = types[i + 1] ?? PayloadType.NONE;
    out[off + 1] = payloads[i]!.critical ? PAYLOAD_CRITICAL : 0;
    out.writeUInt16BE(length, off + 2);
    body.copy(out, off + PAYLOAD_HEADER_BYTES);
    off += length;
  });
  return { first: types[0] ?? PayloadType.NONE, bytes: out };
}

function bytesOf(...parts: (number[] | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((part) => (Buffer.isBuffer(part) ? part : Buffer.from(part))));
}

function u16(value: number): number[] {
  return [value >> 8, value & 0xff];
}

/** Types that an `unknown` payload cannot have: the end of the chain, and what sk.ts builds. */
const CHAIN_ONLY_TYPES = new Set<number>([PayloadType.NONE, PayloadType.SK, PayloadType.SKF]);

function encodeBody(payload: Payload): Buffer {
  switch (payload.type) {
    case 'sa':
      return encodeSa(payload.proposals);
    case 'ke':
      need(isUint(payload.group, 16) && payload.data.length > 0, 'KE needs a 16-bit group and data');
      return bytesOf(u16(payload.group), [0, 0], payload.data);
    case 'nonce':
      need(payload.data.length >= NONCE_MIN_BYTES && payload.data.length <= NONCE_MAX_BYTES, 'nonce of 16 to 256 bytes');
      return Buffer.from(payload.data);
    case 'notify': {
      const spi = payload.spi;
      need(isUint(payload.notifyType, 16), 'notify type is 16 bits');
      need(spi.length === 0 || (isChildProtocol(payload.protocol) && spi.length === 4), 'notify SPI: none, or 4 bytes for AH/ESP');
      need(notifyDataFits(payload.notifyType, payload.data.length), `${payload.data.length} bytes of data for notify type ${payload.notifyType}`);
      // §3.10: without an SPI the Protocol ID MUST be sent as zero.
      return bytesOf([spi.length === 0 ? 0 : payload.protocol, spi.length], u16(payload.notifyType), spi, payload.data);
    }
    case 'idi':
    case 'idr': {
      const n = payload.data.length;
      const fits = payload.idType === IdType.ID_IPV4_ADDR ? n === 4 : payload.idType === IdType.ID_IPV6_ADDR ? n === 16 : n > 0;
      need(isUint(payload.idType, 8) && fits, 'identification data does not fit its type');
      return bytesOf([payload.idType, 0, 0, 0], payload.data);
    }
    case 'auth':
      need(isUint(payload.method, 8) && payload.data.length > 0, 'AUTH needs a method and data');
      return bytesOf([payload.method, 0, 0, 0], payload.data);
    case 'tsi':
    case 'tsr':
      return encodeTs(payload.selectors);
    case 'delete':
      return encodeDelete(payload.protocol, payload.spis);
    case 'cert':
    case 'certreq':
      need(isUint(payload.encoding, 8), 'certificate encoding is one byte');
      need(payload.type === 'certreq' || payload.data.length > 0, 'CERT needs data');
      return bytesOf([payload.encoding], payload.data);
    case 'vendor':
      return Buffer.from(payload.data);
    case 'unknown':
      need(isUint(payload.payloadType, 8) && !KNOWN_NAMES.has(payload.payloadType), 'unknown payload type must be one we do not know');
      need(!CHAIN_ONLY_TYPES.has(payload.payloadType), 'no next payload, SK and SKF are not payloads to send as unknown');
      return Buffer.from(payload.data);
  }
}

function encodeSa(proposals: Proposal[]): Buffer {
  need(proposals.length >= 1 && proposals.length <= MAX_PROPOSALS, `SA with ${proposals.length} proposals`);
  return Buffer.concat(
    proposals.map((proposal, i) => {
      need(isUint(proposal.number, 8) && proposal.number > 0, 'proposal number 1-255');
      need(proposals.length === 1 || proposal.number === i + 1, 'proposals numbered from 1');
      need(isUint(proposal.protocol, 8) && proposalSpiSizeFits(proposal.protocol, proposal.spi.length), 'proposal SPI size and protocol');
      need(proposal.transforms.length <= MAX_TRANSFORMS, `${proposal.transforms.length} transforms`);
      const transforms = proposal.transforms.map((transform, j) => {
        need(transformUnderstood(transform), 'a transform with an attribute we do not know cannot be sent');
        need(isUint(transform.type, 8) && isUint(transform.id, 16), 'transform type is 8 bits, ID 16');
        need(transform.keyLength === undefined || isUint(transform.keyLength, 16), 'key length is 16 bits');
        const keyLength = ATTRIBUTE_FORMAT_TV | TransformAttribute.KEY_LENGTH;
        const attributes = transform.keyLength === undefined ? [] : [...u16(keyLength), ...u16(transform.keyLength)];
        const last = j === proposal.transforms.length - 1 ? LAST_SUBSTRUCTURE : MORE_TRANSFORMS;
        return bytesOf([last, 0], u16(8 + attributes.length), [transform.type, 0], u16(transform.id), attributes);
      });
      const length = 8 + proposal.spi.length + transforms.reduce((sum, t) => sum + t.length, 0);
      need(length <= 0xffff, 'proposal too long');
      const last = i === proposals.length - 1 ? LAST_SUBSTRUCTURE : MORE_PROPOSALS;
      const counts = [proposal.number, proposal.protocol, proposal.spi.length, proposal.transforms.length];
      return bytesOf([last, 0], u16(length), counts, proposal.spi, ...transforms);
    }),
  );
}

function encodeDelete(protocol: number, spis: Buffer[]): Buffer {
  const spiSize = spis[0]?.length ?? 0;
  const fits = protocol === ProtocolId.IKE ? spis.length === 0 : isChildProtocol(protocol) && spis.every((spi) => spi.length === 4);
  need(fits && spis.length <= 0xffff, 'Delete: no SPIs for IKE, 4-byte SPIs for AH/ESP');
  return bytesOf([protocol, spiSize], u16(spis.length), ...spis);
}

function encodeTs(selectors: TrafficSelector[]): Buffer {
  need(selectors.length >= 1 && selectors.length <= 255, `TS with ${selectors.length} selectors`);
  return bytesOf(
    [selectors.length, 0, 0, 0],
    ...selectors.map((ts) => {
      need(ts.type === TsType.IPV4_ADDR_RANGE || ts.type === TsType.IPV6_ADDR_RANGE, `traffic selector type ${ts.type}`);
      need(isUint(ts.protocol, 8) && isUint(ts.startPort, 16) && isUint(ts.endPort, 16), 'selector protocol 8 bits, ports 16');
      const family = ts.type === TsType.IPV4_ADDR_RANGE ? 4 : 6;
      const start = addressBytes(ts.startAddress, family);
      const end = addressBytes(ts.endAddress, family);
      return bytesOf([ts.type, ts.protocol], u16(8 + start.length * 2), u16(ts.startPort), u16(ts.endPort), start, end);
    }),
  );
}

function addressBytes(text: string, family: 4 | 6): Buffer {
  if (family === 4) {
    need(isIPv4(text), `${JSON.stringify(text)} is not an IPv4 address`);
    return Buffer.from(text.split('.').map(Number));
  }
  need(isIPv6(text) && !text.includes('%'), `${JSON.stringify(text)} is not an IPv6 address`);
  // The WHATWG URL parser canonicalises IPv6 (hex groups only, one "::" at most); expand it.
  const canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => out.writeUInt16BE(parseInt(group, 16), 2 * i));
  return out;
}
