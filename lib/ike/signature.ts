// RFC 7427 digital signature authentication (AUTH method 14): the AUTH data (an
// AlgorithmIdentifier and the signature over the signed octets of RFC 7296 §2.15), made with
// ECDSA, Ed25519 (RFC 8420) or RSA (PKCS#1 v1.5 or PSS) and checked against the peer's key, and
// the SIGNATURE_HASH_ALGORITHMS notify (RFC 7427 §4) that says which hashes each side accepts.
import crypto, { type KeyObject } from 'node:crypto';
import { children, contentOf, decodeOid, derOid, derSequence, derTlv, readWhole, smallInteger, TAG_INTEGER, TAG_OID, TAG_SEQUENCE, type Tlv } from './der';

/** Hash algorithm identifiers of the SIGNATURE_HASH_ALGORITHMS notify (RFC 7427 §4, RFC 8420). */
export const HASH_SHA1 = 1;
export const HASH_SHA2_256 = 2;
export const HASH_SHA2_384 = 3;
export const HASH_SHA2_512 = 4;
export const HASH_IDENTITY = 5;
/** What we verify, and so announce (Identity: Ed25519 signs the octets themselves). */
export const SUPPORTED_HASH_ALGORITHMS: readonly number[] = [HASH_SHA2_256, HASH_SHA2_384, HASH_SHA2_512, HASH_IDENTITY];

/** The data of a SIGNATURE_HASH_ALGORITHMS notify (type 16431): 2-byte identifiers. */
export function encodeHashAlgorithms(ids: readonly number[] = SUPPORTED_HASH_ALGORITHMS): Buffer {
  const out = Buffer.alloc(2 * ids.length);
  ids.forEach((id, i) => out.writeUInt16BE(id, 2 * i));
  return out;
}

/** The SIGNATURE_HASH_ALGORITHMS notify data we send: the hashes we verify. */
export function signatureHashAlgorithms(): Buffer {
  return encodeHashAlgorithms(SUPPORTED_HASH_ALGORITHMS);
}

/** The identifiers of a received SIGNATURE_HASH_ALGORITHMS notify; throws on an odd length. */
export function decodeHashAlgorithms(data: Buffer): number[] {
  if (data.length % 2 !== 0) throw new Error(`SIGNATURE_HASH_ALGORITHMS data must be 2-byte identifiers, got ${data.length} bytes`);
  const ids: number[] = [];
  for (let i = 0; i < data.length; i += 2) ids.push(data.readUInt16BE(i));
  return ids;
}

type Hash = 'sha256' | 'sha384' | 'sha512';
const HASH_ID: Record<Hash, number> = { sha256: HASH_SHA2_256, sha384: HASH_SHA2_384, sha512: HASH_SHA2_512 };
const HASH_OID: Record<Hash, string> = { sha256: '2.16.840.1.101.3.4.2.1', sha384: '2.16.840.1.101.3.4.2.2', sha512: '2.16.840.1.101.3.4.2.3' };
const ECDSA_OID: Record<Hash, string> = { sha256: '1.2.840.10045.4.3.2', sha384: '1.2.840.10045.4.3.3', sha512: '1.2.840.10045.4.3.4' };
const RSA_PKCS1_OID: Record<Hash, string> = { sha256: '1.2.840.113549.1.1.11', sha384: '1.2.840.113549.1.1.12', sha512: '1.2.840.113549.1.1.13' };
const OID_RSASSA_PSS = '1.2.840.113549.1.1.10';
const OID_MGF1 = '1.2.840.113549.1.1.8';
const OID_ED25519 = '1.3.101.112';
const HASH_BYTES: Record<Hash, number> = { sha256: 32, sha384: 48, sha512: 64 };

type Scheme = { kind: 'ecdsa' | 'rsa-pkcs1'; hash: Hash } | { kind: 'rsa-pss'; hash: Hash; saltLength: number } | { kind: 'ed25519' };

export interface SignatureOptions {
  /** The peer's SIGNATURE_HASH_ALGORITHMS; the hash is chosen among them. */
  peerHashes?: readonly number[];
  /** RSA keys: sign RSASSA-PSS instead of PKCS#1 v1.5 (rsa-pss keys always do). */
  rsaPss?: boolean;
}

/**
 * AUTH data for method 14 (RFC 7427 §3): the AlgorithmIdentifier's length (1 byte), the
 * AlgorithmIdentifier (DER), the signature. ECDSA signs with the curve's hash (P-256: SHA-256)
 * in the DER form of X.509; Ed25519 signs the octets themselves (RFC 8420); RSA signs PKCS#1
 * v1.5 or PSS with SHA-256. Throws when the peer accepts no hash this key can sign with.
 */
