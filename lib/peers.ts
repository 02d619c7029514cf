// The peer table as TypeScript keeps it: names, resolved endpoints, MACs, and the stats slot
// each peer owns. Every change is compiled into a new native snapshot and swapped in whole.
import type { NativeForwarder, NativePeer } from './native';
import type { ResolvedPeer } from './types';
import type { RawSection } from './stats';

export interface PeerEntry {
  peer: ResolvedPeer;
  slot: number;
  /** Counter values the slot held when this peer got it (slots are reused). */
  baseline: RawSection;
}

export class PeerSlots {
  private readonly entries = new Map<string, PeerEntry>();
  private readonly free: number[];

  constructor(capacity: number) {
    // A queue: slots are handed out lowest first, and a freed slot goes to the back, so it is
    // reused as late as possible. Workers switch tables at their next batch; until then one
    // may still count (and learn MACs) for the peer that left, and a slot reused at once would
    // pass that on to its new owner.
    this.free = Array.from({ length: capacity }, (_, i) => i);
  }

  get size(): number {
    return this.entries.size;
  }

  get(name: string): PeerEntry | undefined {
    return this.entries.get(name);
  }

  values(): IterableIterator<PeerEntry> {
    return this.entries.values();
  }

  /** Replaces the whole set; peers that stay keep their slot (and so their counters). */
  replace(peers: ResolvedPeer[], baselineOf: (slot: number) => RawSection): void {
    const keep = new Set(peers.map((p) => p.name));
    for (const [name, entry] of this.entries) {
      if (!keep.has(name)) {
        this.entries.delete(name);
        this.free.push(entry.slot);
      }
    }
    for (const peer of peers) {
      const existing = this.entries.get(peer.name);
      if (existing) {
        existing.peer = peer;
        continue;
      }
      const slot = this.free.shift();
      if (slot === undefined) throw new RangeError('no free peer slot (limits.maxPeers reached)');
      this.entries.set(peer.name, { peer, slot, baseline: baselineOf(slot) });
    }
  }

  compile(): NativePeer[] {
    return [...this.entries.values()].map(({ peer, slot }) => ({
      slot,
      address: peer.endpoint.address,
      port: peer.endpoint.port,
      macs: peer.macs,
      allowedIps: peer.allowedIps,
    }));
  }

  install(forwarder: NativeForwarder): void {
    forwarder.setPeers(this.compile());
  }
}
