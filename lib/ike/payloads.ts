// Building and finding payloads (RFC 7296 §3), for every exchange module of the session:
//   notify, findNotify   a Notify to send (§3.10); a notify of a type in a message
//   firstError, payload  the first error notify (types below 16384, §3.10.1); a payload by type
//   withSpi, spiBuffer   our proposals as an SA payload sends them (§3.3.1); a 4-byte ESP SPI
//   groupOf              the key exchange group of a proposal
//   lowestNonce          the lower of two nonces, which decides simultaneous rekeys (§2.8.1)
//   addressBytes         an address literal as its 4 or 16 bytes
//   natHash              NAT_DETECTION_*_IP data (§2.23)
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { addressBytes as literalBytes } from './codec-selectors';
import type { Endpoint } from './session';
import type { IkeMessage, Payload, Proposal } from './types';
import { TransformType } from './wire';

/** Bytes of each nonce we send (§2.10). */
export const NONCE_BYTES = 32;

/** The responder SPI of an IKE_SA_INIT request (§3.1). */
export const ZERO_SPI = Buffer.alloc(8);

export function notify(notifyType: number, data: Buffer = Buffer.alloc(0), protocol = 0, spi: Buffer = Buffer.alloc(0)): Payload {
  return { type: 'notify', critical: false, protocol, spi, notifyType, data };
}

export function findNotify(message: IkeMessage, notifyType: number) {
  for (const p of message.payloads) if (p.type === 'notify' && p.notifyType === notifyType) return p;
  return undefined;
}

export function firstError(message: IkeMessage): number | undefined {
  for (const p of message.payloads) if (p.type === 'notify' && p.notifyType < 16384) return p.notifyType;
  return undefined;
}

type PayloadOf<T extends Payload['type']> = Payload extends infer P ? (P extends { type: infer U } ? (T extends U ? P & { type: T } : never) : never) : never;

export function payload<T extends Payload['type']>(message: IkeMessage, type: T): PayloadOf<T> | undefined {
  return message.payloads.find((p) => p.type === type) as PayloadOf<T> | undefined;
}

/** An address literal as its 4 or 16 bytes. */
export function addressBytes(address: string): Buffer {
  return literalBytes(address, isIP(address) === 4 ? 4 : 6);
}

/** NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | address | port) (§2.23). */
export function natHash(spiI: Buffer, spiR: Buffer, endpoint: Endpoint): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(endpoint.port);
  return createHash('sha1').update(spiI).update(spiR).update(addressBytes(endpoint.address)).update(port).digest();
}

/** The smaller of two nonces, as §2.8.1 compares them (as unsigned big-endian numbers). */
export function lowestNonce(a: Buffer, b: Buffer): Buffer {
  return Buffer.compare(a, b) <= 0 ? a : b;
}

/** Our proposals as an SA payload sends them: numbered from 1, with our SPI, without DH if `dropDh`. */
export function withSpi(proposals: Proposal[], spi: Buffer, dropDh: boolean): Proposal[] {
  return proposals.map((p, i) => ({
    ...p,
    number: i + 1,
    spi,
    transforms: dropDh ? p.transforms.filter((t) => t.type !== TransformType.DH) : p.transforms,
  }));
}

export function spiBuffer(spi: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(spi >>> 0);
  return b;
}

export function groupOf(proposal: Proposal | undefined): number {
  return proposal?.transforms.find((t) => t.type === TransformType.DH)?.id ?? 0;
}
