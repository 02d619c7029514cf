// IKEv2 messages built by hand for hostile-input tests (RFC 7296 §3): well-formed ones through
// the library's own encoder (lib/ike/message.ts, sk.ts), and malformed ones byte by byte, where
// the encoder would refuse to lie.
import { randomBytes } from 'node:crypto';
import { createKeyExchange } from '../../lib/ike/crypto';
import { encodeHeader, encodePayloads, encodeMessage } from '../../lib/ike/message';
import { defaultProposals } from '../../lib/ike/proposals';
import { PROTOCOL_IKE } from '../../lib/ike/transforms';
import type { IkeHeader, Payload, Proposal, SkCipher } from '../../lib/ike/types';
import { Exchange, IKE_HEADER_BYTES, PAYLOAD_HEADER_BYTES, PayloadType } from '../../lib/ike/wire';

export const ZERO_SPI = Buffer.alloc(8);
/** The non-ESP marker in front of IKE on the ESP-in-UDP port (RFC 3948 §2.2). */
export const NON_ESP_MARKER = Buffer.alloc(4);

export type Header = Omit<IkeHeader, 'nextPayload' | 'length'>;

/** The header of an IKE_SA_INIT request from a new initiator. */
export function initHeader(spiI: Buffer = randomBytes(8), more: Partial<Header> = {}): Header {
  return { initiatorSpi: spiI, responderSpi: ZERO_SPI, version: 0x20, exchange: Exchange.IKE_SA_INIT, initiator: true, response: false, messageId: 0, ...more };
}

/** One x25519 public value for every crafted IKE_SA_INIT (the responder's DH is real work; ours need not be). */
const X25519 = createKeyExchange(31);

/** SA, KE and Nonce of an IKE_SA_INIT request that a responder with the default proposals accepts. */
export function initPayloads(o: { proposals?: Proposal[]; ke?: { group: number; data: Buffer }; nonce?: Buffer } = {}): Payload[] {
  return [
    { type: 'sa', critical: false, proposals: o.proposals ?? defaultProposals(PROTOCOL_IKE) },
    { type: 'ke', critical: false, group: o.ke?.group ?? 31, data: o.ke?.data ?? X25519.publicKey },
    { type: 'nonce', critical: false, data: o.nonce ?? randomBytes(32) },
  ];
}

/** A well-formed IKE_SA_INIT request. */
export function initRequest(spiI: Buffer = randomBytes(8), payloads: Payload[] = initPayloads()): Buffer {
  return encodeMessage(initHeader(spiI), payloads);
}

/** A payload's body as the encoder writes it (without its generic header). */
export function bodyOf(payload: Payload): Buffer {
  return encodePayloads([payload]).bytes.subarray(PAYLOAD_HEADER_BYTES);
}

/** A payload written by hand: any type, and a Payload Length or Next Payload that may lie. */
export interface RawPayload {
  type: number;
  body: Buffer;
  critical?: boolean;
  /** Default: 4 + body length. */
  length?: number;
  /** Default: the type of the next item (0 after the last). */
  next?: number;
}

export function rawPayloads(items: RawPayload[]): { first: number; bytes: Buffer } {
  const parts = items.map((item, i) => {
    const head = Buffer.alloc(PAYLOAD_HEADER_BYTES);
    head[0] = item.next ?? items[i + 1]?.type ?? PayloadType.NONE;
    head[1] = item.critical ? 0x80 : 0;
    head.writeUInt16BE(item.length ?? PAYLOAD_HEADER_BYTES + item.body.length, 2);
    return Buffer.concat([head, item.body]);
  });
  return { first: items[0]?.type ?? PayloadType.NONE, bytes: Buffer.concat(parts) };
}

export function raw(type: number, payload: Payload, more: Partial<RawPayload> = {}): RawPayload {
  return { type, body: bodyOf(payload), critical: payload.critical, ...more };
}

/** The valid IKE_SA_INIT payloads as raw items, to append lies to. */
export function rawInitPayloads(): RawPayload[] {
  const [sa, ke, nonce] = initPayloads() as [Payload, Payload, Payload];
  return [raw(PayloadType.SA, sa), raw(PayloadType.KE, ke), raw(PayloadType.Nonce, nonce)];
}

/**
 * A message written by hand: the 28-byte header (any version byte, flags byte, Length) and
 * `body` after it. `flags` default: I (0x08), R (0x20) when header.response.
 */
export function rawMessage(header: Header, first: number, body: Buffer, o: { length?: number; version?: number; flags?: number } = {}): Buffer {
  const head = Buffer.alloc(IKE_HEADER_BYTES);
  header.initiatorSpi.copy(head, 0);
  header.responderSpi.copy(head, 8);
  head[16] = first;
  head[17] = o.version ?? header.version;
  head[18] = header.exchange;
  head[19] = o.flags ?? ((header.initiator ? 0x08 : 0) | (header.response ? 0x20 : 0));
  head.writeUInt32BE(header.messageId, 20);
  head.writeUInt32BE(o.length ?? IKE_HEADER_BYTES + body.length, 24);
  return Buffer.concat([head, body]);
}

/**
 * A protected message whose plaintext is given as bytes (sk.ts sealMessage takes payloads, and
 * writes only valid ones): header, SK payload header (Next Payload `firstInner`), then
 * cipher.seal over exactly what the ICV must cover.
 */
export function sealRaw(header: Header, firstInner: number, plaintext: Buffer, cipher: SkCipher): Buffer {
  const skLength = PAYLOAD_HEADER_BYTES + cipher.sealedLength(plaintext.length);
  const aad = Buffer.concat([encodeHeader(header, PayloadType.SK, IKE_HEADER_BYTES + skLength), Buffer.from([firstInner, 0, skLength >> 8, skLength & 0xff])]);
  return Buffer.concat([aad, cipher.seal(aad, plaintext)]);
}
