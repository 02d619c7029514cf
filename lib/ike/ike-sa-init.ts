// IKE_SA_INIT (RFC 7296 §1.2): the exchange that makes the IKE SA, both sides of it.
//
// Initiator, in order:
//   1. start        a fresh SPI, the first proposal's key exchange group
//   2. sendRequest  SA, KE, Ni, NAT detection (§2.23), SIGNATURE_HASH_ALGORITHMS with
//                   certificates (RFC 7427 §4); a COOKIE first when the responder asked (§2.6)
//   3. onResponse   a COOKIE: the same request again with it (§2.6); INVALID_KE_PAYLOAD: again
//                   with the group asked for, if we offer it (§1.2); INIT_RETRIES at most.
//                   Else the chosen proposal checked, the keys derived (§2.14), the move to the
//                   NAT-T port, and on to IKE_AUTH (ike-auth.ts)
// Responder:
//   accept          chooses a proposal, asks for another group with INVALID_KE_PAYLOAD, derives
//                   the keys, answers with SA, KE, Nr, NAT detection and CERTREQ, and waits
//                   (half-open) for IKE_AUTH
import { randomBytes } from 'node:crypto';
import { createKeyExchange, deriveIkeKeys } from './crypto';
import { encodeMessage } from './message';
import { checkChosen, selectProposal } from './proposals';
import type { Endpoint, SessionCore } from './session';
import { certRequest } from './ike-auth';
import { newIkeSa } from './ike-sa';
import { findNotify, firstError, groupOf, natHash, NONCE_BYTES, notify, payload, withSpi, ZERO_SPI } from './payloads';
import { signatureHashAlgorithms } from './signature';
import type { IkeMessage, IkeSuite, KeyExchange, Payload } from './types';
import { Exchange, NotifyType, ProtocolId, TransformType, notifyTypeName } from './wire';

/** How many INVALID_KE_PAYLOAD or COOKIE retries one IKE_SA_INIT may take. */
const INIT_RETRIES = 3;

/** The first message of each side and both nonces: what AUTH signs (§2.15). */
export interface InitExchange {
  ni: Buffer;
  nr: Buffer;
  request: Buffer;
  response: Buffer;
  kex: KeyExchange;
}

export class IkeSaInit {
  /** Our SPI as initiator, before the IKE SA exists. */
  spi: Buffer | null = null;
  private group = 0;
  private retries = 0;
  private cookie: Buffer | null = null;
  private peerSignatureHashes = false;

  constructor(private readonly session: SessionCore) {}

  /** Starts the IKE SA (initiator). */
  start(): void {
    this.spi = randomBytes(8);
    this.group = groupOf(this.session.options.ikeProposals[0]);
    this.sendRequest();
  }

