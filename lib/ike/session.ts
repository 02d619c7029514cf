// One IKE SA with one peer, as initiator or responder (RFC 7296), and the Child SA it keeps.
//
// Exchanges, in the order they run, each in its own module over the core in this file:
//   1. IKE_SA_INIT     ike-sa-init.ts    SA, KE, nonces, NAT detection (§1.2, §2.23); COOKIE and
//                                        INVALID_KE_PAYLOAD retries (§2.6, §1.2)
//   2. IKE_AUTH        ike-auth.ts       identities, AUTH (PSK §2.15 or RFC 7427 signatures), the
//                                        first Child SA, narrowed selectors (§2.9)
//   3. CREATE_CHILD_SA child-sa.ts       rekey the Child SA (optional PFS, §1.3.3)
//                      ike-rekey.ts      rekey the IKE SA itself (§1.3.2, §2.18)
//                                        simultaneous rekeys resolved by the lowest nonce (§2.8.1)
//   4. INFORMATIONAL   informational.ts  Delete (§1.4.1), dead-peer detection (§1.4, §2.4)
// payloads.ts builds and finds the payloads they send and read; ike-sa.ts is one IKE SA's keys
// and message IDs.
//
// This file: the session's state, the transport, the dispatch of what arrives, timers and close.
// Transport rules: one request outstanding (window size 1), retransmitted with back-off until
// answered (§2.1); each request the peer sends is answered once and the answer cached, so a
// retransmitted request gets the same bytes back (§2.1); a message outside the window is
// dropped. The session does no I/O itself: it calls `send` and raises events; the manager owns
// sockets, SPIs and the data path.
import type { KeyObject, X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ChildSa } from './child';
import { ChildSas } from './child-sa';
import type { Identity } from './identity';
import { IkeAuth } from './ike-auth';
import { IkeRekey } from './ike-rekey';
import type { IkeSa } from './ike-sa';
import { IkeSaInit, type InitExchange } from './ike-sa-init';
import { Informational } from './informational';
import type { DecodedMessage } from './message';
import { notify, payload } from './payloads';
import { SkReason, openMessage, sealMessage } from './sk';
import type { IkeHeader, IkeMessage, IkeSuite, Payload, Proposal, TrafficSelector } from './types';
import { Exchange, NotifyType, ProtocolId, exchangeName } from './wire';

export type { Identity } from './identity';

export interface Endpoint {
  address: string;
  port: number;
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

export type SessionState = 'connecting' | 'established' | 'closed';

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

/** A request to send: retransmitted until answered (§2.1), then handed its response. */
export interface Request {
  /** The IKE SA it is protected with; null for IKE_SA_INIT. */
  sa: IkeSa | null;
  exchange: number;
  id: number;
  bytes: Buffer;
  onResponse(message: IkeMessage, raw: Buffer): void;
  onGiveUp(): void;
}

interface Outstanding extends Request {
  sends: number;
  timer: NodeJS.Timeout | null;
}

/**
 * What the exchange modules use of their session: its shared state, the transport, the timers,
 * each other, and the ways to end it. IkeSession implements it; nothing else should use these.
 */
export interface SessionCore extends Pick<EventEmitter<SessionEvents>, 'emit'> {
  readonly options: SessionOptions;
  state: SessionState;
  /** Where the peer is, and the port we send from (both move to the NAT-T port, §2.23). */
  remote: Endpoint;
  localPort: number;
  /** The current IKE SA, and the one a rekey replaced until its Delete exchange ends. */
  sa: IkeSa | null;
  previous: IkeSa | null;
  readonly suite: IkeSuite | null;
  /** The IKE_SA_INIT messages and nonces, once that exchange is done. */
  init: InitExchange | null;
  /** The identity the peer proved in IKE_AUTH. */
  peerId: Identity | null;
  readonly auth: IkeAuth;
  readonly children: ChildSas;
  log(level: IkeLogLine['level'], msg: string, fields?: Record<string, unknown>): void;
  /** An unprotected request (IKE_SA_INIT). */
  request(r: Request): void;
  /** A request protected with the current IKE SA, or with `sa`; queued while another is outstanding. */
  protectedRequest(exchange: number, payloads: Payload[], onResponse: (m: IkeMessage) => void, onGiveUp: () => void): void;
  requestOn(sa: IkeSa, exchange: number, payloads: Payload[], onResponse: (m: IkeMessage) => void, onGiveUp: () => void): void;
  /** Runs `start` now if no request is outstanding, else once the outstanding ones are done. */
  whenIdle(start: () => void): void;
  /** A timer that dies with the session. */
  timer(ms: number, run: () => void): NodeJS.Timeout;
  jittered(ms: number): number;
  /** (Re)arms the IKE SA rekey and dead-peer detection timers. */
  scheduleIkeTimers(): void;
  close(reason: string): void;
  closeSoon(reason: string): void;
  sendDeleteAndClose(reason: string): void;
}

/** openMessage's refusals before the ICV verified: nothing in such a message is the peer's. */
const UNAUTHENTIC = new Set<string>(Object.values(SkReason));

export class IkeSession extends EventEmitter<SessionEvents> implements SessionCore {
  readonly role: 'initiator' | 'responder';
  state: SessionState = 'connecting';
  readonly options: SessionOptions;
  remote: Endpoint;
  localPort: number;
  sa: IkeSa | null = null;
  previous: IkeSa | null = null;
  init: InitExchange | null = null;
  peerId: Identity | null = null;
  readonly createdAt = Date.now();