export function signatureAuth(privateKey: KeyObject, octets: Buffer, options: SignatureOptions = {}): Buffer {
  const scheme = signingScheme(privateKey, options);
  let signature: Buffer;
  if (scheme.kind === 'ed25519') signature = crypto.sign(null, octets, privateKey);
  else if (scheme.kind === 'ecdsa') signature = crypto.sign(scheme.hash, octets, { key: privateKey, dsaEncoding: 'der' });
  else if (scheme.kind === 'rsa-pss') signature = crypto.sign(scheme.hash, octets, { key: privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: scheme.saltLength });
  else signature = crypto.sign(scheme.hash, octets, { key: privateKey, padding: crypto.constants.RSA_PKCS1_PADDING });
  const algorithm = algorithmIdentifier(scheme);
  return Buffer.concat([Buffer.from([algorithm.length]), algorithm, signature]);
}

export type Verdict = { ok: true; algorithm: string } | { ok: false; reason: string };

/**
 * Checks method-14 AUTH data against the peer's public key (from its certificate): the
 * AlgorithmIdentifier must be one we know (ecdsa-with-SHA256/384/512, Ed25519,
 * sha256/384/512WithRSAEncryption, RSASSA-PSS with SHA-2 and MGF1 of the same hash) and fit
 * the key, and the signature must verify over the signed octets.
 */
