// What every part of the IKEv2 message codec shares (RFC 7296 §3): the bounds on what a peer can
// make us allocate, the refusal reasons (one fixed string per check), the result types, and the
// small helpers the decoders read with and the encoders write with.
//
// - Bounds: at most MAX_MESSAGE_BYTES per message, MAX_PAYLOADS payloads, MAX_PROPOSALS
//   proposals per SA payload and MAX_TRANSFORMS transforms per proposal; nothing a peer says
//   makes us allocate more than the message it sent.
// - Decoded Buffers are copies (copy()): the datagram's buffer may come from a queue that
//   reuses it.
// - Decoders return a reason, never throw (guarded() turns a missed check into decoderFault);
//   encoders throw a RangeError (need()) on values that do not fit their fields.
import type { IkeHeader, Payload } from './types';
import { ProtocolId } from './wire';

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

/** What a payload body decoder returns: the payload, or why it was refused. */
export type Body = Payload | DecodeFailure;

export function fail(reason: string): DecodeFailure {
  return { ok: false, reason };
}

export function copy(buf: Buffer, start: number, end: number): Buffer {
  return Buffer.from(buf.subarray(start, end));
}

// Every bounds check in the decoders comes before the read it protects; this catch is for the
// check we got wrong, so that a bug costs a dropped message and a counter, not the process.
export function guarded<T>(decode: () => CodecResult<T>): CodecResult<T> {
  try {
    return decode();
  } catch {
    return fail(Reason.decoderFault);
  }
}

/** AH and ESP: the protocols of Child SAs, whose SPIs are 4 bytes. */
export function isChildProtocol(protocol: number): boolean {
  return protocol === ProtocolId.AH || protocol === ProtocolId.ESP;
}

export function need(condition: boolean, what: string): asserts condition {
  if (!condition) throw new RangeError(`IKE encoder: ${what}`);
}

export function isUint(value: number, bits: 8 | 16 | 32): boolean {
  return Number.isInteger(value) && value >= 0 && value < 2 ** bits;
}

export function bytesOf(...parts: (number[] | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((part) => (Buffer.isBuffer(part) ? part : Buffer.from(part))));
}

export function u16(value: number): number[] {
  return [value >> 8, value & 0xff];
}
