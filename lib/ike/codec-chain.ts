// The payload chain (RFC 7296 §3.2): the generic payload header in front of every payload, the
// walk from one payload to the next, and the dispatch of each body to its decoder and encoder
// (codec-sa.ts, codec-selectors.ts, codec-payloads.ts).
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
// - A payload type we do not know, with the critical bit set, rejects the whole message
//   (§2.5: the receiver MUST reject it and answer UNSUPPORTED_CRITICAL_PAYLOAD naming the
//   type). Without the critical bit it is kept as `unknown` for the log and skipped.
// - The Encrypted payload (SK, §3.14) must be the last payload; its Next Payload is the type
//   of the first payload inside it. decodeMessage returns where it is and sk.ts opens it.
// - Encrypted fragments (SKF, RFC 7383) are refused under their own reason: we do not
//   announce IKEV2_FRAGMENTATION_SUPPORTED, so a peer that follows the RFC never sends them.
import type { Payload } from './types';
import { PAYLOAD_CRITICAL, PAYLOAD_HEADER_BYTES, PayloadType } from './wire';
import { copy, fail, guarded, isUint, MAX_MESSAGE_BYTES, MAX_PAYLOADS, need, Reason, type Body, type CodecResult } from './codec';
import {
  decodeAuth,
  decodeCert,
  decodeCertreq,
  decodeDelete,
  decodeId,
  decodeKe,
  decodeNonce,
  decodeNotify,
  encodeAuth,
  encodeCert,
  encodeDelete,
  encodeId,
  encodeKe,
  encodeNonce,
  encodeNotify,
} from './codec-payloads';
import { decodeSa, encodeSa } from './codec-sa';
import { decodeTs, encodeTs } from './codec-selectors';

/** Where the SK payload of a message is: the start of its generic header, and the type of the
 * first payload inside it (its Next Payload field). */
export interface SkLocation {
  offset: number;
  firstInner: number;
  critical: boolean;
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

export function walkChain(
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

/** Types that an `unknown` payload cannot have: the end of the chain, and what sk.ts builds. */
const CHAIN_ONLY_TYPES = new Set<number>([PayloadType.NONE, PayloadType.SK, PayloadType.SKF]);

function encodeBody(payload: Payload): Buffer {
  switch (payload.type) {
    case 'sa':
      return encodeSa(payload.proposals);
    case 'ke':
      return encodeKe(payload);
    case 'nonce':
      return encodeNonce(payload);
    case 'notify':
      return encodeNotify(payload);
    case 'idi':
    case 'idr':
      return encodeId(payload);
    case 'auth':
      return encodeAuth(payload);
    case 'tsi':
    case 'tsr':
      return encodeTs(payload.selectors);
    case 'delete':
      return encodeDelete(payload.protocol, payload.spis);
    case 'cert':
    case 'certreq':
      return encodeCert(payload);
    case 'vendor':
      return Buffer.from(payload.data);
    case 'unknown':
      need(isUint(payload.payloadType, 8) && !KNOWN_NAMES.has(payload.payloadType), 'unknown payload type must be one we do not know');
      need(!CHAIN_ONLY_TYPES.has(payload.payloadType), 'no next payload, SK and SKF are not payloads to send as unknown');
      return Buffer.from(payload.data);
  }
}
