// The Security Association payload (RFC 7296 §3.3): proposals (§3.3.1), their transforms
// (§3.3.2) and the transforms' attributes (§3.3.5), decoded strictly and encoded from Proposal[].
// A transform with an attribute we do not know is kept but marked (§3.3.6, DecodedTransform).
import type { Proposal, Transform } from './types';
import { ATTRIBUTE_FORMAT_TV, IKE_SPI_BYTES, LAST_SUBSTRUCTURE, MORE_PROPOSALS, MORE_TRANSFORMS, ProtocolId, TransformAttribute } from './wire';
import { bytesOf, copy, fail, isUint, MAX_PROPOSALS, MAX_TRANSFORMS, need, Reason, u16, type Body, type DecodeFailure } from './codec';

/**
 * A transform as decoded. RFC 7296 §3.3.6: a transform "that contains a Transform Attribute it
 * does not understand" MUST be considered unacceptable, while other transforms of the same type
 * are processed as usual. So the decoder does not refuse the message: it marks the transform
 * (keeping its key length, if any) and drops the attribute's bytes. Proposal selection must skip
 * transforms for which transformUnderstood() is false. The encoder refuses them.
 */
export type DecodedTransform = Transform & { unknownAttribute?: true };

/** False for a transform that carried an attribute we do not know (see DecodedTransform). */
export function transformUnderstood(transform: Transform): boolean {
  return (transform as DecodedTransform).unknownAttribute !== true;
}

// Security Association payload (§3.3): one or more proposals.
//
//                        1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   | Last Substruc |   RESERVED    |         Proposal Length       |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   ~                        SPI (variable)                         ~
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   ~                        <Transforms>                           ~
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Last Substruc is 0 on the last proposal and 2 on the others; Proposal Length covers the SPI
// and the transforms. The first proposal is number 1 and each next one is one more (§3.3.1);
// a response carries one proposal with the number it accepted, which is never 0.
// SPI Size: 0 (IKE_SA_INIT) or 8 (rekey) for IKE, 4 for AH and ESP (§3.3.1). A protocol we do
// not know is kept with whatever SPI it has; proposal selection never picks it.
export function decodeSa(critical: boolean, buf: Buffer, start: number, end: number): Body {
  const proposals: Proposal[] = [];
  let off = start;
  while (off < end) {
    if (proposals.length >= MAX_PROPOSALS) return fail(Reason.tooManyProposals);
    if (end - off < 8) return fail(Reason.proposalTruncated);
    const last = buf[off]!;
    const length = buf.readUInt16BE(off + 2);
    const number = buf[off + 4]!;
    const protocol = buf[off + 5]!;
    const spiSize = buf[off + 6]!;
    const count = buf[off + 7]!;
    if (last !== LAST_SUBSTRUCTURE && last !== MORE_PROPOSALS) return fail(Reason.proposalLast);
    if (length < 8 + spiSize || length > end - off) return fail(Reason.proposalLength);
    if (!proposalSpiSizeFits(protocol, spiSize)) return fail(Reason.proposalSpiSize);
    if (count > MAX_TRANSFORMS) return fail(Reason.tooManyTransforms);
    const transforms = decodeTransforms(buf, off + 8 + spiSize, off + length, count);
    if (!Array.isArray(transforms)) return transforms;
    proposals.push({ number, protocol, spi: copy(buf, off + 8, off + 8 + spiSize), transforms });
    off += length;
    // The marker must agree with where the proposal is: 0 exactly on the last one.
    if ((last === LAST_SUBSTRUCTURE) !== (off === end)) return fail(Reason.proposalLast);
  }
  if (proposals.length === 0) return fail(Reason.saEmpty);
  if (proposals.length === 1 ? proposals[0]!.number === 0 : proposals.some((p, i) => p.number !== i + 1)) {
    return fail(Reason.proposalNumber);
  }
  return { type: 'sa', critical, proposals };
}


function proposalSpiSizeFits(protocol: number, spiSize: number): boolean {
  switch (protocol) {
    case ProtocolId.IKE:
      return spiSize === 0 || spiSize === IKE_SPI_BYTES;
    case ProtocolId.AH:
    case ProtocolId.ESP:
      return spiSize === 4;
    default:
      return true;
  }
}

