// The IKE daemon of one overlay: every IKE datagram comes here (from the native control channel:
// UDP 500, and UDP 4500 behind the non-ESP marker), is demultiplexed by SPI to its session, and
// new IKE_SA_INITs become responder sessions (behind a COOKIE once too many are half open,
// RFC 7296 §2.6). It starts and restarts the initiator sessions of its peers, resolves two
// sessions with one peer to one, and hands every Child SA to the overlay, which installs it in
// the native SA table (make before break). Control traffic, never a data packet.
import { createHmac, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ChildSa } from './child';
import { addressBytes } from './payloads';
import { IkeSession, type Endpoint, type IkeLogLine, type SessionOptions } from './session';
import type { IkeStats } from '../types';
import type { IkeHeader, IkeMessage } from './types';
import { Exchange, IKE_MAJOR_VERSION, NotifyType } from './wire';
import { Reason, decodeMessage, encodeMessage } from './message';

/** What the manager needs to know of a peer (built by the overlay from its config). */
export interface IkePeer {
  name: string;
  /** The peer's address, and the IKE port we reach it on (500). */
  endpoint: Endpoint;
  start: 'on-start' | 'on-traffic' | 'passive';
  /** Session options but the role-specific parts (local/remote endpoints are filled in here). */
  session: Omit<SessionOptions, 'send' | 'allocateSpi' | 'remote'>;
}

export interface IkeDatagram {
  localPort: number;
  address: string;
  port: number;
  data: Buffer;
}

export interface ManagerEvents {
  childUp: [peer: string, child: ChildSa, replaces: ChildSa | null, activate: boolean];
  childActive: [peer: string, child: ChildSa];
  childDown: [peer: string, child: ChildSa, reason: string];
  log: [line: IkeLogLine];
}

/** Half-open responder SAs above which an IKE_SA_INIT must carry a COOKIE (§2.6). */
export const COOKIE_THRESHOLD = 16;
/** Half-open responder SAs beyond which new IKE_SA_INITs are dropped outright. */
const HALF_OPEN_LIMIT = 1024;
/** Back-off of an initiator whose IKE SA failed or closed: 1 s doubling to 60 s. */
const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 60000;
const MAX_DATAGRAM = 65535;

/** The manager's counters: IKE SAs held (all, and responder SAs still half open) and dropped messages by reason. */

export interface IkePeerStatus {
  peer: string;
  state: 'connecting' | 'established' | 'down';
  role?: 'initiator' | 'responder';
  spis?: { initiator: string; responder: string };
  ageSeconds?: number;
  lastError?: string;
}

export class IkeManager extends EventEmitter<ManagerEvents> {
  private readonly sessions = new Set<IkeSession>();
  private readonly bySpi = new Map<string, IkeSession>();
  /** Responder sessions by the initiator's SPI and address, until IKE_AUTH (retransmitted IKE_SA_INITs find them). */
  private readonly byInit = new Map<string, IkeSession>();
  private readonly peers = new Map<string, IkePeer>();
  private readonly sessionPeer = new Map<IkeSession, string>();
  private readonly restarts = new Map<string, { timer: NodeJS.Timeout | null; delay: number; lastError?: string }>();
  private readonly usedSpis = new Set<number>();
  private cookieSecret = randomBytes(32);
  private closed = false;
  private childSas = 0;
  /** Dropped messages by reason (the counters an operator reads). */
  readonly drops = new Map<string, number>();

  constructor(
    private readonly send: (localPort: number, address: string, port: number, data: Buffer) => void,
    private readonly localAddress: string,
    /** Inbound SPIs already in use outside IKE (manual SAs): never handed out. */
    private readonly reservedSpi: (spi: number) => boolean,
  ) {
    super();
    // A new cookie secret now and then: an old cookie stops working (§2.6).
    const rotate = setInterval(() => (this.cookieSecret = randomBytes(32)), 300000);
    rotate.unref();
    this.rotateTimer = rotate;
  }

  private readonly rotateTimer: NodeJS.Timeout;

  private count(reason: string): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  private allocateSpi = (): number => {
    for (;;) {
      const spi = randomBytes(4).readUInt32BE(0);
      // 1-255 are reserved by IANA (RFC 4303 §2.1).
      if (spi < 256 || this.usedSpis.has(spi) || this.reservedSpi(spi)) continue;
      this.usedSpis.add(spi);
      return spi;
    }
  };

