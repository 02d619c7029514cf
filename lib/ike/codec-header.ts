// The IKE header (RFC 7296 §3.1): the fixed 28 bytes in front of the payload chain, read and
// checked against the datagram it came in, and written with the chain's first type and length.
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
// What we accept, and why:
// - Major version 2 only. Any other major version is reported under its own reason, with the
//   header, so the session can answer INVALID_MAJOR_VERSION (§2.5). The minor version "MUST be
//   ignored by a node with a smaller minor version number" (§2.5): ignored.
// - The X and V flag bits and every RESERVED field are "ignored on receipt" (§3.1, §3.2, and
//   each payload section): ignored, never refused. They are sent as zero.
// - The Length field must be the datagram's length: IKE over UDP has one message per datagram
//   (§2), so a difference is truncation or garbage.
import type { IkeHeader } from './types';
import { HeaderFlag, IKE_HEADER_BYTES, IKE_MAJOR_VERSION, IKE_SPI_BYTES } from './wire';
import { copy, fail, guarded, isUint, MAX_MESSAGE_BYTES, need, Reason, type CodecResult } from './codec';

/** The fixed header, checked against the datagram it came in: size, major version, Length. */
export function decodeHeader(buf: Buffer): CodecResult<IkeHeader> {
  return guarded(() => readHeader(buf));
}

export function readHeader(buf: Buffer): CodecResult<IkeHeader> {
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
