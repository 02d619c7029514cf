// IKE_AUTH authentication (RFC 7296 §2.15): the signed octets, pre-shared keys, RFC 7427
// digital signatures, certificate chains, and identities (§3.5) from configuration strings to
// ID payloads and back, and against certificates. A small strict DER reader/writer does the
// ASN.1 that node:crypto does not expose (subject names, validity, AlgorithmIdentifiers).
import crypto, { type KeyObject, type X509Certificate } from 'node:crypto';
import net from 'node:net';
import { prf } from './crypto';
import { formatAddress, parseAddressLiteral } from './selectors';
import { prfOutputBytes } from './transforms';

/** AUTH methods (RFC 7296 §3.8, RFC 7427 §7). */
export const AUTH_METHOD_SHARED_KEY = 2;
export const AUTH_METHOD_DIGITAL_SIGNATURE = 14;

/** ID types (RFC 7296 §3.5). */
export const ID_IPV4_ADDR = 1;
export const ID_FQDN = 2;
export const ID_RFC822_ADDR = 3;
export const ID_IPV6_ADDR = 5;
export const ID_DER_ASN1_DN = 9;
export const ID_KEY_ID = 11;

/** An identity as the ID payload carries it: its type and its data. */
export interface Identity {
  type: number;
  data: Buffer;
}

// ---------------------------------------------------------------------------------------------
// Signed octets and pre-shared keys

/** RestOfIDPayload (RFC 7296 §2.15): ID type, three reserved bytes, the identification data. */
export function idPayloadBody(id: Identity): Buffer {
  return Buffer.concat([Buffer.from([id.type, 0, 0, 0]), id.data]);
}

/**
 * What AUTH covers (RFC 7296 §2.15): the sender's whole first message (its IKE_SA_INIT request
 * or response, as sent), the peer's nonce data, and prf(SK_p, RestOfIDPayload) with the
 * sender's SK_pi or SK_pr and the sender's own ID payload body.
 */
export function signedOctets(firstMessage: Buffer, peerNonce: Buffer, prfId: number, skP: Buffer, idBody: Buffer): Buffer {
  return Buffer.concat([firstMessage, peerNonce, prf(prfId, skP, idBody)]);
}

const KEY_PAD = Buffer.from('Key Pad for IKEv2', 'ascii');

/** AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <signed octets>) (RFC 7296 §2.15). */
export function pskAuth(prfId: number, psk: Buffer | string, octets: Buffer): Buffer {
  const secret = typeof psk === 'string' ? Buffer.from(psk, 'utf8') : psk;
  return prf(prfId, prf(prfId, secret, KEY_PAD), octets);
}

/** The peer's PSK AUTH data is the expected one (compared in constant time). */
export function verifyPskAuth(prfId: number, psk: Buffer | string, octets: Buffer, authData: Buffer): boolean {
  const expected = pskAuth(prfId, psk, octets);
  return authData.length === prfOutputBytes(prfId) && crypto.timingSafeEqual(authData, expected);
}

// ---------------------------------------------------------------------------------------------
// RFC 7427 digital signatures

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

function smallInteger(der: Buffer, tlv: Tlv): number {
  const bytes = contentOf(der, tlv);
  if (tlv.tag !== TAG_INTEGER || bytes.length === 0 || bytes.length > 2 || bytes[0]! & 0x80) throw new Error('malformed INTEGER');
  return bytes.readUIntBE(0, bytes.length);
}

// ---------------------------------------------------------------------------------------------
// Certificates

export type CertificateVerdict = { ok: true } | { ok: false; reason: string };

const MAX_INTERMEDIATES = 4;

/**
 * The peer's certificate is valid at `now` and chains up to one of the trusted CA
 * certificates, directly or through `intermediates` (the peer's other CERT payloads), each
 * link issued by a CA certificate (basicConstraints cA) whose signature verifies and which is
 * itself valid. Reasons: 'expired', 'not yet valid', 'not issued by a trusted CA', or the
 * same about a CA in the path. A trusted certificate itself is accepted as it is.
 */
