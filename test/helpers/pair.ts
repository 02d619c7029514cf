// Two overlayfwd hosts joined by one veth underlay: the setup most netns tests of a mode start
// from. A TUN pair routes each side's overlay addresses (IPv4 198.19.0.N and IPv6
// fd00:198:19::N inside) to the other by allowedIps; a TAP pair forwards by MAC as usual.
import { expect } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import type { Counters, DropReason } from '../../lib/types';
import { DROP_REASONS } from '../../lib/types';
import { sleep } from './env';
import { delta, peerCounters, startForwarder } from './overlay';
import { verifiedTransfer } from './transfer';

/** IPv6 underlay addresses of hosts a and b (ULA, switched on by the pair). */
export const UNDERLAY6 = ['fd00:198:18::1', 'fd00:198:18::2'] as const;
/** IPv6 overlay addresses of hosts a and b on a TUN pair. */
export const INNER6 = ['fd00:198:19::1', 'fd00:198:19::2'] as const;

export interface Pair {
  a: Host;
  b: Host;
  A: Overlay;
  B: Overlay;
  /** The underlay addresses the forwarders use (IPv4 or IPv6). */
  underlayA: string;
  underlayB: string;
}

export interface PairOptions {
  device: 'tun' | 'tap';
  encap: Record<string, unknown>;
  /** Underlay family (default 4). */
  family?: 4 | 6;
  /** device.mtu of both (default: derived from the underlay). */
  mtu?: number;
  /** More prefixes A routes to B (TUN). */
  extraRoutesToB?: string[];
  /** device.routes of both (TUN; default auto: kernel routes for allowedIps outside the device's prefix). */
  routes?: 'auto' | 'off';
  /** More fields of the peer entry on host 1 (a) or 2 (b), e.g. ESP `sa`. */
  peerFields?: (self: 1 | 2) => Record<string, unknown>;
  /** More peers for A, made once the hosts exist. */
  extraPeersA?: (a: Host, b: Host) => Promise<Array<Record<string, unknown>>>;
  /** More top-level config for both. */
  extra?: Record<string, unknown>;
}

/**
 * Switches IPv6 on for `dev` and gives it `address`/64 without DAD. No router solicitations: on a
 * TUN they go to ff02::2, which no peer's allowedIps holds, and would be counted as noRoute.
 */
export async function enableIpv6(lab: Lab, host: Host, dev: string, address: string): Promise<void> {
  await lab.exec(host, 'sysctl', ['-q', '-w', `net.ipv6.conf.${dev}.router_solicitations=0`]);
  await lab.exec(host, 'sysctl', ['-q', '-w', `net.ipv6.conf.${dev}.disable_ipv6=0`]);
  await lab.ip(host, ['addr', 'add', `${address}/64`, 'dev', dev, 'nodad']);
}

/** The drop counters that moved, as { reason: count }. */
export function movedDrops(c: Counters, reasons: readonly DropReason[] = DROP_REASONS): Partial<Record<DropReason, number>> {
  return Object.fromEntries(reasons.filter((r) => c.drops[r] !== 0).map((r) => [r, c.drops[r]]));
}

/** tshark prints flags as True/False or 1/0 depending on its version. */
export function bit(field: string | undefined): number {
  return field === 'True' || field === '1' ? 1 : 0;
}

