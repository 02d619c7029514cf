// The rekey of the IKE SA itself (RFC 7296 §1.3.2, §2.18): a CREATE_CHILD_SA exchange whose SA
// payload proposes protocol IKE with a new SPI, a fresh key exchange, keys derived from the old
// SA's SK_d. The new IKE SA takes over from the old one, which its initiator then deletes.
//
//   start          when no other request is outstanding, send the rekey (in the old SA's group)
//   send           SA (our new SPI), Ni, KE; the answer: INVALID_KE_PAYLOAD retried with the
//                  group asked for, an error retried later, else the new SA derived and switched to
//   onRequest      the responder's side: a proposal chosen, the new SA switched to once answered
//   collisions     both sides rekeying at once: the exchange with the lowest nonce made the
//                  redundant SA, which its initiator deletes (§2.8.1)
//   sendDelete     the INFORMATIONAL Delete of the old (or redundant) IKE SA, on that SA
import { randomBytes } from 'node:crypto';
import { createKeyExchange, deriveRekeyedIkeKeys } from './crypto';
import { newIkeSa, type IkeSa } from './ike-sa';
import { findNotify, firstError, lowestNonce, NONCE_BYTES, notify, payload, withSpi } from './payloads';
import { checkChosen, selectProposal } from './proposals';
import type { SessionCore } from './session';
import type { IkeMessage, IkeSuite, KeyExchange, Payload } from './types';
import { Exchange, NotifyType, ProtocolId, notifyTypeName } from './wire';

export class IkeRekey {
  private pending = false;
  /** The nonces of the peer's rekey while ours is under way (§2.8.1). */
  private collision: { nonces: [Buffer, Buffer] } | null = null;

  constructor(private readonly session: SessionCore) {}

  start(): void {
    const s = this.session;
    if (s.state !== 'established' || this.pending) return;
    this.pending = true;
    s.whenIdle(() => this.send(s.sa!.suite.dh));
  }

  private send(group: number): void {
    const s = this.session;
    const old = s.sa!;
    const spi = randomBytes(8);
    const ni = randomBytes(NONCE_BYTES);
    const kex = createKeyExchange(group);
    const payloads: Payload[] = [
      { type: 'sa', critical: false, proposals: withSpi(s.options.ikeProposals, spi, false) },
      { type: 'nonce', critical: false, data: ni },
      { type: 'ke', critical: false, group, data: kex.publicKey },
    ];
    s.log('info', 'CREATE_CHILD_SA (rekey IKE SA) sent');
    s.protectedRequest(
      Exchange.CREATE_CHILD_SA,
      payloads,
      (m) => {
        this.pending = false;
        const invalidKe = findNotify(m, NotifyType.INVALID_KE_PAYLOAD);
        if (invalidKe && invalidKe.data.length >= 2 && invalidKe.data.readUInt16BE(0) !== group) {
          this.pending = true;
          return this.send(invalidKe.data.readUInt16BE(0));
        }
        const error = firstError(m);
        if (error !== undefined) {
          s.log('warn', 'IKE SA rekey refused', { notify: notifyTypeName(error) });
          return s.timer(2000, () => this.start());
        }
        const saPayload = payload(m, 'sa');
        const nonce = payload(m, 'nonce');
        const ke = payload(m, 'ke');
        const chosen = saPayload?.proposals[0];
        const suite = chosen && saPayload!.proposals.length === 1 ? checkChosen(chosen, s.options.ikeProposals, ProtocolId.IKE) : null;
        if (!suite || !nonce || !ke || chosen!.spi.length !== 8 || ke.group !== suite.dh) return s.log('warn', 'IKE SA rekey response unusable');
        let gir: Buffer;
        try {
          gir = kex.computeSecret(ke.data);
        } catch {
          return s.log('warn', 'IKE SA rekey response has bad KE data');
        }
        const keys = deriveRekeyedIkeKeys(suite as IkeSuite, old.keys.skD, old.suite.prf, gir, ni, nonce.data, spi, chosen!.spi);
        const fresh = newIkeSa(suite as IkeSuite, keys, spi, chosen!.spi, true);
        const theirs = this.collision;
        this.collision = null;
        if (theirs && Buffer.compare(lowestNonce(ni, nonce.data), lowestNonce(...theirs.nonces)) < 0) {
          // Ours is redundant: keep the peer's new IKE SA, delete ours (§2.8.1).
          s.log('info', 'simultaneous IKE SA rekey: ours is redundant, deleting it');
          this.sendDelete(fresh);
          return;
        }
        this.switchTo(fresh);
        this.sendDelete(old);
      },
      () => s.close('no answer to the IKE SA rekey'),
    );
  }

  /** Answers a CREATE_CHILD_SA request that rekeys the IKE SA (responder). */
  onRequest(m: IkeMessage): Payload[] {
    const s = this.session;
    const old = s.sa!;
    const saPayload = payload(m, 'sa')!;
    const nonce = payload(m, 'nonce');
    const ke = payload(m, 'ke');
    if (!nonce || !ke) return [notify(NotifyType.INVALID_SYNTAX)];
    const selected = selectProposal(saPayload.proposals, withSpi(s.options.ikeProposals, Buffer.alloc(8), false), ProtocolId.IKE);
    if (!selected) return [notify(NotifyType.NO_PROPOSAL_CHOSEN)];
    const suite = selected.suite as IkeSuite;
    if (ke.group !== suite.dh) {
      const group = Buffer.alloc(2);
      group.writeUInt16BE(suite.dh);
      return [notify(NotifyType.INVALID_KE_PAYLOAD, group)];
    }
    const peerSpi = saPayload.proposals.find((p) => p.number === selected.proposal.number)!.spi;
    if (peerSpi.length !== 8) return [notify(NotifyType.INVALID_SYNTAX)];
    let kex: KeyExchange;
    let gir: Buffer;
    try {
      kex = createKeyExchange(suite.dh);
      gir = kex.computeSecret(ke.data);
    } catch {
      return [notify(NotifyType.INVALID_SYNTAX)];
    }
    const spi = randomBytes(8);
    const nr = randomBytes(NONCE_BYTES);
    const keys = deriveRekeyedIkeKeys(suite, old.keys.skD, old.suite.prf, gir, nonce.data, nr, peerSpi, spi);
    const fresh = newIkeSa(suite, keys, peerSpi, spi, false);
    if (this.pending) {
      this.collision = { nonces: [nonce.data, nr] };
      s.log('info', 'simultaneous IKE SA rekey');
    }
    // The peer deletes the old IKE SA; the new one carries on from now (its message IDs start at 0).
    queueMicrotask(() => this.switchTo(fresh));
    return [
      { type: 'sa', critical: false, proposals: [{ ...selected.proposal, spi }] },
      { type: 'nonce', critical: false, data: nr },
      { type: 'ke', critical: false, group: suite.dh, data: kex.publicKey },
    ];
  }

  private switchTo(fresh: IkeSa): void {
    const s = this.session;
    if (s.state === 'closed') return;
    s.previous = s.sa;
    s.sa = fresh;
    s.log('info', 'IKE SA rekeyed', { suite: fresh.suite });
    s.emit('spis');
    s.scheduleIkeTimers();
  }

  private sendDelete(target: IkeSa): void {
    const s = this.session;
    const onDone = () => {
      if (s.previous === target) s.previous = null;
      s.emit('spis');
    };
    s.requestOn(target, Exchange.INFORMATIONAL, [{ type: 'delete', critical: false, protocol: ProtocolId.IKE, spis: [] }], onDone, onDone);
  }
}
