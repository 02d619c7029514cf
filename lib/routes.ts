// Kernel routes that follow the peers (device.routes: auto, on TUN), as wg-quick installs a route
// per allowed IP: every peer prefix outside the device's own connected prefixes gets a route
// `PREFIX dev DEVICE proto 79 [table T] [metric M]`, so the host sends its traffic into the
// device without an `ip route add` by hand.
//
// The one place the peer set's routes are diffed: Overlay.applyPeers (static peers at start,
// peers.add/remove/replace, registry changes, the reload's replace) calls begin() with the new
// set BEFORE the table swap, which adds the routes it lacks, and commit() AFTER it, which removes
// the routes no peer holds any more; traffic on a route that stays never sees a gap. abort()
// takes back what begin() added when the swap failed.
//
// Only routes this overlay added are ever removed: an add is NLM_F_EXCL, so a route of the same
// prefix, table and metric that exists already (somebody else's) is EEXIST, reported, and never
// tracked, replaced or deleted; a removal names the device, table, metric and protocol. A route
// the kernel refuses (EEXIST, IPv6 disabled on the device, ...) is reported, never thrown: the
// overlay's own table routes the prefix all the same, and a registry change cannot be refused.
// It is tried again at the next change of the peer set. On close the device goes, and the kernel
// removes its routes with it (explicit removals first would open a moment in which the prefixes
// follow other routes, the default one included, in clear).
import { isNetwork, prefixBits, prefixContains, prefixNetworkText, type PrefixBits } from './config/addresses';
import type { NativeRouteResult } from './native';
import type { ResolvedConfig, ResolvedPeer } from './types';

/** What happened to some of the overlay's kernel routes (the overlay's `route` event). */
export interface RouteEvent {
  /**
   * added / removed: routes the kernel took or let go. exists: a route of the same prefix, table
   * and metric is there already and is not this overlay's; it is left as it is and never
   * removed (traffic to the prefix follows it, not necessarily the device). failed: the kernel
   * refused the add or the removal (code, message).
   */
  kind: 'added' | 'removed' | 'exists' | 'failed';
  op: 'add' | 'remove';
  /** The networks concerned, host bits cleared: "10.2.0.0/16". */
  prefixes: string[];
  device: string;
  table: number;
  metric: number;
  /** exists and failed: the errno's code ("EEXIST", "EACCES") and the kernel's message. */
  code?: string;
  message?: string;
}

/** The kernel routes of a running overlay, as `overlay.kernelRoutes()` reports them. */
export interface KernelRouteState {
  device: string;
  table: number;
  metric: number;
  /** The routes this overlay added and holds, in the order added. */
  installed: string[];
  /** Prefixes the peers hold that have no route of ours: why (EEXIST: somebody else's route). */
  missing: Array<{ prefix: string; code: string; message: string }>;
}

/** Installs (add) or removes (remove) routes of `prefixes` into the device: one result per prefix. */
export type RouteApplier = (op: 'add' | 'remove', prefixes: string[]) => NativeRouteResult[];

const ROUTE_TABLE_NAMES: Record<number, string> = { 253: 'default', 254: 'main' };

function tableName(table: number): string {
  return ROUTE_TABLE_NAMES[table] ?? String(table);
}

function shortList(prefixes: readonly string[], max = 5): string {
  return prefixes.length <= max ? prefixes.join(', ') : `${prefixes.slice(0, max).join(', ')} and ${prefixes.length - max} more`;
}

