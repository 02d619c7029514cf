// IKE_AUTH (RFC 7296 §1.2, §2.15): each side proves its identity over the IKE_SA_INIT messages,
// and the first Child SA comes with it.
//
// Initiator, in order:
//   1. sendRequest      IDi, CERT and CERTREQ with certificates, AUTH, IDr when configured,
//                       INITIAL_CONTACT, the ESP proposals and our traffic selectors (§2.9)
//   2. onResponse       the responder authenticated (authenticatePeer), the IKE SA established,
//                       the Child SA made from the answer (child-sa.ts); any failure deletes the SA
// Responder:
//   onRequest           the initiator authenticated, our IDr and AUTH, the Child SA accepted with
//                       narrowed selectors (child-sa.ts), or the notify that refuses it
// Both: authenticatePeer checks the peer's ID against the configured remoteId, its certificate
// chain and the certificate's identity (certificates.ts), and its AUTH: a pre-shared key MIC
// (auth.ts) or an RFC 7427 signature (signature.ts).
import { X509Certificate, createHash } from 'node:crypto';
import { idPayloadBody, pskAuth, signedOctets, verifyPskAuth } from './auth';
import { identityMatches, verifyCertificateChain } from './certificates';
import { identitiesEqual, type Identity } from './identity';
import { firstError, notify, payload, spiBuffer, withSpi } from './payloads';
import type { LocalAuth, SessionCore } from './session';
import { signatureAuth, verifySignatureAuth } from './signature';
import type { IkeMessage, Payload } from './types';
import { AuthMethod, CertEncoding, Exchange, NotifyType, notifyTypeName } from './wire';

/** The CERTREQ we send with certificates: the SHA-1 hashes of our CAs' public keys (§3.7). */
export function certRequest(auth: LocalAuth): Payload[] {
  if (auth.method !== 'certificate') return [];
  const hashes = auth.ca.map((c) => createHash('sha1').update(c.publicKey.export({ type: 'spki', format: 'der' })).digest());
  return [{ type: 'certreq', critical: false, encoding: CertEncoding.X509_SIGNATURE, data: Buffer.concat(hashes) }];
}

export class IkeAuth {
  constructor(private readonly session: SessionCore) {}

  /** Our ID, CERT and AUTH payloads over our first message, the peer's nonce and our SK_p (§2.15). */
  private ourPayloads(firstMessage: Buffer, peerNonce: Buffer, ourSkP: Buffer): Payload[] {
    const s = this.session;
    const sa = s.sa!;
    const idType = sa.initiator ? 'idi' : 'idr';
    const id = s.options.localId;
    const octets = signedOctets(firstMessage, peerNonce, sa.suite.prf, ourSkP, idPayloadBody(id));
    const out: Payload[] = [{ type: idType, critical: false, idType: id.type, data: id.data }];
    const auth = s.options.auth;
    if (auth.method === 'psk') {
      out.push({ type: 'auth', critical: false, method: AuthMethod.SHARED_KEY_MIC, data: pskAuth(sa.suite.prf, auth.psk, octets) });
    } else {
      out.push({ type: 'cert', critical: false, encoding: CertEncoding.X509_SIGNATURE, data: auth.certificate.raw });
      out.push({ type: 'auth', critical: false, method: AuthMethod.DIGITAL_SIGNATURE, data: signatureAuth(auth.privateKey, octets) });
    }
    return out;
  }

  sendRequest(): void {
    const s = this.session;
    const sa = s.sa!;
    const init = s.init!;
    const inboundSpi = s.options.allocateSpi();
    const idAuth = this.ourPayloads(init.request, init.nr, sa.keys.skPi);
    const payloads: Payload[] = [idAuth[0]!, ...certRequest(s.options.auth), ...idAuth.slice(1)];
    if (s.options.remoteId) payloads.splice(1, 0, { type: 'idr', critical: false, idType: s.options.remoteId.type, data: s.options.remoteId.data });
    payloads.push(
      notify(NotifyType.INITIAL_CONTACT),
      { type: 'sa', critical: false, proposals: withSpi(s.options.espProposals, spiBuffer(inboundSpi), true) },
      { type: 'tsi', critical: false, selectors: s.options.localTs },
      { type: 'tsr', critical: false, selectors: s.options.remoteTs },
    );
    s.log('info', 'IKE_AUTH request sent');
    s.protectedRequest(Exchange.IKE_AUTH, payloads, (m) => this.onResponse(m, inboundSpi), () => s.close('no answer to IKE_AUTH'));
  }

