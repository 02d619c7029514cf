// The Child SA (RFC 7296 §1.3, §2.17): made in IKE_AUTH or CREATE_CHILD_SA, rekeyed, retired and
// deleted; the session keeps one in use and the ones a rekey replaced until their Delete ends.
//
//   fromResponse / accept   the initiator's and the responder's side of a new Child SA: the chosen
//                           ESP proposal, the selectors narrowed, never widened (§2.9), the keys
//                           (§2.17, with the PFS secret of a rekey)
//   install                 hands it to the data path (childUp) and arms its rekey and hard
//                           lifetime timers; a rekey we answered waits for the initiator's Delete
//                           of the old SA before sending with the new one (childActive)
//   rekey                   CREATE_CHILD_SA with REKEY_SA (§1.3.3), PFS when the ESP proposals
//                           carry a group, INVALID_KE_PAYLOAD answered with the group asked for
//   onRekeyRequest          the responder's side of a rekey
//   finishRekey             a simultaneous rekey by both sides: the one with the lowest nonce is
//                           redundant and its maker deletes it (§2.8.1)
//   delete / gone           the INFORMATIONAL Delete of a Child SA (§1.4.1) and its end
import { randomBytes } from 'node:crypto';
import type { ChildCipher, ChildSa } from './child';
import { createKeyExchange, deriveChildKeys } from './crypto';
import { findNotify, firstError, groupOf, lowestNonce, NONCE_BYTES, notify, payload, spiBuffer, withSpi } from './payloads';
import { checkChosen, childCipherOf, keyBytesOf, selectProposal } from './proposals';
import { narrow } from './selectors';
import type { SessionCore } from './session';
import type { ChildSuite, IkeMessage, Payload, TrafficSelector } from './types';
import { Exchange, NotifyType, ProtocolId, TransformType, notifyTypeName } from './wire';

/** A rekey of the Child SA we started, until its exchange ends. */
interface ChildRekey {
  old: ChildSa;
  nonces: [Buffer, Buffer] | null;
  made: ChildSa | null;
}

export class ChildSas {
  /** The Child SA in use. */
  current: ChildSa | null = null;
  /** The Child SAs a rekey replaced, until their Delete exchange ends. */
  private readonly retiring: ChildSa[] = [];
  /** Child SAs that went down: none of them is ever retiring again (its Delete is done). */
  private readonly down = new WeakSet<ChildSa>();
  /** New Child SAs of a rekey we answered, by the SA they replace: sent with once that one goes. */
  private readonly awaitingActivation = new Map<ChildSa, ChildSa>();
  private rekeying: ChildRekey | null = null;
  /** The peer's rekey of the SA ours rekeys too, until ours completes (§2.8.1). */
  private collision: { old: ChildSa; child: ChildSa; nonces: [Buffer, Buffer] } | null = null;

  constructor(private readonly session: SessionCore) {}

  /** The Child SA a response (IKE_AUTH or CREATE_CHILD_SA) completes, or why it cannot. */
  fromResponse(m: IkeMessage, inboundSpi: number, ni: Buffer, nr: Buffer, gir: Buffer | undefined, group: number): ChildSa | string {
    const options = this.session.options;
    const saPayload = payload(m, 'sa');
    const tsi = payload(m, 'tsi');
    const tsr = payload(m, 'tsr');
    if (!saPayload || saPayload.proposals.length !== 1 || !tsi || !tsr) return 'Child SA response lacks SA or traffic selectors';
    const chosen = saPayload.proposals[0]!;
    const suite = checkChosen(chosen, withSpi(options.espProposals, chosen.spi, group === 0), ProtocolId.ESP) as ChildSuite | null;
    if (!suite || chosen.spi.length !== 4) return 'Child SA response chose a proposal we did not offer';
    // The answer may narrow our selectors, never widen them (§2.9).
    if (narrow(tsi.selectors, options.localTs).length === 0 || narrow(tsr.selectors, options.remoteTs).length === 0) {
      return 'Child SA response traffic selectors are outside ours';
    }
    return this.make(suite, inboundSpi, chosen.spi.readUInt32BE(0), ni, nr, gir, tsi.selectors, tsr.selectors, true);
  }

