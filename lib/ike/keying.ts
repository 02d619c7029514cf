// IKE for one overlay: the manager on the native control channel, and the Child SAs it makes
// going into the native SA table. The overlay calls update() when its peers change and asks
// nativeSa() for each IKE peer's SAs when it builds a table snapshot.
import { IKE_DEFAULTS } from '../config/ike';
import type { NativeForwarder, NativePeerSa } from '../native';
import type { IkeStats, ResolvedConfig, ResolvedPeer } from '../types';
import { publicChild, type PublicChildSa } from './child';
import { InstalledSas } from './installed';
import { IkeManager, type IkePeerStatus } from './manager';
import type { IkeLogLine } from './session';
import { ikePeersOf } from './setup';

/** How IKE shows in `peers list`: the IKE SA and the Child SAs in use. */
export interface IkeStatus extends IkePeerStatus {
  child?: PublicChildSa;
}

/** A Child SA the peer deleted still accepts, this long, the packets it sent before. */
const PEER_DELETE_GRACE_MS = 2000;
const PEER_DELETE_GRACE_REASONS = new Set(['deleted by the peer', 'redundant after a simultaneous rekey', 'duplicate IKE SA']);

export interface IkeKeyingOptions {
  config: ResolvedConfig;
  forwarder: NativeForwarder;
  /** Builds and installs a table snapshot (the overlay's applyPeers). */
  apply: () => void;
  /** Inbound SPIs of manual SAs, which IKE must never hand out. */
  reservedSpi: (spi: number) => boolean;
  /** Registry mode: this host's subnet, our side of every tunnel. */
  localCidrs?: readonly string[];
  log: (line: IkeLogLine) => void;
}

export class IkeKeying {
  readonly manager: IkeManager;
  private readonly installed: InstalledSas;
  private config: ResolvedConfig;
  private readonly forwarder: NativeForwarder;
  private readonly localCidrs: readonly string[];

  constructor(options: IkeKeyingOptions) {
    this.config = options.config;
    this.forwarder = options.forwarder;
    this.localCidrs = options.localCidrs ?? [];
    this.installed = new InstalledSas(options.apply);
    const forwarder = options.forwarder;
    this.manager = new IkeManager(
      (localPort, address, port, data) => forwarder.sendControl(localPort, address, port, data),
      options.config.underlay.local,
      (spi) => options.reservedSpi(spi) || this.installed.has(spi),
    );
    const graceMs = () => (this.config.esp?.rekeyGraceSeconds ?? 30) * 1000;
    this.manager.on('log', options.log);
    // A second IKE SA's first Child SA (both ends started at once) does not take over sending:
    // the peer may not have installed its inbound side yet, and one of the two IKE SAs is about
    // to go; if it is the one we send with, remove() moves sending to the other.
    this.manager.on('childUp', (peer, child, replaces, activate) => this.installed.add(peer, child, activate && (replaces !== null || !this.installed.sending(peer))));
    this.manager.on('childActive', (peer, child) => this.installed.activate(peer, child));
    // A rekeyed SA keeps accepting what the peer sent before it switched; one the peer deleted,
    // what was already on its way; one whose IKE SA died goes now.
    this.manager.on('childDown', (peer, child, reason) => this.installed.remove(peer, child, reason === 'rekeyed' ? graceMs() : PEER_DELETE_GRACE_REASONS.has(reason) ? PEER_DELETE_GRACE_MS : 0));
  }

  /** The IKE port this overlay listens on (every IKE peer shares it). */
  static portOf(config: ResolvedConfig, peers: readonly ResolvedPeer[]): number | null {
    const first = peers.find((p) => p.ike);
    if (first?.ike) return first.ike.port;
    // A top-level ike: peers that come later (registry mode, peers.add) use it.
    return config.encap.type === 'esp' && config.ike ? (config.ike.port ?? IKE_DEFAULTS.port) : null;
  }

  /** Opens the control channel (IKE on UDP 500 natively, and 4500 behind the non-ESP marker). */
  open(port: number): void {
    this.forwarder.openControl({ ikePort: port, onDatagram: (d) => this.manager.receive(d) });
  }

  /** The peers changed: start IKE with new ones, delete the IKE SAs of those that left. */
  update(config: ResolvedConfig, peers: readonly ResolvedPeer[]): void {
    this.config = config;
    const ikePeers = ikePeersOf(config, peers, this.localCidrs);
    const keep = new Set(ikePeers.map((p) => p.name));
    for (const p of peers) if (!keep.has(p.name)) this.installed.forget(p.name);
    this.manager.setPeers(ikePeers);
  }

  nativeSa(peer: string): NativePeerSa | undefined {
    return this.installed.nativeSa(peer);
  }

  /** Traffic waits for a peer that starts on traffic: negotiate now. */
  trafficFor(peer: string): void {
    this.manager.initiate(peer);
  }

  /** Byte counts of each peer when its current Child SA came (the rekeyBytes limit counts from there). */
  private readonly bytesAtChild = new Map<string, { child: unknown; bytes: number }>();

  /** The peer has moved `bytes` in all (both ways): past `limit` since its Child SA came, rekey it. */
  rekeyAfterBytes(peer: string, bytes: number, limit: number): void {
    const child = this.manager.session(peer)?.child;
    if (!child) return;
    const mark = this.bytesAtChild.get(peer);
    if (!mark || mark.child !== child) {
      this.bytesAtChild.set(peer, { child, bytes });
      return;
    }
    if (bytes - mark.bytes >= limit) {
      mark.bytes = Infinity; // once per Child SA
      this.rekey(peer);
    }
  }

  /** An outbound SA nears its sequence-number limit: rekey it now. */
  rekey(peer: string): boolean {
    const session = this.manager.session(peer);
    if (!session) return false;
    session.rekeyChild();
    return true;
  }

  /** IKE SAs held and messages dropped (OverlayStats.ike). */
  stats(): IkeStats {
    return this.manager.stats();
  }

  status(peer: string): IkeStatus {
    const status: IkeStatus = this.manager.status(peer);
    const child = this.manager.session(peer)?.child;
    return child ? { ...status, child: publicChild(child) } : status;
  }

  close(): void {
    this.manager.close();
    this.installed.close();
    try {
      this.forwarder.closeControl();
    } catch {
      // Closed with the forwarder already.
    }
  }
}
