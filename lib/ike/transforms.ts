// IKEv2 transform numbers (RFC 7296 §3.3.2, IANA "IKEv2 Parameters") and what each one means
// for the code that uses it: names in strongSwan's proposal keyword style, key sizes, hashes.
// Only what this implementation speaks is listed; other numbers decode but are never usable.
import type { Transform } from './types';

/** The protocol of a proposal (RFC 7296 §3.3.1). */
export const PROTOCOL_IKE = 1;
export const PROTOCOL_ESP = 3;
export type ProtocolId = typeof PROTOCOL_IKE | typeof PROTOCOL_ESP;

/** Transform types (RFC 7296 §3.3.2). */
export const TRANSFORM_ENCR = 1;
export const TRANSFORM_PRF = 2;
export const TRANSFORM_INTEG = 3;
/** Diffie-Hellman group, "Key Exchange Method" since RFC 9370. */
export const TRANSFORM_DH = 4;
export const TRANSFORM_ESN = 5;

/** Encryption algorithms (transform type 1). */
export const ENCR_AES_CBC = 12;
export const ENCR_AES_GCM_16 = 20;
export const ENCR_CHACHA20_POLY1305 = 28;

/** Pseudorandom functions (transform type 2). SHA-1 is named for logs and never negotiated. */
export const PRF_HMAC_SHA1 = 2;
export const PRF_HMAC_SHA2_256 = 5;
export const PRF_HMAC_SHA2_384 = 6;
export const PRF_HMAC_SHA2_512 = 7;

/** Integrity algorithms (transform type 3). 0 is NONE (what an AEAD proposal may carry). */
export const AUTH_NONE = 0;
export const AUTH_HMAC_SHA2_256_128 = 12;
export const AUTH_HMAC_SHA2_384_192 = 13;
export const AUTH_HMAC_SHA2_512_256 = 14;

/** Diffie-Hellman groups (transform type 4). 0 is NONE (no PFS, ESP only). */
export const DH_NONE = 0;
export const DH_MODP_2048 = 14;
export const DH_ECP_256 = 19;
export const DH_ECP_384 = 20;
export const DH_CURVE25519 = 31;

/** Extended sequence numbers (transform type 5). */
export const ESN_NO = 0;
export const ESN_YES = 1;

/**
 * A transform as the codec decodes it from an SA payload. `unknownAttribute` marks one that
 * carried an attribute other than Key Length: RFC 7296 §3.3.6 makes such a transform unusable
 * (the proposal may still be chosen with another transform of the same type). Not part of
 * types.ts' Transform, hence this extension.
 */
export type OfferedTransform = Transform & { unknownAttribute?: boolean };

const TYPE_NAMES: Record<number, string> = {
  [TRANSFORM_ENCR]: 'encryption',
  [TRANSFORM_PRF]: 'PRF',
  [TRANSFORM_INTEG]: 'integrity',
  [TRANSFORM_DH]: 'key exchange',
  [TRANSFORM_ESN]: 'ESN',
};

/** "encryption", "PRF", ... for messages; "transform type N" for others. */
export function transformTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `transform type ${type}`;
}

/** The transform types a proposal of `protocol` may carry (RFC 7296 §3.3.3). */
export function allowedTransformTypes(protocol: ProtocolId): readonly number[] {
  return protocol === PROTOCOL_IKE
    ? [TRANSFORM_ENCR, TRANSFORM_PRF, TRANSFORM_INTEG, TRANSFORM_DH]
    : [TRANSFORM_ENCR, TRANSFORM_INTEG, TRANSFORM_DH, TRANSFORM_ESN];
}

/** Combined-mode ciphers: no integrity transform, the ICV comes from the cipher (RFC 5282 §8). */
export function isAead(encrId: number): boolean {
  return encrId === ENCR_AES_GCM_16 || encrId === ENCR_CHACHA20_POLY1305;
}

/** Bytes of salt after the key in the keying material of an AEAD cipher (RFC 5282 §7.1, RFC 7634 §2). */
export const AEAD_SALT_BYTES = 4;

/**
 * Bytes of keying material for an encryption transform, salt included for the AEAD ciphers
 * (RFC 5282 §7.1: AES-GCM takes key | 4-byte salt; RFC 7634 §2: ChaCha20-Poly1305 32 + 4).
 * undefined for anything this implementation does not run.
 */