export function verifyCertificateChain(cert: X509Certificate, trusted: readonly X509Certificate[], now: Date, intermediates: readonly X509Certificate[] = []): CertificateVerdict {
  const validity = validityProblem(cert, now);
  if (validity) return { ok: false, reason: validity };
  if (trusted.some((ca) => ca.raw.equals(cert.raw))) return { ok: true };
  return chainUp(cert, trusted, intermediates, now, 0);
}

function chainUp(cert: X509Certificate, trusted: readonly X509Certificate[], intermediates: readonly X509Certificate[], now: Date, depth: number): CertificateVerdict {
  let problem: string | undefined;
  for (const ca of trusted) {
    if (!issuedBy(cert, ca)) continue;
    const validity = validityProblem(ca, now);
    if (!validity) return { ok: true };
    problem = `CA certificate "${nameOf(ca)}" ${validity}`;
  }
  if (depth < MAX_INTERMEDIATES) {
    for (const issuer of intermediates) {
      if (issuer.raw.equals(cert.raw) || !issuedBy(cert, issuer)) continue;
      const validity = validityProblem(issuer, now);
      if (validity) {
        problem = `intermediate CA certificate "${nameOf(issuer)}" ${validity}`;
        continue;
      }
      const up = chainUp(issuer, trusted, intermediates, now, depth + 1);
      if (up.ok) return up;
      problem = up.reason;
    }
  }
  return { ok: false, reason: problem ?? 'not issued by a trusted CA' };
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return issuer.ca && cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function nameOf(cert: X509Certificate): string {
  return cert.subject.split('\n').join(', ');
}

function validityProblem(cert: X509Certificate, now: Date): 'expired' | 'not yet valid' | undefined {
  const { notBefore, notAfter } = certificateValidity(cert);
  if (now.getTime() < notBefore.getTime()) return 'not yet valid';
  if (now.getTime() > notAfter.getTime()) return 'expired';
  return undefined;
}

/** The TBSCertificate fields up to the subject (RFC 5280 §4.1). */
function tbsFields(raw: Buffer): { validity: Tlv; subject: Tlv } {
  const certificate = readWhole(raw, TAG_SEQUENCE, 'certificate');
  const tbs = children(raw, certificate)[0];
  if (!tbs || tbs.tag !== TAG_SEQUENCE) throw new Error('malformed certificate: no TBSCertificate');
  let fields = children(raw, tbs);
  if (fields[0]?.tag === 0xa0) fields = fields.slice(1); // [0] version
  const [serial, signature, issuer, validity, subject] = fields;
  if (serial?.tag !== TAG_INTEGER || signature?.tag !== TAG_SEQUENCE || issuer?.tag !== TAG_SEQUENCE || validity?.tag !== TAG_SEQUENCE || subject?.tag !== TAG_SEQUENCE) {
    throw new Error('malformed certificate: unexpected TBSCertificate fields');
  }
  return { validity, subject };
}

/** The subject Name of a certificate, DER, as an ID_DER_ASN1_DN carries it. */
export function certificateSubject(cert: X509Certificate): Buffer {
  const { subject } = tbsFields(cert.raw);
  return Buffer.from(cert.raw.subarray(subject.start, subject.end));
}

/** A certificate's subject as an identity (ID_DER_ASN1_DN): strongSwan's default ID with a certificate. */
export function certificateIdentity(cert: X509Certificate): Identity {
  return { type: ID_DER_ASN1_DN, data: certificateSubject(cert) };
}

/** notBefore and notAfter, read from the DER (UTCTime or GeneralizedTime, RFC 5280 §4.1.2.5). */
export function certificateValidity(cert: X509Certificate): { notBefore: Date; notAfter: Date } {
  const raw = cert.raw;
  const [notBefore, notAfter, extra] = children(raw, tbsFields(raw).validity);
  if (!notBefore || !notAfter || extra) throw new Error('malformed certificate validity');
  return { notBefore: parseTime(raw, notBefore), notAfter: parseTime(raw, notAfter) };
}

function parseTime(der: Buffer, tlv: Tlv): Date {
  const text = contentOf(der, tlv).toString('latin1');
  const m = tlv.tag === TAG_UTCTIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : tlv.tag === TAG_GENERALIZEDTIME ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : null;
  if (!m) throw new Error('malformed certificate time');
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  // RFC 5280 §4.1.2.5.1: a two-digit year below 50 is 20YY.
  const year = tlv.tag === TAG_UTCTIME ? (y < 50 ? 2000 + y : 1900 + y) : y;
  return new Date(Date.UTC(year, mo - 1, d, h, mi, s));
}

/**
 * The certificate stands for the identity: ID_FQDN and ID_RFC822_ADDR against its
 * subjectAltName dNSName / rfc822Name (a leading "*." wildcard in the certificate matches one
 * label), ID_IPV4_ADDR / ID_IPV6_ADDR against its iPAddress entries, ID_DER_ASN1_DN against
 * its subject. The subject's CN never stands in for a missing DNS name.
 */
export function identityMatches(cert: X509Certificate, id: Identity): boolean {
  try {
    switch (id.type) {
      case ID_FQDN:
        return isPrintableAscii(id.data) && cert.checkHost(id.data.toString('ascii'), { subject: 'never', partialWildcards: false, multiLabelWildcards: false, singleLabelSubdomains: false }) !== undefined;
      case ID_RFC822_ADDR:
        return isPrintableAscii(id.data) && cert.checkEmail(id.data.toString('ascii'), { subject: 'never' }) !== undefined;
      case ID_IPV4_ADDR:
      case ID_IPV6_ADDR: {
        const address = addressOf(id);
        return address !== undefined && cert.checkIP(address) !== undefined;
      }
      case ID_DER_ASN1_DN:
        return dnEquals(id.data, certificateSubject(cert));
      default:
        return false;
    }
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Identities

/**
 * An identity from configuration, strongSwan style: "fqdn:host.example" or "@host.example"
 * (FQDN), "email:user@host.example" or "user@host.example" (RFC 822), an IPv4 or IPv6 literal,
 * "C=DE, O=Example, CN=host" or "asn1dn:..." (a DN, see encodeDn), "keyid:0a1b..." or "@#0a1b..."
 * (key ID), "ipv4:"/"ipv6:" prefixes. A bare name without "=" or "@" is an FQDN. Throws on
 * anything malformed.
 */
export function parseIdentity(text: string): Identity {
  const value = text.trim();
  if (value === '') throw new Error('an identity must not be empty');
  const prefixed = /^([a-z0-9]+):(.*)$/i.exec(value);
  const kind = prefixed?.[1]?.toLowerCase();
  const rest = prefixed?.[2] ?? '';
  if (kind === 'fqdn') return fqdn(rest);
  if (kind === 'email' || kind === 'rfc822' || kind === 'userfqdn') return rfc822(rest);
  if (kind === 'ipv4' || kind === 'ipv6') {
    if (net.isIP(rest) !== (kind === 'ipv4' ? 4 : 6)) throw new Error(`"${rest}" is not an ${kind === 'ipv4' ? 'IPv4' : 'IPv6'} address`);
    return addressIdentity(rest);
  }
  if (kind === 'asn1dn') return { type: ID_DER_ASN1_DN, data: encodeDn(rest) };
  if (kind === 'keyid') return keyId(rest);
  if (value.startsWith('@#')) return keyId(value.slice(2));
  if (value.startsWith('@@')) return rfc822(value.slice(2));
  if (value.startsWith('@')) return fqdn(value.slice(1));
  if (net.isIP(value)) return addressIdentity(value);
  if (value.includes('=')) return { type: ID_DER_ASN1_DN, data: encodeDn(value) };
  if (value.includes('@')) return rfc822(value);
  return fqdn(value);
}

function fqdn(name: string): Identity {
  if (!/^[\x21-\x7e]+$/.test(name)) throw new Error(`"${name}" is not a host name (printable ASCII without spaces)`);
  return { type: ID_FQDN, data: Buffer.from(name, 'ascii') };
}

function rfc822(address: string): Identity {
  if (!/^[\x21-\x7e]+$/.test(address)) throw new Error(`"${address}" is not an e-mail address (printable ASCII without spaces)`);
  return { type: ID_RFC822_ADDR, data: Buffer.from(address, 'ascii') };
}

function keyId(hex: string): Identity {
  const digits = hex.replace(/^#/, '').replace(/^0x/i, '');
  if (!/^([0-9a-f]{2})+$/i.test(digits)) throw new Error(`"${hex}" is not a key ID (an even number of hex digits)`);
  return { type: ID_KEY_ID, data: Buffer.from(digits, 'hex') };
}

function addressIdentity(address: string): Identity {
  const { family, value } = parseAddressLiteral(address);
  const data = Buffer.from(value.toString(16).padStart(family === 4 ? 8 : 32, '0'), 'hex');
  return { type: family === 4 ? ID_IPV4_ADDR : ID_IPV6_ADDR, data };
}

function addressOf(id: Identity): string | undefined {
  if (id.type === ID_IPV4_ADDR && id.data.length === 4) return [...id.data].join('.');
  if (id.type === ID_IPV6_ADDR && id.data.length === 16) return formatAddress(BigInt(`0x${id.data.toString('hex')}`), 6);
  return undefined;
}

/** Two ID payloads name the same identity (DNs as strongSwan compares them, names case-insensitively). */
export function identitiesEqual(a: Identity, b: Identity): boolean {
  if (a.type !== b.type) return false;
  if (a.type === ID_DER_ASN1_DN) return dnEquals(a.data, b.data);
  if (a.type === ID_FQDN || a.type === ID_RFC822_ADDR) return a.data.length === b.data.length && a.data.toString('latin1').toLowerCase() === b.data.toString('latin1').toLowerCase();
  return a.data.equals(b.data);
}

/** An identity for logs: "host.example", "198.18.0.1", "C=DE, O=Example, CN=host", "keyid:0a1b". */
export function formatIdentity(id: Identity): string {
  switch (id.type) {
    case ID_FQDN:
    case ID_RFC822_ADDR:
      return printable(id.data);
    case ID_IPV4_ADDR:
    case ID_IPV6_ADDR:
      return addressOf(id) ?? `(invalid ${id.type === ID_IPV4_ADDR ? 'IPv4' : 'IPv6'} ID)`;
    case ID_DER_ASN1_DN:
      try {
        return formatDn(id.data);
      } catch {
        return '(invalid DN)';
      }
    case ID_KEY_ID:
      return `keyid:${id.data.toString('hex')}`;
    default:
      return `ID type ${id.type}: ${id.data.toString('hex')}`;
  }
}

function isPrintableAscii(data: Buffer): boolean {
  return data.length > 0 && data.every((b) => b >= 0x21 && b <= 0x7e);
}

function printable(data: Buffer): string {
  return [...data].map((b) => (b >= 0x20 && b <= 0x7e ? String.fromCharCode(b) : '?')).join('');
}

// Distinguished names ---------------------------------------------------------------------------

/** The attribute types a DN string may name (case-insensitive), with strongSwan's string types. */
const DN_ATTRIBUTES: Record<string, { oid: string; name: string; ia5?: boolean }> = {
  cn: { oid: '2.5.4.3', name: 'CN' },
  c: { oid: '2.5.4.6', name: 'C' },
  l: { oid: '2.5.4.7', name: 'L' },
  st: { oid: '2.5.4.8', name: 'ST' },
  o: { oid: '2.5.4.10', name: 'O' },
  ou: { oid: '2.5.4.11', name: 'OU' },
  dc: { oid: '0.9.2342.19200300.100.1.25', name: 'DC' },
  e: { oid: '1.2.840.113549.1.9.1', name: 'E', ia5: true },
  email: { oid: '1.2.840.113549.1.9.1', name: 'E', ia5: true },
  emailaddress: { oid: '1.2.840.113549.1.9.1', name: 'E', ia5: true },
};
const DN_NAMES = new Map(Object.values(DN_ATTRIBUTES).map((a) => [a.oid, a.name]));

// X.680 §41.4: the PrintableString characters.
const PRINTABLE_STRING = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/**
 * A DN string as strongSwan writes it ("C=DE, O=Example Org, CN=host", or "/C=DE/O=.../CN=host")
 * to DER: one RDN per attribute, in the order written; PrintableString when every character
 * allows it, else UTF8String; E (emailAddress) is an IA5String. Supports CN, O, OU, C, L, ST,
 * DC, E. Throws naming the part at fault.
 */
export function encodeDn(text: string): Buffer {
  const trimmed = text.trim();
  const separator = trimmed.startsWith('/') ? '/' : ',';
  const parts = (separator === '/' ? trimmed.slice(1) : trimmed).split(separator);
  const rdns: Buffer[] = [];
  for (const part of parts) {
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim();
    const value = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (eq < 0 || key === '') throw new Error(`DN "${text}": "${part.trim()}" is not KEY=value`);
    const attribute = Object.hasOwn(DN_ATTRIBUTES, key.toLowerCase()) ? DN_ATTRIBUTES[key.toLowerCase()] : undefined;
    if (!attribute) throw new Error(`DN "${text}": unknown attribute "${key}" (supported: CN, O, OU, C, L, ST, DC, E)`);
    if (value === '') throw new Error(`DN "${text}": ${key} has no value`);
    let tag: number;
    if (attribute.ia5) {
      if (!/^[\x00-\x7f]*$/.test(value)) throw new Error(`DN "${text}": ${key} must be ASCII`);
      tag = TAG_IA5STRING;
    } else tag = PRINTABLE_STRING.test(value) ? TAG_PRINTABLESTRING : TAG_UTF8STRING;
    rdns.push(derTlv(TAG_SET, derSequence(derOid(attribute.oid), derTlv(tag, Buffer.from(value, 'utf8')))));
  }
  return derSequence(...rdns);
}

interface Rdn {
  oid: Buffer;
  tag: number;
  value: Buffer;
}

function rdnsOf(dn: Buffer): Rdn[] {
  const top = readWhole(dn, TAG_SEQUENCE, 'DN');
  const out: Rdn[] = [];
  for (const set of children(dn, top)) {
    if (set.tag !== TAG_SET) throw new Error('malformed DN: RDN is not a SET');
    const attributes = children(dn, set);
    if (attributes.length === 0) throw new Error('malformed DN: empty RDN');
    for (const attribute of attributes) {
      const [oid, value, extra] = attribute.tag === TAG_SEQUENCE ? children(dn, attribute) : [];
      if (!oid || oid.tag !== TAG_OID || !value || extra) throw new Error('malformed DN attribute');
      out.push({ oid: contentOf(dn, oid), tag: value.tag, value: contentOf(dn, value) });
    }
  }
  return out;
}

/**
 * Two DNs are the same (strongSwan's rule): equal DER, or the same attribute types in the same
 * order with the same values, PrintableStrings (and e-mail addresses) compared without case,
 * everything else byte for byte whatever its string type. So "CN=host" written as UTF8String
 * by OpenSSL and as PrintableString by strongSwan are the same name.
 */
export function dnEquals(a: Buffer, b: Buffer): boolean {
  if (a.equals(b)) return true;
  try {
    const ra = rdnsOf(a);
    const rb = rdnsOf(b);
    return (
      ra.length === rb.length &&
      ra.every((x, i) => {
        const y = rb[i]!;
        if (!x.oid.equals(y.oid) || x.value.length !== y.value.length) return false;
        const caseless = x.tag === y.tag && (x.tag === TAG_PRINTABLESTRING || (x.tag === TAG_IA5STRING && decodeOid(x.oid) === DN_ATTRIBUTES.e!.oid));
        return caseless ? x.value.toString('latin1').toLowerCase() === y.value.toString('latin1').toLowerCase() : x.value.equals(y.value);
      })
    );
  } catch {
    return false;
  }
}

/** A DN for logs: "C=DE, O=Example, CN=host" (unknown attribute types as dotted OIDs). */
export function formatDn(dn: Buffer): string {
  return rdnsOf(dn)
    .map((r) => {
      const oid = decodeOid(r.oid);
      const value = r.tag === TAG_UTF8STRING ? r.value.toString('utf8').replace(/[\x00-\x1f\x7f]/g, '?') : printable(r.value);
      return `${DN_NAMES.get(oid) ?? oid}=${value}`;
    })
    .join(', ');
}

// ---------------------------------------------------------------------------------------------
// DER: definite lengths only, minimal length encodings, single-byte tags (X.690 §10)

const TAG_INTEGER = 0x02;
const TAG_OID = 0x06;
const TAG_UTF8STRING = 0x0c;
const TAG_PRINTABLESTRING = 0x13;
const TAG_IA5STRING = 0x16;
const TAG_UTCTIME = 0x17;
const TAG_GENERALIZEDTIME = 0x18;
const TAG_SEQUENCE = 0x30;
const TAG_SET = 0x31;

interface Tlv {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

function readTlv(der: Buffer, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new Error('truncated DER');
  const tag = der[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new Error('DER with a multi-byte tag');
  let length = der[offset + 1]!;
  let contentStart = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw new Error('DER with an indefinite or oversized length');
    if (contentStart + count > limit) throw new Error('truncated DER');
    if (der[contentStart] === 0) throw new Error('DER with a non-minimal length');
    length = der.readUIntBE(contentStart, count);
    if (length < 0x80) throw new Error('DER with a non-minimal length');
    contentStart += count;
  }
  if (contentStart + length > limit) throw new Error('truncated DER');
  return { tag, start: offset, contentStart, end: contentStart + length };
}

/** The one TLV of `der`, which must fill it exactly and have `tag`. */
function readWhole(der: Buffer, tag: number, what: string): Tlv {
  const tlv = readTlv(der, 0, der.length);
  if (tlv.tag !== tag || tlv.end !== der.length) throw new Error(`malformed ${what}`);
  return tlv;
}

function children(der: Buffer, parent: Tlv): Tlv[] {
  if ((parent.tag & 0x20) === 0) throw new Error('DER: a primitive value has no elements');
  const out: Tlv[] = [];
  for (let offset = parent.contentStart; offset < parent.end; ) {
    const child = readTlv(der, offset, parent.end);
    out.push(child);
    offset = child.end;
  }
  return out;
}

function contentOf(der: Buffer, tlv: Tlv): Buffer {
  return der.subarray(tlv.contentStart, tlv.end);
}

function derTlv(tag: number, ...contents: Buffer[]): Buffer {
  const content = Buffer.concat(contents);
  const n = content.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : n < 0x10000 ? Buffer.from([0x82, n >> 8, n & 0xff]) : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

function derSequence(...contents: Buffer[]): Buffer {
  return derTlv(TAG_SEQUENCE, ...contents);
}

function derOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const bytes: number[] = [];
  const first = [40 * arcs[0]! + arcs[1]!, ...arcs.slice(2)];
  for (const arc of first) {
    const chunk = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return derTlv(TAG_OID, Buffer.from(bytes));
}

function decodeOid(content: Buffer): string {
  const arcs: number[] = [];
  let value = 0;
  for (const b of content) {
    value = value * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(value);
      value = 0;
    }
  }
  if (content.length === 0 || (content[content.length - 1]! & 0x80) !== 0) throw new Error('malformed OID');
  const first = arcs.shift()!;
  const top = first < 80 ? Math.floor(first / 40) : 2;
  return [top, first - 40 * top, ...arcs].join('.');
}
