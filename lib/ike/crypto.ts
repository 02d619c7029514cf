// The IKE SA's cryptography on node:crypto: key exchange (RFC 8031, RFC 5903, RFC 3526), the
// PRF and prf+ (RFC 7296 §2.13), key derivation for IKE SAs, their rekeys and Child SAs
// (§2.14, §2.17, §2.18), and the SK payload's protection (§3.14, RFC 5282, RFC 7634).
// Control plane only: a handful of calls per exchange, never per packet.
import crypto from 'node:crypto';
import {
  AEAD_SALT_BYTES,
  DH_CURVE25519,
  DH_ECP_256,
  DH_ECP_384,
  DH_MODP_2048,
  ENCR_AES_CBC,
  ENCR_AES_GCM_16,
  ENCR_CHACHA20_POLY1305,
  dhGroupName,
  dhPublicBytes,
  encrKeyBytes,
  integSpec,
  prfHash,
  prfOutputBytes,
} from './transforms';
import type { IkeKeys, IkeSuite, KeyExchange, SkCipher } from './types';

// ---------------------------------------------------------------------------------------------
// Key exchange

// DER around a raw X25519 value, so that node:crypto takes it as a KeyObject (RFC 8410).
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/**
 * A fresh private value for `group` (x25519, ecp256, ecp384, modp2048). `privateKey` fixes the
 * private value instead; it exists for known-answer tests (x25519 and ECP groups only).
 * computeSecret throws an Error with the reason on a malformed peer value (the session answers
 * INVALID_SYNTAX); the secret is g^ir as RFC 7296 §2.14 feeds it to the PRF.
 */
export function createKeyExchange(group: number, privateKey?: Buffer): KeyExchange {
  switch (group) {
    case DH_CURVE25519:
      return x25519Exchange(privateKey);
    case DH_ECP_256:
      return ecpExchange(group, 'prime256v1', 32, privateKey);
    case DH_ECP_384:
      return ecpExchange(group, 'secp384r1', 48, privateKey);
    case DH_MODP_2048:
      if (privateKey) throw new Error('a fixed private value is only supported for x25519 and the ECP groups');
      return modpExchange();
    default:
      throw new Error(`key exchange ${dhGroupName(group)} is not supported`);
  }
}

/** RFC 8031: 32-byte public values both ways; an all-zero secret means a low-order peer value. */
function x25519Exchange(fixed: Buffer | undefined): KeyExchange {
  const privateKey = fixed
    ? crypto.createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, checkLength(fixed, 32, 'x25519 private value')]), format: 'der', type: 'pkcs8' })
    : crypto.generateKeyPairSync('x25519').privateKey;
  // Raw values go in and out as JWK: an order of magnitude cheaper than DER SPKI here (about
  // 30 µs against 480 µs for the pair), which a responder pays on every handshake.
  const jwk = privateKey.export({ format: 'jwk' });
  const publicKey = Buffer.from(jwk.x!, 'base64url');
  return {
    group: DH_CURVE25519,
    publicKey,
    computeSecret(peer: Buffer): Buffer {
      checkLength(peer, 32, 'x25519 public value');
      const peerKey = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: peer.toString('base64url') }, format: 'jwk' });
      let secret: Buffer;
      try {
        secret = crypto.diffieHellman({ privateKey, publicKey: peerKey });
      } catch {
        // OpenSSL refuses to derive an all-zero result.
        throw new Error('x25519 public value is of low order (the shared secret would be all zeros, RFC 8031 §2)');
      }
      if (secret.every((b) => b === 0)) throw new Error('x25519 public value is of low order (the shared secret would be all zeros, RFC 8031 §2)');
      return secret;
    },
  };
}

