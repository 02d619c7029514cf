// The public Overlay: one forwarder instance. It validates the config, starts the native data
// path, keeps the peer table and reads the shared counters. Nothing here runs per packet.
import { EventEmitter } from 'node:events';
import { ConfigError, ESP_REKEY_GRACE_DEFAULT_SECONDS, encapInput, parseConfig, parseRekey, publicPeer } from './config';
import { chooseDeviceMac } from './device-mac';
import { ikeInput } from './config/ike';
import { registryInput } from './config/registry';
import {
  loadNative,
  type NativeAnnounceResult,
  type NativeDeviceInfo,
  type NativeForwarder,
  type NativeForwarderOptions,
  type NativeOffloadState,
} from './native';
import { Registry } from './registry/registry';
import type { NodeRecord } from './registry/records';
import { RegistryPeerSet } from './registry/peers';
import { formatNetwork } from './registry/subnets';
import { IkeKeying } from './ike/keying';
import type { IkeLogLine } from './ike/session';
import { diffPeers, PeerSlots, rekeyEvents, rekeySa, retireInbound, type RekeyNeeded } from './peers';
import { planIsEmpty, planReload } from './config/reload';
import { explainSetupError, preflight } from './preflight';
import { kernelRoutesFor, type KernelRoutes, type KernelRouteState, type RouteEvent } from './routes';
import { CounterIndex, CountersReader } from './stats';
import { dropsOf, isDropCursor } from './drops';
import type {
  FdbEntry,
  HealthChange,
  OffloadFallback,
  OverlayStats,
  PeerInfo,
  PublicPeer,
  RecentDrops,
  RegistryNodes,
  ReloadResult,
  ResolvedConfig,
  ResolvedPeer,
  SecurityAssociation,
  TableChange,
  TableChangeCause,
} from './types';

export type { RekeyNeeded } from './peers';
export type { KernelRouteState, RouteEvent } from './routes';

/** How often the outbound SAs' sequence counters are looked at (esp). */
const ESP_STATUS_POLL_MS = 1000;
/** How often health and run-time offload fallbacks are looked at (a flag and one counter). */
const STATUS_POLL_MS = 1000;

export interface OverlayEvents {
  /**
   * esp: an outbound SA nears the end of its sequence numbers (rekey it with peers.rekey), or
   * has run out (`exhausted`: nothing more is sent to the peer until it is rekeyed).
   */
  rekeyNeeded: [RekeyNeeded];
  /** esp with IKE: one line per exchange and state change (structured; never a key). */
  ike: [IkeLogLine];
  /**
   * tap: an address of the device was announced to the peers (a gratuitous ARP, or an
   * unsolicited Neighbor Advertisement for IPv6), or could not be (`error`): every address
   * once the overlay is up (`when: 'start'`, emitted after create() resolved), and each address
   * added to the device later (`when: 'added'`). Never fatal; also counted in
   * stats().generated (announcements, announceFailures).
   */
  announce: [AnnounceEvent];
  /**
   * A new peer-table snapshot went to the workers: peers added, removed or changed, SAs
   * installed. Emitted just after the call that swapped it (from a microtask, in order); the
   * diff is only computed while someone listens.
   */
  tableChanged: [TableChange];
  /** The data path turned unhealthy (or healthy again); looked at once a second. */
  healthChanged: [HealthChange];
  /** The kernel refused an offload at run time and the workers turned it off; looked at once a second. */
  offloadFallback: [OffloadFallback];
  /**
   * tun with device.routes auto: kernel routes added or removed as the peers change, and those
   * the kernel refused: `exists` (a route of the same prefix, table and metric that is not ours,
   * left alone) or `failed`. Never fatal. Those of the start are emitted after create() resolved.
   */
  route: [RouteEvent];
}

export interface AnnounceEvent {
  /** The address announced ('' when the device's addresses could not be read). */
  address: string;
  family: 4 | 6 | 0;
  kind: 'gratuitousArp' | 'unsolicitedNa' | 'none';
  when: 'start' | 'added';
  /** What failed: the system call and its error. Absent when the frame was sent. */
  error?: string;
}

export interface RekeyOptions {
  /** How long the replaced inbound SA stays valid, in seconds (default: esp.rekeyGraceSeconds, 30). */
  graceSeconds?: number;
}

/** @deprecated The old name of OverlayPeers. */
export type PeerTable = OverlayPeers;