export function verifySignatureAuth(publicKey: KeyObject, authData: Buffer, octets: Buffer): Verdict {
  if (authData.length < 2 || authData[0]! < 2 || 1 + authData[0]! >= authData.length) return { ok: false, reason: 'malformed AUTH data (RFC 7427 §3)' };
  const algorithmDer = authData.subarray(1, 1 + authData[0]!);
  const signature = authData.subarray(1 + authData[0]!);
  let scheme: Scheme;
  try {
    scheme = parseAlgorithmIdentifier(algorithmDer);
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  const name = schemeName(scheme);
  const keyType = publicKey.asymmetricKeyType;
  const fits =
    (scheme.kind === 'ecdsa' && keyType === 'ec') ||
    (scheme.kind === 'ed25519' && keyType === 'ed25519') ||
    (scheme.kind === 'rsa-pkcs1' && keyType === 'rsa') ||
    (scheme.kind === 'rsa-pss' && (keyType === 'rsa' || keyType === 'rsa-pss'));
  if (!fits) return { ok: false, reason: `signature algorithm ${name} does not fit the peer's ${keyType} key` };
  let good = false;
  try {
    if (scheme.kind === 'ed25519') good = crypto.verify(null, octets, publicKey, signature);
    else if (scheme.kind === 'ecdsa') good = crypto.verify(scheme.hash, octets, { key: publicKey, dsaEncoding: 'der' }, signature);
    else if (scheme.kind === 'rsa-pss') good = crypto.verify(scheme.hash, octets, { key: publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: scheme.saltLength }, signature);
    else good = crypto.verify(scheme.hash, octets, { key: publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    good = false;
  }
  return good ? { ok: true, algorithm: name } : { ok: false, reason: `${name} signature does not verify` };
}

function signingScheme(key: KeyObject, options: SignatureOptions): Scheme {
  const peer = options.peerHashes;
  const accepts = (hash: Hash) => !peer || peer.includes(HASH_ID[hash]);
  const pick = (preferred: Hash): Hash => {
    const hash = [preferred, 'sha256', 'sha384', 'sha512'].find((h) => accepts(h as Hash)) as Hash | undefined;
    if (!hash) throw new Error('the peer accepts no SHA-2 hash for signatures (SIGNATURE_HASH_ALGORITHMS)');
    return hash;
  };
  switch (key.asymmetricKeyType) {
    case 'ed25519':
      if (peer && !peer.includes(HASH_IDENTITY)) throw new Error('the peer does not accept Ed25519 signatures (no Identity in SIGNATURE_HASH_ALGORITHMS, RFC 8420)');
      return { kind: 'ed25519' };
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      return { kind: 'ecdsa', hash: pick(curve === 'secp384r1' ? 'sha384' : curve === 'secp521r1' ? 'sha512' : 'sha256') };
    }
    case 'rsa':
    case 'rsa-pss': {
      const hash = pick('sha256');
      if (options.rsaPss || key.asymmetricKeyType === 'rsa-pss') return { kind: 'rsa-pss', hash, saltLength: HASH_BYTES[hash] };
      return { kind: 'rsa-pkcs1', hash };
    }
    default:
      throw new Error(`${key.asymmetricKeyType ?? 'this'} keys cannot sign IKE AUTH payloads here`);
  }
}

function schemeName(s: Scheme): string {
  if (s.kind === 'ed25519') return 'Ed25519';
  const hash = s.hash.toUpperCase();
  if (s.kind === 'ecdsa') return `ecdsa-with-${hash}`;
  if (s.kind === 'rsa-pkcs1') return `${s.hash}WithRSAEncryption`;
  return `RSASSA-PSS/${hash}`;
}

const NULL_DER = Buffer.from([0x05, 0x00]);

function hashAlgorithmIdentifier(hash: Hash): Buffer {
  return derSequence(derOid(HASH_OID[hash]), NULL_DER);
}

/** The AlgorithmIdentifier of RFC 7427 Appendix A for a scheme. */
function algorithmIdentifier(s: Scheme): Buffer {
  switch (s.kind) {
    case 'ed25519':
      return derSequence(derOid(OID_ED25519)); // RFC 8410 §3: parameters absent
    case 'ecdsa':
      return derSequence(derOid(ECDSA_OID[s.hash])); // RFC 5758 §3.2: parameters absent
    case 'rsa-pkcs1':
      return derSequence(derOid(RSA_PKCS1_OID[s.hash]), NULL_DER);
    case 'rsa-pss':
      return derSequence(
        derOid(OID_RSASSA_PSS),
        derSequence(
          derTlv(0xa0, hashAlgorithmIdentifier(s.hash)),
          derTlv(0xa1, derSequence(derOid(OID_MGF1), hashAlgorithmIdentifier(s.hash))),
          derTlv(0xa2, derTlv(TAG_INTEGER, Buffer.from([s.saltLength]))),
        ),
      );
  }
}

function parseAlgorithmIdentifier(der: Buffer): Scheme {
  const top = readWhole(der, TAG_SEQUENCE, 'AlgorithmIdentifier');
  const [oidTlv, params, extra] = children(der, top);
  if (!oidTlv || oidTlv.tag !== TAG_OID || extra) throw new Error('malformed AlgorithmIdentifier in AUTH data');
  const oid = decodeOid(contentOf(der, oidTlv));
  const absent = params === undefined;
  const absentOrNull = absent || (params.tag === 0x05 && params.end === params.contentStart);
  for (const hash of Object.keys(HASH_OID) as Hash[]) {
    if (oid === ECDSA_OID[hash] && absent) return { kind: 'ecdsa', hash };
    if (oid === RSA_PKCS1_OID[hash] && absentOrNull) return { kind: 'rsa-pkcs1', hash };
  }
  if (oid === OID_ED25519 && absent) return { kind: 'ed25519' };
  if (oid === OID_RSASSA_PSS && params?.tag === TAG_SEQUENCE) return parsePssParameters(der, params);
  throw new Error(`unsupported signature algorithm ${oid}`);
}

/** RSASSA-PSS-params (RFC 4055 §3.1): SHA-2 only, MGF1 with the same hash, trailer 1. */
function parsePssParameters(der: Buffer, params: Tlv): Scheme {
  let hash: Hash | undefined;
  let mgfHash: Hash | undefined;
  let saltLength = 20;
  for (const field of children(der, params)) {
    const [inner, extra] = children(der, field);
    if (!inner || extra) throw new Error('malformed RSASSA-PSS parameters');
    if (field.tag === 0xa0) hash = hashOfIdentifier(der, inner);
    else if (field.tag === 0xa1) {
      const [mgfOid, mgfParams, more] = children(der, inner);
      if (!mgfOid || mgfOid.tag !== TAG_OID || decodeOid(contentOf(der, mgfOid)) !== OID_MGF1 || !mgfParams || more) throw new Error('RSASSA-PSS with a mask generation function other than MGF1');
      mgfHash = hashOfIdentifier(der, mgfParams);
    } else if (field.tag === 0xa2) saltLength = smallInteger(der, inner);
    else if (field.tag === 0xa3) {
      if (smallInteger(der, inner) !== 1) throw new Error('RSASSA-PSS with a trailer field other than 1');
    } else throw new Error('malformed RSASSA-PSS parameters');
  }
  if (!hash || mgfHash !== hash) throw new Error('RSASSA-PSS needs SHA-256/384/512 with MGF1 of the same hash');
  return { kind: 'rsa-pss', hash, saltLength };
}

function hashOfIdentifier(der: Buffer, tlv: Tlv): Hash {
  const [oidTlv, params, extra] = tlv.tag === TAG_SEQUENCE ? children(der, tlv) : [];
  if (!oidTlv || oidTlv.tag !== TAG_OID || extra || (params && !(params.tag === 0x05 && params.end === params.contentStart))) throw new Error('malformed hash AlgorithmIdentifier');
  const oid = decodeOid(contentOf(der, oidTlv));
  const hash = (Object.keys(HASH_OID) as Hash[]).find((h) => HASH_OID[h] === oid);
  if (!hash) throw new Error(`unsupported hash ${oid}`);
  return hash;
}