  private make(suite: ChildSuite, inboundSpi: number, outboundSpi: number, ni: Buffer, nr: Buffer, gir: Buffer | undefined, tsi: TrafficSelector[], tsr: TrafficSelector[], weInitiated: boolean): ChildSa {
    const sa = this.session.sa!;
    const cipher: ChildCipher = childCipherOf(suite);
    const keys = deriveChildKeys(sa.suite.prf, sa.keys.skD, ni, nr, gir, keyBytesOf(suite), 0);
    return {
      inboundSpi,
      outboundSpi,
      cipher,
      esn: suite.esn,
      inboundKey: weInitiated ? keys.responderToInitiator : keys.initiatorToResponder,
      outboundKey: weInitiated ? keys.initiatorToResponder : keys.responderToInitiator,
      localTs: weInitiated ? tsi : tsr,
      remoteTs: weInitiated ? tsr : tsi,
      dhGroup: gir ? suite.dh : 0,
      createdAt: Date.now(),
    };
  }

  install(child: ChildSa, replaces: ChildSa | null, activate = true): void {
    const s = this.session;
    // A session closed meanwhile installs nothing: its SAs would outlive it in the table.
    if (s.state === 'closed') return;
    // In a simultaneous rekey the replaced SA may already be retiring (the peer's rekey put it
    // there) or already gone (the peer's Delete came first): once is enough, or its hard
    // lifetime would find it after its Delete.
    if (replaces && !this.down.has(replaces) && !this.retiring.includes(replaces)) this.retiring.push(replaces);
    if (replaces && !activate) {
      this.awaitingActivation.set(replaces, child);
      // Should the Delete never come, switch anyway: the initiator has had time to install it.
      s.timer(5000, () => this.activateReplacement(replaces));
    }
    this.current = child;
    s.log('info', replaces ? 'Child SA rekeyed' : 'Child SA installed', {
      spiIn: child.inboundSpi.toString(16),
      spiOut: child.outboundSpi.toString(16),
      cipher: child.cipher,
      esn: child.esn,
    });
    s.emit('childUp', child, replaces, activate);
    this.scheduleTimers(child);
  }

  /**
   * The responder's side of a Child SA (IKE_AUTH or CREATE_CHILD_SA): the chosen proposal and
   * narrowed selectors to answer with, the Child SA made, or the error notify to answer instead.
   */
  accept(m: IkeMessage, ni: Buffer, nr: Buffer, kex: { gir: Buffer; group: number } | undefined, inAuth: boolean, replaces: ChildSa | null = null): { payloads: Payload[]; error?: number; child?: ChildSa } {
    const s = this.session;
    const saPayload = payload(m, 'sa');
    const tsi = payload(m, 'tsi');
    const tsr = payload(m, 'tsr');
    if (!saPayload || !tsi || !tsr) return { payloads: [], error: NotifyType.INVALID_SYNTAX };
    const configured = withSpi(s.options.espProposals, Buffer.alloc(4), inAuth || !kex);
    const selected = selectProposal(saPayload.proposals, configured, ProtocolId.ESP);
    if (!selected || selected.proposal.spi.length !== 4) return { payloads: [], error: NotifyType.NO_PROPOSAL_CHOSEN };
    // TSi is the initiator's side: ours when we are the initiator... here we answer, so TSi is the peer's.
    const peerSide = narrow(tsi.selectors, s.options.remoteTs);
    const ourSide = narrow(tsr.selectors, s.options.localTs);
    if (peerSide.length === 0 || ourSide.length === 0) return { payloads: [], error: NotifyType.TS_UNACCEPTABLE };
    const suite = selected.suite as ChildSuite;
    const inboundSpi = s.options.allocateSpi();
    const outboundSpi = saPayload.proposals.find((p) => p.number === selected.proposal.number)!.spi.readUInt32BE(0);
    const child = this.make(suite, inboundSpi, outboundSpi, ni, nr, kex?.gir, peerSide, ourSide, false);
    child.dhGroup = kex ? kex.group : 0;
    const payloads: Payload[] = [
      { type: 'sa', critical: false, proposals: [{ ...selected.proposal, spi: spiBuffer(inboundSpi) }] },
      { type: 'tsi', critical: false, selectors: peerSide },
      { type: 'tsr', critical: false, selectors: ourSide },
    ];
    this.install(child, replaces, replaces === null);
    return { payloads, child };
  }

  // ---- Rekey (CREATE_CHILD_SA, §1.3.3) ---------------------------------------------------------

  /** Rekeys the Child SA (§1.3.3), with PFS when the ESP proposals carry a group. */
  rekey(): void {
    const s = this.session;
    const old = this.current;
    if (!old || s.state !== 'established' || this.rekeying) return;
    const rekey: ChildRekey = { old, nonces: null, made: null };
    this.rekeying = rekey;
    s.whenIdle(() => this.sendRekey(rekey, groupOf(s.options.espProposals[0])));
  }