/** The peers of a running overlay: what `overlay.peers` offers. */
export interface OverlayPeers {
  /** Adds a peer (same shape as a `peers:` entry of the config, validated); throws ConfigError on bad input. */
  add(peer: unknown): ResolvedPeer;
  /** Removes a peer by name; returns false when there was none. */
  remove(name: string): boolean;
  /**
   * Replaces the whole peer set (entries shaped like `peers:` in the config) in one validated
   * step: the workers switch from the old table to the new one between two batches, so traffic
   * on routes that stay never sees a gap. Peers that stay (same name) keep their counters.
   */
  replace(peers: unknown[]): ResolvedPeer[];
  /**
   * esp: installs new SAs for a peer, make-before-break (`{ in, out }`, each `{ spi, key }`,
   * either or both). A new `out` replaces the outbound SA at once; a new `in` is added in front
   * of the current inbound SA, which stays valid for `graceSeconds` (default
   * esp.rekeyGraceSeconds) and is then removed. For a rekey without a lost packet, give both
   * ends their new `in` first, then their new `out`: each end then accepts the new SA before
   * the other sends with it. Validated like the config (throws ConfigError; the messages never
   * include a key). Returns the peer's SPIs.
   */
  rekey(name: string, sas: { in?: unknown; out?: unknown }, options?: RekeyOptions): NonNullable<PublicPeer['sa']>;
  /** The peers as they may be shown: SAs as SPIs, never keys. */
  list(): PeerInfo[];
}

/** Turns a resolved config back into input form, so that it can be validated again as a whole. */
export function configToInput(config: ResolvedConfig): Record<string, unknown> {
  const device: Record<string, unknown> = { type: config.device.type, name: config.device.name, addresses: config.device.addresses };
  if (config.device.mtu !== null) device['mtu'] = config.device.mtu;
  if (config.device.mac !== null) device['mac'] = config.device.mac;
  if (config.device.interface !== undefined) device['interface'] = config.device.interface;
  for (const k of ['routes', 'routeTable', 'routeMetric'] as const) if (config.device[k] !== undefined) device[k] = config.device[k];
  const input: Record<string, unknown> = {
    name: config.name,
    device,
    encap: encapInput(config.encap),
    underlay: { ...config.underlay },
    workers: config.workers,
    cpuAffinity: [...config.cpuAffinity],
    busyPollMicroseconds: config.busyPollMicroseconds,
    mssClamp: config.mssClamp,
    batchSize: config.batchSize,
    fdb: { ...config.fdb },
    offloads: { ...config.offloads },
    limits: { ...config.limits },
    peers: config.peers.map(peerToInput),
    control: { ...config.control },
  };
  if (config.netns !== null) input['netns'] = config.netns;
  if (config.esp) input['esp'] = { ...config.esp };
  if (config.ike) input['ike'] = { ...config.ike };
  if (config.registry) input['registry'] = registryInput(config.registry);
  if (config.node) input['node'] = { ...config.node };
  if (config.metrics) input['metrics'] = { ...config.metrics };
  if (config.user !== undefined) input['user'] = config.user;
  if (config.group !== undefined) input['group'] = config.group;
  return input;
}

function peerToInput(peer: ResolvedPeer): Record<string, unknown> {
  // Port 0: an IP-protocol mode (gre, ipip, esp with udp: false), whose endpoints take no port.
  const endpoint = peer.endpoint.port === 0 ? { address: peer.endpoint.address } : { ...peer.endpoint };
  const input: Record<string, unknown> = { name: peer.name, endpoint, allowedIps: [...peer.allowedIps], macs: [...peer.macs] };
  if (peer.sa) input['sa'] = { out: { ...peer.sa.out }, in: peer.sa.in.map((x) => ({ ...x })) };
  // The merged settings, the key kept: they resolve to the same peer again.
  if (peer.ike) input['ike'] = ikeInput(peer.ike, true);
  return input;
}

function splitCidr(cidr: string): { address: string; prefixLength: number } {
  const slash = cidr.lastIndexOf('/');
  return { address: cidr.slice(0, slash), prefixLength: Number(cidr.slice(slash + 1)) };
}

