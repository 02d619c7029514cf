// IKEv2 message codec (RFC 7296 §3): the header and the chain of payloads, strict and pure.
// Bytes in, a message or a reason out. The decoder never throws and never allocates more than a
// small multiple of its input; the encoder throws a RangeError on values that do not fit their
// fields (a bug in the caller, never something from the wire).
//
// This file is the codec's entry point: whole messages, and everything callers use of the parts.
// A datagram goes through, in order:
//   1. codec-header.ts     the IKE header (§3.1): size, major version, Length against the datagram
//   2. codec-chain.ts      the payload chain (§3.2): generic payload headers, critical unknown
//                          payloads (§2.5), the SK payload last (§3.14), no fragments (RFC 7383)
//   3. the payload bodies:
//      codec-sa.ts         SA: proposals, transforms, attributes (§3.3)
//      codec-selectors.ts  TSi and TSr (§3.13)
//      codec-payloads.ts   KE, ID, CERT, CERTREQ, AUTH, Nonce, Notify, Delete (§3.4-§3.11)
//   codec.ts holds what they share: the bounds, the refusal reasons (Reason), the result types.
//   sk.ts opens and seals the Encrypted payload around this codec.
import type { IkeHeader, Payload } from './types';
import { IKE_HEADER_BYTES } from './wire';
import { guarded, type CodecResult } from './codec';
import { encodeHeader, readHeader } from './codec-header';
import { encodePayloads, walkChain, type SkLocation } from './codec-chain';

export { MAX_MESSAGE_BYTES, MAX_PAYLOADS, MAX_PROPOSALS, MAX_TRANSFORMS, Reason, type CodecResult, type DecodeFailure } from './codec';
export { decodeHeader, encodeHeader } from './codec-header';
export { decodePayloads, encodePayloads, payloadTypeOf, type SkLocation } from './codec-chain';
export { transformUnderstood, type DecodedTransform } from './codec-sa';

export interface DecodedMessage {
  header: IkeHeader;
  /** The unencrypted payloads, in order; the SK payload is not among them. */
  payloads: Payload[];
  sk?: SkLocation;
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

/** An unprotected message (IKE_SA_INIT, or an INVALID_MAJOR_VERSION / INVALID_KE_PAYLOAD answer). */
export function encodeMessage(header: Omit<IkeHeader, 'nextPayload' | 'length'>, payloads: Payload[]): Buffer {
  const { first, bytes } = encodePayloads(payloads);
  return Buffer.concat([encodeHeader(header, first, IKE_HEADER_BYTES + bytes.length), bytes]);
}