  /** `again`: the Ni and KE of the request a COOKIE answered, sent unchanged (§2.6). */
  private sendRequest(again?: { ni: Buffer; kex: KeyExchange }): void {
    const s = this.session;
    const spiI = this.spi!;
    const kex = again?.kex ?? createKeyExchange(this.group);
    const ni = again?.ni ?? randomBytes(NONCE_BYTES);
    const payloads: Payload[] = [];
    if (this.cookie) payloads.push(notify(NotifyType.COOKIE, this.cookie));
    payloads.push(
      { type: 'sa', critical: false, proposals: withSpi(s.options.ikeProposals, Buffer.alloc(0), false) },
      { type: 'ke', critical: false, group: this.group, data: kex.publicKey },
      { type: 'nonce', critical: false, data: ni },
      ...this.natNotifies(spiI, ZERO_SPI),
    );
    if (s.options.auth.method === 'certificate') payloads.push(notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, signatureHashAlgorithms()));
    const header = { initiatorSpi: spiI, responderSpi: ZERO_SPI, version: 0x20, exchange: Exchange.IKE_SA_INIT, initiator: true, response: false, messageId: 0 };
    const bytes = encodeMessage(header, payloads);
    s.log('info', 'IKE_SA_INIT request sent', { group: this.group });
    s.request({
      sa: null,
      exchange: Exchange.IKE_SA_INIT,
      id: 0,
      bytes,
      onResponse: (m, raw) => this.onResponse(m, raw, { ni, request: bytes, kex }),
      onGiveUp: () => s.close('no answer to IKE_SA_INIT'),
    });
  }

  /** NAT detection notifies (§2.23). With UDP-encapsulated ESP the source hash is made not to match, as strongSwan's `encap = yes` does: both sides then see a NAT and move to the NAT-T port. */
  private natNotifies(spiI: Buffer, spiR: Buffer): Payload[] {
    const s = this.session;
    const source = s.options.natPort !== null ? randomBytes(20) : natHash(spiI, spiR, { address: s.options.local.address, port: s.localPort });
    return [notify(NotifyType.NAT_DETECTION_SOURCE_IP, source), notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natHash(spiI, spiR, s.remote))];
  }

  private onResponse(m: IkeMessage, raw: Buffer, sent: { ni: Buffer; request: Buffer; kex: KeyExchange }): void {
    const s = this.session;
    const cookie = findNotify(m, NotifyType.COOKIE);
    if (cookie) {
      if (++this.retries > INIT_RETRIES) return s.close('responder keeps asking for a COOKIE');
      this.cookie = cookie.data;
      s.log('info', 'responder asked for a COOKIE: retrying');
      // "with ... all other payloads unchanged" (§2.6): the responder's cookie may cover Ni (the
      // RFC's own example, and ours in manager.ts, hash Ni | IPi | SPIi), so a fresh nonce
      // would never match it.
      return this.sendRequest({ ni: sent.ni, kex: sent.kex });
    }
    const invalidKe = findNotify(m, NotifyType.INVALID_KE_PAYLOAD);
    if (invalidKe) {
      const wanted = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
      const offered = s.options.ikeProposals.some((p) => p.transforms.some((t) => t.type === TransformType.DH && t.id === wanted));
      if (!offered || wanted === this.group || ++this.retries > INIT_RETRIES) return s.close(`INVALID_KE_PAYLOAD for group ${wanted}, which we do not offer`);
      s.log('info', 'responder wants another key exchange group: retrying', { group: wanted });
      this.group = wanted;
      return this.sendRequest();
    }
    const error = firstError(m);
    if (error !== undefined) return s.close(`IKE_SA_INIT refused: ${notifyTypeName(error)}`);
    const saPayload = payload(m, 'sa');
    const ke = payload(m, 'ke');
    const nonce = payload(m, 'nonce');
    if (!saPayload || !ke || !nonce) return s.close('IKE_SA_INIT response lacks SA, KE or Nonce');
    const suite = saPayload.proposals.length === 1 ? checkChosen(saPayload.proposals[0]!, s.options.ikeProposals, ProtocolId.IKE) : null;
    if (!suite) return s.close('IKE_SA_INIT response chose a proposal we did not offer');
    if (ke.group !== suite.dh || suite.dh !== sent.kex.group) return s.close('IKE_SA_INIT response KE group differs from the chosen proposal');
    let gir: Buffer;
    try {
      gir = sent.kex.computeSecret(ke.data);
    } catch (e) {
      return s.close(`bad KE data: ${(e as Error).message}`);
    }
    const spiI = this.spi!;
    const spiR = m.header.responderSpi;
    s.sa = newIkeSa(suite, deriveIkeKeys(suite, sent.ni, nonce.data, gir, spiI, spiR), spiI, spiR, true);
    s.sa.nextRequestId = 1;
    s.init = { ni: sent.ni, nr: nonce.data, request: sent.request, response: raw, kex: sent.kex };
    this.peerSignatureHashes = !!findNotify(m, NotifyType.SIGNATURE_HASH_ALGORITHMS);
    this.floatToNatPort();
    s.emit('spis');
    s.auth.sendRequest();
  }

  private floatToNatPort(): void {
    const s = this.session;
    if (s.options.natPort === null) return;
    s.localPort = s.options.natPort;
    if (s.remote.port === s.options.local.port) s.remote = { address: s.remote.address, port: s.options.natPort };
  }

  /**
   * Answers an IKE_SA_INIT request (responder). Returns false when no IKE SA results (the
   * answer was an error or INVALID_KE_PAYLOAD): the manager then forgets the session.
   */
  accept(m: IkeMessage, raw: Buffer, from: Endpoint, localPort: number): boolean {
    const s = this.session;
    s.remote = { ...from };
    s.localPort = localPort;
    const saPayload = payload(m, 'sa');
    const ke = payload(m, 'ke');
    const nonce = payload(m, 'nonce');
    const header = { initiatorSpi: m.header.initiatorSpi, responderSpi: ZERO_SPI, version: 0x20, exchange: Exchange.IKE_SA_INIT, initiator: false, response: true, messageId: 0 };
    const refuse = (notifyType: number, data?: Buffer, why?: string): false => {
      s.options.send(encodeMessage(header, [notify(notifyType, data)]), s.remote, s.localPort);
      s.log('warn', 'IKE_SA_INIT refused', { notify: notifyTypeName(notifyType), reason: why });
      s.state = 'closed';
      return false;
    };
    if (!saPayload || !ke || !nonce) return refuse(NotifyType.INVALID_SYNTAX, undefined, 'SA, KE or Nonce missing');
    const selected = selectProposal(saPayload.proposals, s.options.ikeProposals, ProtocolId.IKE);
    if (!selected) return refuse(NotifyType.NO_PROPOSAL_CHOSEN, undefined, 'no common IKE proposal');
    const suite = selected.suite as IkeSuite;
    if (ke.group !== suite.dh) {
      const group = Buffer.alloc(2);
      group.writeUInt16BE(suite.dh);
      return refuse(NotifyType.INVALID_KE_PAYLOAD, group, `initiator sent group ${ke.group}, we chose ${suite.dh}`);
    }
    let kex: KeyExchange;
    let gir: Buffer;
    try {
      kex = createKeyExchange(suite.dh);
      gir = kex.computeSecret(ke.data);
    } catch (e) {
      return refuse(NotifyType.INVALID_SYNTAX, undefined, `bad KE data: ${(e as Error).message}`);
    }
    const spiI = m.header.initiatorSpi;
    const spiR = randomBytes(8);
    const nr = randomBytes(NONCE_BYTES);
    s.sa = newIkeSa(suite, deriveIkeKeys(suite, nonce.data, nr, gir, spiI, spiR), spiI, spiR, false);
    s.sa.expectRequestId = 1;
    this.peerSignatureHashes = !!findNotify(m, NotifyType.SIGNATURE_HASH_ALGORITHMS);
    const payloads: Payload[] = [
      { type: 'sa', critical: false, proposals: [selected.proposal] },
      { type: 'ke', critical: false, group: suite.dh, data: kex.publicKey },
      { type: 'nonce', critical: false, data: nr },
      ...this.natNotifies(spiI, spiR),
      ...certRequest(s.options.auth),
    ];
    if (s.options.auth.method === 'certificate') payloads.push(notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, signatureHashAlgorithms()));
    const response = encodeMessage({ ...header, responderSpi: spiR }, payloads);
    s.init = { ni: nonce.data, nr, request: raw, response, kex };
    s.sa.lastResponse = { id: 0, bytes: response };
    s.options.send(response, s.remote, s.localPort);
    s.log('info', 'IKE_SA_INIT answered', { suite });
    this.armHalfOpenTimeout();
    return true;
  }

  /** A half-open SA whose IKE_AUTH never comes is dropped (strongSwan's half_open_timeout). */
  private armHalfOpenTimeout(): void {
    const s = this.session;
    const timeout = s.options.timing.retransmitTimeoutMs * 2 ** s.options.timing.retransmitTries;
    s.timer(Math.min(timeout, 30000), () => {
      if (s.state === 'connecting') s.close('half-open: no IKE_AUTH arrived');
    });
  }
}
