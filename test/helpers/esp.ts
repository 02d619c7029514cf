// ESP packets (RFC 4303 tunnel mode) built in TypeScript with node:crypto, independently of the
// native codec: AES-GCM per RFC 4106 and ChaCha20-Poly1305 per RFC 7634, 16-byte ICV, the nonce
// = 4-byte salt (the last 4 bytes of the SA key) || 8-byte IV, the AAD = SPI || sequence number
// (with extended sequence numbers: SPI || high 32 bits || low 32 bits), IV = the 64-bit sequence
// number (what overlayfwd sends; any IV authenticates). Plus the knobs to break each rule.
import crypto from 'node:crypto';
import type { EspCipher } from '../../lib/types';

export const ESP_ICV_BYTES = 16;

export interface EspSa {
  spi: number;
  /** Hex: cipher key followed by the 4-byte salt. */
  key: string;
}

export interface EspPacketOptions {
  cipher: EspCipher;
  sa: EspSa;
  /** The full (64-bit) sequence number; the low 32 bits go on the wire. */
  sequence: bigint | number;
  /** 4 (IPv4), 41 (IPv6), 143 (Ethernet), 59 (no next header: a dummy packet). */
  nextHeader: number;
  payload: Buffer;
  /** Extended sequence numbers in the AAD (default true, as overlayfwd uses). */
  esn?: boolean;
  /** The IV (default: the sequence number, big-endian). */
  iv?: Buffer;
  /** Override the pad length byte (the padding itself stays as computed). */
  padLength?: number;
  /** Override the padding bytes (default 1, 2, 3, ...). */
  padding?: Buffer;
  /** Flip a bit of the ICV. */
  forgeIcv?: boolean;
  /** SPI written on the wire (default sa.spi) — the packet is still sealed with sa's key. */
  wireSpi?: number;
}

function aead(cipher: EspCipher): crypto.CipherGCMTypes | 'chacha20-poly1305' {
  return cipher;
}

function keyParts(sa: EspSa): { key: Buffer; salt: Buffer } {
  const raw = Buffer.from(sa.key, 'hex');
  return { key: raw.subarray(0, raw.length - 4), salt: raw.subarray(raw.length - 4) };
}

/** The default padding: the fewest bytes (0–3) that make payload + padding + 2 a multiple of 4. */
export function paddingFor(payloadLength: number): number {
  return (4 - ((payloadLength + 2) & 3)) & 3;
}

/** A sealed ESP packet (what follows the outer IP header, or the UDP header on port 4500). */
export function espPacket(o: EspPacketOptions): Buffer {
  const seq = BigInt(o.sequence);
  const spi = o.wireSpi ?? o.sa.spi;
  const header = Buffer.alloc(8);
  header.writeUInt32BE(spi >>> 0, 0);
  header.writeUInt32BE(Number(seq & 0xffffffffn), 4);
  const iv = o.iv ?? Buffer.alloc(8);
  if (!o.iv) iv.writeBigUInt64BE(seq);
  const padCount = paddingFor(o.payload.length);
  const padding = o.padding ?? Buffer.from(Array.from({ length: padCount }, (_, i) => i + 1));
  const trailer = Buffer.from([o.padLength ?? padding.length, o.nextHeader]);
  const plaintext = Buffer.concat([o.payload, padding, trailer]);
  const aad = o.esn === false ? header : Buffer.concat([header.subarray(0, 4), u32(Number(seq >> 32n)), header.subarray(4, 8)]);
  const { key, salt } = keyParts(o.sa);
  const c = crypto.createCipheriv(aead(o.cipher) as crypto.CipherGCMTypes, key, Buffer.concat([salt, iv]), { authTagLength: ESP_ICV_BYTES });
  c.setAAD(aad, { plaintextLength: plaintext.length });
  const encrypted = Buffer.concat([c.update(plaintext), c.final()]);
  const icv = c.getAuthTag();
  if (o.forgeIcv) icv[0]! ^= 0x01;
  return Buffer.concat([header, iv, encrypted, icv]);
}

export interface EspOpened {
  spi: number;
  sequenceLow: number;
  nextHeader: number;
  padLength: number;
  payload: Buffer;
}

/**
 * Verifies and decrypts an ESP packet with `sa` (sequence high bits `high` for ESN); null when
 * the ICV does not verify. An independent check of what overlayfwd sends.
 */
export function openEspPacket(cipher: EspCipher, sa: EspSa, packet: Buffer, options: { esn?: boolean; high?: number } = {}): EspOpened | null {
  if (packet.length < 8 + 8 + 4 + ESP_ICV_BYTES) return null;
  const header = packet.subarray(0, 8);
  const iv = packet.subarray(8, 16);
  const encrypted = packet.subarray(16, packet.length - ESP_ICV_BYTES);
  const icv = packet.subarray(packet.length - ESP_ICV_BYTES);
  const aad = options.esn === false ? header : Buffer.concat([header.subarray(0, 4), u32(options.high ?? 0), header.subarray(4, 8)]);
  const { key, salt } = keyParts(sa);
  const d = crypto.createDecipheriv(aead(cipher) as crypto.CipherGCMTypes, key, Buffer.concat([salt, iv]), { authTagLength: ESP_ICV_BYTES });
  d.setAAD(aad, { plaintextLength: encrypted.length });
  d.setAuthTag(icv);
  let plain: Buffer;
  try {
    plain = Buffer.concat([d.update(encrypted), d.final()]);
  } catch {
    return null;
  }
  const padLength = plain[plain.length - 2]!;
  const nextHeader = plain[plain.length - 1]!;
  return {
    spi: header.readUInt32BE(0),
    sequenceLow: header.readUInt32BE(4),
    nextHeader,
    padLength,
    payload: plain.subarray(0, Math.max(0, plain.length - 2 - padLength)),
  };
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** A fresh random SA key for `cipher` (cipher key + 4-byte salt), as hex. */
export function randomSaKey(cipher: EspCipher): string {
  return crypto.randomBytes((cipher === 'aes-128-gcm' ? 16 : 32) + 4).toString('hex');
}

/** The Wireshark esp_sa UAT line for an AES-GCM SA (tshark decrypts AES-GCM; 4.0 has no ChaCha20). */
export function tsharkEspSa(family: 4 | 6, src: string, dst: string, sa: EspSa): string {
  const spi = `0x${sa.spi.toString(16).padStart(8, '0')}`;
  return `"IPv${family}","${src}","${dst}","${spi}","AES-GCM with 16 octet ICV [RFC4106]","0x${sa.key}","NULL",""`;
}
