// The L3 routing table at scale: 100,000 allowedIps prefixes (IPv4 /32s and IPv6 /64s) across
// 10,000 peers on a TUN overlay, and four full replacements of all of them while a UDP stream
// flows over a route that stays. Each new table moves every other prefix to another peer; the
// stream's route (B's 198.19.0.2/32) is in all of them. Every datagram is counted, and not one
// may be lost while the tables switch (but those the kernel counts as dropped itself, when a
// reader starved of CPU on a busy machine lets a queue overflow); neither host may count a drop
// of any kind.
//
// Only peer "b" exists; the other 9,999 endpoints are unused addresses in 198.18.0.0/15 that no
// packet ever reaches: a's namespace has no route to them (the last test routes a few pings to
// two of them, which the socket refuses).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import { describeNetns, sleep } from '../helpers/env';
import { delta, peerCounters, startForwarder } from '../helpers/overlay';
import { movedDrops } from '../helpers/pair';
import { startUdpStream } from '../helpers/udp-stream';

const PEERS = 10_000;
const ROUTES_PER_PEER = 10;

/** The k-th synthetic prefix: even k an IPv4 /32 in 198.19.1.0–198.19.196.255, odd k an IPv6 /64. */
function prefix(k: number): string {
  const half = k >> 1;
  if (k % 2 === 0) return `198.19.${1 + (half >> 8)}.${half & 255}/32`;
  return `fd00:1:${(half >> 16).toString(16)}:${(half & 0xffff).toString(16)}::/64`;
}