export function encrKeyBytes(encr: { id: number; keyLength?: number }): number | undefined {
  const aesBytes = encr.keyLength === 128 || encr.keyLength === 256 ? encr.keyLength / 8 : undefined;
  switch (encr.id) {
    case ENCR_AES_CBC:
      return aesBytes;
    case ENCR_AES_GCM_16:
      return aesBytes === undefined ? undefined : aesBytes + AEAD_SALT_BYTES;
    case ENCR_CHACHA20_POLY1305:
      // RFC 7634 §4: the Key Length attribute is never sent for this one.
      return encr.keyLength === undefined ? 32 + AEAD_SALT_BYTES : undefined;
    default:
      return undefined;
  }
}

/** node:crypto hash behind a PRF (RFC 4868 §2.1), undefined for the ones not negotiated. */
export function prfHash(prf: number): 'sha256' | 'sha384' | 'sha512' | undefined {
  if (prf === PRF_HMAC_SHA2_256) return 'sha256';
  if (prf === PRF_HMAC_SHA2_384) return 'sha384';
  if (prf === PRF_HMAC_SHA2_512) return 'sha512';
  return undefined;
}

/** Output bytes of a PRF, which is also the size of SK_d, SK_pi, SK_pr (RFC 7296 §2.14, RFC 4868 §2.1). */
export function prfOutputBytes(prf: number): number | undefined {
  const hash = prfHash(prf);
  return hash === undefined ? undefined : { sha256: 32, sha384: 48, sha512: 64 }[hash];
}

/** HMAC-SHA2 integrity: hash, key bytes (the hash length) and the truncated ICV (RFC 4868 §2.1). */
export function integSpec(integ: number): { hash: 'sha256' | 'sha384' | 'sha512'; keyBytes: number; icvBytes: number } | undefined {
  if (integ === AUTH_HMAC_SHA2_256_128) return { hash: 'sha256', keyBytes: 32, icvBytes: 16 };
  if (integ === AUTH_HMAC_SHA2_384_192) return { hash: 'sha384', keyBytes: 48, icvBytes: 24 };
  if (integ === AUTH_HMAC_SHA2_512_256) return { hash: 'sha512', keyBytes: 64, icvBytes: 32 };
  return undefined;
}

/** Bytes of a Diffie-Hellman public value in the KE payload (RFC 3526, RFC 5903 §7, RFC 8031 §3). */
export function dhPublicBytes(group: number): number | undefined {
  return { [DH_MODP_2048]: 256, [DH_ECP_256]: 64, [DH_ECP_384]: 96, [DH_CURVE25519]: 32 }[group];
}

const DH_NAMES: Record<number, string> = {
  [DH_NONE]: 'none',
  [DH_MODP_2048]: 'modp2048',
  [DH_ECP_256]: 'ecp256',
  [DH_ECP_384]: 'ecp384',
  [DH_CURVE25519]: 'x25519',
};
const PRF_NAMES: Record<number, string> = {
  [PRF_HMAC_SHA1]: 'prfsha1',
  [PRF_HMAC_SHA2_256]: 'prfsha256',
  [PRF_HMAC_SHA2_384]: 'prfsha384',
  [PRF_HMAC_SHA2_512]: 'prfsha512',
};
const INTEG_NAMES: Record<number, string> = {
  [AUTH_NONE]: 'none',
  [AUTH_HMAC_SHA2_256_128]: 'sha256',
  [AUTH_HMAC_SHA2_384_192]: 'sha384',
  [AUTH_HMAC_SHA2_512_256]: 'sha512',
};

/** A DH group by name: "x25519", "ecp256", ... or "group N". */
export function dhGroupName(group: number): string {
  return DH_NAMES[group] ?? `group ${group}`;
}

/**
 * A transform in strongSwan's proposal keyword style (aes256gcm16, aes128, prfsha256, sha256,
 * x25519, esn); one this implementation has no name for prints as "encryption#3" (with "/192"
 * for a key length), so that a log line still says what the peer sent.
 */
