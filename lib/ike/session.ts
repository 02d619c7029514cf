// One IKE SA with one peer, as initiator or responder (RFC 7296), and the Child SA it keeps.
//
// Exchanges, in the order they run:
//   1. IKE_SA_INIT     SA, KE, nonces, NAT detection (§1.2, §2.23); COOKIE and INVALID_KE_PAYLOAD retries (§2.6, §1.2)
//   2. IKE_AUTH        identities, AUTH (PSK §2.15 or RFC 7427 signatures), the first Child SA, narrowed selectors (§2.9)
//   3. CREATE_CHILD_SA rekey the Child SA (optional PFS, §1.3.3) or the IKE SA itself (§1.3.2, §2.18);
//                      simultaneous rekeys resolved by the lowest nonce (§2.8.1)
//   4. INFORMATIONAL   Delete (§1.4.1), liveness / dead-peer detection (§1.4, §2.4)
//
// Transport rules: one request outstanding (window size 1), retransmitted with back-off until
// answered (§2.1); each request the peer sends is answered once and the answer cached, so a
// retransmitted request gets the same bytes back (§2.1); a message outside the window is
// dropped. The session does no I/O itself: it calls `send` and raises events; the manager owns
// sockets, SPIs and the data path.
import { X509Certificate, createHash, randomBytes, type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import type { ChildCipher, ChildSa } from './child';
import {
  createKeyExchange,
  createSkCipher,
  deriveChildKeys,
  deriveIkeKeys,
  deriveRekeyedIkeKeys,
  prf,
} from './crypto';
import { encodeMessage, type DecodedMessage } from './message';
import { checkChosen, childCipherOf, selectProposal, keyBytesOf } from './proposals';
import { narrow } from './selectors';
import { SkReason, openMessage, sealMessage } from './sk';
import {
  pskAuth,
  signatureAuth,
  signatureHashAlgorithms,
  signedOctets,
  verifyCertificateChain,
  verifyPskAuth,
  verifySignatureAuth,
  identityMatches,
  identitiesEqual,
} from './auth';
import type { ChildSuite, IkeHeader, IkeKeys, IkeMessage, IkeSuite, KeyExchange, Payload, Proposal, SkCipher, TrafficSelector } from './types';
import { AuthMethod, CertEncoding, Exchange, IdType, NotifyType, ProtocolId, TransformType, notifyTypeName, exchangeName } from './wire';

export interface Endpoint {
  address: string;
  port: number;
}

/** An identity as IKE carries it (ID payload type and data, §3.5). */
export interface Identity {
  type: number;
  data: Buffer;
}

export type LocalAuth =
  | { method: 'psk'; psk: Buffer }
  | { method: 'certificate'; certificate: X509Certificate; privateKey: KeyObject; ca: X509Certificate[] };

export interface SessionTiming {
  childRekeyMs: number;
  childLifetimeMs: number;
  ikeRekeyMs: number;
  /** 0: no dead-peer detection. */
  dpdMs: number;
  /** First retransmission after this long, doubling each time (§2.1). */
  retransmitTimeoutMs: number;
  /** Sends of one request before the peer counts as gone. */
  retransmitTries: number;
}

export interface SessionOptions {
  local: Endpoint;
  remote: Endpoint;
  /** UDP-encapsulated ESP (RFC 3948): the port both sides move to after IKE_SA_INIT; null for raw ESP. */
  natPort: number | null;
  auth: LocalAuth;
  localId: Identity;
  /** The identity the peer must prove; null: whatever its certificate or the PSK proves. */
  remoteId: Identity | null;
  ikeProposals: Proposal[];
  espProposals: Proposal[];
  localTs: TrafficSelector[];
  remoteTs: TrafficSelector[];
  timing: SessionTiming;
  /** A fresh inbound ESP SPI, unique among every SA of the overlay. */
  allocateSpi(): number;
  send(data: Buffer, to: Endpoint, fromPort: number): void;
}

export type SessionState = 'connecting' | 'established' | 'rekeying' | 'closed';

export interface IkeLogLine {
  level: 'debug' | 'info' | 'warn';
  msg: string;
  [field: string]: unknown;
}

export interface SessionEvents {
  established: [];
  /**
   * A new Child SA; `replaces` is the one a rekey replaces (still valid until childDown). With
   * `activate` false, send with it only from childActive on: the responder of a rekey waits
   * for the initiator's Delete of the old SA, which proves the initiator has the new one.
   */
  childUp: [child: ChildSa, replaces: ChildSa | null, activate: boolean];
  childActive: [child: ChildSa];
  childDown: [child: ChildSa, reason: string];
  closed: [reason: string];
  log: [line: IkeLogLine];
  /** Our IKE SPI changed (the IKE SA was rekeyed): the manager re-indexes the session. */
  spis: [];
  /** A message was dropped (for the counters). */
  dropped: [reason: string];
}

/** One IKE SA's keys and counters (a rekey of the IKE SA makes a new one, §2.18). */
interface SaState {
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

interface Outstanding {
  sa: SaState | null;
  exchange: number;
  id: number;
  bytes: Buffer;
  sends: number;
  timer: NodeJS.Timeout | null;
  onResponse(message: IkeMessage, raw: Buffer): void;
  onGiveUp(): void;
}

/** A rekey of the Child SA we started, until its exchange ends. */
interface ChildRekey {
  old: ChildSa;
  nonces: [Buffer, Buffer] | null;
  made: ChildSa | null;
}

const NONCE_BYTES = 32;
/** How many INVALID_KE_PAYLOAD or COOKIE retries one IKE_SA_INIT may take. */
const INIT_RETRIES = 3;

const ZERO_SPI = Buffer.alloc(8);

/** openMessage's refusals before the ICV verified: nothing in such a message is the peer's. */
const UNAUTHENTIC = new Set<string>(Object.values(SkReason));

function notify(notifyType: number, data: Buffer = Buffer.alloc(0), protocol = 0, spi: Buffer = Buffer.alloc(0)): Payload {
  return { type: 'notify', critical: false, protocol, spi, notifyType, data };
}

function findNotify(message: IkeMessage, notifyType: number) {
  for (const p of message.payloads) if (p.type === 'notify' && p.notifyType === notifyType) return p;
  return undefined;
}

function firstError(message: IkeMessage): number | undefined {
  for (const p of message.payloads) if (p.type === 'notify' && p.notifyType < 16384) return p.notifyType;
  return undefined;
}

type PayloadOf<T extends Payload['type']> = Payload extends infer P ? (P extends { type: infer U } ? (T extends U ? P & { type: T } : never) : never) : never;

function payload<T extends Payload['type']>(message: IkeMessage, type: T): PayloadOf<T> | undefined {
  return message.payloads.find((p) => p.type === type) as PayloadOf<T> | undefined;
}

/** An address literal as its 4 or 16 bytes. */
export function addressBytes(address: string): Buffer {
  if (isIP(address) === 4) return Buffer.from(address.split('.').map(Number));
  const [head = '', tail = ''] = address.split('::');
  const words = (s: string) => (s === '' ? [] : s.split(':'));
  const h = words(head);
  const t = words(tail);
  const all = address.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), i * 2));
  return out;
}

/** NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | address | port) (§2.23). */
export function natHash(spiI: Buffer, spiR: Buffer, endpoint: Endpoint): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(endpoint.port);
  return createHash('sha1').update(spiI).update(spiR).update(addressBytes(endpoint.address)).update(port).digest();
}

/** The ID payload body after the generic header: ID type, three reserved bytes, data (§2.15 RestOfIDPayload). */
function idBody(id: Identity): Buffer {
  return Buffer.concat([Buffer.from([id.type, 0, 0, 0]), id.data]);
}

/** A configured identity and a proven one: DNs by their attributes, names without case (strongSwan's rule). */
function sameId(a: Identity, b: Identity): boolean {
  return identitiesEqual(a, b);
}

/** The smaller of two nonces, as §2.8.1 compares them (as unsigned big-endian numbers). */
function lowestNonce(a: Buffer, b: Buffer): Buffer {
  return Buffer.compare(a, b) <= 0 ? a : b;
}

function withSpi(proposals: Proposal[], spi: Buffer, dropDh: boolean): Proposal[] {
  return proposals.map((p, i) => ({
    ...p,
    number: i + 1,
    spi,
    transforms: dropDh ? p.transforms.filter((t) => t.type !== TransformType.DH) : p.transforms,
  }));
}

function spiBuffer(spi: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(spi >>> 0);
  return b;
}

function groupOf(proposal: Proposal | undefined): number {
  return proposal?.transforms.find((t) => t.type === TransformType.DH)?.id ?? 0;
}

export class IkeSession extends EventEmitter<SessionEvents> {
  readonly role: 'initiator' | 'responder';
  state: SessionState = 'connecting';
  private readonly options: SessionOptions;
  private remote: Endpoint;
  private localPort: number;
  private sa: SaState | null = null;
  /** The IKE SA a rekey replaced, until its Delete exchange ends. */
  private previous: SaState | null = null;
  child: ChildSa | null = null;
  /** The Child SAs a rekey replaced, until their Delete exchange ends. */
  private readonly retiring: ChildSa[] = [];
  private outstanding: Outstanding | null = null;
  private readonly queue: Array<() => void> = [];
  private childRekey: ChildRekey | null = null;
  private ikeRekeyPending = false;
  private timers: NodeJS.Timeout[] = [];
  private lastHeard = Date.now();
  peerId: Identity | null = null;
  /** The first message of each side and our nonce: what AUTH signs (§2.15). */
  private init: { ni: Buffer; nr: Buffer; request: Buffer; response: Buffer; kex: KeyExchange } | null = null;
  /** The chosen IKE suite and the peer's SPI once IKE_SA_INIT is done. */
  private initRetries = 0;
  private cookie: Buffer | null = null;
  private peerSignatureHashes = false;
  readonly createdAt = Date.now();

  constructor(role: 'initiator' | 'responder', options: SessionOptions) {
    super();
    this.role = role;
    this.options = options;
    this.remote = { ...options.remote };
    this.localPort = options.local.port;
  }

  /** Our SPIs of every IKE SA this session answers for (the current one, and the one a rekey replaces). */
  localSpis(): Buffer[] {
    const spis: Buffer[] = [];
    for (const s of [this.sa, this.previous]) if (s) spis.push(s.initiator ? s.spiI : s.spiR);
    if (!this.sa && this.pendingSpiI) spis.push(this.pendingSpiI);
    return spis;
  }

  get remoteEndpoint(): Endpoint {
    return { ...this.remote };
  }

  get suite(): IkeSuite | null {
    return this.sa?.suite ?? null;
  }

  get spis(): { initiator: Buffer; responder: Buffer } | null {
    return this.sa ? { initiator: this.sa.spiI, responder: this.sa.spiR } : null;
  }

  private log(level: IkeLogLine['level'], msg: string, fields: Record<string, unknown> = {}): void {
    this.emit('log', { level, msg, peer: this.remote.address, ...fields });
  }

  private drop(reason: string, fields: Record<string, unknown> = {}): void {
    this.emit('dropped', reason);
    this.log('debug', 'message dropped', { reason, ...fields });
  }

  // ---- Initiator: IKE_SA_INIT ------------------------------------------------------------

  private pendingSpiI: Buffer | null = null;
  private group = 0;

  /** Starts the IKE SA (initiator). */
  start(): void {
    this.pendingSpiI = randomBytes(8);
    this.group = groupOf(this.options.ikeProposals[0]);
    this.sendInitRequest();
  }