/** RFC 5903 §7: the KE data is x | y without the 0x04 prefix, the shared secret is x alone. */
function ecpExchange(group: number, curve: string, coordinateBytes: number, fixed: Buffer | undefined): KeyExchange {
  const ecdh = crypto.createECDH(curve);
  if (fixed) ecdh.setPrivateKey(checkLength(fixed, coordinateBytes, `${dhGroupName(group)} private value`));
  else ecdh.generateKeys();
  const uncompressed = ecdh.getPublicKey();
  return {
    group,
    publicKey: Buffer.from(uncompressed.subarray(1)),
    computeSecret(peer: Buffer): Buffer {
      checkLength(peer, 2 * coordinateBytes, `${dhGroupName(group)} public value`);
      try {
        return ecdh.computeSecret(Buffer.concat([Buffer.from([0x04]), peer]));
      } catch {
        throw new Error(`${dhGroupName(group)} public value is not a point on the curve`);
      }
    },
  };
}

/** RFC 3526 group 14 (node's modp14 is that prime): values padded to 256 bytes, 1 < y < p-1. */
function modpExchange(): KeyExchange {
  const dh = crypto.getDiffieHellman('modp14');
  dh.generateKeys();
  const prime = BigInt(`0x${dh.getPrime('hex')}`);
  const bytes = dhPublicBytes(DH_MODP_2048)!;
  return {
    group: DH_MODP_2048,
    publicKey: leftPad(dh.getPublicKey(), bytes),
    computeSecret(peer: Buffer): Buffer {
      checkLength(peer, bytes, 'modp2048 public value');
      const y = BigInt(`0x${peer.toString('hex')}`);
      // The only small subgroups of a safe prime are {1} and {1, p-1} (RFC 6989 §2.1).
      if (y <= 1n || y >= prime - 1n) throw new Error('modp2048 public value is out of range (must be 1 < y < p-1)');
      return leftPad(dh.computeSecret(peer), bytes);
    },
  };
}

function checkLength(value: Buffer, bytes: number, what: string): Buffer {
  if (value.length !== bytes) throw new Error(`${what} must be ${bytes} bytes, got ${value.length}`);
  return value;
}

/** Big-endian, zero-padded to the modulus length (RFC 7296 §2.14). */
function leftPad(value: Buffer, bytes: number): Buffer {
  return value.length >= bytes ? value : Buffer.concat([Buffer.alloc(bytes - value.length), value]);
}

// ---------------------------------------------------------------------------------------------
// PRF and key derivation

function hashOf(prfId: number): string {
  const hash = prfHash(prfId);
  if (!hash) throw new Error(`PRF ${prfId} is not supported`);
  return hash;
}

/** prf(key, data): HMAC-SHA2 (RFC 4868 §2.1), whatever the key's length. */
export function prf(prfId: number, key: Buffer, data: Buffer): Buffer {
  return crypto.createHmac(hashOf(prfId), key).update(data).digest();
}

/**
 * prf+(K, S) = T1 | T2 | ... with T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n) (RFC 7296
 * §2.13), cut to `bytes`. At most 255 blocks exist.
 */
export function prfPlus(prfId: number, key: Buffer, seed: Buffer, bytes: number): Buffer {
  const blockBytes = prfOutputBytes(prfId);
  if (blockBytes === undefined) throw new Error(`PRF ${prfId} is not supported`);
  if (bytes > 255 * blockBytes) throw new Error(`prf+ yields at most ${255 * blockBytes} bytes with this PRF, ${bytes} asked`);
  const blocks: Buffer[] = [];
  let previous: Buffer = Buffer.alloc(0);
  for (let n = 1; blocks.length * blockBytes < bytes; n++) {
    previous = prf(prfId, key, Buffer.concat([previous, seed, Buffer.from([n])]));
    blocks.push(previous);
  }
  return Buffer.concat(blocks).subarray(0, bytes);
}

