// Identities (RFC 7296 §3.5): from configuration strings to ID payloads and back, for logs, and
// compared with each other as strongSwan compares them. Distinguished names (ID_DER_ASN1_DN) are
// encoded from and formatted to strongSwan's "C=DE, O=Example, CN=host" strings, and compared
// attribute by attribute. How a certificate proves an identity is certificates.ts.
import net from 'node:net';
import { formatAddress, parseAddressLiteral } from './selectors';
import { children, contentOf, decodeOid, derOid, derSequence, derTlv, readWhole, TAG_IA5STRING, TAG_OID, TAG_PRINTABLESTRING, TAG_SEQUENCE, TAG_SET, TAG_UTF8STRING } from './der';

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

export function addressOf(id: Identity): string | undefined {
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

export function isPrintableAscii(data: Buffer): boolean {
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
