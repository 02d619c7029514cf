// The Child SAs IKE negotiated, per peer, in the form the native SA table takes: the newest
// outbound SA, and every inbound SA still valid (the newest first). A rekey adds the new
// inbound SA in one table snapshot and moves the outbound SA in the next (make before break);
// the replaced inbound SA stays through the grace time, then goes.
import type { NativePeerSa, NativeSa } from '../native';
import type { ChildSa } from './child';

interface PeerSas {
  out: { child: ChildSa; sa: NativeSa } | null;
  in: Array<{ child: ChildSa; sa: NativeSa }>;
}

function inboundOf(child: ChildSa): NativeSa {
  return { spi: child.inboundSpi, key: child.inboundKey.toString('hex'), cipher: child.cipher, esn: child.esn };
}

function outboundOf(child: ChildSa): NativeSa {
  return { spi: child.outboundSpi, key: child.outboundKey.toString('hex'), cipher: child.cipher, esn: child.esn };
}

export class InstalledSas {
  private readonly peers = new Map<string, PeerSas>();
  private readonly timers = new Set<NodeJS.Timeout>();

  /** @param apply installs the table (one snapshot swap) after each change. */
  constructor(private readonly apply: () => void) {}

  private of(peer: string): PeerSas {
    let p = this.peers.get(peer);
    if (!p) this.peers.set(peer, (p = { out: null, in: [] }));
    return p;
  }

  /** A new Child SA: its inbound SA now; its outbound SA now too unless `activate` is false (see activate()). */
  add(peer: string, child: ChildSa, activate: boolean): void {
    const p = this.of(peer);
    p.in.unshift({ child, sa: inboundOf(child) });
    this.apply();
    if (activate) this.activate(peer, child);
  }

  /** Sends with `child` from now on. */
  activate(peer: string, child: ChildSa): void {
    const p = this.peers.get(peer);
    if (!p || !p.in.some((x) => x.child === child) || p.out?.child === child) return;
    p.out = { child, sa: outboundOf(child) };
    this.apply();
  }

  /**
   * A Child SA went: its outbound SA at once (the next newest takes over), its inbound SA after
   * `graceMs` (packets the peer sent before it switched are still accepted).
   */
  remove(peer: string, child: ChildSa, graceMs: number): void {
    const p = this.peers.get(peer);
    if (!p) return;
    if (p.out?.child === child) {
      const next = p.in.find((x) => x.child !== child);
      p.out = next ? { child: next.child, sa: outboundOf(next.child) } : null;
      this.apply();
    }
    const dropInbound = () => {
      const q = this.peers.get(peer);
      if (!q) return;
      q.in = q.in.filter((x) => x.child !== child);
      if (q.in.length === 0 && !q.out) this.peers.delete(peer);
      this.apply();
    };
    if (graceMs <= 0) return dropInbound();
    const t = setTimeout(() => {
      this.timers.delete(t);
      dropInbound();
    }, graceMs);
    t.unref();
    this.timers.add(t);
  }

  /** The peer's SAs for the native table (undefined: none yet; its packets count as noSa). */
  nativeSa(peer: string): NativePeerSa | undefined {
    const p = this.peers.get(peer);
    if (!p || p.in.length === 0) return undefined;
    return { ...(p.out ? { out: p.out.sa } : {}), in: p.in.map((x) => x.sa) } as NativePeerSa;
  }

  /** The peer has an outbound SA. */
  sending(peer: string): boolean {
    return !!this.peers.get(peer)?.out;
  }

  /** Inbound SPIs in use (so that no other SA gets one). */
  has(spi: number): boolean {
    for (const p of this.peers.values()) if (p.in.some((x) => x.sa.spi === spi)) return true;
    return false;
  }

  forget(peer: string): void {
    this.peers.delete(peer);
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.peers.clear();
  }
}
