// Counters that add up, on real transfers and real floods:
// - wire bytes: per peer, txWireBytes − txBytes is exactly packets × the mode's overhead, and so
//   is rxWireBytes − rxBytes on the other end. txBytes counts the inner frame as the device gave
//   it (TAP: Ethernet header included; TUN: the IP packet), the wire bytes the outer IP packet:
//   so vxlan over IPv4 adds 20 (IPv4) + 8 (UDP) + 8 (VXLAN) = 36 a packet (the 50 of the design's
//   table is over the inner IP packet, with the inner Ethernet header), over IPv6 56; ipip 20;
//   gre with a key 20 + 8 = 28.
// - floodPackets: a frame flooded to every peer counts once in the totals and once in each
//   peer's counters.
// - socketError: a send that fails (the peer's endpoint has an unreachable route) is charged to
//   that peer, and the drop ring shows the datagram as it was to leave.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import type { Counters } from '../../lib/types';
import { describeNetns, sleep, waitFor } from '../helpers/env';
import { delta, peerCounters, startForwarder, type PeerSpec } from '../helpers/overlay';
import { movedDrops, overlayPair, type Pair } from '../helpers/pair';
import { verifiedTransfer } from '../helpers/transfer';

interface WireMode {
  label: string;
  device: 'tap' | 'tun';
  encap: Record<string, unknown>;
  family: 4 | 6;
  /** Outer bytes a packet gains over what txBytes counts for it. */
  overhead: number;
}

const WIRE_MODES: WireMode[] = [
  { label: 'vxlan (TAP) over IPv4', device: 'tap', encap: { type: 'vxlan', vni: 42 }, family: 4, overhead: 20 + 8 + 8 },
  { label: 'vxlan (TAP) over IPv6', device: 'tap', encap: { type: 'vxlan', vni: 42 }, family: 6, overhead: 40 + 8 + 8 },
  { label: 'ipip (TUN) over IPv4', device: 'tun', encap: { type: 'ipip' }, family: 4, overhead: 20 },
  { label: 'gre with a key (TUN) over IPv4', device: 'tun', encap: { type: 'gre', key: 7 }, family: 4, overhead: 20 + 4 + 4 },
];

/** wire − inner − packets × overhead, both ways, of one side's counters for its peer. */
function excess(c: Counters, overhead: number) {
  return {
    tx: (c.txWireBytes ?? NaN) - c.txBytes - c.txPackets * overhead,
    rx: (c.rxWireBytes ?? NaN) - c.rxBytes - c.rxPackets * overhead,
  };
}

