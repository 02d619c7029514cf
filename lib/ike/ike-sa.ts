// One IKE SA (RFC 7296 §2.14, §2.2): its SPIs, suite and keys, the SK protection each way, and
// the message IDs of both directions with the cached last response (§2.1). IKE_SA_INIT makes
// the first; each IKE SA rekey makes a new one (§2.18), message IDs from 0 again.
import { createSkCipher } from './crypto';
import type { IkeKeys, IkeSuite, SkCipher } from './types';

export interface IkeSa {
  spiI: Buffer;
  spiR: Buffer;
  suite: IkeSuite;
  keys: IkeKeys;
  send: SkCipher;
  receive: SkCipher;
  /** We are the original initiator (the I flag) of this IKE SA. */
  initiator: boolean;
  nextRequestId: number;
  expectRequestId: number;
  lastResponse: { id: number; bytes: Buffer } | null;
  createdAt: number;
}

export function newIkeSa(suite: IkeSuite, keys: IkeKeys, spiI: Buffer, spiR: Buffer, initiator: boolean): IkeSa {
  const ours = initiator ? { e: keys.skEi, a: keys.skAi } : { e: keys.skEr, a: keys.skAr };
  const theirs = initiator ? { e: keys.skEr, a: keys.skAr } : { e: keys.skEi, a: keys.skAi };
  return {
    spiI,
    spiR,
    suite,
    keys,
    send: createSkCipher(suite, ours.e, ours.a),
    receive: createSkCipher(suite, theirs.e, theirs.a),
    initiator,
    nextRequestId: 0,
    expectRequestId: 0,
    lastResponse: null,
    createdAt: Date.now(),
  };
}