  /** `again`: the Ni and KE of the request a COOKIE answered, sent unchanged (§2.6). */
  private sendInitRequest(again?: { ni: Buffer; kex: KeyExchange }): void {
    const spiI = this.pendingSpiI!;
    const kex = again?.kex ?? createKeyExchange(this.group);
    const ni = again?.ni ?? randomBytes(NONCE_BYTES);
    const payloads: Payload[] = [];
    if (this.cookie) payloads.push(notify(NotifyType.COOKIE, this.cookie));
    payloads.push(
      { type: 'sa', critical: false, proposals: withSpi(this.options.ikeProposals, Buffer.alloc(0), false) },
      { type: 'ke', critical: false, group: this.group, data: kex.publicKey },
      { type: 'nonce', critical: false, data: ni },
      ...this.natNotifies(spiI, ZERO_SPI),
    );
    if (this.options.auth.method === 'certificate') payloads.push(notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, signatureHashAlgorithms()));
    const header = { initiatorSpi: spiI, responderSpi: ZERO_SPI, version: 0x20, exchange: Exchange.IKE_SA_INIT, initiator: true, response: false, messageId: 0 };
    const bytes = encodeMessage(header, payloads);
    this.log('info', 'IKE_SA_INIT request sent', { group: this.group });
    this.request({
      sa: null,
      exchange: Exchange.IKE_SA_INIT,
      id: 0,
      bytes,
      onResponse: (m, raw) => this.onInitResponse(m, raw, { ni, request: bytes, kex }),
      onGiveUp: () => this.close('no answer to IKE_SA_INIT'),
    });
  }

  /** NAT detection notifies (§2.23). With UDP-encapsulated ESP the source hash is made not to match, as strongSwan's `encap = yes` does: both sides then see a NAT and move to the NAT-T port. */
  private natNotifies(spiI: Buffer, spiR: Buffer): Payload[] {
    const source = this.options.natPort !== null ? randomBytes(20) : natHash(spiI, spiR, { address: this.options.local.address, port: this.localPort });
    return [notify(NotifyType.NAT_DETECTION_SOURCE_IP, source), notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natHash(spiI, spiR, this.remote))];
  }

  private onInitResponse(m: IkeMessage, raw: Buffer, sent: { ni: Buffer; request: Buffer; kex: KeyExchange }): void {
    const cookie = findNotify(m, NotifyType.COOKIE);
    if (cookie) {
      if (++this.initRetries > INIT_RETRIES) return this.close('responder keeps asking for a COOKIE');
      this.cookie = cookie.data;
      this.log('info', 'responder asked for a COOKIE: retrying');
      // "with ... all other payloads unchanged" (§2.6): the responder's cookie may cover Ni (the
      // RFC's own example, and ours in manager.ts, hash Ni | IPi | SPIi), so a fresh nonce
      // would never match it.
      return this.sendInitRequest({ ni: sent.ni, kex: sent.kex });
    }
    const invalidKe = findNotify(m, NotifyType.INVALID_KE_PAYLOAD);
    if (invalidKe) {
      const wanted = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
      const offered = this.options.ikeProposals.some((p) => p.transforms.some((t) => t.type === TransformType.DH && t.id === wanted));
      if (!offered || wanted === this.group || ++this.initRetries > INIT_RETRIES) return this.close(`INVALID_KE_PAYLOAD for group ${wanted}, which we do not offer`);
      this.log('info', 'responder wants another key exchange group: retrying', { group: wanted });
      this.group = wanted;
      return this.sendInitRequest();
    }
    const error = firstError(m);
    if (error !== undefined) return this.close(`IKE_SA_INIT refused: ${notifyTypeName(error)}`);
    const saPayload = payload(m, 'sa');
    const ke = payload(m, 'ke');
    const nonce = payload(m, 'nonce');
    if (!saPayload || !ke || !nonce) return this.close('IKE_SA_INIT response lacks SA, KE or Nonce');
    const suite = saPayload.proposals.length === 1 ? checkChosen(saPayload.proposals[0]!, this.options.ikeProposals, ProtocolId.IKE) : null;
    if (!suite) return this.close('IKE_SA_INIT response chose a proposal we did not offer');
    if (ke.group !== suite.dh || suite.dh !== sent.kex.group) return this.close('IKE_SA_INIT response KE group differs from the chosen proposal');
    let gir: Buffer;
    try {
      gir = sent.kex.computeSecret(ke.data);
    } catch (e) {
      return this.close(`bad KE data: ${(e as Error).message}`);
    }
    const spiI = this.pendingSpiI!;
    const spiR = m.header.responderSpi;
    this.sa = this.newSa(suite, deriveIkeKeys(suite, sent.ni, nonce.data, gir, spiI, spiR), spiI, spiR, true);
    this.sa.nextRequestId = 1;
    this.init = { ni: sent.ni, nr: nonce.data, request: sent.request, response: raw, kex: sent.kex };
    this.peerSignatureHashes = !!findNotify(m, NotifyType.SIGNATURE_HASH_ALGORITHMS);
    this.floatToNatPort();
    this.emit('spis');
    this.sendAuthRequest();
  }

  private floatToNatPort(): void {
    if (this.options.natPort === null) return;
    this.localPort = this.options.natPort;
    if (this.remote.port === this.options.local.port) this.remote = { address: this.remote.address, port: this.options.natPort };
  }

  private newSa(suite: IkeSuite, keys: IkeKeys, spiI: Buffer, spiR: Buffer, initiator: boolean): SaState {
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

  // ---- IKE_AUTH ------------------------------------------------------------------------------

  private authPayloads(firstMessage: Buffer, peerNonce: Buffer, ourSkP: Buffer): Payload[] {
    const sa = this.sa!;
    const idType = this.sa!.initiator ? 'idi' : 'idr';
    const id = this.options.localId;
    const octets = signedOctets(firstMessage, peerNonce, sa.suite.prf, ourSkP, idBody(id));
    const out: Payload[] = [{ type: idType, critical: false, idType: id.type, data: id.data }];
    const auth = this.options.auth;
    if (auth.method === 'psk') {
      out.push({ type: 'auth', critical: false, method: AuthMethod.SHARED_KEY_MIC, data: pskAuth(sa.suite.prf, auth.psk, octets) });
    } else {
      out.push({ type: 'cert', critical: false, encoding: CertEncoding.X509_SIGNATURE, data: auth.certificate.raw });
      out.push({ type: 'auth', critical: false, method: AuthMethod.DIGITAL_SIGNATURE, data: signatureAuth(auth.privateKey, octets) });
    }
    return out;
  }

  private certRequest(): Payload[] {
    const auth = this.options.auth;
    if (auth.method !== 'certificate') return [];
    const hashes = auth.ca.map((c) => createHash('sha1').update(c.publicKey.export({ type: 'spki', format: 'der' })).digest());
    return [{ type: 'certreq', critical: false, encoding: CertEncoding.X509_SIGNATURE, data: Buffer.concat(hashes) }];
  }

  private sendAuthRequest(): void {
    const sa = this.sa!;
    const init = this.init!;
    const inboundSpi = this.options.allocateSpi();
    const idAuth = this.authPayloads(init.request, init.nr, sa.keys.skPi);
    const payloads: Payload[] = [idAuth[0]!, ...this.certRequest(), ...idAuth.slice(1)];
    if (this.options.remoteId) payloads.splice(1, 0, { type: 'idr', critical: false, idType: this.options.remoteId.type, data: this.options.remoteId.data });
    payloads.push(
      notify(NotifyType.INITIAL_CONTACT),
      { type: 'sa', critical: false, proposals: withSpi(this.options.espProposals, spiBuffer(inboundSpi), true) },
      { type: 'tsi', critical: false, selectors: this.options.localTs },
      { type: 'tsr', critical: false, selectors: this.options.remoteTs },
    );
    this.log('info', 'IKE_AUTH request sent');
    this.protectedRequest(Exchange.IKE_AUTH, payloads, (m) => this.onAuthResponse(m, inboundSpi), () => this.close('no answer to IKE_AUTH'));
  }

  /** Checks the peer's ID, certificate and AUTH payload; the reason when they fail. */
  private authenticatePeer(m: IkeMessage, firstMessage: Buffer, ourNonce: Buffer, peerSkP: Buffer): string | null {
    const sa = this.sa!;
    const id = payload(m, sa.initiator ? 'idr' : 'idi');
    const auth = payload(m, 'auth');
    if (!id || !auth) return 'no ID or AUTH payload';
    const peerId: Identity = { type: id.idType, data: id.data };
    const expected = this.options.remoteId;
    const octets = signedOctets(firstMessage, ourNonce, sa.suite.prf, peerSkP, idBody(peerId));
    const local = this.options.auth;
    if (local.method === 'psk') {
      if (auth.method !== AuthMethod.SHARED_KEY_MIC) return `peer authenticates with method ${auth.method}, we expect a pre-shared key`;
      if (expected && !sameId(expected, peerId)) return 'peer identity is not the configured remoteId';
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
      if (expected && !sameId(expected, peerId)) return 'peer identity is not the configured remoteId';
      if (auth.method !== AuthMethod.DIGITAL_SIGNATURE) return `peer authenticates with method ${auth.method}, we expect an RFC 7427 signature`;
      const verified = verifySignatureAuth(cert.publicKey, auth.data, octets);
      if (!verified.ok) return `signature AUTH does not verify: ${verified.reason}`;
    }
    this.peerId = peerId;
    return null;
  }

  private onAuthResponse(m: IkeMessage, inboundSpi: number): void {
    const init = this.init!;
    const sa = this.sa!;
    const error = firstError(m);
    if (error === NotifyType.AUTHENTICATION_FAILED) return this.close('peer refused our authentication (AUTHENTICATION_FAILED)');
    const failed = this.authenticatePeer(m, init.response, init.ni, sa.keys.skPr);
    if (failed) {
      this.log('warn', 'IKE_AUTH: peer not authenticated', { reason: failed });
      return this.sendDeleteAndClose(`peer not authenticated: ${failed}`);
    }
    this.state = 'established';
    this.log('info', 'IKE SA established', { suite: this.suite });
    this.scheduleIkeTimers();
    if (error !== undefined) {
      this.log('warn', 'IKE_AUTH: no Child SA', { notify: notifyTypeName(error) });
      return this.sendDeleteAndClose(`Child SA refused: ${notifyTypeName(error)}`);
    }
    const child = this.childFromResponse(m, inboundSpi, init.ni, init.nr, undefined, 0);
    if (typeof child === 'string') return this.sendDeleteAndClose(child);
    this.installChild(child, null);
    // Last: a listener may close this session (a duplicate of another), Child SA and all.
    this.emit('established');
  }

  /** The Child SA a response (IKE_AUTH or CREATE_CHILD_SA) completes, or why it cannot. */
  private childFromResponse(m: IkeMessage, inboundSpi: number, ni: Buffer, nr: Buffer, gir: Buffer | undefined, group: number): ChildSa | string {
    const saPayload = payload(m, 'sa');
    const tsi = payload(m, 'tsi');
    const tsr = payload(m, 'tsr');
    if (!saPayload || saPayload.proposals.length !== 1 || !tsi || !tsr) return 'Child SA response lacks SA or traffic selectors';
    const chosen = saPayload.proposals[0]!;
    const suite = checkChosen(chosen, withSpi(this.options.espProposals, chosen.spi, group === 0), ProtocolId.ESP) as ChildSuite | null;
    if (!suite || chosen.spi.length !== 4) return 'Child SA response chose a proposal we did not offer';
    // The answer may narrow our selectors, never widen them (§2.9).
    if (narrow(tsi.selectors, this.options.localTs).length === 0 || narrow(tsr.selectors, this.options.remoteTs).length === 0) {
      return 'Child SA response traffic selectors are outside ours';
    }
    return this.makeChild(suite, inboundSpi, chosen.spi.readUInt32BE(0), ni, nr, gir, tsi.selectors, tsr.selectors, true);
  }

  private makeChild(suite: ChildSuite, inboundSpi: number, outboundSpi: number, ni: Buffer, nr: Buffer, gir: Buffer | undefined, tsi: TrafficSelector[], tsr: TrafficSelector[], weInitiated: boolean): ChildSa {
    const sa = this.sa!;
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

  /** New Child SAs of a rekey we answered, by the SA they replace: sent with once that one goes. */
  private readonly awaitingActivation = new Map<ChildSa, ChildSa>();

  private installChild(child: ChildSa, replaces: ChildSa | null, activate = true): void {
    // A session closed meanwhile installs nothing: its SAs would outlive it in the table.
    if (this.state === 'closed') return;
    if (replaces) this.retiring.push(replaces);
    if (replaces && !activate) {
      this.awaitingActivation.set(replaces, child);
      // Should the Delete never come, switch anyway: the initiator has had time to install it.
      this.timer(5000, () => this.activateReplacement(replaces));
    }
    this.child = child;
    this.log('info', replaces ? 'Child SA rekeyed' : 'Child SA installed', {
      spiIn: child.inboundSpi.toString(16),
      spiOut: child.outboundSpi.toString(16),
      cipher: child.cipher,
      esn: child.esn,
    });
    this.emit('childUp', child, replaces, activate);
    this.scheduleChildTimers(child);
  }

  // ---- Responder: IKE_SA_INIT and IKE_AUTH ---------------------------------------------------

  /**
   * Answers an IKE_SA_INIT request (responder). Returns false when no IKE SA results (the
   * answer was an error or INVALID_KE_PAYLOAD): the manager then forgets the session.
   */
  acceptInit(m: IkeMessage, raw: Buffer, from: Endpoint, localPort: number): boolean {
    this.remote = { ...from };
    this.localPort = localPort;
    const saPayload = payload(m, 'sa');
    const ke = payload(m, 'ke');
    const nonce = payload(m, 'nonce');
    const header = { initiatorSpi: m.header.initiatorSpi, responderSpi: ZERO_SPI, version: 0x20, exchange: Exchange.IKE_SA_INIT, initiator: false, response: true, messageId: 0 };
    const refuse = (notifyType: number, data?: Buffer, why?: string): false => {
      this.options.send(encodeMessage(header, [notify(notifyType, data)]), this.remote, this.localPort);
      this.log('warn', 'IKE_SA_INIT refused', { notify: notifyTypeName(notifyType), reason: why });
      this.state = 'closed';
      return false;
    };
    if (!saPayload || !ke || !nonce) return refuse(NotifyType.INVALID_SYNTAX, undefined, 'SA, KE or Nonce missing');
    const selected = selectProposal(saPayload.proposals, this.options.ikeProposals, ProtocolId.IKE);
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
    this.sa = this.newSa(suite, deriveIkeKeys(suite, nonce.data, nr, gir, spiI, spiR), spiI, spiR, false);
    this.sa.expectRequestId = 1;
    this.peerSignatureHashes = !!findNotify(m, NotifyType.SIGNATURE_HASH_ALGORITHMS);
    const payloads: Payload[] = [
      { type: 'sa', critical: false, proposals: [selected.proposal] },
      { type: 'ke', critical: false, group: suite.dh, data: kex.publicKey },
      { type: 'nonce', critical: false, data: nr },
      ...this.natNotifies(spiI, spiR),
      ...this.certRequest(),
    ];
    if (this.options.auth.method === 'certificate') payloads.push(notify(NotifyType.SIGNATURE_HASH_ALGORITHMS, signatureHashAlgorithms()));
    const response = encodeMessage({ ...header, responderSpi: spiR }, payloads);
    this.init = { ni: nonce.data, nr, request: raw, response, kex };
    this.sa.lastResponse = { id: 0, bytes: response };
    this.options.send(response, this.remote, this.localPort);
    this.log('info', 'IKE_SA_INIT answered', { suite });
    this.armHalfOpenTimeout();
    return true;
  }

  /** A half-open SA whose IKE_AUTH never comes is dropped (strongSwan's half_open_timeout). */
  private armHalfOpenTimeout(): void {
    const timeout = this.options.timing.retransmitTimeoutMs * 2 ** this.options.timing.retransmitTries;
    this.timer(Math.min(timeout, 30000), () => {
      if (this.state === 'connecting') this.close('half-open: no IKE_AUTH arrived');
    });
  }

  get halfOpen(): boolean {
    return this.role === 'responder' && this.state === 'connecting';
  }

  private onAuthRequest(m: IkeMessage): Payload[] {
    const init = this.init!;
    const sa = this.sa!;
    const failed = this.authenticatePeer(m, init.request, init.nr, sa.keys.skPi);
    if (failed) {
      this.log('warn', 'IKE_AUTH: initiator not authenticated', { reason: failed });
      this.closeSoon(`initiator not authenticated: ${failed}`);
      return [notify(NotifyType.AUTHENTICATION_FAILED)];
    }
    const idAuth = this.authPayloads(init.response, init.ni, sa.keys.skPr);
    this.state = 'established';
    this.log('info', 'IKE SA established', { suite: this.suite });
    this.scheduleIkeTimers();
    const child = this.acceptChild(m, init.ni, init.nr, undefined, true);
    // After the answer is sent: a listener may close this session (a duplicate of another).
    setImmediate(() => {
      if (this.state === 'established') this.emit('established');
    });
    if (child.error !== undefined) {
      this.log('warn', 'IKE_AUTH: Child SA refused', { notify: notifyTypeName(child.error) });
      return [...idAuth, notify(child.error)];
    }
    return [...idAuth, ...child.payloads];
  }

  /**
   * The responder's side of a Child SA (IKE_AUTH or CREATE_CHILD_SA): the chosen proposal and
   * narrowed selectors to answer with, the Child SA made, or the error notify to answer instead.
   */
  private acceptChild(m: IkeMessage, ni: Buffer, nr: Buffer, kex: { gir: Buffer; group: number } | undefined, inAuth: boolean, replaces: ChildSa | null = null): { payloads: Payload[]; error?: number; child?: ChildSa } {
    const saPayload = payload(m, 'sa');
    const tsi = payload(m, 'tsi');
    const tsr = payload(m, 'tsr');
    if (!saPayload || !tsi || !tsr) return { payloads: [], error: NotifyType.INVALID_SYNTAX };
    const configured = withSpi(this.options.espProposals, Buffer.alloc(4), inAuth || !kex);
    const selected = selectProposal(saPayload.proposals, configured, ProtocolId.ESP);
    if (!selected || selected.proposal.spi.length !== 4) return { payloads: [], error: NotifyType.NO_PROPOSAL_CHOSEN };
    // TSi is the initiator's side: ours when we are the initiator... here we answer, so TSi is the peer's.
    const peerSide = narrow(tsi.selectors, this.options.remoteTs);
    const ourSide = narrow(tsr.selectors, this.options.localTs);
    if (peerSide.length === 0 || ourSide.length === 0) return { payloads: [], error: NotifyType.TS_UNACCEPTABLE };
    const suite = selected.suite as ChildSuite;
    const inboundSpi = this.options.allocateSpi();
    const outboundSpi = saPayload.proposals.find((p) => p.number === selected.proposal.number)!.spi.readUInt32BE(0);
    const child = this.makeChild(suite, inboundSpi, outboundSpi, ni, nr, kex?.gir, peerSide, ourSide, false);
    child.dhGroup = kex ? kex.group : 0;
    const payloads: Payload[] = [
      { type: 'sa', critical: false, proposals: [{ ...selected.proposal, spi: spiBuffer(inboundSpi) }] },
      { type: 'tsi', critical: false, selectors: peerSide },
      { type: 'tsr', critical: false, selectors: ourSide },
    ];
    this.installChild(child, replaces, replaces === null);
    return { payloads, child };
  }

  // ---- CREATE_CHILD_SA ------------------------------------------------------------------------

  /** Rekeys the Child SA (§1.3.3), with PFS when the ESP proposals carry a group. */
  rekeyChild(): void {
    const old = this.child;
    if (!old || this.state !== 'established' || this.childRekey) return;
    const rekey: ChildRekey = { old, nonces: null, made: null };
    this.childRekey = rekey;
    this.whenIdle(() => this.sendChildRekey(rekey, groupOf(this.options.espProposals[0])));
  }

  private sendChildRekey(rekey: ChildRekey, group: number): void {
    if (this.state === 'closed' || this.child !== rekey.old) {
      this.childRekey = null;
      return;
    }
    const inboundSpi = this.options.allocateSpi();
    const ni = randomBytes(NONCE_BYTES);
    const kex = group ? createKeyExchange(group) : null;
    const proposals = withSpi(this.options.espProposals, spiBuffer(inboundSpi), group === 0);
    const payloads: Payload[] = [
      notify(NotifyType.REKEY_SA, Buffer.alloc(0), ProtocolId.ESP, spiBuffer(rekey.old.inboundSpi)),
      { type: 'sa', critical: false, proposals },
      { type: 'nonce', critical: false, data: ni },
      ...(kex ? [{ type: 'ke' as const, critical: false, group, data: kex.publicKey }] : []),
      { type: 'tsi', critical: false, selectors: rekey.old.localTs },
      { type: 'tsr', critical: false, selectors: rekey.old.remoteTs },
    ];
    this.log('info', 'CREATE_CHILD_SA (rekey Child SA) sent', { pfs: group });
    this.protectedRequest(
      Exchange.CREATE_CHILD_SA,
      payloads,
      (m) => {
        const invalidKe = findNotify(m, NotifyType.INVALID_KE_PAYLOAD);
        if (invalidKe && invalidKe.data.length >= 2 && invalidKe.data.readUInt16BE(0) !== group) return this.sendChildRekey(rekey, invalidKe.data.readUInt16BE(0));
        const error = firstError(m);
        if (error !== undefined) {
          this.childRekey = null;
          this.log('warn', 'Child SA rekey refused', { notify: notifyTypeName(error) });
          // TEMPORARY_FAILURE: the peer is busy (a collision); the next timer retries.
          return this.timer(2000, () => this.rekeyChild());
        }
        const nonce = payload(m, 'nonce');
        const ke = payload(m, 'ke');
        if (!nonce) return this.childRekeyFailed(rekey, 'rekey response lacks a Nonce');
        let gir: Buffer | undefined;
        if (kex) {
          if (!ke || ke.group !== group) return this.childRekeyFailed(rekey, 'rekey response lacks the KE of the PFS group');
          try {
            gir = kex.computeSecret(ke.data);
          } catch (e) {
            return this.childRekeyFailed(rekey, `bad KE data: ${(e as Error).message}`);
          }
        }
        const child = this.childFromResponse(m, inboundSpi, ni, nonce.data, gir, group);
        if (typeof child === 'string') return this.childRekeyFailed(rekey, child);
        rekey.nonces = [ni, nonce.data];
        rekey.made = child;
        this.childRekey = null;
        this.finishChildRekey(rekey, child);
      },
      () => this.close('no answer to CREATE_CHILD_SA'),
    );
  }

  private childRekeyFailed(rekey: ChildRekey, reason: string): void {
    if (this.childRekey === rekey) this.childRekey = null;
    this.log('warn', 'Child SA rekey failed', { reason });
  }

  /** Our rekey completed: unless a simultaneous rekey by the peer won (§2.8.1), the old Child SA goes. */
  private collision: { old: ChildSa; child: ChildSa; nonces: [Buffer, Buffer] } | null = null;

  private finishChildRekey(rekey: ChildRekey, child: ChildSa): void {
    const theirs = this.collision && this.collision.old === rekey.old ? this.collision : null;
    if (theirs) {
      this.collision = null;
      const ours = lowestNonce(...rekey.nonces!);
      const their = lowestNonce(...theirs.nonces);
      if (Buffer.compare(ours, their) < 0) {
        // Ours holds the lowest nonce: ours is the redundant one, and we delete it.
        this.log('info', 'simultaneous Child SA rekey: ours is redundant, deleting it');
        // Its inbound SA only: we never send with it (the peer does not either).
        this.installChild(child, null, false);
        this.child = theirs.child;
        this.activateReplacement(rekey.old);
        this.deleteChild(child, 'redundant after a simultaneous rekey');
        return;
      }
      this.log('info', 'simultaneous Child SA rekey: the peer deletes its redundant one');
      // Never send with the peer's redundant SA.
      this.awaitingActivation.delete(rekey.old);
    }
    this.installChild(child, rekey.old);
    this.deleteChild(rekey.old, 'rekeyed');
  }

  /** Sends the Delete for a Child SA (§1.4.1); it goes down when the answer comes. */
  private deleteChild(child: ChildSa, reason: string): void {
    this.whenIdle(() => {
      this.protectedRequest(
        Exchange.INFORMATIONAL,
        [{ type: 'delete', critical: false, protocol: ProtocolId.ESP, spis: [spiBuffer(child.inboundSpi)] }],
        () => this.childGone(child, reason),
        () => {
          this.childGone(child, reason);
          this.close('no answer to a Delete');
        },
      );
    });
  }

  private activateReplacement(old: ChildSa): void {
    const next = this.awaitingActivation.get(old);
    if (!next) return;
    this.awaitingActivation.delete(old);
    this.emit('childActive', next);
  }

  private childGone(child: ChildSa, reason: string): void {
    this.activateReplacement(child);
    const i = this.retiring.indexOf(child);
    if (i >= 0) this.retiring.splice(i, 1);
    if (this.child === child) this.child = null;
    this.emit('childDown', child, reason);
  }

  private onCreateChildRequest(m: IkeMessage): Payload[] {
    const saPayload = payload(m, 'sa');
    if (!saPayload) return [notify(NotifyType.INVALID_SYNTAX)];
    if (saPayload.proposals[0]?.protocol === ProtocolId.IKE) return this.onIkeRekeyRequest(m);
    const rekeyNotify = findNotify(m, NotifyType.REKEY_SA);
    if (!rekeyNotify) return [notify(NotifyType.NO_ADDITIONAL_SAS)];
    const spi = rekeyNotify.spi.length === 4 ? rekeyNotify.spi.readUInt32BE(0) : -1;
    const old = this.child && this.child.outboundSpi === spi ? this.child : null;
    if (!old) return [notify(NotifyType.CHILD_SA_NOT_FOUND, Buffer.alloc(0), ProtocolId.ESP, rekeyNotify.spi)];
    const nonce = payload(m, 'nonce');
    if (!nonce) return [notify(NotifyType.INVALID_SYNTAX)];
    const ke = payload(m, 'ke');
    let kex: { gir: Buffer; group: number; publicKey: Buffer } | undefined;
    if (ke) {
      const supported = this.options.espProposals.some((p) => p.transforms.some((t) => t.type === TransformType.DH && t.id === ke.group));
      if (!supported) {
        const group = Buffer.alloc(2);
        group.writeUInt16BE(groupOf(this.options.espProposals[0]) || ke.group);
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
    const accepted = this.acceptChild(m, nonce.data, nr, kex, false, old);
    if (accepted.error !== undefined || !accepted.child) return [notify(accepted.error ?? NotifyType.NO_PROPOSAL_CHOSEN)];
    if (this.childRekey && this.childRekey.old === old) {
      this.collision = { old, child: accepted.child, nonces: [nonce.data, nr] };
      this.log('info', 'simultaneous Child SA rekey');
    }
    return [
      accepted.payloads[0]!,
      { type: 'nonce', critical: false, data: nr },
      ...(kex ? [{ type: 'ke' as const, critical: false, group: kex.group, data: kex.publicKey }] : []),
      ...accepted.payloads.slice(1),
    ];
  }

  // ---- IKE SA rekey (§1.3.2, §2.18) ----------------------------------------------------------

  rekeyIke(): void {
    if (this.state !== 'established' || this.ikeRekeyPending) return;
    this.ikeRekeyPending = true;
    this.whenIdle(() => this.sendIkeRekey(this.sa!.suite.dh));
  }

  private sendIkeRekey(group: number): void {
    const old = this.sa!;
    const spi = randomBytes(8);
    const ni = randomBytes(NONCE_BYTES);
    const kex = createKeyExchange(group);
    const payloads: Payload[] = [
      { type: 'sa', critical: false, proposals: withSpi(this.options.ikeProposals, spi, false) },
      { type: 'nonce', critical: false, data: ni },
      { type: 'ke', critical: false, group, data: kex.publicKey },
    ];
    this.log('info', 'CREATE_CHILD_SA (rekey IKE SA) sent');
    this.protectedRequest(
      Exchange.CREATE_CHILD_SA,
      payloads,
      (m) => {
        this.ikeRekeyPending = false;
        const invalidKe = findNotify(m, NotifyType.INVALID_KE_PAYLOAD);
        if (invalidKe && invalidKe.data.length >= 2 && invalidKe.data.readUInt16BE(0) !== group) {
          this.ikeRekeyPending = true;
          return this.sendIkeRekey(invalidKe.data.readUInt16BE(0));
        }
        const error = firstError(m);
        if (error !== undefined) {
          this.log('warn', 'IKE SA rekey refused', { notify: notifyTypeName(error) });
          return this.timer(2000, () => this.rekeyIke());
        }
        const saPayload = payload(m, 'sa');
        const nonce = payload(m, 'nonce');
        const ke = payload(m, 'ke');
        const chosen = saPayload?.proposals[0];
        const suite = chosen && saPayload!.proposals.length === 1 ? checkChosen(chosen, this.options.ikeProposals, ProtocolId.IKE) : null;
        if (!suite || !nonce || !ke || chosen!.spi.length !== 8 || ke.group !== suite.dh) return this.log('warn', 'IKE SA rekey response unusable');
        let gir: Buffer;
        try {
          gir = kex.computeSecret(ke.data);
        } catch {
          return this.log('warn', 'IKE SA rekey response has bad KE data');
        }
        const keys = deriveRekeyedIkeKeys(suite as IkeSuite, old.keys.skD, old.suite.prf, gir, ni, nonce.data, spi, chosen!.spi);
        const fresh = this.newSa(suite as IkeSuite, keys, spi, chosen!.spi, true);
        const theirs = this.ikeCollision;
        this.ikeCollision = null;
        if (theirs && Buffer.compare(lowestNonce(ni, nonce.data), lowestNonce(...theirs.nonces)) < 0) {
          // Ours is redundant: keep the peer's new IKE SA, delete ours (§2.8.1).
          this.log('info', 'simultaneous IKE SA rekey: ours is redundant, deleting it');
          this.sendIkeDelete(fresh);
          return;
        }
        this.switchSa(fresh);
        this.sendIkeDelete(old);
      },
      () => this.close('no answer to the IKE SA rekey'),
    );
  }

  private ikeCollision: { nonces: [Buffer, Buffer] } | null = null;

  private onIkeRekeyRequest(m: IkeMessage): Payload[] {
    const old = this.sa!;
    const saPayload = payload(m, 'sa')!;
    const nonce = payload(m, 'nonce');
    const ke = payload(m, 'ke');
    if (!nonce || !ke) return [notify(NotifyType.INVALID_SYNTAX)];
    const selected = selectProposal(saPayload.proposals, withSpi(this.options.ikeProposals, Buffer.alloc(8), false), ProtocolId.IKE);
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
    const fresh = this.newSa(suite, keys, peerSpi, spi, false);
    if (this.ikeRekeyPending) {
      this.ikeCollision = { nonces: [nonce.data, nr] };
      this.log('info', 'simultaneous IKE SA rekey');
    }
    // The peer deletes the old IKE SA; the new one carries on from now (its message IDs start at 0).
    queueMicrotask(() => this.switchSa(fresh));
    return [
      { type: 'sa', critical: false, proposals: [{ ...selected.proposal, spi }] },
      { type: 'nonce', critical: false, data: nr },
      { type: 'ke', critical: false, group: suite.dh, data: kex.publicKey },
    ];
  }

  private switchSa(fresh: SaState): void {
    if (this.state === 'closed') return;
    this.previous = this.sa;
    this.sa = fresh;
    this.log('info', 'IKE SA rekeyed', { suite: fresh.suite });
    this.emit('spis');
    this.scheduleIkeTimers();
  }

  private sendIkeDelete(target: SaState): void {
    const onDone = () => {
      if (this.previous === target) this.previous = null;
      this.emit('spis');
    };
    this.requestOn(target, Exchange.INFORMATIONAL, [{ type: 'delete', critical: false, protocol: ProtocolId.IKE, spis: [] }], onDone, onDone);
  }

  // ---- INFORMATIONAL -------------------------------------------------------------------------

  private onInformationalRequest(m: IkeMessage, on: SaState): Payload[] {
    const answer: Payload[] = [];
    for (const p of m.payloads) {
      if (p.type !== 'delete') continue;
      if (p.protocol === ProtocolId.IKE) {
        if (on === this.previous) {
          this.previous = null;
          this.emit('spis');
          return [];
        }
        this.log('info', 'peer deleted the IKE SA');
        queueMicrotask(() => this.close('deleted by the peer'));
        return [];
      }
      if (p.protocol !== ProtocolId.ESP) continue;
      const ours: Buffer[] = [];
      for (const spiBytes of p.spis) {
        if (spiBytes.length !== 4) continue;
        const spi = spiBytes.readUInt32BE(0);
        const child = [this.child, ...this.retiring].find((c) => c && c.outboundSpi === spi);
        if (!child) continue;
        ours.push(spiBuffer(child.inboundSpi));
        this.childGone(child, this.child === child ? 'deleted by the peer' : 'rekeyed');
      }
      if (ours.length > 0) answer.push({ type: 'delete', critical: false, protocol: ProtocolId.ESP, spis: ours });
    }
    return answer;
  }

  /** Dead-peer detection: an empty INFORMATIONAL (§1.4); no answer after the retransmissions closes the SA. */
  private probe(): void {
    this.whenIdle(() => this.protectedRequest(Exchange.INFORMATIONAL, [], () => {}, () => this.close('dead peer: no answer to a liveness check')));
  }

  // ---- Receiving ---------------------------------------------------------------------------

  /** A message for this session (the manager found it by SPI). */
  receive(raw: Buffer, m: IkeMessage, sk: DecodedMessage | null, from: Endpoint, localPort: number): void {
    if (this.state === 'closed') return;
    const on = this.stateFor(m.header);
    if (m.header.exchange === Exchange.IKE_SA_INIT) {
      if (m.header.response && this.outstanding?.exchange === Exchange.IKE_SA_INIT && !this.sa) return this.answered(m, raw);
      // A retransmitted IKE_SA_INIT request: the same answer again (§2.1).
      if (!m.header.response && this.sa?.lastResponse?.id === 0 && this.role === 'responder' && this.state === 'connecting') {
        this.options.send(this.sa.lastResponse.bytes, this.remote, this.localPort);
        return;
      }
      return this.drop('unexpected IKE_SA_INIT');
    }
    if (!on) return this.drop('unknown IKE SPI');
    if (!sk) return this.drop('unprotected message after IKE_SA_INIT');
    if (m.header.initiator === on.initiator) return this.drop('initiator flag of our own role');
    const opened = openMessage(raw, sk, on.receive);
    if (!opened.ok) {
      // An authentic request (the ICV verified; only its payloads failed to decode) is answered,
      // not ignored: a critical payload we do not know with UNSUPPORTED_CRITICAL_PAYLOAD (§2.5),
      // any other error with INVALID_SYNTAX (§3.10.1: it "MUST be sent in response to any error
      // not covered by one of the other status types"). Else the peer retransmits it until it
      // gives up on the IKE SA.
      if (!UNAUTHENTIC.has(opened.reason) && !m.header.response) {
        this.lastHeard = Date.now();
        const refusal = opened.criticalType !== undefined ? notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.from([opened.criticalType])) : notify(NotifyType.INVALID_SYNTAX);
        return this.onRequest({ header: m.header, payloads: [] }, on, [refusal]);
      }
      return this.drop(opened.reason);
    }
    const message: IkeMessage = { header: m.header, payloads: opened.value };
    this.lastHeard = Date.now();
    // The peer may have moved (NAT rebinding, or its move to the NAT-T port): answer where it is now.
    if (from.address === this.remote.address) this.remote = { ...from };
    this.localPort = localPort;
    if (message.header.response) {
      const out = this.outstanding;
      if (!out || out.sa !== on || out.id !== message.header.messageId) return this.drop('response to no request of ours');
      return this.answered(message, raw);
    }
    this.onRequest(message, on);
  }

  private stateFor(header: IkeHeader): SaState | null {
    for (const s of [this.sa, this.previous]) if (s && s.spiI.equals(header.initiatorSpi) && s.spiR.equals(header.responderSpi)) return s;
    return null;
  }

  private onRequest(m: IkeMessage, on: SaState, refusal?: Payload[]): void {
    const id = m.header.messageId;
    if (on.lastResponse && id === on.lastResponse.id) {
      this.options.send(on.lastResponse.bytes, this.remote, this.localPort);
      return;
    }
    // A fixed reason (it keys a counter, which must not grow with what peers send); the IDs go to the log.
    if (id !== on.expectRequestId) return this.drop('message ID outside the window', { id, expected: on.expectRequestId });
    let answer: Payload[];
    if (refusal) answer = refusal;
    else switch (m.header.exchange) {
      case Exchange.IKE_AUTH:
        answer = this.role === 'responder' && this.state === 'connecting' ? this.onAuthRequest(m) : [notify(NotifyType.INVALID_SYNTAX)];
        break;
      case Exchange.CREATE_CHILD_SA:
        answer = this.state === 'established' || this.state === 'rekeying' ? this.onCreateChildRequest(m) : [notify(NotifyType.INVALID_SYNTAX)];
        break;
      case Exchange.INFORMATIONAL:
        answer = this.onInformationalRequest(m, on);
        break;
      default:
        return this.drop('unknown exchange type', { exchange: exchangeName(m.header.exchange) });
    }
    const header = { initiatorSpi: on.spiI, responderSpi: on.spiR, version: 0x20, exchange: m.header.exchange, initiator: on.initiator, response: true, messageId: id };
    const bytes = sealMessage(header, answer, on.send);
    on.expectRequestId = id + 1;
    on.lastResponse = { id, bytes };
    this.options.send(bytes, this.remote, this.localPort);
  }

  // ---- Sending requests ----------------------------------------------------------------------

  private protectedRequest(exchange: number, payloads: Payload[], onResponse: (m: IkeMessage) => void, onGiveUp: () => void): void {
    this.requestOn(this.sa!, exchange, payloads, onResponse, onGiveUp);
  }

  private requestOn(sa: SaState, exchange: number, payloads: Payload[], onResponse: (m: IkeMessage) => void, onGiveUp: () => void): void {
    if (this.outstanding) {
      this.queue.push(() => this.requestOn(sa, exchange, payloads, onResponse, onGiveUp));
      return;
    }
    const id = sa.nextRequestId++;
    const header = { initiatorSpi: sa.spiI, responderSpi: sa.spiR, version: 0x20, exchange, initiator: sa.initiator, response: false, messageId: id };
    this.request({ sa, exchange, id, bytes: sealMessage(header, payloads, sa.send), onResponse, onGiveUp });
  }

  private request(r: Omit<Outstanding, 'sends' | 'timer'>): void {
    const out: Outstanding = { ...r, sends: 0, timer: null };
    this.outstanding = out;
    this.transmit(out);
  }

  private transmit(out: Outstanding): void {
    if (this.outstanding !== out || this.state === 'closed') return;
    const { retransmitTimeoutMs, retransmitTries } = this.options.timing;
    if (out.sends >= retransmitTries) {
      this.outstanding = null;
      this.log('warn', 'request not answered', { exchange: exchangeName(out.exchange), sends: out.sends });
      out.onGiveUp();
      this.next();
      return;
    }
    if (out.sends > 0) this.log('debug', 'retransmitting', { exchange: exchangeName(out.exchange), send: out.sends + 1 });
    this.options.send(out.bytes, this.remote, this.localPort);
    out.timer = setTimeout(() => this.transmit(out), retransmitTimeoutMs * 2 ** out.sends);
    out.timer.unref();
    out.sends++;
  }

  private answered(m: IkeMessage, raw: Buffer): void {
    const out = this.outstanding!;
    if (out.timer) clearTimeout(out.timer);
    this.outstanding = null;
    try {
      out.onResponse(m, raw);
    } finally {
      this.next();
    }
  }

  private whenIdle(start: () => void): void {
    if (this.outstanding) this.queue.push(start);
    else start();
  }

  private next(): void {
    while (!this.outstanding && this.queue.length > 0 && this.state !== 'closed') this.queue.shift()!();
  }

  // ---- Timers and teardown -------------------------------------------------------------------

  private timer(ms: number, run: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers = this.timers.filter((x) => x !== t);
      if (this.state !== 'closed') run();
    }, ms);
    t.unref();
    this.timers.push(t);
    return t;
  }

  /** A little earlier than configured, at random, so that two peers with the same settings rarely collide (strongSwan's rand_time). */
  private jittered(ms: number): number {
    return Math.max(1000, Math.round(ms * (1 - Math.random() * 0.1)));
  }

  private ikeTimers: NodeJS.Timeout[] = [];

  private scheduleIkeTimers(): void {
    for (const t of this.ikeTimers) clearTimeout(t);
    const { ikeRekeyMs, dpdMs } = this.options.timing;
    this.ikeTimers = [this.timer(this.jittered(ikeRekeyMs), () => this.rekeyIke())];
    if (dpdMs > 0) {
      const check = () => {
        if (Date.now() - this.lastHeard >= dpdMs && !this.outstanding) this.probe();
        this.ikeTimers.push(this.timer(dpdMs, check));
      };
      this.ikeTimers.push(this.timer(dpdMs, check));
    }
  }

  private scheduleChildTimers(child: ChildSa): void {
    const { childRekeyMs, childLifetimeMs } = this.options.timing;
    this.timer(this.jittered(childRekeyMs), () => {
      if (this.child === child) this.rekeyChild();
    });
    this.timer(childLifetimeMs, () => {
      if (this.child === child || this.retiring.includes(child)) {
        this.log('warn', 'Child SA reached its hard lifetime');
        this.deleteChild(child, 'lifetime expired');
      }
    });
  }

  private closeSoon(reason: string): void {
    this.timer(0, () => this.close(reason));
  }

  /** Deletes the IKE SA (with its Child SAs) and closes. */
  sendDeleteAndClose(reason: string): void {
    if (!this.sa || this.state === 'closed') return this.close(reason);
    const sa = this.sa;
    const id = sa.nextRequestId++;
    const header = { initiatorSpi: sa.spiI, responderSpi: sa.spiR, version: 0x20, exchange: Exchange.INFORMATIONAL, initiator: sa.initiator, response: false, messageId: id };
    // Sent once, not retransmitted: we are going either way (§1.4.1 allows it).
    this.options.send(sealMessage(header, [{ type: 'delete', critical: false, protocol: ProtocolId.IKE, spis: [] }], sa.send), this.remote, this.localPort);
    this.close(reason);
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const t of [...this.timers, ...this.ikeTimers]) clearTimeout(t);
    if (this.outstanding?.timer) clearTimeout(this.outstanding.timer);
    this.outstanding = null;
    this.queue.length = 0;
    for (const child of [...this.retiring, ...(this.child ? [this.child] : [])]) this.emit('childDown', child, reason);
    this.retiring.length = 0;
    this.child = null;
    this.log('info', 'IKE SA closed', { reason });
    this.emit('closed', reason);
  }
}