  /** Replaces the set of IKE peers: new ones start (on-start), removed ones are deleted. */
  setPeers(peers: IkePeer[]): void {
    const next = new Map(peers.map((p) => [p.name, p]));
    for (const [name] of this.peers) {
      if (!next.has(name)) {
        this.peers.delete(name);
        this.cancelRestart(name);
        for (const s of this.sessionsOf(name)) s.sendDeleteAndClose('peer removed');
      }
    }
    for (const p of peers) {
      const known = this.peers.get(p.name);
      this.peers.set(p.name, p);
      const moved = known && known.endpoint.address !== p.endpoint.address;
      if (moved) for (const s of this.sessionsOf(p.name)) s.sendDeleteAndClose('peer endpoint changed');
      if ((!known || moved) && p.start === 'on-start') this.initiate(p.name);
    }
  }

  /** Starts an IKE SA with `name` unless one is up or under way. */
  initiate(name: string): void {
    const peer = this.peers.get(name);
    if (!peer || this.closed) return;
    if (this.sessionsOf(name).some((s) => s.state !== 'closed')) return;
    const session = this.newSession('initiator', peer, peer.endpoint);
    session.start();
    this.index(session);
  }

  private sessionsOf(name: string): IkeSession[] {
    return [...this.sessions].filter((s) => this.sessionPeer.get(s) === name);
  }

  private newSession(role: 'initiator' | 'responder', peer: IkePeer, remote: Endpoint): IkeSession {
    const session = new IkeSession(role, {
      ...peer.session,
      remote,
      allocateSpi: this.allocateSpi,
      send: (data, to, fromPort) => {
        try {
          this.send(fromPort, to.address, to.port, data);
        } catch (e) {
          this.emit('log', { level: 'warn', msg: 'IKE send failed', peer: peer.name, error: (e as Error).message });
        }
      },
    });
    this.sessions.add(session);
    this.sessionPeer.set(session, peer.name);
    session.on('log', (line) => this.emit('log', { ...line, peer: peer.name, role }));
    session.on('dropped', (reason) => this.count(reason));
    session.on('spis', () => this.index(session));
    session.on('established', () => this.onEstablished(peer.name, session));
    session.on('childUp', (child, replaces, activate) => {
      this.childSas++;
      this.emit('childUp', peer.name, child, replaces, activate);
    });
    session.on('childActive', (child) => this.emit('childActive', peer.name, child));
    session.on('childDown', (child, reason) => {
      this.usedSpis.delete(child.inboundSpi);
      this.emit('childDown', peer.name, child, reason);
    });
    session.on('closed', (reason) => this.onClosed(peer.name, session, reason));
    return session;
  }

  private index(session: IkeSession): void {
    for (const [k, s] of this.bySpi) if (s === session) this.bySpi.delete(k);
    if (session.state === 'closed') return;
    for (const spi of session.localSpis()) this.bySpi.set(spi.toString('hex'), session);
  }

  /**
   * Two IKE SAs with one peer (both sides started at once): both ends keep the one that the
   * host with the lower underlay address initiated, and the other goes. The rule is the same
   * on both ends, so they never delete each other's survivor.
   */
  private onEstablished(name: string, session: IkeSession): void {
    const restart = this.restarts.get(name);
    if (restart) restart.delay = RESTART_MIN_MS;
    const others = this.sessionsOf(name).filter((s) => s !== session && s.state === 'established');
    if (others.length === 0) return;
    const weAreLower = compareAddresses(this.localAddress, session.remoteEndpoint.address) < 0;
    const keep = [session, ...others].find((s) => (s.role === 'initiator') === weAreLower) ?? session;
    for (const s of [session, ...others]) {
      if (s !== keep) {
        this.emit('log', { level: 'info', msg: 'duplicate IKE SA with the peer: deleting one', peer: name });
        s.sendDeleteAndClose('duplicate IKE SA');
      }
    }
  }