/** The sizes of the seven IKE SA keys for a suite (RFC 7296 §2.14). */
export function ikeKeyBytes(suite: IkeSuite): { prf: number; integ: number; encr: number } {
  const prfBytes = prfOutputBytes(suite.prf);
  const encr = encrKeyBytes(suite.encr);
  const integ = suite.integ === undefined ? 0 : integSpec(suite.integ)?.keyBytes;
  if (prfBytes === undefined || encr === undefined || integ === undefined) throw new Error('the IKE suite has an algorithm this implementation does not run');
  return { prf: prfBytes, integ, encr };
}

/**
 * The keys of a new IKE SA (RFC 7296 §2.14): SKEYSEED = prf(Ni | Nr, g^ir), then
 * {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
 * SK_e of an AEAD includes its 4-byte salt (RFC 5282 §7.1, RFC 7634 §2); SK_a is then empty.
 */
export function deriveIkeKeys(suite: IkeSuite, ni: Buffer, nr: Buffer, gir: Buffer, spiI: Buffer, spiR: Buffer): IkeKeys {
  const skeyseed = prf(suite.prf, Buffer.concat([ni, nr]), gir);
  return expandIkeKeys(suite, skeyseed, ni, nr, spiI, spiR);
}

/**
 * The keys of the IKE SA that replaces an old one (RFC 7296 §2.18): SKEYSEED = prf(SK_d (old),
 * g^ir (new) | Ni | Nr) with the OLD SA's PRF, the rest as §2.14 with the new suite. Ni, Nr and
 * the SPIs are the CREATE_CHILD_SA's: "i" is the side that initiated the rekey.
 */
export function deriveRekeyedIkeKeys(
  suite: IkeSuite,
  oldSkD: Buffer,
  oldPrf: number,
  gir: Buffer,
  ni: Buffer,
  nr: Buffer,
  spiI: Buffer,
  spiR: Buffer,
): IkeKeys {
  const skeyseed = prf(oldPrf, oldSkD, Buffer.concat([gir, ni, nr]));
  return expandIkeKeys(suite, skeyseed, ni, nr, spiI, spiR);
}

function expandIkeKeys(suite: IkeSuite, skeyseed: Buffer, ni: Buffer, nr: Buffer, spiI: Buffer, spiR: Buffer): IkeKeys {
  const sizes = ikeKeyBytes(suite);
  const lengths = [sizes.prf, sizes.integ, sizes.integ, sizes.encr, sizes.encr, sizes.prf, sizes.prf];
  const total = lengths.reduce((a, b) => a + b, 0);
  const keymat = prfPlus(suite.prf, skeyseed, Buffer.concat([ni, nr, spiI, spiR]), total);
  let offset = 0;
  const [skD, skAi, skAr, skEi, skEr, skPi, skPr] = lengths.map((n) => {
    const key = Buffer.from(keymat.subarray(offset, offset + n));
    offset += n;
    return key;
  }) as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
  return { skD, skAi, skAr, skEi, skEr, skPi, skPr };
}

/**
 * A Child SA's keys (RFC 7296 §2.17): KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr); all of the
 * initiator-to-responder SA's keys come first, each direction's encryption key (with salt for
 * an AEAD) before its integrity key.
 */
export function deriveChildKeys(
  prfId: number,
  skD: Buffer,
  ni: Buffer,
  nr: Buffer,
  gir: Buffer | undefined,
  encrKeyBytesPerDirection: number,
  integKeyBytesPerDirection: number,
): { initiatorToResponder: Buffer; responderToInitiator: Buffer } {
  const perDirection = encrKeyBytesPerDirection + integKeyBytesPerDirection;
  const seed = Buffer.concat(gir ? [gir, ni, nr] : [ni, nr]);
  const keymat = prfPlus(prfId, skD, seed, 2 * perDirection);
  return {
    initiatorToResponder: Buffer.from(keymat.subarray(0, perDirection)),
    responderToInitiator: Buffer.from(keymat.subarray(perDirection)),
  };
}

// ---------------------------------------------------------------------------------------------
// SK payload protection