export async function overlayPair(lab: Lab, options: PairOptions): Promise<Pair> {
  const [a, b] = await lab.pair('a', 'b');
  const family = options.family ?? 4;
  if (family === 6) {
    await enableIpv6(lab, a, a.underlayDev, UNDERLAY6[0]);
    await enableIpv6(lab, b, b.underlayDev, UNDERLAY6[1]);
  }
  const underlayA = family === 4 ? a.underlay : UNDERLAY6[0];
  const underlayB = family === 4 ? b.underlay : UNDERLAY6[1];
  const tun = options.device === 'tun';
  const start = async (host: Host, self: 1 | 2, peer: Host, extraPeers: Array<Record<string, unknown>>) => {
    const other: 1 | 2 = self === 1 ? 2 : 1;
    const routes = [`${overlayAddress(other)}/32`, `${INNER6[other - 1]}/128`, ...(self === 1 ? (options.extraRoutesToB ?? []) : [])];
    return startForwarder(lab, {
      host,
      address: `${overlayAddress(self)}/24`,
      peers: [],
      extra: {
        device: {
          type: options.device,
          name: 'ovl0',
          addresses: [`${overlayAddress(self)}/24`],
          ...(options.mtu ? { mtu: options.mtu } : {}),
          ...(options.routes ? { routes: options.routes } : {}),
        },
        encap: { ...options.encap },
        underlay: { local: self === 1 ? underlayA : underlayB },
        peers: [
          {
            name: peer.label,
            endpoint: self === 1 ? underlayB : underlayA,
            ...(tun ? { allowedIps: routes } : {}),
            ...(options.peerFields ? options.peerFields(self) : {}),
          },
          ...extraPeers,
        ],
        ...options.extra,
      },
    });
  };
  const A = await start(a, 1, b, options.extraPeersA ? await options.extraPeersA(a, b) : []);
  const B = await start(b, 2, a, []);
  if (tun) {
    await enableIpv6(lab, a, 'ovl0', INNER6[0]);
    await enableIpv6(lab, b, 'ovl0', INNER6[1]);
  }
  await sleep(200);
  return { a, b, A, B, underlayA, underlayB };
}

/** Pings both ways (and with IPv6 inside on a TUN pair); nothing may be dropped meanwhile. */
export async function pingsBothWays(lab: Lab, p: Pair, ipv6Inside: boolean): Promise<void> {
  const a0 = p.A.stats();
  const b0 = p.B.stats();
  expect((await lab.ping(p.a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
  expect((await lab.ping(p.b, overlayAddress(1), { count: 3, intervalSec: 0.05 })).received).toBe(3);
  if (ipv6Inside) {
    expect((await lab.ping(p.a, INNER6[1], { count: 3, intervalSec: 0.05 })).received).toBe(3);
    expect((await lab.ping(p.b, INNER6[0], { count: 3, intervalSec: 0.05 })).received).toBe(3);
  }
  expect(movedDrops(delta(p.A.stats().totals, a0.totals))).toEqual({});
  expect(movedDrops(delta(p.B.stats().totals, b0.totals))).toEqual({});
}

/** A sha256-verified TCP transfer a → b, every byte counted on the peers, nothing dropped. */
export async function transferCounted(lab: Lab, p: Pair, megabytes: number, what: string): Promise<void> {
  const a0 = p.A.stats();
  const b0 = p.B.stats();
  const r = await verifiedTransfer(lab, { from: p.a, to: p.b, address: overlayAddress(2), megabytes, timeoutMs: 90_000 });
  expect(r.received.peer).toBe(overlayAddress(1));
  await sleep(100);
  const sent = delta(peerCounters(p.A.stats(), 'b'), peerCounters(a0, 'b'));
  const got = delta(peerCounters(p.B.stats(), 'a'), peerCounters(b0, 'a'));
  expect(sent.txBytes).toBeGreaterThanOrEqual(megabytes << 20);
  expect(got.rxBytes).toBeGreaterThanOrEqual(megabytes << 20);
  expect(got.rxPackets).toBeLessThanOrEqual(sent.txPackets);
  expect(movedDrops(delta(p.A.stats().totals, a0.totals))).toEqual({});
  expect(movedDrops(delta(p.B.stats().totals, b0.totals))).toEqual({});
  console.log(`[${what}] ${megabytes} MB in ${r.seconds.toFixed(2)} s (${r.mbitPerSecond.toFixed(0)} Mbit/s)`);
}