  private sendRekey(rekey: ChildRekey, group: number): void {
    const s = this.session;
    if (s.state === 'closed' || this.current !== rekey.old) {
      this.rekeying = null;
      return;
    }
    const inboundSpi = s.options.allocateSpi();
    const ni = randomBytes(NONCE_BYTES);
    const kex = group ? createKeyExchange(group) : null;
    const proposals = withSpi(s.options.espProposals, spiBuffer(inboundSpi), group === 0);
    const payloads: Payload[] = [
      notify(NotifyType.REKEY_SA, Buffer.alloc(0), ProtocolId.ESP, spiBuffer(rekey.old.inboundSpi)),
      { type: 'sa', critical: false, proposals },
      { type: 'nonce', critical: false, data: ni },
      ...(kex ? [{ type: 'ke' as const, critical: false, group, data: kex.publicKey }] : []),
      { type: 'tsi', critical: false, selectors: rekey.old.localTs },
      { type: 'tsr', critical: false, selectors: rekey.old.remoteTs },
    ];
    s.log('info', 'CREATE_CHILD_SA (rekey Child SA) sent', { pfs: group });
    s.protectedRequest(
      Exchange.CREATE_CHILD_SA,
      payloads,
      (m) => {
        const invalidKe = findNotify(m, NotifyType.INVALID_KE_PAYLOAD);
        if (invalidKe && invalidKe.data.length >= 2 && invalidKe.data.readUInt16BE(0) !== group) return this.sendRekey(rekey, invalidKe.data.readUInt16BE(0));
        const error = firstError(m);
        if (error !== undefined) {
          this.rekeying = null;
          s.log('warn', 'Child SA rekey refused', { notify: notifyTypeName(error) });
          // TEMPORARY_FAILURE: the peer is busy (a collision); the next timer retries.
          return s.timer(2000, () => this.rekey());
        }
        const nonce = payload(m, 'nonce');
        const ke = payload(m, 'ke');
        if (!nonce) return this.rekeyFailed(rekey, 'rekey response lacks a Nonce');
        let gir: Buffer | undefined;
        if (kex) {
          if (!ke || ke.group !== group) return this.rekeyFailed(rekey, 'rekey response lacks the KE of the PFS group');
          try {
            gir = kex.computeSecret(ke.data);
          } catch (e) {
            return this.rekeyFailed(rekey, `bad KE data: ${(e as Error).message}`);
          }
        }
        const child = this.fromResponse(m, inboundSpi, ni, nonce.data, gir, group);
        if (typeof child === 'string') return this.rekeyFailed(rekey, child);
        rekey.nonces = [ni, nonce.data];
        rekey.made = child;
        this.rekeying = null;
        this.finishRekey(rekey, child);
      },
      () => s.close('no answer to CREATE_CHILD_SA'),
    );
  }

  private rekeyFailed(rekey: ChildRekey, reason: string): void {
    if (this.rekeying === rekey) this.rekeying = null;
    this.session.log('warn', 'Child SA rekey failed', { reason });
  }

  /** Our rekey completed: unless a simultaneous rekey by the peer won (§2.8.1), the old Child SA goes. */
  private finishRekey(rekey: ChildRekey, child: ChildSa): void {
    const s = this.session;
    const theirs = this.collision && this.collision.old === rekey.old ? this.collision : null;
    if (theirs) {
      this.collision = null;
      const ours = lowestNonce(...rekey.nonces!);
      const their = lowestNonce(...theirs.nonces);
      if (Buffer.compare(ours, their) < 0) {
        // Ours holds the lowest nonce: ours is the redundant one, and we delete it.
        s.log('info', 'simultaneous Child SA rekey: ours is redundant, deleting it');
        // Its inbound SA only: we never send with it (the peer does not either).
        this.install(child, null, false);
        this.current = theirs.child;
        // The peer's new SA stays waiting for the peer's Delete of the replaced one, as after any
        // rekey we answered: the peer installs its inbound side only when our answer to its
        // request arrives, which may be after we got here, and a packet sent with it before
        // then is one it cannot know (unknownSpi). The peer sends that Delete once it has.
        this.delete(child, 'redundant after a simultaneous rekey');
        return;
      }
      s.log('info', 'simultaneous Child SA rekey: the peer deletes its redundant one');
      // Never send with the peer's redundant SA.
      this.awaitingActivation.delete(rekey.old);
    }
    this.install(child, rekey.old);
    this.delete(rekey.old, 'rekeyed');
  }