  // The exchanges (see the top of this file).
  private readonly saInit: IkeSaInit = new IkeSaInit(this);
  readonly auth: IkeAuth = new IkeAuth(this);
  readonly children: ChildSas = new ChildSas(this);
  private readonly ikeRekey: IkeRekey = new IkeRekey(this);
  private readonly informational: Informational = new Informational(this);

  private outstanding: Outstanding | null = null;
  private readonly queue: Array<() => void> = [];
  private timers: NodeJS.Timeout[] = [];
  private ikeTimers: NodeJS.Timeout[] = [];
  private lastHeard = Date.now();

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
    if (!this.sa && this.saInit.spi) spis.push(this.saInit.spi);
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

  /** The Child SA in use. */
  get child(): ChildSa | null {
    return this.children.current;
  }

  get halfOpen(): boolean {
    return this.role === 'responder' && this.state === 'connecting';
  }

  log(level: IkeLogLine['level'], msg: string, fields: Record<string, unknown> = {}): void {
    this.emit('log', { level, msg, peer: this.remote.address, ...fields });
  }

  private drop(reason: string, fields: Record<string, unknown> = {}): void {
    this.emit('dropped', reason);
    this.log('debug', 'message dropped', { reason, ...fields });
  }

  // ---- Starting, rekeying, ending: what the manager calls -------------------------------------

  /** Starts the IKE SA (initiator). */
  start(): void {
    this.saInit.start();
  }

  /**
   * Answers an IKE_SA_INIT request (responder). Returns false when no IKE SA results (the
   * answer was an error or INVALID_KE_PAYLOAD): the manager then forgets the session.
   */
  acceptInit(m: IkeMessage, raw: Buffer, from: Endpoint, localPort: number): boolean {
    return this.saInit.accept(m, raw, from, localPort);
  }

  /** Rekeys the Child SA (§1.3.3), with PFS when the ESP proposals carry a group. */
  rekeyChild(): void {
    this.children.rekey();
  }

  /** Rekeys the IKE SA (§1.3.2, §2.18). */
  rekeyIke(): void {
    this.ikeRekey.start();
  }

  /** Deletes the IKE SA (with its Child SAs) and closes. */
  sendDeleteAndClose(reason: string): void {
    this.informational.sendDeleteAndClose(reason);
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const t of [...this.timers, ...this.ikeTimers]) clearTimeout(t);
    if (this.outstanding?.timer) clearTimeout(this.outstanding.timer);
    this.outstanding = null;
    this.queue.length = 0;
    this.children.closeAll(reason);
    this.log('info', 'IKE SA closed', { reason });
    this.emit('closed', reason);
  }