function nativeOptions(config: ResolvedConfig, extraAddresses: readonly string[], mac: string | null): NativeForwarderOptions {
  const device = config.device.type;
  const encap = config.encap.type;
  return {
    netns: config.netns ?? '',
    device: {
      type: device,
      interface: config.device.interface ?? '',
      name: config.device.name,
      mtu: config.device.mtu ?? 0,
      addresses: [...config.device.addresses, ...extraAddresses].map(splitCidr),
      mac: mac ?? '',
    },
    encap: {
      type: encap,
      vni: config.encap.vni,
      port: config.encap.port,
      key: config.encap.key,
      checksum: config.encap.checksum,
      sequence: config.encap.sequence,
      ...(encap === 'esp' ? { cipher: config.encap.cipher!, udp: config.encap.udp !== false, esn: config.encap.esn !== false } : {}),
    },
    underlay: { local: config.underlay.local, sourcePorts: config.underlay.sourcePorts, udpChecksum: config.underlay.udpChecksum },
    workers: config.workers,
    batchSize: config.batchSize,
    fdb: { ...config.fdb },
    peerSlots: config.limits.maxPeers,
    offloads: { ...config.offloads },
    cpuAffinity: [...config.cpuAffinity],
    busyPollMicroseconds: config.busyPollMicroseconds,
    mssClamp: config.mssClamp === 'off' ? null : config.mssClamp,
    identitySwitch: config.user !== undefined,
  };
}

export class Overlay extends EventEmitter<OverlayEvents> {
  readonly name: string;
  readonly device: NativeDeviceInfo;
  readonly peers: OverlayPeers;
  private readonly offloadState: NativeOffloadState;
  private currentConfig: ResolvedConfig;
  private forwarder: NativeForwarder | null;
  private readonly reader: CountersReader;
  /** The drop rings outlive close(), as the counters do. */
  private readonly dropRings: Pick<NativeForwarder, 'recentDrops'>;
  private readonly slots: PeerSlots;
  /** Inbound SAs in a rekey's grace period, by peer name and SPI: their removal timers. */
  private readonly retirements = new Map<string, { peer: string; sa: SecurityAssociation; dueAt: number; timer: NodeJS.Timeout }>();
  /** esp: the poll of the outbound SAs' sequence counters, and what it reported. */
  private espPoll: NodeJS.Timeout | null = null;
  /** Registry mode: the etcd registry this host is in (events: nodeJoined, nodeLeft, registryDown, ...); null without. */
  readonly registry: Registry | null;
  /** Registry mode: the peers the registry's hosts make, next to the config's own. */
  private registryPeers: ResolvedPeer[] = [];
  private readonly registryPeerSet = new RegistryPeerSet((key, reason) => this.registry?.emit('recordSkipped', { key, reason }));
  private readonly rekeyReported = new Map<string, 'nearing' | 'exhausted'>();
  /** esp: IKEv2 for the peers that have `ike` (null when none has). */
  private ike: IkeKeying | null = null;
  /** on-traffic IKE peers: their noSa drops when last looked at. */
  private readonly noSaSeen = new Map<string, number>();
  /** The health and offload-fallback poll, and what it saw last. */
  private statusPoll: NodeJS.Timeout | null = null;
  private healthySeen = true;
  private fallbacksSeen = 0;
  /**
   * IKE lines logged before create() resolved (the first IKE_SA_INIT leaves from inside it),
   * emitted just after, so that a listener attached right after create() hears them; null then.
   */
  private heldIke: IkeLogLine[] | null = [];
  private readonly pendingTableChanges: TableChange[] = [];
  /** tun, device.routes auto: the kernel routes that follow the peers (lib/routes.ts). */
  private kernelRouteSet: KernelRoutes | null = null;
  /** Route events until create() resolved (then null: emitted as they come). */
  private routeEvents: RouteEvent[] | null = [];

  /** Validates `config` (as in the YAML file, or a config already resolved by parseConfig) and starts the data path. */
  static async create(config: unknown): Promise<Overlay> {
    const resolved = parseConfig(isResolved(config) ? configToInput(config) : config);
    if (!resolved.registry) {
      const overlay = new Overlay(resolved, null);
      overlay.startAnnouncing();
      overlay.releaseHeldIke();
      overlay.startReporting();
      return overlay;
    }
    // Registry mode: claim a subnet first (the device's address comes from it), then start the
    // data path, then follow the other hosts.
    const registry = await Registry.open(resolved);
    let overlay: Overlay | undefined;
    try {
      overlay = new Overlay(resolved, registry);
      if (resolved.device.type === 'tap') await registry.setMac(overlay.device.mac);
      await registry.follow((nodes) => overlay!.setRegistryNodes(nodes));
      overlay.startAnnouncing();
      overlay.releaseHeldIke();
      overlay.startReporting();
      return overlay;
    } catch (err) {
      await overlay?.close();
      await registry.close();
      throw err;
    }
  }