  private onClosed(name: string, session: IkeSession, reason: string): void {
    this.sessions.delete(session);
    this.sessionPeer.delete(session);
    this.index(session);
    for (const [k, s] of this.byInit) if (s === session) this.byInit.delete(k);
    const peer = this.peers.get(name);
    if (this.closed || !peer || peer.start !== 'on-start') return;
    if (this.sessionsOf(name).some((s) => s.state !== 'closed')) return;
    // The tunnel comes back by itself: the initiator tries again, backing off.
    const restart = this.restarts.get(name) ?? { timer: null, delay: RESTART_MIN_MS };
    restart.lastError = reason;
    if (restart.timer) clearTimeout(restart.timer);
    restart.timer = setTimeout(() => {
      restart.timer = null;
      this.initiate(name);
    }, restart.delay);
    restart.timer.unref();
    restart.delay = Math.min(restart.delay * 2, RESTART_MAX_MS);
    this.restarts.set(name, restart);
  }

  private cancelRestart(name: string): void {
    const r = this.restarts.get(name);
    if (r?.timer) clearTimeout(r.timer);
    this.restarts.delete(name);
  }

  /** One datagram from the control channel. Never throws: a bad message is counted and dropped. */
  receive(d: IkeDatagram): void {
    if (this.closed) return;
    if (d.data.length > MAX_DATAGRAM) return this.count('oversized');
    const decoded = decodeMessage(d.data);
    if (!decoded.ok) {
      this.count(decoded.reason);
      const h = decoded.header;
      // An IKE_SA_INIT we cannot read is answered when the RFC says so (§2.5): a critical payload
      // we do not know, or a major version above ours (a lower one, IKEv1, is only dropped: §2.5
      // asks for INVALID_MAJOR_VERSION for a higher one). Unprotected, so nothing else is.
      if (h && !h.response && h.exchange === Exchange.IKE_SA_INIT) {
        const refusal =
          decoded.criticalType !== undefined
            ? { type: NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, data: Buffer.from([decoded.criticalType]) }
            : decoded.reason === Reason.majorVersion && h.version >> 4 > IKE_MAJOR_VERSION
              ? { type: NotifyType.INVALID_MAJOR_VERSION, data: Buffer.alloc(0) }
              : null;
        if (refusal) this.refuseInit(h, refusal.type, refusal.data, d);
      }
      return;
    }
    const { header } = decoded.value;
    const m: IkeMessage = { header, payloads: decoded.value.payloads };
    const from = { address: d.address, port: d.port };
    const sk = decoded.value.sk ? decoded.value : null;
    // A request from the original initiator names our SPI as the responder's; anything from the
    // original responder names ours as the initiator's.
    const mine = header.initiator ? header.responderSpi : header.initiatorSpi;
    if (header.exchange === Exchange.IKE_SA_INIT && !header.response) {
      // Guarded like session.receive below: whatever throws here would reach the native
      // channel's callback as an uncaught exception and end the process.
      try {
        this.onInitRequest(m, d, from);
      } catch (e) {
        this.count('internal error');
        this.emit('log', { level: 'warn', msg: 'IKE_SA_INIT handling failed', error: (e as Error).message });
      }
      return;
    }
    const session = this.bySpi.get(mine.toString('hex'));
    if (!session) return this.count('unknown IKE SPI');
    try {
      session.receive(d.data, m, sk, from, d.localPort);
    } catch (e) {
      this.count('internal error');
      this.emit('log', { level: 'warn', msg: 'IKE message handling failed', error: (e as Error).message });
    }
  }

  private onInitRequest(m: IkeMessage, d: IkeDatagram, from: Endpoint): void {
    if (!m.header.responderSpi.equals(Buffer.alloc(8))) return this.count('IKE_SA_INIT request with a responder SPI');
    const key = `${m.header.initiatorSpi.toString('hex')}/${from.address}`;
    const existing = this.byInit.get(key);
    if (existing) return existing.receive(d.data, m, null, from, d.localPort);
    const peer = [...this.peers.values()].find((p) => p.endpoint.address === from.address);
    if (!peer) return this.count('IKE_SA_INIT from an address that is no peer');
    const halfOpen = [...this.sessions].filter((s) => s.halfOpen).length;
    if (halfOpen >= HALF_OPEN_LIMIT) return this.count('too many half-open IKE SAs');
    if (halfOpen >= COOKIE_THRESHOLD && !this.cookieOk(m, from)) {
      this.count('IKE_SA_INIT without a valid COOKIE (answered with one)');
      this.sendCookie(m, from, d.localPort);
      return;
    }
    const session = this.newSession('responder', peer, from);
    try {
      if (!session.acceptInit(m, d.data, from, d.localPort)) {
        this.sessions.delete(session);
        this.sessionPeer.delete(session);
        return;
      }
    } catch (e) {
      this.sessions.delete(session);
      this.sessionPeer.delete(session);
      this.count('internal error');
      this.emit('log', { level: 'warn', msg: 'IKE_SA_INIT handling failed', error: (e as Error).message });
      return;
    }
    // Kept until the session closes (onClosed), not only while half open: an IKE_SA_INIT that
    // comes again once IKE_AUTH was received belongs to this SA and is ignored (§2.1), where a
    // new responder SA for it would be one more half-open SA made by a replayed message.
    this.byInit.set(key, session);
    this.index(session);
  }