/**
 * The SK payload's cipher for one direction (RFC 7296 §3.14): AES-GCM-16 (RFC 5282) and
 * ChaCha20-Poly1305 (RFC 7634) with `encrKey` = key | 4-byte salt and no integrity key, or
 * AES-CBC with HMAC-SHA2 (RFC 3602, RFC 4868). Use one instance per key for sealing: the AEAD
 * IVs are a counter of that instance, so two sealing instances of one key would repeat nonces.
 * `firstIv` starts that counter elsewhere than 0; it exists for known-answer tests.
 */
export function createSkCipher(suite: Pick<IkeSuite, 'encr' | 'integ'>, encrKey: Buffer, integKey: Buffer, options: { firstIv?: bigint } = {}): SkCipher {
  const expected = encrKeyBytes(suite.encr);
  if (expected === undefined) throw new Error('the SK cipher is not supported');
  checkLength(encrKey, expected, 'SK_e');
  if (suite.encr.id === ENCR_AES_GCM_16 || suite.encr.id === ENCR_CHACHA20_POLY1305) {
    if (suite.integ !== undefined && suite.integ !== 0) throw new Error('an AEAD SK cipher takes no integrity algorithm');
    checkLength(integKey, 0, 'SK_a of an AEAD');
    const algorithm = suite.encr.id === ENCR_CHACHA20_POLY1305 ? 'chacha20-poly1305' : suite.encr.keyLength === 128 ? 'aes-128-gcm' : 'aes-256-gcm';
    return new AeadSkCipher(algorithm, Buffer.from(encrKey.subarray(0, -AEAD_SALT_BYTES)), Buffer.from(encrKey.subarray(-AEAD_SALT_BYTES)), options.firstIv ?? 0n);
  }
  if (suite.encr.id === ENCR_AES_CBC) {
    const integ = suite.integ === undefined ? undefined : integSpec(suite.integ);
    if (!integ) throw new Error('AES-CBC needs an HMAC-SHA2 integrity algorithm');
    checkLength(integKey, integ.keyBytes, 'SK_a');
    return new CbcHmacSkCipher(suite.encr.keyLength === 128 ? 'aes-128-cbc' : 'aes-256-cbc', Buffer.from(encrKey), integ.hash, Buffer.from(integKey), integ.icvBytes);
  }
  throw new Error('the SK cipher is not supported');
}

type AeadAlgorithm = 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';

/**
 * IV (8) | ciphertext of (inner payloads | padding | pad length) | ICV (16). The nonce is
 * salt | IV (RFC 5282 §3.1, RFC 7634 §2); AEADs need no alignment, so no padding is sent, only
 * the Pad Length byte (RFC 5282 §3). The AAD is the IKE header and the SK payload header.
 */
class AeadSkCipher implements SkCipher {
  readonly ivBytes = 8;
  readonly icvBytes = 16;
  readonly blockBytes = 1;
  constructor(
    private readonly algorithm: AeadAlgorithm,
    private readonly key: Buffer,
    private readonly salt: Buffer,
    private nextIv: bigint,
  ) {}

  sealedLength(plaintextBytes: number): number {
    return this.ivBytes + plaintextBytes + 1 + this.icvBytes;
  }

