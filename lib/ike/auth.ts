// IKE_AUTH authentication (RFC 7296 §2.15): what AUTH covers (the signed octets) and the
// pre-shared key AUTH (method 2). The rest of IKE_AUTH's authentication lives beside it, and is
// re-exported here as the one place to import it from:
//   identity.ts      identities (§3.5): configuration strings, ID payloads, DNs, comparison
//   signature.ts     RFC 7427 digital signatures (method 14), SIGNATURE_HASH_ALGORITHMS
//   certificates.ts  the peer's certificate: chain to a trusted CA, validity, identity match
//   der.ts           the small strict DER reader/writer underneath them
import crypto from 'node:crypto';
import { prf } from './crypto';
import type { Identity } from './identity';
import { prfOutputBytes } from './transforms';

export {
  dnEquals,
  encodeDn,
  formatDn,
  formatIdentity,
  ID_DER_ASN1_DN,
  ID_FQDN,
  ID_IPV4_ADDR,
  ID_IPV6_ADDR,
  ID_KEY_ID,
  ID_RFC822_ADDR,
  identitiesEqual,
  parseIdentity,
  type Identity,
} from './identity';
export {
  decodeHashAlgorithms,
  encodeHashAlgorithms,
  HASH_IDENTITY,
  HASH_SHA1,
  HASH_SHA2_256,
  HASH_SHA2_384,
  HASH_SHA2_512,
  signatureAuth,
  signatureHashAlgorithms,
  SUPPORTED_HASH_ALGORITHMS,
  verifySignatureAuth,
  type SignatureOptions,
  type Verdict,
} from './signature';
export { certificateIdentity, certificateSubject, certificateValidity, identityMatches, verifyCertificateChain, type CertificateVerdict } from './certificates';


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
