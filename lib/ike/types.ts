// The seams between the parts of the IKEv2 implementation (RFC 7296): the message codec
// (message.ts and its codec-*.ts parts, sk.ts), the cryptography (crypto.ts, transforms.ts, and
// auth.ts with identity.ts, signature.ts, certificates.ts), the proposals and traffic selectors,
// and the session state machine (session.ts and its exchange modules) that drives them.
// Every part is pure: bytes in, bytes or a reason out. Only the session keeps state and only
// the manager touches sockets.

/** The fixed IKE header (RFC 7296 §3.1). SPIs are 8 bytes; a zero responder SPI is all zeros. */
export interface IkeHeader {
  initiatorSpi: Buffer;
  responderSpi: Buffer;
  /** The type of the first payload (0: none). Filled in by the encoder. */
  nextPayload: number;
  /** Major version 2, minor 0: 0x20. */
  version: number;
  exchange: number;
  /** Flags: I (initiator, 0x08), R (response, 0x20). V (0x10) must be 0. */
  initiator: boolean;
  response: boolean;
  messageId: number;
  /** Total length of the message, header included. Filled in by the encoder. */
  length: number;
}

/** A transform (RFC 7296 §3.3.2), with its one attribute that matters: the key length in bits. */
export interface Transform {
  type: number;
  id: number;
  keyLength?: number;
}

/** A proposal (RFC 7296 §3.3.1). protocol 1 IKE (SPI empty in IKE_SA_INIT, 8 bytes in rekeys), 3 ESP (4-byte SPI). */
export interface Proposal {
  number: number;
  protocol: number;
  spi: Buffer;
  transforms: Transform[];
}

/** A traffic selector (RFC 7296 §3.13.1): TS_IPV4_ADDR_RANGE (7) or TS_IPV6_ADDR_RANGE (8). */
export interface TrafficSelector {
  type: 7 | 8;
  /** IP protocol, 0 for any. */
  protocol: number;
  startPort: number;
  endPort: number;
  /** Address literals (IPv4 dotted, IPv6 as node:net prints them). */
  startAddress: string;
  endAddress: string;
}

/** The payloads the session reads and writes; anything else decodes as `unknown`. */
export type Payload =
  | { type: 'sa'; critical: boolean; proposals: Proposal[] }
  | { type: 'ke'; critical: boolean; group: number; data: Buffer }
  | { type: 'nonce'; critical: boolean; data: Buffer }
  | { type: 'notify'; critical: boolean; protocol: number; spi: Buffer; notifyType: number; data: Buffer }
  | { type: 'idi' | 'idr'; critical: boolean; idType: number; data: Buffer }
  | { type: 'auth'; critical: boolean; method: number; data: Buffer }
  | { type: 'tsi' | 'tsr'; critical: boolean; selectors: TrafficSelector[] }
  | { type: 'delete'; critical: boolean; protocol: number; spis: Buffer[] }
  | { type: 'cert' | 'certreq'; critical: boolean; encoding: number; data: Buffer }
  | { type: 'vendor'; critical: boolean; data: Buffer }
  | { type: 'unknown'; critical: boolean; payloadType: number; data: Buffer };

/** A decoded message: the header and its payloads (for a protected message, the SK payload's inner payloads). */
export interface IkeMessage {
  header: IkeHeader;
  payloads: Payload[];
}

/** Why a message was not accepted: a reason for the counters and the log, never a key. */
export type DecodeResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * The SK payload's protection in one direction (RFC 7296 §3.14, RFC 5282 for AEAD): seal
 * returns IV | ciphertext (with padding and pad length) | ICV for the plaintext inner payloads;
 * open returns the inner payloads or null when the ICV does not verify or the padding is wrong.
 * `aad` is what the integrity covers before the SK body: the IKE header and the SK payload
 * header (with the final lengths). For the non-AEAD suites the ICV covers aad | IV | ciphertext.
 */
export interface SkCipher {
  readonly ivBytes: number;
  readonly icvBytes: number;
  /** Ciphertext block size for padding (1 for AEAD stream modes, 16 for AES-CBC). */
  readonly blockBytes: number;
  /** The SK body length for `plaintextBytes` of inner payloads (IV, padded ciphertext, ICV). */
  sealedLength(plaintextBytes: number): number;
  seal(aad: Buffer, plaintext: Buffer): Buffer;
  open(aad: Buffer, body: Buffer): Buffer | null;
}

/** The negotiated IKE SA algorithms (one of each; integ is absent for AEAD ciphers). */
export interface IkeSuite {
  encr: { id: number; keyLength?: number };
  prf: number;
  integ?: number;
  dh: number;
}

/** The negotiated Child SA algorithms. */
export interface ChildSuite {
  encr: { id: number; keyLength?: number };
  integ?: number;
  /** PFS group for rekeys (0: none). */
  dh: number;
  esn: boolean;
}

/** The keys of an IKE SA (RFC 7296 §2.14). */
export interface IkeKeys {
  skD: Buffer;
  skAi: Buffer;
  skAr: Buffer;
  skEi: Buffer;
  skEr: Buffer;
  skPi: Buffer;
  skPr: Buffer;
}

/** One Diffie-Hellman (key exchange) private value. */
export interface KeyExchange {
  readonly group: number;
  readonly publicKey: Buffer;
  /** The shared secret g^ir; throws a DecodeError-like Error on a malformed peer value. */
  computeSecret(peerPublicKey: Buffer): Buffer;
}