  seal(aad: Buffer, plaintext: Buffer): Buffer {
    // A counter, not random bytes: a GCM nonce must never repeat under one key (RFC 5282 §3.1).
    if (this.nextIv > 0xffffffffffffffffn) throw new Error('SK IV space exhausted: rekey the IKE SA');
    const iv = Buffer.alloc(8);
    iv.writeBigUInt64BE(this.nextIv++);
    const cipher = crypto.createCipheriv(this.algorithm as 'aes-128-gcm', this.key, Buffer.concat([this.salt, iv]), { authTagLength: this.icvBytes });
    cipher.setAAD(aad);
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.update(Buffer.from([0])), cipher.final()]);
    return Buffer.concat([iv, ciphertext, cipher.getAuthTag()]);
  }

  open(aad: Buffer, body: Buffer): Buffer | null {
    if (body.length < this.ivBytes + 1 + this.icvBytes) return null;
    const iv = body.subarray(0, this.ivBytes);
    const ciphertext = body.subarray(this.ivBytes, body.length - this.icvBytes);
    const tag = body.subarray(body.length - this.icvBytes);
    let plaintext: Buffer;
    try {
      const decipher = crypto.createDecipheriv(this.algorithm as 'aes-128-gcm', this.key, Buffer.concat([this.salt, iv]), { authTagLength: this.icvBytes });
      decipher.setAAD(aad);
      decipher.setAuthTag(tag);
      plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    } catch {
      return null;
    }
    return stripPadding(plaintext);
  }
}

/**
 * IV (16, random: CBC needs an unpredictable one, RFC 7296 §3.14) | ciphertext of (inner
 * payloads | padding to 16 | pad length) | ICV, the ICV being the truncated HMAC of
 * aad | IV | ciphertext (the message from the IKE header to the end of the encrypted data).
 */
class CbcHmacSkCipher implements SkCipher {
  readonly ivBytes = 16;
  readonly blockBytes = 16;

  constructor(
    private readonly algorithm: 'aes-128-cbc' | 'aes-256-cbc',
    private readonly key: Buffer,
    private readonly hash: string,
    private readonly integKey: Buffer,
    readonly icvBytes: number,
  ) {}

  sealedLength(plaintextBytes: number): number {
    return this.ivBytes + paddedLength(plaintextBytes, this.blockBytes) + this.icvBytes;
  }

  seal(aad: Buffer, plaintext: Buffer): Buffer {
    const iv = crypto.randomBytes(this.ivBytes);
    const padBytes = paddedLength(plaintext.length, this.blockBytes) - plaintext.length - 1;
    const cipher = crypto.createCipheriv(this.algorithm, this.key, iv).setAutoPadding(false);
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.update(Buffer.alloc(padBytes)), cipher.update(Buffer.from([padBytes])), cipher.final()]);
    return Buffer.concat([iv, ciphertext, this.icv(aad, iv, ciphertext)]);
  }

  open(aad: Buffer, body: Buffer): Buffer | null {
    const ciphertextBytes = body.length - this.ivBytes - this.icvBytes;
    if (ciphertextBytes < this.blockBytes || ciphertextBytes % this.blockBytes !== 0) return null;
    const iv = body.subarray(0, this.ivBytes);
    const ciphertext = body.subarray(this.ivBytes, this.ivBytes + ciphertextBytes);
    const icv = body.subarray(this.ivBytes + ciphertextBytes);
    if (!crypto.timingSafeEqual(icv, this.icv(aad, iv, ciphertext))) return null;
    const decipher = crypto.createDecipheriv(this.algorithm, this.key, iv).setAutoPadding(false);
    return stripPadding(Buffer.concat([decipher.update(ciphertext), decipher.final()]));
  }

  private icv(aad: Buffer, iv: Buffer, ciphertext: Buffer): Buffer {
    return crypto.createHmac(this.hash, this.integKey).update(aad).update(iv).update(ciphertext).digest().subarray(0, this.icvBytes);
  }
}

/** Plaintext + padding + the pad length byte, rounded up to the block. */
function paddedLength(plaintextBytes: number, blockBytes: number): number {
  return Math.ceil((plaintextBytes + 1) / blockBytes) * blockBytes;
}

/** The inner payloads without padding and Pad Length; null when the pad length runs past the start. */
function stripPadding(decrypted: Buffer): Buffer | null {
  if (decrypted.length === 0) return null;
  const padBytes = decrypted[decrypted.length - 1]!;
  if (padBytes + 1 > decrypted.length) return null;
  return decrypted.subarray(0, decrypted.length - 1 - padBytes);
}
