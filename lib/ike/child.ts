// A Child SA as the session hands it to the data path: the pair of ESP SAs one exchange made
// (RFC 7296 §2.17), with their SPIs, keys and the selectors they cover. A secret: the keys go
// to the native SA table and nowhere else (no log line, no listing).
import type { TrafficSelector } from './types';

/** The AEAD ciphers the native ESP data path runs (lib/config/sa.ts). */
export type ChildCipher = 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';

export interface ChildSa {
  /** The SPI the peer sends to us with (we chose it). */
  inboundSpi: number;
  /** The SPI we send with (the peer chose it). */
  outboundSpi: number;
  cipher: ChildCipher;
  /** 64-bit extended sequence numbers (both sides agreed). */
  esn: boolean;
  /** cipher key | 4-byte salt, for each direction. */
  inboundKey: Buffer;
  outboundKey: Buffer;
  /** What our side of the tunnel covers, and the peer's side (after narrowing). */
  localTs: TrafficSelector[];
  remoteTs: TrafficSelector[];
  /** The PFS group of the exchange that made it (0: none). */
  dhGroup: number;
  createdAt: number;
}

/** A Child SA as listings show it: no key. */
export interface PublicChildSa {
  inboundSpi: number;
  outboundSpi: number;
  cipher: ChildCipher;
  esn: boolean;
  dhGroup: number;
  ageSeconds: number;
}

export function publicChild(child: ChildSa, now = Date.now()): PublicChildSa {
  return {
    inboundSpi: child.inboundSpi,
    outboundSpi: child.outboundSpi,
    cipher: child.cipher,
    esn: child.esn,
    dhGroup: child.dhGroup,
    ageSeconds: Math.round((now - child.createdAt) / 1000),
  };
}