/** Peer i's endpoint: 198.18.1.1 onwards for the synthetic peers; b's real address for i = 0. */
function endpoint(i: number, b: Host): string {
  if (i === 0) return b.underlay;
  return `198.18.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
}

/**
 * 10 routes per peer; `rotation` shifts which peer owns which prefix, so two rotations share no
 * (prefix, peer) pair. b's transfer route is always b's.
 */
function peerSet(b: Host, rotation: number): Record<string, unknown>[] {
  const peers: Record<string, unknown>[] = [];
  for (let i = 0; i < PEERS; i++) {
    const owner = (i + rotation) % PEERS;
    const allowedIps: string[] = [];
    for (let j = 0; j < ROUTES_PER_PEER; j++) allowedIps.push(prefix(owner * ROUTES_PER_PEER + j));
    if (i === 0) allowedIps[0] = `${overlayAddress(2)}/32`;
    peers.push({ name: i === 0 ? 'b' : `p${i}`, endpoint: endpoint(i, b), allowedIps });
  }
  return peers;
}


describeNetns('100,000 routes over 10,000 peers, replaced under traffic', {}, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let A: Overlay;
  let B: Overlay;

  beforeAll(async () => {
    lab = await Lab.create();
    [a, b] = await lab.pair('a', 'b');
    const t0 = Date.now();
    A = await startForwarder(lab, {
      host: a,
      address: `${overlayAddress(1)}/24`,
      peers: [],
      extra: {
        device: { type: 'tun', name: 'ovl0', addresses: [`${overlayAddress(1)}/24`] },
        encap: { type: 'gre-udp' },
        limits: { maxPeers: PEERS + 16 },
        peers: peerSet(b, 0),
      },
    });
    console.log(`[route-swap] started with ${PEERS} peers / ${PEERS * ROUTES_PER_PEER} routes in ${Date.now() - t0} ms`);
    B = await startForwarder(lab, {
      host: b,
      address: `${overlayAddress(2)}/24`,
      peers: [],
      extra: {
        device: { type: 'tun', name: 'ovl0', addresses: [`${overlayAddress(2)}/24`] },
        encap: { type: 'gre-udp' },
        peers: [{ name: 'a', endpoint: a.underlay, allowedIps: [`${overlayAddress(1)}/32`] }],
      },
    });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('holds all 100,000 routes and forwards over the one that leads to b', async () => {
    expect(A.config.peers.length).toBe(PEERS);
    expect(A.config.peers.reduce((n, p) => n + p.allowedIps.length, 0)).toBe(PEERS * ROUTES_PER_PEER);
    expect((await lab.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
    // b answers on both moving addresses; a reaches 198.19.0.0/16 through the overlay, so what
    // decides where a packet to them goes is the overlay's table alone.
    for (const address of [GAINED.address, LOST.address]) await lab.exec(b, 'ip', ['addr', 'add', `${address}/32`, 'dev', 'ovl0']);
    await lab.exec(a, 'ip', ['route', 'add', '198.19.0.0/16', 'dev', 'ovl0', 'metric', '500']);
    await expectRouted(LOST.address, 'b', true);
    await expectRouted(GAINED.address, GAINED.ownerBefore, false);
  });

  it('replaces every route while a UDP stream flows over a route that stays: not one datagram lost', async () => {
    const before = A.stats();
    const beforeB = B.stats();
    // A steady UDP stream from before the first swap to after the last, however long they take.
    const stream = await startUdpStream(lab, { from: a, to: b, address: overlayAddress(2), port: 5301, pps: 2500 });
    await sleep(500);
    const swaps: number[] = [];
    for (let round = 1; round <= 4; round++) {
      const t = Date.now();
      A.peers.replace(peerSet(b, round * 7));
      swaps.push(Date.now() - t);
      await sleep(20);
    }
    await sleep(500);
    const r = await stream.stop();
    const d = delta(A.stats().totals, before.totals);
    const dB = delta(B.stats().totals, beforeB.totals);
    console.log(
      `[route-swap] 4 full replacements (${swaps.join(', ')} ms each: validation + table build) under a UDP stream: ${r.lost}/${r.sent} datagrams lost; the kernel dropped ${r.kernel.total} ${JSON.stringify(r.kernel.where)}`,
    );
    expect(r.sent).toBeGreaterThan(2500);
    expect(movedDrops(d)).toEqual({});
    expect(movedDrops(dB)).toEqual({});
    // Nothing lost but what the kernel dropped itself: a reader starved of CPU on a busy
    // machine overflows its socket or device queue, and the kernel counts it there.
    expect(r.lost, `${r.lost} lost, the kernel dropped ${r.kernel.total}: ${JSON.stringify(r.kernel.where)}`).toBeLessThanOrEqual(r.kernel.total);
    // The last table is the one in force: a prefix that moved is now routed to its new owner.
    const owner = A.config.peers.find((p) => p.allowedIps.includes(prefix(5 * ROUTES_PER_PEER)));
    expect(owner?.name).toBe(`p${(5 - 28 + PEERS) % PEERS}`);
  });

  it('sends by the table in force: an address b gained in the swaps now reaches b, one it lost goes to its new owner', async () => {
    await expectRouted(GAINED.address, 'b', true);
    await expectRouted(LOST.address, LOST.ownerAfter, false);
  });

  /**
   * Pings `address` from a: the packets must be routed to peer `peer` and, if `answered`, come
   * back. A synthetic peer's endpoint has no route in a's namespace, so its packets never leave:
   * the send fails and counts as that peer's socketError (b's count as its txPackets).
   */
  async function expectRouted(address: string, peer: string, answered: boolean): Promise<void> {
    const routedTo = () => {
      const c = peerCounters(A.stats(), peer);
      return c.txPackets + c.drops.socketError;
    };
    const before = routedTo();
    const r = await lab.ping(a, address, { count: 3, intervalSec: 0.05, timeoutSec: 2 });
    expect(r.received, `ping ${address} (peer ${peer})`).toBe(answered ? 3 : 0);
    expect(routedTo() - before, `packets to ${address} counted on ${peer}`).toBeGreaterThanOrEqual(3);
  }
});

// Two prefixes that change hands between the first table (rotation 0) and the last (rotation
// 28): b owns prefixes 1-9 of owner index `rotation`, so it loses 198.19.1.1 (prefix 2) to the
// peer whose index + 28 wraps to 0, and gains 198.19.1.141 (prefix 282) from p28.
const LOST = { address: '198.19.1.1', ownerAfter: `p${PEERS - 28}` };
const GAINED = { address: '198.19.1.141', ownerBefore: 'p28' };