  private constructor(config: ResolvedConfig, registry: Registry | null) {
    super();
    const native = loadNative();
    const mac = chooseDeviceMac(config);
    if (mac.warning) warnOnce(`random-mac:${config.name}`, mac.warning, 'OVERLAYFWD_RANDOM_MAC');
    const extraAddresses = registry ? [registry.deviceAddress] : [];
    preflight(config, extraAddresses, native);
    let forwarder: NativeForwarder;
    try {
      forwarder = new native.Forwarder(nativeOptions(config, extraAddresses, mac.mac));
    } catch (err) {
      throw explainSetupError(err, config, native);
    }
    try {
      this.name = config.name;
      this.currentConfig = config;
      this.forwarder = forwarder;
      this.device = forwarder.device;
      this.offloadState = forwarder.offloads;
      this.reader = new CountersReader(forwarder.counters, new CounterIndex(native.statsLayout), config.workers);
      this.dropRings = forwarder;
      this.slots = new PeerSlots(config.limits.maxPeers);
      this.registry = registry;
      const table = config.device.routeTable ?? 254;
      const metric = config.device.routeMetric ?? 0;
      const apply = (op: 'add' | 'remove', prefixes: string[]) => forwarder.routes(op, prefixes, table, metric);
      this.kernelRouteSet = kernelRoutesFor(config, forwarder.device.name, extraAddresses, apply, (e) => this.reportRoute(e));
      this.applyPeers(config.peers, 'start');
      this.startIke(registry ? [registry.subnetText] : []);
    } catch (err) {
      this.ike?.close();
      forwarder.close();
      throw explainSetupError(err, config, native);
    }
    this.peers = {
      add: (peer) => this.addPeer(peer),
      remove: (name) => this.removePeer(name),
      replace: (peers) => {
        this.live();
        return this.reconfigure(peers, 'replace').peers;
      },
      rekey: (name, sas, options) => this.rekey(name, sas, options),
      list: () => this.listPeers(),
    };
    if (config.encap.type === 'esp' && typeof forwarder.espStatus === 'function') {
      this.espPoll = setInterval(() => this.pollEspStatus(), ESP_STATUS_POLL_MS);
      this.espPoll.unref();
    }
    this.statusPoll = setInterval(() => this.pollStatus(), STATUS_POLL_MS);
    this.statusPoll.unref();
  }

  /** After create() resolved: the IKE lines held until then, then every line as it comes. */
  private releaseHeldIke(): void {
    setImmediate(() => {
      const held = this.heldIke ?? [];
      this.heldIke = null;
      for (const line of held) this.emit('ike', line);
    });
  }

  private emitIke(line: IkeLogLine): void {
    if (this.heldIke) this.heldIke.push(line);
    else this.emit('ike', line);
  }

  /**
   * healthChanged and offloadFallback: the native side raises neither, it sets a flag and counts
   * in the shared block, so both are read here once a second (no call into native code per
   * counter: one section of the shared block is summed).
   */
  private pollStatus(): void {
    const forwarder = this.forwarder;
    if (!forwarder) return;
    const healthy = !forwarder.failed;
    if (healthy !== this.healthySeen) {
      this.healthySeen = healthy;
      this.emit('healthChanged', healthy ? { healthy } : { healthy, reason: 'a worker lost its device or its event loop failed' });
    }
    const fallbacks = this.reader.counter(this.reader.totals(), 'offload.fallbacks');
    if (fallbacks > this.fallbacksSeen) {
      const added = fallbacks - this.fallbacksSeen;
      this.fallbacksSeen = fallbacks;
      this.emit('offloadFallback', { added, total: fallbacks });
    }
  }

  /**
   * tap: announces the device's addresses to the peers, now that they are in the table (the
   * workers flood the frames to the current peers), and from now on each address added to the
   * device. A failure is reported (the announce event) and counted, never thrown: traffic
   * flows without it, only a peer's stale neighbour entry lingers until it expires.
   */
  private startAnnouncing(): void {
    const forwarder = this.live();
    if (this.currentConfig.device.type !== 'tap') return;
    let results: NativeAnnounceResult[];
    try {
      forwarder.watchAddresses((added) => this.reportAnnounced(added, 'added'));
      results = forwarder.announceAddresses();
    } catch (err) {
      results = [{ address: '', family: 0, error: (err as Error).message }];
    }
    // After create() resolved, so that a listener attached right after it hears them.
    setImmediate(() => this.reportAnnounced(results, 'start'));
  }

  /** Emits the route events of the start, after create() resolved, and from now on each as it comes. */
  private startReporting(): void {
    setImmediate(() => {
      const pending = this.routeEvents ?? [];
      this.routeEvents = null;
      for (const e of pending) this.emit('route', e);
    });
  }

  private reportRoute(e: RouteEvent): void {
    if (this.routeEvents) this.routeEvents.push(e);
    else this.emit('route', e);
  }