  private refuseInit(h: IkeHeader, notifyType: number, data: Buffer, d: IkeDatagram): void {
    const header = { initiatorSpi: h.initiatorSpi, responderSpi: Buffer.alloc(8), version: 0x20, exchange: Exchange.IKE_SA_INIT, initiator: false, response: true, messageId: h.messageId };
    try {
      this.send(d.localPort, d.address, d.port, encodeMessage(header, [{ type: 'notify', critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType, data }]));
    } catch {
      // Unanswered; the initiator retransmits or gives up.
    }
  }

  /** COOKIE = version | HMAC(secret, Ni | IPi | SPIi) (§2.6): stateless, checked on the retry. */
  private cookieFor(m: IkeMessage, from: Endpoint): Buffer {
    const nonce = m.payloads.find((p) => p.type === 'nonce');
    const mac = createHmac('sha256', this.cookieSecret)
      .update(nonce && nonce.type === 'nonce' ? nonce.data : Buffer.alloc(0))
      .update(from.address)
      .update(m.header.initiatorSpi)
      .digest();
    return Buffer.concat([Buffer.from([1]), mac]);
  }

  private cookieOk(m: IkeMessage, from: Endpoint): boolean {
    const first = m.payloads[0];
    return !!first && first.type === 'notify' && first.notifyType === NotifyType.COOKIE && first.data.equals(this.cookieFor(m, from));
  }

  private sendCookie(m: IkeMessage, from: Endpoint, localPort: number): void {
    const header = { initiatorSpi: m.header.initiatorSpi, responderSpi: Buffer.alloc(8), version: 0x20, exchange: Exchange.IKE_SA_INIT, initiator: false, response: true, messageId: 0 };
    const data = encodeMessage(header, [{ type: 'notify', critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: NotifyType.COOKIE, data: this.cookieFor(m, from) }]);
    try {
      this.send(localPort, from.address, from.port, data);
    } catch {
      // A full socket buffer drops the cookie; the initiator retransmits.
    }
  }

  stats(): IkeStats {
    let halfOpen = 0;
    for (const s of this.sessions) if (s.halfOpen) halfOpen++;
    let established = 0;
    for (const name of this.peers.keys()) if (this.session(name)?.child) established++;
    return { sessions: this.sessions.size, halfOpen, established, childSas: this.childSas, drops: Object.fromEntries(this.drops) };
  }

  /** The peer's current session, for rekeys started from outside (rekeyNeeded). */
  session(name: string): IkeSession | undefined {
    return this.sessionsOf(name).find((s) => s.state === 'established');
  }

  status(name: string): IkePeerStatus {
    const s = this.session(name) ?? this.sessionsOf(name)[0];
    const lastError = this.restarts.get(name)?.lastError;
    if (!s) return { peer: name, state: 'down', ...(lastError ? { lastError } : {}) };
    const spis = s.spis;
    return {
      peer: name,
      state: s.state === 'established' ? 'established' : 'connecting',
      role: s.role,
      ...(spis ? { spis: { initiator: spis.initiator.toString('hex'), responder: spis.responder.toString('hex') } } : {}),
      ageSeconds: Math.round((Date.now() - s.createdAt) / 1000),
      ...(lastError ? { lastError } : {}),
    };
  }

  /** Deletes every IKE SA (one Delete each, not waited for) and stops. */
  close(): void {
    if (this.closed) return;
    for (const s of [...this.sessions]) s.sendDeleteAndClose('shutting down');
    this.closed = true;
    clearInterval(this.rotateTimer);
    for (const name of [...this.restarts.keys()]) this.cancelRestart(name);
  }
}

/** Orders two address literals (IPv4 dotted or IPv6) numerically, the same on every host. */
export function compareAddresses(a: string, b: string): number {
  return Buffer.compare(addressBytes(a), addressBytes(b));
}
