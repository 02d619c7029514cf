// The Encrypted payload, SK (RFC 7296 §3.14; RFC 5282 for the AEAD ciphers): how a protected
// message is laid out around what SkCipher seals. The cipher owns the cryptography, the IV, the
// padding and the Pad Length byte; this file owns the bytes around them and the order in which
// they are written, so that what the ICV covers is exactly the message that goes out.
//
//                        1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   | Next Payload  |C|  RESERVED   |         Payload Length        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                     Initialization Vector                     |
//   |         (length is block size for encryption algorithm)       |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   ~                    Encrypted IKE Payloads                     ~
//   +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |               |             Padding (0-255 octets)            |
//   +-+-+-+-+-+-+-+-+                               +-+-+-+-+-+-+-+-+
//   |                                               |  Pad Length   |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   ~                    Integrity Checksum Data                    ~
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Next Payload is the type of the first payload inside. The SK payload is the last payload of
// the message (§3.14), so its body runs to the end of the datagram.
//
// What the integrity covers: for AEAD (RFC 5282 §5.1) the associated data is the IKE header and
// everything up to and including the SK payload's generic header, with the final lengths;
// for the other suites the ICV covers the same bytes followed by IV and ciphertext (§3.14),
// which SkCipher prepends itself. Both start from the same `aad`: the message up to the SK body.
// So the lengths are known before anything is sealed: sealedLength() gives the body's size.
import type { IkeHeader, Payload, SkCipher } from './types';
import { decodePayloads, encodeHeader, encodePayloads, type CodecResult, type DecodedMessage } from './message';
import { IKE_HEADER_BYTES, PAYLOAD_HEADER_BYTES, PayloadType } from './wire';

/** Why a protected message was not opened (besides the Reason values of its inner payloads). */
export const SkReason = {
  noSk: 'no SK payload',
  tooShort: 'SK payload too short',
  integrity: 'integrity check failed',
  cipherFault: 'SK body rejected by the cipher',
} as const;

/**
 * A protected message: header, SK payload header (Next Payload = the first inner payload) and
 * cipher.seal(aad, inner payloads). Every payload goes inside. Throws a RangeError when the
 * result would not fit in a message, and an Error when the cipher breaks its own sealedLength.
 */
export function sealMessage(header: Omit<IkeHeader, 'nextPayload' | 'length'>, payloads: Payload[], cipher: SkCipher): Buffer {
  const inner = encodePayloads(payloads);
  const bodyBytes = cipher.sealedLength(inner.bytes.length);
  const skLength = PAYLOAD_HEADER_BYTES + bodyBytes;
  if (skLength > 0xffff) throw new RangeError(`IKE encoder: SK payload of ${skLength} bytes`);
  const head = encodeHeader(header, PayloadType.SK, IKE_HEADER_BYTES + skLength);
  const skHeader = Buffer.from([inner.first, 0, skLength >> 8, skLength & 0xff]);
  const aad = Buffer.concat([head, skHeader]);
  const body = cipher.seal(aad, inner.bytes);
  if (body.length !== bodyBytes) throw new Error(`SkCipher.seal returned ${body.length} bytes, sealedLength said ${bodyBytes}`);
  return Buffer.concat([aad, body]);
}

/**
 * The inner payloads of a message that decodeMessage accepted and located an SK payload in:
 * aad = buf up to the end of the SK payload header, body = the rest; open, then decode the
 * plaintext as a payload chain that starts with the SK payload's Next Payload. Never throws.
 */
export function openMessage(buf: Buffer, decoded: DecodedMessage, cipher: SkCipher): CodecResult<Payload[]> {
  const sk = decoded.sk;
  if (!sk) return { ok: false, reason: SkReason.noSk };
  const bodyStart = sk.offset + PAYLOAD_HEADER_BYTES;
  if (!Number.isInteger(sk.offset) || sk.offset < IKE_HEADER_BYTES || bodyStart > buf.length) return { ok: false, reason: SkReason.noSk };
  const aad = buf.subarray(0, bodyStart);
  const body = buf.subarray(bodyStart);
  let plaintext: Buffer | null;
  try {
    // The smallest body the cipher can produce is the one for no payloads at all.
    if (body.length < cipher.sealedLength(0)) return { ok: false, reason: SkReason.tooShort };
    plaintext = cipher.open(aad, body);
  } catch {
    return { ok: false, reason: SkReason.cipherFault };
  }
  if (plaintext === null) return { ok: false, reason: SkReason.integrity };
  return decodePayloads(plaintext, sk.firstInner);
}