  closeSoon(reason: string): void {
    this.timer(0, () => this.close(reason));
  }

  // ---- Receiving ---------------------------------------------------------------------------

  /** A message for this session (the manager found it by SPI). */
  receive(raw: Buffer, m: IkeMessage, sk: DecodedMessage | null, from: Endpoint, localPort: number): void {
    if (this.state === 'closed') return;
    const on = this.saFor(m.header);
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

  private saFor(header: IkeHeader): IkeSa | null {
    for (const s of [this.sa, this.previous]) if (s && s.spiI.equals(header.initiatorSpi) && s.spiR.equals(header.responderSpi)) return s;
    return null;
  }

  /** A request of the peer: answered once from the module of its exchange, the answer cached (§2.1). */
  private onRequest(m: IkeMessage, on: IkeSa, refusal?: Payload[]): void {
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
        answer = this.role === 'responder' && this.state === 'connecting' ? this.auth.onRequest(m) : [notify(NotifyType.INVALID_SYNTAX)];
        break;
      case Exchange.CREATE_CHILD_SA:
        answer = this.state === 'established' ? this.onCreateChildSaRequest(m) : [notify(NotifyType.INVALID_SYNTAX)];
        break;
      case Exchange.INFORMATIONAL:
        answer = this.informational.onRequest(m, on);
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

  /** CREATE_CHILD_SA rekeys the IKE SA when its proposals are for protocol IKE, else the Child SA. */
  private onCreateChildSaRequest(m: IkeMessage): Payload[] {
    const saPayload = payload(m, 'sa');
    if (!saPayload) return [notify(NotifyType.INVALID_SYNTAX)];
    if (saPayload.proposals[0]?.protocol === ProtocolId.IKE) return this.ikeRekey.onRequest(m);
    return this.children.onRekeyRequest(m);
  }

  // ---- Sending requests ----------------------------------------------------------------------

  protectedRequest(exchange: number, payloads: Payload[], onResponse: (m: IkeMessage) => void, onGiveUp: () => void): void {
    this.requestOn(this.sa!, exchange, payloads, onResponse, onGiveUp);
  }

  requestOn(sa: IkeSa, exchange: number, payloads: Payload[], onResponse: (m: IkeMessage) => void, onGiveUp: () => void): void {
    if (this.outstanding) {
      this.queue.push(() => this.requestOn(sa, exchange, payloads, onResponse, onGiveUp));
      return;
    }
    const id = sa.nextRequestId++;
    const header = { initiatorSpi: sa.spiI, responderSpi: sa.spiR, version: 0x20, exchange, initiator: sa.initiator, response: false, messageId: id };
    this.request({ sa, exchange, id, bytes: sealMessage(header, payloads, sa.send), onResponse, onGiveUp });
  }

  request(r: Request): void {
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

  whenIdle(start: () => void): void {
    if (this.outstanding) this.queue.push(start);
    else start();
  }

  private next(): void {
    while (!this.outstanding && this.queue.length > 0 && this.state !== 'closed') this.queue.shift()!();
  }

  // ---- Timers ----------------------------------------------------------------------------------

  timer(ms: number, run: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers = this.timers.filter((x) => x !== t);
      if (this.state !== 'closed') run();
    }, ms);
    t.unref();
    this.timers.push(t);
    return t;
  }

  /** A little earlier than configured, at random, so that two peers with the same settings rarely collide (strongSwan's rand_time). */
  jittered(ms: number): number {
    return Math.max(1000, Math.round(ms * (1 - Math.random() * 0.1)));
  }

  scheduleIkeTimers(): void {
    for (const t of this.ikeTimers) clearTimeout(t);
    const { ikeRekeyMs, dpdMs } = this.options.timing;
    this.ikeTimers = [this.timer(this.jittered(ikeRekeyMs), () => this.rekeyIke())];
    if (dpdMs > 0) {
      const check = () => {
        if (Date.now() - this.lastHeard >= dpdMs && !this.outstanding) this.informational.probe();
        this.ikeTimers.push(this.timer(dpdMs, check));
      };
      this.ikeTimers.push(this.timer(dpdMs, check));
    }
  }
}
