// The little DER (X.690 §10) that IKE_AUTH needs and node:crypto does not expose: subject names
// (identity.ts), validity times (certificates.ts) and AlgorithmIdentifiers (signature.ts).
// Strict: definite lengths only, minimal length encodings, single-byte tags; anything else throws.
//   reading  readTlv, readWhole (one TLV filling a buffer), children (the TLVs inside a
//            constructed one), contentOf, decodeOid, smallInteger
//   writing  derTlv, derSequence, derOid

export const TAG_INTEGER = 0x02;
export const TAG_OID = 0x06;
export const TAG_UTF8STRING = 0x0c;
export const TAG_PRINTABLESTRING = 0x13;
export const TAG_IA5STRING = 0x16;
export const TAG_UTCTIME = 0x17;
export const TAG_GENERALIZEDTIME = 0x18;
export const TAG_SEQUENCE = 0x30;
export const TAG_SET = 0x31;

export interface Tlv {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

export function readTlv(der: Buffer, offset: number, limit: number): Tlv {
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
export function readWhole(der: Buffer, tag: number, what: string): Tlv {
  const tlv = readTlv(der, 0, der.length);
  if (tlv.tag !== tag || tlv.end !== der.length) throw new Error(`malformed ${what}`);
  return tlv;
}

export function children(der: Buffer, parent: Tlv): Tlv[] {
  if ((parent.tag & 0x20) === 0) throw new Error('DER: a primitive value has no elements');
  const out: Tlv[] = [];
  for (let offset = parent.contentStart; offset < parent.end; ) {
    const child = readTlv(der, offset, parent.end);
    out.push(child);
    offset = child.end;
  }
  return out;
}

export function contentOf(der: Buffer, tlv: Tlv): Buffer {
  return der.subarray(tlv.contentStart, tlv.end);
}

export function derTlv(tag: number, ...contents: Buffer[]): Buffer {
  const content = Buffer.concat(contents);
  const n = content.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : n < 0x10000 ? Buffer.from([0x82, n >> 8, n & 0xff]) : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

export function derSequence(...contents: Buffer[]): Buffer {
  return derTlv(TAG_SEQUENCE, ...contents);
}

export function derOid(dotted: string): Buffer {
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

export function decodeOid(content: Buffer): string {
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

/** A non-negative INTEGER of one or two bytes (RSASSA-PSS salt length and trailer field). */
export function smallInteger(der: Buffer, tlv: Tlv): number {
  const bytes = contentOf(der, tlv);
  if (tlv.tag !== TAG_INTEGER || bytes.length === 0 || bytes.length > 2 || bytes[0]! & 0x80) throw new Error('malformed INTEGER');
  return bytes.readUIntBE(0, bytes.length);
}