export function transformName(t: Transform): string {
  const unnamed = `${transformTypeName(t.type)}#${t.id}${t.keyLength !== undefined ? `/${t.keyLength}` : ''}`;
  switch (t.type) {
    case TRANSFORM_ENCR:
      if (t.id === ENCR_AES_CBC && t.keyLength !== undefined) return `aes${t.keyLength}`;
      if (t.id === ENCR_AES_GCM_16 && t.keyLength !== undefined) return `aes${t.keyLength}gcm16`;
      if (t.id === ENCR_CHACHA20_POLY1305 && t.keyLength === undefined) return 'chacha20poly1305';
      return unnamed;
    case TRANSFORM_PRF:
      return PRF_NAMES[t.id] ?? unnamed;
    case TRANSFORM_INTEG:
      return INTEG_NAMES[t.id] ?? unnamed;
    case TRANSFORM_DH:
      return DH_NAMES[t.id] ?? unnamed;
    case TRANSFORM_ESN:
      return t.id === ESN_YES ? 'esn' : t.id === ESN_NO ? 'noesn' : unnamed;
    default:
      return unnamed;
  }
}

/**
 * The configuration keywords this implementation accepts, with their transforms (strongSwan's
 * spelling, and its aliases where they are common: curve25519, aesNNNgcm128, sha2_NNN).
 */
export const TRANSFORM_KEYWORDS: Readonly<Record<string, Transform>> = {
  aes128: { type: TRANSFORM_ENCR, id: ENCR_AES_CBC, keyLength: 128 },
  aes256: { type: TRANSFORM_ENCR, id: ENCR_AES_CBC, keyLength: 256 },
  aes128gcm16: { type: TRANSFORM_ENCR, id: ENCR_AES_GCM_16, keyLength: 128 },
  aes128gcm128: { type: TRANSFORM_ENCR, id: ENCR_AES_GCM_16, keyLength: 128 },
  aes256gcm16: { type: TRANSFORM_ENCR, id: ENCR_AES_GCM_16, keyLength: 256 },
  aes256gcm128: { type: TRANSFORM_ENCR, id: ENCR_AES_GCM_16, keyLength: 256 },
  chacha20poly1305: { type: TRANSFORM_ENCR, id: ENCR_CHACHA20_POLY1305 },
  prfsha256: { type: TRANSFORM_PRF, id: PRF_HMAC_SHA2_256 },
  prfsha384: { type: TRANSFORM_PRF, id: PRF_HMAC_SHA2_384 },
  prfsha512: { type: TRANSFORM_PRF, id: PRF_HMAC_SHA2_512 },
  sha256: { type: TRANSFORM_INTEG, id: AUTH_HMAC_SHA2_256_128 },
  sha2_256: { type: TRANSFORM_INTEG, id: AUTH_HMAC_SHA2_256_128 },
  sha384: { type: TRANSFORM_INTEG, id: AUTH_HMAC_SHA2_384_192 },
  sha2_384: { type: TRANSFORM_INTEG, id: AUTH_HMAC_SHA2_384_192 },
  sha512: { type: TRANSFORM_INTEG, id: AUTH_HMAC_SHA2_512_256 },
  sha2_512: { type: TRANSFORM_INTEG, id: AUTH_HMAC_SHA2_512_256 },
  modp2048: { type: TRANSFORM_DH, id: DH_MODP_2048 },
  ecp256: { type: TRANSFORM_DH, id: DH_ECP_256 },
  ecp384: { type: TRANSFORM_DH, id: DH_ECP_384 },
  x25519: { type: TRANSFORM_DH, id: DH_CURVE25519 },
  curve25519: { type: TRANSFORM_DH, id: DH_CURVE25519 },
  // ESP only: PFS is optional, "none" accepts a proposal without it (strongSwan: modpnone).
  none: { type: TRANSFORM_DH, id: DH_NONE },
  modpnone: { type: TRANSFORM_DH, id: DH_NONE },
  esn: { type: TRANSFORM_ESN, id: ESN_YES },
  noesn: { type: TRANSFORM_ESN, id: ESN_NO },
};

/** The PRF that goes with an integrity algorithm, for IKE proposals that name none (strongSwan does the same). */
export function prfForInteg(integ: number): number | undefined {
  if (integ === AUTH_HMAC_SHA2_256_128) return PRF_HMAC_SHA2_256;
  if (integ === AUTH_HMAC_SHA2_384_192) return PRF_HMAC_SHA2_384;
  if (integ === AUTH_HMAC_SHA2_512_256) return PRF_HMAC_SHA2_512;
  return undefined;
}

/** Two transforms name the same algorithm (type, id and key length all equal). */
export function sameTransform(a: Transform, b: Transform): boolean {
  return a.type === b.type && a.id === b.id && a.keyLength === b.keyLength;
}
