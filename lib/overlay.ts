// The public Overlay: one forwarder instance. It validates the config, starts the native data
// path, keeps the peer table and reads the shared counters. Nothing here runs per packet.
import { encapInput, parseConfig } from './config';
import {
  loadNative,
  type NativeDeviceInfo,
  type NativeForwarder,
  type NativeForwarderOptions,
  type NativeOffloadState,
} from './native';
import { PeerSlots } from './peers';
import { CounterIndex, CountersReader } from './stats';
import type { FdbEntry, OverlayStats, PeerInfo, ResolvedConfig, ResolvedPeer } from './types';

export interface PeerTable {
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
  list(): PeerInfo[];
}

/** Turns a resolved config back into input form, so that it can be validated again as a whole. */
export function configToInput(config: ResolvedConfig): Record<string, unknown> {
  const device: Record<string, unknown> = { type: config.device.type, name: config.device.name, addresses: config.device.addresses };
  if (config.device.mtu !== null) device['mtu'] = config.device.mtu;
  if (config.device.mac !== null) device['mac'] = config.device.mac;
  if (config.device.interface !== undefined) device['interface'] = config.device.interface;
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
  return input;
}

function peerToInput(peer: ResolvedPeer): Record<string, unknown> {
  return { name: peer.name, endpoint: { ...peer.endpoint }, allowedIps: [...peer.allowedIps], macs: [...peer.macs] };
}

function splitCidr(cidr: string): { address: string; prefixLength: number } {
  const slash = cidr.lastIndexOf('/');
  return { address: cidr.slice(0, slash), prefixLength: Number(cidr.slice(slash + 1)) };
}

function nativeOptions(config: ResolvedConfig): NativeForwarderOptions {
  const device = config.device.type;
  const encap = config.encap.type;
  if (encap === 'esp') throw new Error(`encap.type ${encap} is not supported yet`);
  return {
    netns: config.netns ?? '',
    device: {
      type: device,
      interface: config.device.interface ?? '',
      name: config.device.name,
      mtu: config.device.mtu ?? 0,
      addresses: config.device.addresses.map(splitCidr),
      mac: config.device.mac ?? '',
    },
    encap: { type: encap, vni: config.encap.vni, port: config.encap.port, key: config.encap.key, checksum: config.encap.checksum, sequence: config.encap.sequence },
    underlay: { local: config.underlay.local, sourcePorts: config.underlay.sourcePorts, udpChecksum: config.underlay.udpChecksum },
    workers: config.workers,
    batchSize: config.batchSize,
    fdb: { ...config.fdb },
    peerSlots: config.limits.maxPeers,
    offloads: { ...config.offloads },
    cpuAffinity: [...config.cpuAffinity],
    busyPollMicroseconds: config.busyPollMicroseconds,
    mssClamp: config.mssClamp === 'off' ? null : config.mssClamp,
  };
}

export class Overlay {
  readonly name: string;
  readonly device: NativeDeviceInfo;
  readonly peers: PeerTable;
  private readonly offloadState: NativeOffloadState;
  private currentConfig: ResolvedConfig;
  private forwarder: NativeForwarder | null;
  private readonly reader: CountersReader;
  private readonly slots: PeerSlots;

  /** Validates `config` (as in the YAML file, or a config already resolved by parseConfig) and starts the data path. */
  static async create(config: unknown): Promise<Overlay> {
    const resolved = parseConfig(isResolved(config) ? configToInput(config) : config);
    return new Overlay(resolved);
  }

  private constructor(config: ResolvedConfig) {
    const native = loadNative();
    const forwarder = new native.Forwarder(nativeOptions(config));
    try {
      this.name = config.name;
      this.currentConfig = config;
      this.forwarder = forwarder;
      this.device = forwarder.device;
      this.offloadState = forwarder.offloads;
      this.reader = new CountersReader(forwarder.counters, new CounterIndex(native.statsLayout), config.workers);
      this.slots = new PeerSlots(config.limits.maxPeers);
      this.applyPeers(config.peers);
    } catch (err) {
      forwarder.close();
      throw err;
    }
    this.peers = {
      add: (peer) => this.addPeer(peer),
      remove: (name) => this.removePeer(name),
      replace: (peers) => {
        this.live();
        return this.reconfigure(peers).peers;
      },
      list: () => this.listPeers(),
    };
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
    const staticEntries = this.currentConfig.peers.reduce((n, p) => n + p.macs.length, 0);
    return {
      name: this.name,
      device: this.device.name,
      healthy: this.healthy,
      workers: this.currentConfig.workers,
      // The counters block outlives close(): a closed overlay still reports its final counts.
      totals: this.reader.toCounters(this.reader.totals()),
      peers,
      fdb: { learned, static: staticEntries },
      offloads: { active: { ...this.offloadState }, ...this.reader.offloadCounters(this.reader.totals()) },
      generated: this.reader.generated(this.reader.totals()),
    };
  }

  fdb(): FdbEntry[] {
    const bySlot = new Map<number, string>();
    for (const entry of this.slots.values()) bySlot.set(entry.slot, entry.peer.name);
    const entries: FdbEntry[] = [];
    for (const peer of this.currentConfig.peers) {
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
    forwarder?.close();
  }

  private live(): NativeForwarder {
    if (!this.forwarder) throw new Error(`overlay ${this.name} is closed`);
    return this.forwarder;
  }

  private applyPeers(peers: ResolvedPeer[]): void {
    const forwarder = this.live();
    this.slots.replace(peers, (slot) => this.reader.peer(slot));
    this.slots.install(forwarder);
  }

  // A peer change is validated as a whole new config, so every cross-check (unique names,
  // endpoints and MACs, address family, limits.maxPeers) is the config's own.
  private reconfigure(peers: unknown[]): ResolvedConfig {
    const input = configToInput(this.currentConfig);
    input['peers'] = peers;
    const next = parseConfig(input);
    this.applyPeers(next.peers);
    this.currentConfig = next;
    return next;
  }

  private addPeer(peer: unknown): ResolvedPeer {
    this.live();
    const next = this.reconfigure([...this.currentConfig.peers.map(peerToInput), peer]);
    return next.peers[next.peers.length - 1]!;
  }

  private removePeer(name: string): boolean {
    this.live();
    if (!this.currentConfig.peers.some((p) => p.name === name)) return false;
    this.reconfigure(this.currentConfig.peers.filter((p) => p.name !== name).map(peerToInput));
    return true;
  }

  private listPeers(): PeerInfo[] {
    const learnedBySlot = new Map<number, number>();
    for (const entry of this.forwarder?.learnedFdb() ?? []) {
      learnedBySlot.set(entry.slot, (learnedBySlot.get(entry.slot) ?? 0) + 1);
    }
    return this.currentConfig.peers.map((peer) => ({
      ...peer,
      learnedMacs: learnedBySlot.get(this.slots.get(peer.name)?.slot ?? -1) ?? 0,
    }));
  }
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