  /** tun with device.routes auto: the kernel routes this overlay holds, and the prefixes that have none (why); else null. */
  kernelRoutes(): KernelRouteState | null {
    return this.kernelRouteSet?.state() ?? null;
  }

  private reportAnnounced(results: NativeAnnounceResult[], when: AnnounceEvent['when']): void {
    for (const r of results) {
      const kind = r.family === 4 ? 'gratuitousArp' : r.family === 6 ? 'unsolicitedNa' : 'none';
      this.emit('announce', { address: r.address, family: r.family, kind, when, ...(r.error !== undefined ? { error: r.error } : {}) });
    }
  }

  /** esp: IKEv2 on the control channel when any peer has `ike` (then it is on for the overlay's life). */
  private startIke(localCidrs: string[]): void {
    const port = IkeKeying.portOf(this.currentConfig, this.allPeers());
    if (this.currentConfig.encap.type !== 'esp' || port === null) return;
    const manualSpis = () => new Set(this.allPeers().flatMap((p) => p.sa?.in.map((x) => x.spi) ?? []));
    this.ike = new IkeKeying({
      config: this.currentConfig,
      forwarder: this.forwarder!,
      apply: () => {
        if (this.forwarder) this.applyPeers(this.currentConfig.peers, 'ike');
      },
      reservedSpi: (spi) => manualSpis().has(spi),
      localCidrs,
      log: (line) => this.emitIke(line),
    });
    this.ike.open(port);
    this.ike.update(this.currentConfig, this.allPeers());
  }

  /**
   * Raises rekeyNeeded for outbound SAs that near their limit or ran out (see rekeyEvents); an
   * IKE peer's SA is rekeyed instead. An on-traffic IKE peer whose packets wait (noSa) starts.
   */
  private pollEspStatus(): void {
    if (!this.forwarder) return;
    const bySlot = new Map<number, string>();
    for (const entry of this.slots.values()) bySlot.set(entry.slot, entry.peer.name);
    let events: RekeyNeeded[];
    try {
      events = rekeyEvents(this.forwarder.espStatus(), (slot) => bySlot.get(slot), this.rekeyReported);
    } catch {
      return; // closed under us
    }
    for (const event of events) {
      if (this.ike?.rekey(event.peer)) continue;
      this.emit('rekeyNeeded', event);
    }
    if (!this.ike) return;
    const present = new Set<string>();
    for (const entry of this.slots.values()) {
      present.add(entry.peer.name);
      const limit = entry.peer.ike?.rekeyBytes ?? 0;
      if (limit > 0) {
        const c = this.reader.toCounters(this.reader.peer(entry.slot), entry.baseline);
        this.ike.rekeyAfterBytes(entry.peer.name, c.txBytes + c.rxBytes, limit);
      }
      if (entry.peer.ike?.start !== 'on-traffic') continue;
      const waiting = this.reader.counter(this.reader.peer(entry.slot), 'drop.noSa');
      const seen = this.noSaSeen.get(entry.peer.name);
      this.noSaSeen.set(entry.peer.name, waiting);
      if (seen !== undefined && waiting > seen) this.ike.trafficFor(entry.peer.name);
    }
    // Peers come and go (reload, the registry, peers.remove): forget the ones that went.
    for (const name of this.noSaSeen.keys()) if (!present.has(name)) this.noSaSeen.delete(name);
  }

  get config(): ResolvedConfig {
    return this.currentConfig;
  }

  get closed(): boolean {
    return this.forwarder === null;
  }

  /** False once the data path failed for good: the device was deleted under it, or a worker's event loop failed. */
  get healthy(): boolean {
    return this.forwarder !== null && !this.forwarder.failed;
  }

  stats(): OverlayStats {
    const peers: OverlayStats['peers'] = {};
    for (const entry of this.slots.values()) {
      peers[entry.peer.name] = this.reader.toCounters(this.reader.peer(entry.slot), entry.baseline);
    }
    const learned = this.forwarder ? this.forwarder.learnedFdb().length : 0;
    const staticEntries = this.allPeers().reduce((n, p) => n + p.macs.length, 0);
    return {
      name: this.name,
      device: this.device.name,
      healthy: this.healthy,
      workers: this.currentConfig.workers,
      // The counters block outlives close(): a closed overlay still reports its final counts.
      totals: this.reader.toCounters(this.reader.totals()),
      peers,
      fdb: { learned, static: staticEntries, refused: this.reader.counter(this.reader.totals(), 'fdbFull') },
      offloads: { active: { ...this.offloadState }, ...this.reader.offloadCounters(this.reader.totals()) },
      generated: this.reader.generated(this.reader.totals()),
      control: this.reader.control(this.reader.totals()),
      tableGeneration: this.slots.generation,
      ...(this.ike ? { ike: this.ike.stats() } : {}),
    };
  }

