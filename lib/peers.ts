// The peer table as TypeScript keeps it: names, resolved endpoints, MACs, and the stats slot
// each peer owns. Every change is compiled into a new native snapshot and swapped in whole.
import type { SaChange } from './config';
import type { NativeEspOutboundStatus, NativeForwarder, NativePeer, NativePeerSa } from './native';
import type { PeerSecurityAssociations, ResolvedPeer, SecurityAssociation } from './types';
import type { RawSection } from './stats';

// ---- ESP rekeying, make-before-break: the bookkeeping, without timers or I/O.
//
// A rekey replaces the outbound SA at once, and puts the new inbound SA in front of the old
// one, which stays valid for a grace period (packets the peer sent before it switched, or sends
// until it switches, still arrive) and is then retired.

/** The SAs after `change`, and the inbound SA that starts its grace period (null when `in` is unchanged). */
export function rekeySa(current: PeerSecurityAssociations, change: SaChange): { next: PeerSecurityAssociations; retiring: SecurityAssociation | null } {
  return {
    next: { out: change.out ? { ...change.out } : { ...current.out }, in: change.in ? [{ ...change.in }, ...current.in] : [...current.in] },
    retiring: change.in ? (current.in[0] ?? null) : null,
  };
}

/** Raised when an outbound SA nears the end of its sequence numbers, and again when it runs out. */
export interface RekeyNeeded {
  peer: string;
  /** The outbound SA's SPI. */
  spi: number;
  /** The last sequence number sent with it. */
  sequence: bigint;
  /** true: it is used up and sends nothing more; false: it nears its limit. */
  exhausted: boolean;
}

/**
 * The rekey events that a poll of the outbound SAs' status calls for: one when an SA is first
 * seen nearing its limit, one when it is first seen exhausted (an SA found exhausted at once
 * gives that one only). `reported` (SA → the last state reported) is updated in place and
 * forgets the SAs that are gone, so a new SA under a reused SPI is reported afresh.
 */
export function rekeyEvents(
  statuses: readonly NativeEspOutboundStatus[],
  peerOfSlot: (slot: number) => string | undefined,
  reported: Map<string, 'nearing' | 'exhausted'>,
): RekeyNeeded[] {
  const events: RekeyNeeded[] = [];
  const present = new Set<string>();
  for (const s of statuses) {
    const peer = peerOfSlot(s.slot);
    if (peer === undefined) continue;
    const id = `${peer}\0${s.spi}`;
    present.add(id);
    const state = s.exhausted ? 'exhausted' : s.nearingLimit ? 'nearing' : null;
    if (state === null || reported.get(id) === state || reported.get(id) === 'exhausted') continue;
    reported.set(id, state);
    events.push({ peer, spi: s.spi, sequence: s.sequence, exhausted: state === 'exhausted' });
  }
  for (const id of [...reported.keys()]) if (!present.has(id)) reported.delete(id);
  return events;
}

/**
 * The SAs without the inbound SA `retired` (same SPI and key), once its grace period is over;
 * null when there is nothing to remove: it is gone already (the peer was replaced or removed),
 * or it is the newest inbound SA (never removed: the peer would be left without one).
 */
export function retireInbound(current: PeerSecurityAssociations, retired: SecurityAssociation): PeerSecurityAssociations | null {
  const i = current.in.findIndex((x) => x.spi === retired.spi && x.key === retired.key);
  if (i <= 0) return null;
  return { out: current.out, in: current.in.filter((_, j) => j !== i) };
}

export interface PeerEntry {
  peer: ResolvedPeer;
  slot: number;
  /** Counter values the slot held when this peer got it (slots are reused). */
  baseline: RawSection;
}

export class PeerSlots {
  private readonly entries = new Map<string, PeerEntry>();
  private readonly free: number[];
  private installed = 0;

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

  /** The table snapshot; `negotiated` gives the SAs of peers keyed by IKE (they have no `sa`). */
  compile(negotiated?: (peer: string) => NativePeerSa | undefined): NativePeer[] {
    return [...this.entries.values()].map(({ peer, slot }) => ({
      slot,
      address: peer.endpoint.address,
      port: peer.endpoint.port,
      macs: peer.macs,
      allowedIps: peer.allowedIps,
      ...(peer.sa ? { sa: { out: { ...peer.sa.out }, in: peer.sa.in.map((x) => ({ ...x })) } } : {}),
      ...(peer.ike && negotiated?.(peer.name) ? { sa: negotiated(peer.name)! } : {}),
    }));
  }

  install(forwarder: NativeForwarder, negotiated?: (peer: string) => NativePeerSa | undefined): void {
    forwarder.setPeers(this.compile(negotiated));
    this.installed++;
  }

  /** Table snapshots installed so far (every one goes through install()). */
  get generation(): number {
    return this.installed;
  }
}

/**
 * The names of the peers that joined, left, or stayed with other settings (endpoint, prefixes,
 * MACs, SAs, IKE settings) between two peer sets. Names only leave this function: the settings
 * are compared here, keys included, and never returned.
 */
export function diffPeers(before: readonly ResolvedPeer[], after: readonly ResolvedPeer[]): { added: string[]; removed: string[]; changed: string[] } {
  const old = new Map(before.map((p) => [p.name, p]));
  const added: string[] = [];
  const changed: string[] = [];
  for (const peer of after) {
    const was = old.get(peer.name);
    old.delete(peer.name);
    if (!was) added.push(peer.name);
    else if (was !== peer && settingsOf(was) !== settingsOf(peer)) changed.push(peer.name);
  }
  return { added, removed: [...old.keys()], changed };
}

function settingsOf(peer: ResolvedPeer): string {
  return JSON.stringify([peer.endpoint, peer.allowedIps, peer.macs, peer.sa ?? null, peer.ike ?? null]);
}