  /** Checks the peer's ID, certificate and AUTH payload; the reason when they fail. */
  private authenticatePeer(m: IkeMessage, firstMessage: Buffer, ourNonce: Buffer, peerSkP: Buffer): string | null {
    const s = this.session;
    const sa = s.sa!;
    const id = payload(m, sa.initiator ? 'idr' : 'idi');
    const auth = payload(m, 'auth');
    if (!id || !auth) return 'no ID or AUTH payload';
    const peerId: Identity = { type: id.idType, data: id.data };
    const expected = s.options.remoteId;
    const octets = signedOctets(firstMessage, ourNonce, sa.suite.prf, peerSkP, idPayloadBody(peerId));
    const local = s.options.auth;
    if (local.method === 'psk') {
      if (auth.method !== AuthMethod.SHARED_KEY_MIC) return `peer authenticates with method ${auth.method}, we expect a pre-shared key`;
      if (expected && !identitiesEqual(expected, peerId)) return 'peer identity is not the configured remoteId';
      if (!verifyPskAuth(sa.suite.prf, local.psk, octets, auth.data)) return 'pre-shared key AUTH does not verify (wrong key?)';
    } else {
      const certPayload = payload(m, 'cert');
      if (!certPayload || certPayload.encoding !== CertEncoding.X509_SIGNATURE) return 'no X.509 certificate from the peer';
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(certPayload.data);
      } catch {
        return 'peer certificate does not parse';
      }
      const chain = verifyCertificateChain(cert, local.ca, new Date());
      if (!chain.ok) return `peer certificate: ${chain.reason}`;
      if (!identityMatches(cert, peerId)) return 'peer identity is not in its certificate';
      if (expected && !identitiesEqual(expected, peerId)) return 'peer identity is not the configured remoteId';
      if (auth.method !== AuthMethod.DIGITAL_SIGNATURE) return `peer authenticates with method ${auth.method}, we expect an RFC 7427 signature`;
      const verified = verifySignatureAuth(cert.publicKey, auth.data, octets);
      if (!verified.ok) return `signature AUTH does not verify: ${verified.reason}`;
    }
    s.peerId = peerId;
    return null;
  }

  private onResponse(m: IkeMessage, inboundSpi: number): void {
    const s = this.session;
    const init = s.init!;
    const sa = s.sa!;
    const error = firstError(m);
    if (error === NotifyType.AUTHENTICATION_FAILED) return s.close('peer refused our authentication (AUTHENTICATION_FAILED)');
    const failed = this.authenticatePeer(m, init.response, init.ni, sa.keys.skPr);
    if (failed) {
      s.log('warn', 'IKE_AUTH: peer not authenticated', { reason: failed });
      return s.sendDeleteAndClose(`peer not authenticated: ${failed}`);
    }
    s.state = 'established';
    s.log('info', 'IKE SA established', { suite: s.suite });
    s.scheduleIkeTimers();
    if (error !== undefined) {
      s.log('warn', 'IKE_AUTH: no Child SA', { notify: notifyTypeName(error) });
      return s.sendDeleteAndClose(`Child SA refused: ${notifyTypeName(error)}`);
    }
    const child = s.children.fromResponse(m, inboundSpi, init.ni, init.nr, undefined, 0);
    if (typeof child === 'string') return s.sendDeleteAndClose(child);
    s.children.install(child, null);
    // Last: a listener may close this session (a duplicate of another), Child SA and all.
    s.emit('established');
  }

  /** Answers an IKE_AUTH request (responder). */
  onRequest(m: IkeMessage): Payload[] {
    const s = this.session;
    const init = s.init!;
    const sa = s.sa!;
    const failed = this.authenticatePeer(m, init.request, init.nr, sa.keys.skPi);
    if (failed) {
      s.log('warn', 'IKE_AUTH: initiator not authenticated', { reason: failed });
      s.closeSoon(`initiator not authenticated: ${failed}`);
      return [notify(NotifyType.AUTHENTICATION_FAILED)];
    }
    const idAuth = this.ourPayloads(init.response, init.ni, sa.keys.skPr);
    s.state = 'established';
    s.log('info', 'IKE SA established', { suite: s.suite });
    s.scheduleIkeTimers();
    const child = s.children.accept(m, init.ni, init.nr, undefined, true);
    // After the answer is sent: a listener may close this session (a duplicate of another).
    setImmediate(() => {
      if (s.state === 'established') s.emit('established');
    });
    if (child.error !== undefined) {
      s.log('warn', 'IKE_AUTH: Child SA refused', { notify: notifyTypeName(child.error) });
      return [...idAuth, notify(child.error)];
    }
    return [...idAuth, ...child.payloads];
  }
}