  /**
   * The most recent dropped packets, oldest first: reason, direction, peer, worker, time, and
   * the first bytes of each (outer and inner headers), from a small ring per worker (256 drops)
   * that the worker fills only when it drops a packet and that is read without stopping it.
   * `since`: the `cursor` of an earlier call, for only the drops recorded after it (`missed`
   * then says how many of those the rings had already overwritten). Still answers after close().
   */
  recentDrops(since?: number[]): RecentDrops {
    if (since !== undefined && !isDropCursor(since)) {
      throw new TypeError('recentDrops: since must be the cursor of an earlier call (an array of non-negative integers)');
    }
    const readout = this.dropRings.recentDrops(since);
    const bySlot = new Map<number, string>();
    for (const entry of this.slots.values()) bySlot.set(entry.slot, entry.peer.name);
    return {
      name: this.name,
      device: { name: this.device.name, layer: this.currentConfig.device.type === 'tun' ? 'ip' : 'ethernet' },
      underlay: { local: this.currentConfig.underlay.local },
      drops: dropsOf(readout, (slot) => bySlot.get(slot)),
      cursor: readout.cursor,
      missed: readout.missed,
    };
  }

  /**
   * @internal Not public API: the running native forwarder, for the IKE manager, which drives
   * its control channel (openControl, sendControl, closeControl). close() closes the channel
   * with the forwarder. Throws once the overlay is closed.
   */
  nativeForwarder(): NativeForwarder {
    return this.live();
  }

  /**
   * esp with IKE: rekeys the peer's Child SA (or its IKE SA) now, as `swanctl --rekey` does;
   * false when the peer has no established IKE SA.
   */
  rekeyIke(peer: string, what: 'child' | 'ike' = 'child'): boolean {
    this.live();
    const session = this.ike?.manager.session(peer);
    if (!session) return false;
    if (what === 'ike') session.rekeyIke();
    else session.rekeyChild();
    return true;
  }

  /**
   * Makes `input` (a whole config, as in the YAML file) the running config: validated whole,
   * then the peers (added, removed, changed: endpoints, allowed IPs, MACs, SAs, IKE settings)
   * and the esp/ike settings applied in one table swap, so traffic between peers that stay
   * loses nothing. Peers added at runtime that `input` lacks are removed: the file is the
   * truth. A change to what was fixed at start (device, encapsulation, underlay, workers,
   * limits, control socket, registry, ...) needs a restart: the reload is refused whole with a
   * ConfigError naming each such field, and nothing changes. IKE SAs of peers that stay are
   * kept; new IKE settings (a PSK, proposals) apply from their next negotiation.
   */
  reload(input: unknown): ReloadResult {
    this.live();
    const next = parseConfig(isResolved(input) ? configToInput(input) : input);
    const plan = planReload(this.currentConfig, next, (c) => IkeKeying.portOf(c, c.peers));
    if (plan.restartNeeded.length > 0) throw new ConfigError(plan.restartNeeded);
    const result: ReloadResult = { ...plan.peers, settings: plan.settings, applied: !planIsEmpty(plan), tableGeneration: this.slots.generation };
    if (!result.applied) return result;
    this.applyPeers(next.peers, 'reload');
    this.currentConfig = next;
    // esp: a file that brings the first IKE peer starts IKE now (its port was not open).
    if (!this.ike) this.startIke(this.registry ? [this.registry.subnetText] : []);
    else this.ike.update(next, this.allPeers());
    return { ...result, tableGeneration: this.slots.generation };
  }

  /** Registry mode: this host, the registry's other hosts, and whether each is in the table. Throws without a registry. */
  nodes(): RegistryNodes {
    const registry = this.registry;
    if (!registry) throw new Error(`overlay ${this.name} is not in registry mode (no registry: in its config)`);
    const inTable = new Set(this.registryPeers.map((p) => p.name));
    const now = Date.now();
    return {
      self: { name: this.currentConfig.node!.name, subnet: registry.subnetText, endpoint: this.currentConfig.node!.endpoint, deviceAddress: registry.deviceAddress },
      network: formatNetwork(registry.network),
      nodes: registry.nodes().map((n) => ({
        name: n.name,
        subnet: n.subnet,
        endpoint: n.endpoint,
        mac: n.mac ?? null,
        ageSeconds: Math.round((now - (registry.seenAt(n.key) ?? now)) / 1000),
        inTable: inTable.has(n.name),
      })),
    };
  }

