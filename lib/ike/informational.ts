// INFORMATIONAL (RFC 7296 §1.4): the requests the peer sends us, dead-peer detection, and our
// Delete of the whole IKE SA. (Our Deletes of Child SAs are child-sa.ts's, that of an IKE SA a
// rekey replaced ike-rekey.ts's.)
//
//   onRequest           the peer's Deletes (§1.4.1): of the IKE SA (or of the one a rekey
//                       replaced), and of Child SAs, answered with the inbound SPIs of ours;
//                       an empty request (a liveness check) gets an empty answer
//   probe               dead-peer detection: an empty request (§1.4, §2.4); no answer after the
//                       retransmissions closes the IKE SA
//   sendDeleteAndClose  the Delete of the IKE SA with its Child SAs, sent once, and close
import type { IkeSa } from './ike-sa';
import { spiBuffer } from './payloads';
import type { SessionCore } from './session';
import { sealMessage } from './sk';
import type { IkeMessage, Payload } from './types';
import { Exchange, ProtocolId } from './wire';

export class Informational {
  constructor(private readonly session: SessionCore) {}

  /** Answers an INFORMATIONAL request that came on `on` (the current IKE SA or the previous one). */
  onRequest(m: IkeMessage, on: IkeSa): Payload[] {
    const s = this.session;
    const answer: Payload[] = [];
    for (const p of m.payloads) {
      if (p.type !== 'delete') continue;
      if (p.protocol === ProtocolId.IKE) {
        if (on === s.previous) {
          s.previous = null;
          s.emit('spis');
          return [];
        }
        s.log('info', 'peer deleted the IKE SA');
        queueMicrotask(() => s.close('deleted by the peer'));
        return [];
      }
      if (p.protocol !== ProtocolId.ESP) continue;
      const ours: Buffer[] = [];
      for (const spiBytes of p.spis) {
        if (spiBytes.length !== 4) continue;
        const spi = spiBytes.readUInt32BE(0);
        const child = s.children.byOutboundSpi(spi);
        if (!child) continue;
        ours.push(spiBuffer(child.inboundSpi));
        s.children.gone(child, s.children.current === child ? 'deleted by the peer' : 'rekeyed');
      }
      if (ours.length > 0) answer.push({ type: 'delete', critical: false, protocol: ProtocolId.ESP, spis: ours });
    }
    return answer;
  }

  /** Dead-peer detection: an empty INFORMATIONAL (§1.4); no answer after the retransmissions closes the SA. */
  probe(): void {
    const s = this.session;
    s.whenIdle(() => s.protectedRequest(Exchange.INFORMATIONAL, [], () => {}, () => s.close('dead peer: no answer to a liveness check')));
  }

  /** Deletes the IKE SA (with its Child SAs) and closes. */
  sendDeleteAndClose(reason: string): void {
    const s = this.session;
    if (!s.sa || s.state === 'closed') return s.close(reason);
    const sa = s.sa;
    const id = sa.nextRequestId++;
    const header = { initiatorSpi: sa.spiI, responderSpi: sa.spiR, version: 0x20, exchange: Exchange.INFORMATIONAL, initiator: sa.initiator, response: false, messageId: id };
    // Sent once, not retransmitted: we are going either way (§1.4.1 allows it).
    s.options.send(sealMessage(header, [{ type: 'delete', critical: false, protocol: ProtocolId.IKE, spis: [] }], sa.send), s.remote, s.localPort);
    s.close(reason);
  }
}