/** One line about `e` for a log or a terminal. */
export function describeRouteEvent(e: RouteEvent): string {
  const where = `dev ${e.device} table ${tableName(e.table)} metric ${e.metric}`;
  const n = e.prefixes.length;
  const routes = n === 1 ? `route ${e.prefixes[0]}` : `${n} routes (${shortList(e.prefixes)})`;
  switch (e.kind) {
    case 'added':
      return `added ${routes} ${where}`;
    case 'removed':
      return `removed ${routes} ${where}`;
    case 'exists':
      return (
        `${n === 1 ? `a route to ${e.prefixes[0]}` : `routes to ${shortList(e.prefixes)}`} with table ${tableName(e.table)} and metric ${e.metric} ` +
        `exist${n === 1 ? 's' : ''} already and ${n === 1 ? 'is' : 'are'} not overlayfwd's: left as ${n === 1 ? 'it is' : 'they are'}, never removed, ` +
        `and the kernel sends that traffic where ${n === 1 ? 'it says' : 'they say'}, not necessarily into ${e.device} ` +
        `(remove ${n === 1 ? 'it' : 'them'}, or give device.routeMetric or device.routeTable another value)`
      );
    case 'failed':
      return `could not ${e.op} ${routes} ${where}: ${e.code ?? 'error'} ${e.message ?? ''}`.trimEnd();
  }
}

/**
 * The routes of one overlay. `connected` are the device's own prefixes (its addresses, the
 * registry's too): a peer prefix inside one of them is routed into the device by the kernel's
 * connected route already and gets none.
 */
export class KernelRoutes {
  private readonly connected: PrefixBits[];
  /** Networks this overlay added, in the order added. */
  private readonly installed = new Set<string>();
  /** Networks without a route of ours, by what the kernel said (EEXIST: somebody else's route). */
  private readonly missing = new Map<string, { code: string; message: string }>();
  /** allowedIps entry → its network, or null when a connected prefix holds it (pruned to the peers'). */
  private readonly classified = new Map<string, string | null>();

  constructor(
    private readonly device: string,
    connected: readonly string[],
    private readonly table: number,
    private readonly metric: number,
    private readonly apply: RouteApplier,
    private readonly report: (e: RouteEvent) => void,
  ) {
    this.connected = connected.map(prefixBits);
  }

  /** The networks `peers` need routes for, in order, each once. */
  wanted(peers: readonly ResolvedPeer[]): Set<string> {
    const out = new Set<string>();
    for (const peer of peers) {
      for (const cidr of peer.allowedIps) {
        let network = this.classified.get(cidr);
        if (network === undefined) {
          const prefix = prefixBits(cidr);
          // A cidr as parseCidr gives it is canonical: with no host bits it is its own network's text.
          network = this.connected.some((c) => prefixContains(c, prefix)) ? null : isNetwork(prefix) ? cidr : prefixNetworkText(prefix);
          this.classified.set(cidr, network);
        }
        if (network !== null) out.add(network);
      }
    }
    if (this.classified.size > 2 * out.size + 1024) {
      const live = new Set(peers.flatMap((p) => p.allowedIps));
      for (const cidr of this.classified.keys()) if (!live.has(cidr)) this.classified.delete(cidr);
    }
    return out;
  }

  /**
   * Before the table swap: adds the routes the new peer set needs and lacks. Routes refused before
   * are tried again (conflicts each; other refusals the first alone: when it is refused again,
   * so are the rest, unasked). Returns
   * the rest of the step: commit() after the swap, abort() when the swap failed.
   */
  begin(peers: readonly ResolvedPeer[]): { commit(): void; abort(): void } {
    const wanted = this.wanted(peers);
    const fresh: string[] = [];
    const retry: string[] = [];
    for (const net of wanted) {
      if (this.installed.has(net)) continue;
      (this.missing.has(net) ? retry : fresh).push(net);
    }
    // A conflict (EEXIST) is one prefix's; any other refusal is the device's (IPv6 disabled on
    // it, say) and so probed with one route before the rest are asked again.
    const conflicts = retry.filter((net) => this.missing.get(net)?.code === 'EEXIST');
    const others = retry.filter((net) => this.missing.get(net)?.code !== 'EEXIST');
    const refusals: RouteEvent[] = [];
    const added = [...this.add(fresh, refusals), ...this.add(conflicts, refusals)];
    if (others.length > 0) {
      const first = this.add(others.slice(0, 1), refusals);
      if (first.length > 0) added.push(...first, ...this.add(others.slice(1), refusals));
    }
    if (added.length > 0) this.report(this.event('added', 'add', added));
    for (const e of refusals) this.report(e);
    return {
      commit: () => {
        for (const net of this.missing.keys()) if (!wanted.has(net)) this.missing.delete(net);
        this.remove([...this.installed].filter((net) => !wanted.has(net)));
      },
      abort: () => this.remove(added),
    };
  }