  fdb(): FdbEntry[] {
    const bySlot = new Map<number, string>();
    for (const entry of this.slots.values()) bySlot.set(entry.slot, entry.peer.name);
    const entries: FdbEntry[] = [];
    for (const peer of this.allPeers()) {
      for (const mac of peer.macs) entries.push({ mac, peer: peer.name, static: true, ageSeconds: 0 });
    }
    for (const learned of this.forwarder?.learnedFdb() ?? []) {
      const peer = bySlot.get(learned.slot);
      if (peer !== undefined) entries.push({ mac: learned.mac, peer, static: false, ageSeconds: learned.ageSeconds });
    }
    return entries;
  }

  /** Stops the workers (joining their threads) and removes the device. Idempotent. */
  async close(): Promise<void> {
    const forwarder = this.forwarder;
    this.forwarder = null;
    if (this.espPoll) clearInterval(this.espPoll);
    this.espPoll = null;
    if (this.statusPoll) clearInterval(this.statusPoll);
    this.statusPoll = null;
    for (const r of this.retirements.values()) clearTimeout(r.timer);
    this.retirements.clear();
    // IKE first: its Deletes leave on the control channel while the forwarder is still open.
    this.ike?.close();
    this.ike = null;
    forwarder?.close();
    // The device went, and the kernel removed its routes with it.
    this.kernelRouteSet?.forget();
    await this.registry?.close();
  }

  /**
   * Registry mode: the hosts the registry holds become peers, each validated on its own against
   * the config and the peers taken before it; one that does not fit is skipped (recordSkipped)
   * and never breaks the others. One table swap for the whole set.
   */
  private setRegistryNodes(nodes: NodeRecord[]): void {
    if (!this.forwarder) return;
    this.registryPeers = this.registryPeerSet.build(nodes, this.currentConfig);
    this.applyPeers(this.currentConfig.peers, 'registry');
    this.ike?.update(this.currentConfig, this.allPeers());
  }

  private live(): NativeForwarder {
    if (!this.forwarder) throw new Error(`overlay ${this.name} is closed`);
    return this.forwarder;
  }

  /** The config's own peers, then those the registry's hosts make. */
  private allPeers(): ResolvedPeer[] {
    return [...this.currentConfig.peers, ...this.registryPeers];
  }

  private applyPeers(peers: ResolvedPeer[], cause: TableChangeCause): void {
    const forwarder = this.live();
    // The diff costs a pass over both sets: only when someone listens (100,000 routes swap too).
    const before = this.listenerCount('tableChanged') > 0 ? [...this.slots.values()].map((e) => e.peer) : null;
    const all = [...peers, ...this.registryPeers];
    // Kernel routes the new table needs go in before it, stale ones go after it (lib/routes.ts).
    const routes = this.kernelRouteSet?.begin(all);
    try {
      this.slots.replace(all, (slot) => this.reader.peer(slot));
      this.slots.install(forwarder, (name) => this.ike?.nativeSa(name));
    } catch (err) {
      routes?.abort();
      throw err;
    }
    routes?.commit();
    if (before) this.queueTableChange({ generation: this.slots.generation, cause, peers: all.length, ...diffPeers(before, all) });
  }

  /**
   * tableChanged goes out once the change that caused it is complete (the config updated, IKE
   * told): from a microtask, in the order of the swaps, so that a listener sees a consistent
   * overlay and cannot interrupt a change halfway.
   */
  private queueTableChange(change: TableChange): void {
    if (this.pendingTableChanges.push(change) > 1) return;
    queueMicrotask(() => {
      const changes = this.pendingTableChanges.splice(0);
      for (const c of changes) this.emit('tableChanged', c);
    });
  }

  // A peer change is validated as a whole new config, so every cross-check (unique names,
  // endpoints and MACs, address family, limits.maxPeers) is the config's own.
  private reconfigure(peers: unknown[], cause: TableChangeCause): ResolvedConfig {
    const input = configToInput(this.currentConfig);
    input['peers'] = peers;
    const next = parseConfig(input);
    this.applyPeers(next.peers, cause);
    this.currentConfig = next;
    this.ike?.update(next, this.allPeers());
    return next;
  }

  private addPeer(peer: unknown): ResolvedPeer {
    this.live();
    const next = this.reconfigure([...this.currentConfig.peers.map(peerToInput), peer], 'add');
    return next.peers[next.peers.length - 1]!;
  }