  /** Answers a CREATE_CHILD_SA request that rekeys our Child SA (responder, §1.3.3). */
  onRekeyRequest(m: IkeMessage): Payload[] {
    const s = this.session;
    const rekeyNotify = findNotify(m, NotifyType.REKEY_SA);
    if (!rekeyNotify) return [notify(NotifyType.NO_ADDITIONAL_SAS)];
    const spi = rekeyNotify.spi.length === 4 ? rekeyNotify.spi.readUInt32BE(0) : -1;
    const old = this.current && this.current.outboundSpi === spi ? this.current : null;
    if (!old) return [notify(NotifyType.CHILD_SA_NOT_FOUND, Buffer.alloc(0), ProtocolId.ESP, rekeyNotify.spi)];
    const nonce = payload(m, 'nonce');
    if (!nonce) return [notify(NotifyType.INVALID_SYNTAX)];
    const ke = payload(m, 'ke');
    let kex: { gir: Buffer; group: number; publicKey: Buffer } | undefined;
    if (ke) {
      const supported = s.options.espProposals.some((p) => p.transforms.some((t) => t.type === TransformType.DH && t.id === ke.group));
      if (!supported) {
        const group = Buffer.alloc(2);
        group.writeUInt16BE(groupOf(s.options.espProposals[0]) || ke.group);
        return [notify(NotifyType.INVALID_KE_PAYLOAD, group)];
      }
      try {
        const ours = createKeyExchange(ke.group);
        kex = { gir: ours.computeSecret(ke.data), group: ke.group, publicKey: ours.publicKey };
      } catch {
        return [notify(NotifyType.INVALID_SYNTAX)];
      }
    }
    const nr = randomBytes(NONCE_BYTES);
    const accepted = this.accept(m, nonce.data, nr, kex, false, old);
    if (accepted.error !== undefined || !accepted.child) return [notify(accepted.error ?? NotifyType.NO_PROPOSAL_CHOSEN)];
    if (this.rekeying && this.rekeying.old === old) {
      this.collision = { old, child: accepted.child, nonces: [nonce.data, nr] };
      s.log('info', 'simultaneous Child SA rekey');
    }
    return [
      accepted.payloads[0]!,
      { type: 'nonce', critical: false, data: nr },
      ...(kex ? [{ type: 'ke' as const, critical: false, group: kex.group, data: kex.publicKey }] : []),
      ...accepted.payloads.slice(1),
    ];
  }

  // ---- Delete (INFORMATIONAL, §1.4.1) ----------------------------------------------------------

  /** Sends the Delete for a Child SA (§1.4.1); it goes down when the answer comes. */
  delete(child: ChildSa, reason: string): void {
    const s = this.session;
    s.whenIdle(() => {
      s.protectedRequest(
        Exchange.INFORMATIONAL,
        [{ type: 'delete', critical: false, protocol: ProtocolId.ESP, spis: [spiBuffer(child.inboundSpi)] }],
        () => this.gone(child, reason),
        () => {
          this.gone(child, reason);
          s.close('no answer to a Delete');
        },
      );
    });
  }

  private activateReplacement(old: ChildSa): void {
    const next = this.awaitingActivation.get(old);
    if (!next) return;
    this.awaitingActivation.delete(old);
    this.session.emit('childActive', next);
  }

  gone(child: ChildSa, reason: string): void {
    // Both ends may delete one SA at once (their hard lifetimes run out together): the peer's
    // Delete takes it down, and the answer to ours then finds it gone. It goes down once.
    if (this.down.has(child)) return;
    this.activateReplacement(child);
    const i = this.retiring.indexOf(child);
    if (i >= 0) this.retiring.splice(i, 1);
    if (this.current === child) this.current = null;
    this.down.add(child);
    this.session.emit('childDown', child, reason);
  }

  /** The Child SA, in use or retiring, that the peer knows by `spi` (our outbound SPI). */
  byOutboundSpi(spi: number): ChildSa | undefined {
    return [this.current, ...this.retiring].find((c): c is ChildSa => !!c && c.outboundSpi === spi);
  }

  /** The session closes: every Child SA goes down with it. */
  closeAll(reason: string): void {
    for (const child of [...this.retiring, ...(this.current ? [this.current] : [])]) {
      this.down.add(child);
      this.session.emit('childDown', child, reason);
    }
    this.retiring.length = 0;
    this.current = null;
  }

  private scheduleTimers(child: ChildSa): void {
    const s = this.session;
    const { childRekeyMs, childLifetimeMs } = s.options.timing;
    s.timer(s.jittered(childRekeyMs), () => {
      if (this.current === child) this.rekey();
    });
    s.timer(childLifetimeMs, () => {
      if (this.current === child || this.retiring.includes(child)) {
        s.log('warn', 'Child SA reached its hard lifetime');
        this.delete(child, 'lifetime expired');
      }
    });
  }
}