// Transform substructure (§3.3.2), inside a proposal:
//
//                        1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   | Last Substruc |   RESERVED    |        Transform Length       |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |Transform Type |   RESERVED    |          Transform ID         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   ~                      Transform Attributes                     ~
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Last Substruc is 0 on the last transform of the proposal and 3 on the others. The transforms
// must fill the proposal exactly and there must be as many as Num Transforms says.
function decodeTransforms(buf: Buffer, start: number, end: number, count: number): DecodedTransform[] | DecodeFailure {
  const transforms: DecodedTransform[] = [];
  let off = start;
  while (off < end) {
    if (transforms.length >= count) return fail(Reason.transformCount);
    if (end - off < 8) return fail(Reason.transformTruncated);
    const last = buf[off]!;
    const length = buf.readUInt16BE(off + 2);
    if (last !== LAST_SUBSTRUCTURE && last !== MORE_TRANSFORMS) return fail(Reason.transformLast);
    if (length < 8 || length > end - off) return fail(Reason.transformLength);
    const transform: DecodedTransform = { type: buf[off + 4]!, id: buf.readUInt16BE(off + 6) };
    const attributes = decodeAttributes(buf, off + 8, off + length, transform);
    if (attributes) return attributes;
    transforms.push(transform);
    off += length;
    if ((last === LAST_SUBSTRUCTURE) !== (off === end)) return fail(Reason.transformLast);
  }
  if (transforms.length !== count) return fail(Reason.transformCount);
  return transforms;
}

// Transform attribute (§3.3.5):
//
//                        1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |A|       Attribute Type        |    AF=0  Attribute Length     |
//   |F|                             |    AF=1  Attribute Value      |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                   AF=0  Attribute Value                       |
//   |                   AF=1  Not Transmitted                       |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// AF=1 (TV): the value is the 2 bytes in the header. AF=0 (TLV): Attribute Length bytes follow.
// Key Length (14) is the only attribute defined and it is TV; a TLV Key Length, or two of them,
// is malformed. Any other attribute marks the transform (see DecodedTransform).
function decodeAttributes(buf: Buffer, start: number, end: number, transform: DecodedTransform): DecodeFailure | undefined {
  let off = start;
  while (off < end) {
    if (end - off < 4) return fail(Reason.attributeTruncated);
    const word = buf.readUInt16BE(off);
    const tv = (word & ATTRIBUTE_FORMAT_TV) !== 0;
    const type = word & ~ATTRIBUTE_FORMAT_TV;
    const second = buf.readUInt16BE(off + 2);
    const length = tv ? 4 : 4 + second;
    if (length > end - off) return fail(Reason.attributeOverrun);
    if (type === TransformAttribute.KEY_LENGTH) {
      if (!tv) return fail(Reason.keyLengthFormat);
      if (transform.keyLength !== undefined) return fail(Reason.keyLengthDuplicate);
      transform.keyLength = second;
    } else {
      transform.unknownAttribute = true;
    }
    off += length;
  }
  return undefined;
}

export function encodeSa(proposals: Proposal[]): Buffer {
  need(proposals.length >= 1 && proposals.length <= MAX_PROPOSALS, `SA with ${proposals.length} proposals`);
  return Buffer.concat(
    proposals.map((proposal, i) => {
      need(isUint(proposal.number, 8) && proposal.number > 0, 'proposal number 1-255');
      need(proposals.length === 1 || proposal.number === i + 1, 'proposals numbered from 1');
      need(isUint(proposal.protocol, 8) && proposalSpiSizeFits(proposal.protocol, proposal.spi.length), 'proposal SPI size and protocol');
      need(proposal.transforms.length <= MAX_TRANSFORMS, `${proposal.transforms.length} transforms`);
      const transforms = proposal.transforms.map((transform, j) => {
        need(transformUnderstood(transform), 'a transform with an attribute we do not know cannot be sent');
        need(isUint(transform.type, 8) && isUint(transform.id, 16), 'transform type is 8 bits, ID 16');
        need(transform.keyLength === undefined || isUint(transform.keyLength, 16), 'key length is 16 bits');
        const keyLength = ATTRIBUTE_FORMAT_TV | TransformAttribute.KEY_LENGTH;
        const attributes = transform.keyLength === undefined ? [] : [...u16(keyLength), ...u16(transform.keyLength)];
        const last = j === proposal.transforms.length - 1 ? LAST_SUBSTRUCTURE : MORE_TRANSFORMS;
        return bytesOf([last, 0], u16(8 + attributes.length), [transform.type, 0], u16(transform.id), attributes);
      });
      const length = 8 + proposal.spi.length + transforms.reduce((sum, t) => sum + t.length, 0);
      need(length <= 0xffff, 'proposal too long');
      const last = i === proposals.length - 1 ? LAST_SUBSTRUCTURE : MORE_PROPOSALS;
      const counts = [proposal.number, proposal.protocol, proposal.spi.length, proposal.transforms.length];
      return bytesOf([last, 0], u16(length), counts, proposal.spi, ...transforms);
    }),
  );
}