  /** The device is gone, and its routes with it: nothing is held any more. */
  forget(): void {
    this.installed.clear();
    this.missing.clear();
  }

  state(): KernelRouteState {
    return {
      device: this.device,
      table: this.table,
      metric: this.metric,
      installed: [...this.installed],
      missing: [...this.missing].map(([prefix, why]) => ({ prefix, ...why })),
    };
  }

  /** Adds `nets`; returns those the kernel took. Refusals go to `refusals`, grouped by what was said. */
  private add(nets: string[], refusals: RouteEvent[]): string[] {
    if (nets.length === 0) return [];
    const results = this.apply('add', nets);
    const ok: string[] = [];
    const refused = new Map<string, { code: string; message: string; nets: string[] }>();
    nets.forEach((net, i) => {
      const r = results[i];
      if (r === 0 || r === undefined) {
        this.installed.add(net);
        this.missing.delete(net);
        ok.push(net);
        return;
      }
      const before = this.missing.get(net);
      this.missing.set(net, { code: r.code, message: r.message });
      // Said once: a retry that meets the same refusal stays quiet.
      if (before && before.code === r.code && before.message === r.message) return;
      const key = `${r.code}\n${r.message}`;
      const group = refused.get(key) ?? { code: r.code, message: r.message, nets: [] };
      group.nets.push(net);
      refused.set(key, group);
    });
    for (const g of refused.values()) {
      refusals.push({ ...this.event(g.code === 'EEXIST' ? 'exists' : 'failed', 'add', g.nets), code: g.code, message: g.message });
    }
    return ok;
  }

  private remove(nets: string[]): void {
    if (nets.length === 0) return;
    const results = this.apply('remove', nets);
    const removed: string[] = [];
    const refused = new Map<string, { code: string; message: string; nets: string[] }>();
    nets.forEach((net, i) => {
      const r = results[i];
      // ESRCH: gone already (deleted by hand): not ours to hold any more either way.
      if (r === 0 || r === undefined || r.code === 'ESRCH') {
        this.installed.delete(net);
        removed.push(net);
        return;
      }
      // Kept as ours: the next commit tries again.
      const key = `${r.code}\n${r.message}`;
      const group = refused.get(key) ?? { code: r.code, message: r.message, nets: [] };
      group.nets.push(net);
      refused.set(key, group);
    });
    if (removed.length > 0) this.report(this.event('removed', 'remove', removed));
    for (const g of refused.values()) this.report({ ...this.event('failed', 'remove', g.nets), code: g.code, message: g.message });
  }

  private event(kind: RouteEvent['kind'], op: RouteEvent['op'], prefixes: string[]): RouteEvent {
    return { kind, op, prefixes, device: this.device, table: this.table, metric: this.metric };
  }
}

/**
 * The kernel routes of an overlay on `config` (its device `device`, `extraConnected` more
 * prefixes of its own, the registry's), or null when there are none to keep: not a TUN device,
 * or device.routes off.
 */
export function kernelRoutesFor(
  config: ResolvedConfig,
  device: string,
  extraConnected: readonly string[],
  apply: RouteApplier,
  report: (e: RouteEvent) => void,
): KernelRoutes | null {
  if (config.device.type !== 'tun' || config.device.routes === 'off') return null;
  return new KernelRoutes(
    device,
    [...config.device.addresses, ...extraConnected],
    config.device.routeTable ?? 254,
    config.device.routeMetric ?? 0,
    apply,
    report,
  );
}