describeNetns('counters that add up', { tools: ['ping'] }, () => {
  for (const mode of WIRE_MODES) {
    describe(`wire bytes: ${mode.label}`, () => {
      let lab: Lab;
      let p: Pair;
      beforeAll(async () => {
        lab = await Lab.create();
        p = await overlayPair(lab, { device: mode.device, encap: mode.encap, family: mode.family });
      });
      afterAll(async () => {
        await lab?.destroy();
      });

      it(`after a transfer, wire bytes − inner bytes = packets × ${mode.overhead} per peer, both ways, at both ends`, async () => {
        const a0 = p.A.stats();
        const b0 = p.B.stats();
        const r = await verifiedTransfer(lab, { from: p.a, to: p.b, address: overlayAddress(2), megabytes: 16, timeoutMs: 90_000 });
        expect(r.received.sha256).toBe(r.sha256);
        await sleep(200);
        const a1 = p.A.stats();
        const b1 = p.B.stats();
        const atA = delta(peerCounters(a1, 'b'), peerCounters(a0, 'b'));
        const atB = delta(peerCounters(b1, 'a'), peerCounters(b0, 'a'));
        expect(movedDrops(delta(a1.totals, a0.totals))).toEqual({});
        expect(movedDrops(delta(b1.totals, b0.totals))).toEqual({});
        expect(atA.txBytes).toBeGreaterThanOrEqual(16 << 20);
        expect(atA.rxPackets).toBeGreaterThan(0); // the ACKs
        expect({ a: excess(atA, mode.overhead), b: excess(atB, mode.overhead) }).toEqual({ a: { tx: 0, rx: 0 }, b: { tx: 0, rx: 0 } });
        // One peer: the totals are that peer's.
        expect(delta(a1.totals, a0.totals).txWireBytes).toBe(atA.txWireBytes);
        expect(delta(b1.totals, b0.totals).rxWireBytes).toBe(atB.rxWireBytes);
        console.log(
          `[wire bytes] ${mode.label}: a→b ${atA.txPackets} packets, ${atA.txBytes} inner bytes, ${atA.txWireBytes} on the wire (+${(((atA.txWireBytes! - atA.txBytes) / atA.txBytes) * 100).toFixed(2)} %)`,
        );
      });
    });
  }

  describe('floods and failed sends, per peer: three hosts and a peer whose endpoint is unreachable', () => {
    let lab: Lab;
    let hosts: Host[];
    let A: Overlay;
    let dead: string;
    const DEAD_MAC = '02:00:00:00:00:77';

    beforeAll(async () => {
      lab = await Lab.create();
      hosts = await lab.switched(['a', 'b', 'c']);
      dead = hosts[0]!.underlay.replace(/\.\d+$/, '.77');
      // sendmsg toward the dead peer fails at once (EHOSTUNREACH), as on a host without a route.
      await lab.ip(hosts[0]!, ['route', 'add', 'unreachable', `${dead}/32`]);
      const ovs: Overlay[] = [];
      for (const [i, h] of hosts.entries()) {
        const peers: PeerSpec[] = hosts.filter((x) => x !== h).map((x) => ({ name: x.label, endpoint: x.underlay }));
        if (i === 0) peers.push({ name: 'dead', endpoint: dead, macs: [DEAD_MAC] });
        ovs.push(await startForwarder(lab, { host: h, address: `${overlayAddress(i + 1)}/24`, peers }));
      }
      A = ovs[0]!;
      expect((await lab.ping(hosts[0]!, overlayAddress(2), { count: 2, intervalSec: 0.05 })).received).toBe(2);
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('a flooded ARP request counts once in the totals and once in each peer’s floodPackets', async () => {
      await lab.ip(hosts[0]!, ['neigh', 'flush', 'dev', 'ovl0']);
      const s0 = A.stats();
      const r = await lab.ping(hosts[0]!, overlayAddress(3), { count: 1, timeoutSec: 2 });
      expect(r.received).toBe(1);
      await sleep(300);
      const s1 = A.stats();
      const total = delta(s1.totals, s0.totals).floodPackets;
      const per = Object.fromEntries(['b', 'c', 'dead'].map((n) => [n, delta(peerCounters(s1, n), peerCounters(s0, n))]));
      expect(total).toBeGreaterThanOrEqual(1); // the ARP request at least
      expect({ b: per.b!.floodPackets, c: per.c!.floodPackets, dead: per.dead!.floodPackets }).toEqual({ b: total, c: total, dead: total });
      // A peer's txPackets include its flood copies: b got nothing else, c the echo request too,
      // and the dead peer nothing at all (its copies failed: socketError).
      expect(per.b!.txPackets).toBe(per.b!.floodPackets);
      expect(per.c!.txPackets).toBeGreaterThanOrEqual(total + 1);
      expect(per.dead!.txPackets).toBe(0);
      expect(per.dead!.drops.socketError).toBe(total);
    });

    it('a failed send is a socketError of the peer it was for, and the ring shows the datagram', async () => {
      await lab.ip(hosts[0]!, ['neigh', 'replace', overlayAddress(77), 'lladdr', DEAD_MAC, 'dev', 'ovl0', 'nud', 'permanent']);
      const s0 = A.stats();
      const cursor = A.recentDrops().cursor;
      const r = await lab.ping(hosts[0]!, overlayAddress(77), { count: 3, intervalSec: 0.1, timeoutSec: 1 });
      expect(r.received).toBe(0);
      await waitFor(() => delta(peerCounters(A.stats(), 'dead'), peerCounters(s0, 'dead')).drops.socketError >= 3, 'three socket errors', 5000);
      await sleep(200);
      const s1 = A.stats();
      const d = delta(peerCounters(s1, 'dead'), peerCounters(s0, 'dead'));
      // Every frame toward the dead peer (the three echo requests, and whatever was flooded
      // meanwhile) failed, and was charged to it; nobody else had a socket error.
      expect(d.drops.socketError).toBe(3 + d.floodPackets);
      expect(d.txPackets).toBe(0);
      expect(delta(s1.totals, s0.totals).drops.socketError).toBe(d.drops.socketError);
      for (const n of ['b', 'c']) expect(delta(peerCounters(s1, n), peerCounters(s0, n)).drops.socketError).toBe(0);
      const failed = A.recentDrops(cursor).drops.filter((x) => x.reason === 'socketError');
      expect(failed).toHaveLength(d.drops.socketError);
      const unicast = failed.filter((x) => x.data.startsWith(`0800000000002a00${DEAD_MAC.replace(/:/g, '')}`));
      expect(unicast).toHaveLength(3);
      for (const x of failed) {
        expect(x).toMatchObject({ peer: 'dead', direction: 'tx', layer: 'underlay', packets: 1, underlay: { protocol: 17, remote: dead, remotePort: 4789 } });
        expect(x.underlay!.localPort).toBeGreaterThan(0); // the sending socket's port
        expect(x.length).toBe(x.data.length / 2); // an ICMP echo fits in 128 bytes, VXLAN header included
      }
    });
  });
});
