// The peer's certificate (RFC 7296 §3.6, RFC 5280): its chain up to a trusted CA, its validity,
// its subject, and whether it stands for the identity the peer claims (§2.15: the identity is
// what AUTH binds, the certificate what proves it).
import type { X509Certificate } from 'node:crypto';
import { children, contentOf, readWhole, TAG_GENERALIZEDTIME, TAG_INTEGER, TAG_SEQUENCE, TAG_UTCTIME, type Tlv } from './der';
import { addressOf, dnEquals, ID_DER_ASN1_DN, ID_FQDN, ID_IPV4_ADDR, ID_IPV6_ADDR, ID_RFC822_ADDR, isPrintableAscii, type Identity } from './identity';

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

