// The payloads with a small fixed header and their data (RFC 7296 §3.4-§3.11): KE, IDi/IDr,
// CERT, CERTREQ, AUTH, Nonce, Notify and Delete, each decoded with the checks its section asks
// for and encoded from its Payload.
import type { Payload } from './types';
import {
  AuthMethod,
  CERTREQ_HASH_BYTES,
  CertEncoding,
  COOKIE_MAX_BYTES,
  IdType,
  NAT_DETECTION_HASH_BYTES,
  NONCE_MAX_BYTES,
  NONCE_MIN_BYTES,
  NotifyType,
  ProtocolId,
} from './wire';
import { bytesOf, copy, fail, isChildProtocol, isUint, need, Reason, u16, type Body } from './codec';

// Key Exchange payload (§3.4):
//
//   |   Diffie-Hellman Group Num    |           RESERVED            |
//   ~                       Key Exchange Data                       ~
//
// The data's length depends on the group; crypto checks it. Empty data is no key exchange.
export function decodeKe(critical: boolean, buf: Buffer, start: number, end: number): Body {
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
export function decodeId(type: 'idi' | 'idr', critical: boolean, buf: Buffer, start: number, end: number): Body {
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
export function decodeCert(critical: boolean, buf: Buffer, start: number, end: number): Body {
  if (end - start < 1) return fail(Reason.certShort);
  if (end - start === 1) return fail(Reason.certEmpty);
  return { type: 'cert', critical, encoding: buf[start]!, data: copy(buf, start + 1, end) };
}

export function decodeCertreq(critical: boolean, buf: Buffer, start: number, end: number): Body {
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
// bytes of ASN.1 AlgorithmIdentifier, and the signature follows; signature.ts reads them, the
// codec only checks that the length does not lie and leaves a signature.
export function decodeAuth(critical: boolean, buf: Buffer, start: number, end: number): Body {
  if (end - start < 4) return fail(Reason.authShort);
  const method = buf[start]!;
  const bytes = end - start - 4;
  if (bytes === 0) return fail(Reason.authEmpty);
  if (method === AuthMethod.DIGITAL_SIGNATURE && 1 + buf[start + 4]! >= bytes) return fail(Reason.authSignature);
  return { type: 'auth', critical, method, data: copy(buf, start + 4, end) };
}

// Nonce payload (§3.9): the data alone, "between 16 and 256 octets, inclusive".
export function decodeNonce(critical: boolean, buf: Buffer, start: number, end: number): Body {
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
export function decodeNotify(critical: boolean, buf: Buffer, start: number, end: number): Body {
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
export function decodeDelete(critical: boolean, buf: Buffer, start: number, end: number): Body {
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

// Encoding: each encoder refuses, with a RangeError, what its decoder would refuse.

export function encodeKe(payload: Extract<Payload, { type: 'ke' }>): Buffer {
  need(isUint(payload.group, 16) && payload.data.length > 0, 'KE needs a 16-bit group and data');
  return bytesOf(u16(payload.group), [0, 0], payload.data);
}

export function encodeId(payload: Extract<Payload, { idType: number }>): Buffer {
  const n = payload.data.length;
  const fits = payload.idType === IdType.ID_IPV4_ADDR ? n === 4 : payload.idType === IdType.ID_IPV6_ADDR ? n === 16 : n > 0;
  need(isUint(payload.idType, 8) && fits, 'identification data does not fit its type');
  return bytesOf([payload.idType, 0, 0, 0], payload.data);
}

export function encodeCert(payload: Extract<Payload, { encoding: number }>): Buffer {
  need(isUint(payload.encoding, 8), 'certificate encoding is one byte');
  need(payload.type === 'certreq' || payload.data.length > 0, 'CERT needs data');
  return bytesOf([payload.encoding], payload.data);
}

export function encodeAuth(payload: Extract<Payload, { type: 'auth' }>): Buffer {
  need(isUint(payload.method, 8) && payload.data.length > 0, 'AUTH needs a method and data');
  return bytesOf([payload.method, 0, 0, 0], payload.data);
}

export function encodeNonce(payload: Extract<Payload, { type: 'nonce' }>): Buffer {
  need(payload.data.length >= NONCE_MIN_BYTES && payload.data.length <= NONCE_MAX_BYTES, 'nonce of 16 to 256 bytes');
  return Buffer.from(payload.data);
}

export function encodeNotify(payload: Extract<Payload, { type: 'notify' }>): Buffer {
  const spi = payload.spi;
  need(isUint(payload.notifyType, 16), 'notify type is 16 bits');
  need(spi.length === 0 || (isChildProtocol(payload.protocol) && spi.length === 4), 'notify SPI: none, or 4 bytes for AH/ESP');
  need(notifyDataFits(payload.notifyType, payload.data.length), `${payload.data.length} bytes of data for notify type ${payload.notifyType}`);
  // §3.10: without an SPI the Protocol ID MUST be sent as zero.
  return bytesOf([spi.length === 0 ? 0 : payload.protocol, spi.length], u16(payload.notifyType), spi, payload.data);
}

export function encodeDelete(protocol: number, spis: Buffer[]): Buffer {
  const spiSize = spis[0]?.length ?? 0;
  const fits = protocol === ProtocolId.IKE ? spis.length === 0 : isChildProtocol(protocol) && spis.every((spi) => spi.length === 4);
  need(fits && spis.length <= 0xffff, 'Delete: no SPIs for IKE, 4-byte SPIs for AH/ESP');
  return bytesOf([protocol, spiSize], u16(spis.length), ...spis);
}