  private removePeer(name: string): boolean {
    this.live();
    if (!this.currentConfig.peers.some((p) => p.name === name)) return false;
    this.reconfigure(this.currentConfig.peers.filter((p) => p.name !== name).map(peerToInput), 'remove');
    return true;
  }

  private rekey(name: string, sas: unknown, options: RekeyOptions = {}): NonNullable<PublicPeer['sa']> {
    this.live();
    const change = parseRekey(sas, this.currentConfig, name);
    const grace = options.graceSeconds ?? this.currentConfig.esp?.rekeyGraceSeconds ?? ESP_REKEY_GRACE_DEFAULT_SECONDS;
    if (typeof grace !== 'number' || !Number.isFinite(grace) || grace <= 0 || grace > 3600) {
      throw new ConfigError([{ path: 'rekey.graceSeconds', message: 'must be a number of seconds above 0 and at most 3600' }]);
    }
    const peer = this.currentConfig.peers.find((p) => p.name === name)!;
    const { next, retiring } = rekeySa(peer.sa!, change);
    this.reconfigure(this.currentConfig.peers.map((p) => peerToInput(p.name === name ? { ...p, sa: next } : p)), 'rekey');
    if (retiring) this.scheduleRetirement(name, retiring, grace * 1000);
    return this.publicSa(name);
  }

  private scheduleRetirement(peer: string, sa: SecurityAssociation, ms: number): void {
    const id = `${peer}\0${sa.spi}`;
    const previous = this.retirements.get(id);
    if (previous) clearTimeout(previous.timer);
    const timer = setTimeout(() => {
      this.retirements.delete(id);
      this.retire(peer, sa);
    }, ms);
    timer.unref();
    this.retirements.set(id, { peer, sa, dueAt: Date.now() + ms, timer });
  }

  /** Removes an inbound SA whose grace period is over (if the peer still has it). */
  private retire(peer: string, sa: SecurityAssociation): void {
    if (!this.forwarder) return;
    const current = this.currentConfig.peers.find((p) => p.name === peer);
    const next = current?.sa && retireInbound(current.sa, sa);
    if (!next) return;
    try {
      this.reconfigure(this.currentConfig.peers.map((p) => peerToInput(p.name === peer ? { ...p, sa: next } : p)), 'retire');
    } catch {
      // The peer set changed in a way that no longer validates without this SA: leave it.
    }
  }

  /** A peer's SPIs (an esp peer that exists), with the seconds left to the SAs in a grace period. */
  private publicSa(name: string): NonNullable<PublicPeer['sa']> {
    return this.withRetirements(publicPeer(this.currentConfig.peers.find((p) => p.name === name)!)).sa!;
  }

  private withRetirements(peer: PublicPeer): PublicPeer {
    if (!peer.sa) return peer;
    const now = Date.now();
    const ins = peer.sa.in.map((x) => {
      const r = this.retirements.get(`${peer.name}\0${x.spi}`);
      return r ? { ...x, retiresInSeconds: Math.max(0, Math.ceil((r.dueAt - now) / 1000)) } : x;
    });
    return { ...peer, sa: { out: peer.sa.out, in: ins } };
  }

  private listPeers(): PeerInfo[] {
    const learnedBySlot = new Map<number, number>();
    for (const entry of this.forwarder?.learnedFdb() ?? []) {
      learnedBySlot.set(entry.slot, (learnedBySlot.get(entry.slot) ?? 0) + 1);
    }
    // Never the keys: what is listed goes to the control socket and to terminals.
    return this.allPeers().map((peer) => ({
      ...this.withRetirements(publicPeer(peer)),
      learnedMacs: learnedBySlot.get(this.slots.get(peer.name)?.slot ?? -1) ?? 0,
      ...(peer.ike && this.ike ? { ikeSa: this.ike.status(peer.name) } : {}),
    }));
  }
}

const warned = new Set<string>();

/** process.emitWarning, once per process for `key`: the library's way to say something without a logger. */
function warnOnce(key: string, message: string, code: string): void {
  if (warned.has(key)) return;
  warned.add(key);
  process.emitWarning(message, { code });
}

// A config parseConfig produced: endpoints are objects and every section is filled in.
function isResolved(config: unknown): config is ResolvedConfig {
  if (typeof config !== 'object' || config === null) return false;
  const c = config as Partial<ResolvedConfig>;
  return (
    typeof c.control?.socket === 'string' &&
    typeof c.limits?.maxPeers === 'number' &&
    Array.isArray(c.peers) &&
    c.peers.every((p) => typeof p?.endpoint === 'object')
  );
}
