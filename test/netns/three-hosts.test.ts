// Three hosts on one bridged underlay, each running overlayfwd with the other two as peers and no
// static MACs: flooding (head-end replication) of unknown destinations, then MAC learning so that
// unicast goes to one peer only, and a verified TCP transfer across the bridge. Runs with the
// default offloads and with all of them off.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import type { Counters } from '../../lib/types';
import { describeNetns, sleep, waitFor } from '../helpers/env';
import {
  expectOffloadsActive,
  expectOffloadsIdle,
  expectRxCoalescingUsed,
  expectRxGroUsed,
  expectTxOffloadsUsed,
  OFFLOAD_MODES,
  offloadConfig,
  offloadDelta,
} from '../helpers/offloads';
import { delta, peerCounters, startForwarder } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';

const MB = 20;

describeNetns('three hosts: flooding and learning', {}, () => {
  describe.each(OFFLOAD_MODES)('$label', (mode) => {
    let lab: Lab;
    let hosts: Host[];
    let ovs: Overlay[];
    const labels = ['a', 'b', 'c'];
    const ip = (i: number) => overlayAddress(i + 1);

    beforeAll(async () => {
      lab = await Lab.create();
      hosts = await lab.switched(labels);
      ovs = [];
      for (const [i, h] of hosts.entries()) {
        const peers = hosts.filter((x) => x !== h).map((x) => ({ name: x.label, endpoint: x.underlay }));
        ovs.push(await startForwarder(lab, { host: h, address: `${ip(i)}/24`, peers, extra: offloadConfig(mode) }));
      }
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    const totals = (): Counters[] => ovs.map((o) => o.stats().totals);

    it('floods a frame for an unknown MAC to both other hosts', async () => {
      const [A, B, C] = ovs as [Overlay, Overlay, Overlay];
      // A static neighbour entry points 198.19.0.99 at a MAC nobody has: unknown unicast.
      await lab.ip(hosts[0]!, ['neigh', 'replace', overlayAddress(99), 'lladdr', '02:00:00:00:99:99', 'dev', 'ovl0', 'nud', 'permanent']);
      const before = totals();
      const beforeAB = peerCounters(A.stats(), 'b');
      const beforeAC = peerCounters(A.stats(), 'c');
      const r = await lab.ping(hosts[0]!, overlayAddress(99), { count: 3, intervalSec: 0.1, timeoutSec: 1 });
      expect(r.transmitted).toBe(3);
      expect(r.received).toBe(0);
      await waitFor(() => delta(B.stats().totals, before[1]!).rxPackets >= 3 && delta(C.stats().totals, before[2]!).rxPackets >= 3, 'B and C to receive the flooded frames', 5000);
      const [dA, dB, dC] = totals().map((t, i) => delta(t, before[i]!));
      expect(dA!.floodPackets).toBeGreaterThanOrEqual(3);
      expect(delta(peerCounters(A.stats(), 'b'), beforeAB).txPackets).toBeGreaterThanOrEqual(3);
      expect(delta(peerCounters(A.stats(), 'c'), beforeAC).txPackets).toBeGreaterThanOrEqual(3);
      // A flooded frame counts once per peer it was sent to.
      expect(dA!.txPackets).toBeGreaterThanOrEqual(6);
      expect(dB!.rxPackets).toBeGreaterThanOrEqual(3);
      expect(dC!.rxPackets).toBeGreaterThanOrEqual(3);
      expect(peerCounters(B.stats(), 'a').rxPackets).toBeGreaterThanOrEqual(3);
      expect(peerCounters(C.stats(), 'a').rxPackets).toBeGreaterThanOrEqual(3);
    });

    it('floods the ARP broadcast of a first ping to both other hosts', async () => {
      await lab.ip(hosts[0]!, ['neigh', 'flush', 'dev', 'ovl0']);
      const before = totals();
      const r = await lab.ping(hosts[0]!, ip(1), { count: 1, timeoutSec: 2 });
      expect(r.received).toBe(1);
      await sleep(200);
      const [dA, dB, dC] = totals().map((t, i) => delta(t, before[i]!));
      expect(dA!.floodPackets).toBeGreaterThanOrEqual(1); // the ARP request
      expect(dB!.rxPackets).toBeGreaterThanOrEqual(2); // the ARP request and the echo request
      expect(dC!.rxPackets).toBeGreaterThanOrEqual(1); // C saw the broadcast
      expect(dC!.txPackets).toBe(0); // and answered nothing
    });

    it('after learning, unicast from A to B reaches B only', async () => {
      const [A, B] = ovs as [Overlay, Overlay, Overlay];
      const before = totals();
      const beforeAC = peerCounters(A.stats(), 'c');
      const r = await lab.ping(hosts[0]!, ip(1), { count: 200, intervalSec: 0.005, timeoutSec: 2 });
      expect(r.received).toBeGreaterThanOrEqual(198);
      await sleep(200);
      const [dA, dB, dC] = totals().map((t, i) => delta(t, before[i]!));
      expect(dB!.rxPackets).toBeGreaterThanOrEqual(200);
      expect(dA!.rxPackets).toBeGreaterThanOrEqual(r.received);
      expect(dC!.rxPackets).toBeLessThanOrEqual(2);
      expect(delta(peerCounters(A.stats(), 'c'), beforeAC).txPackets).toBeLessThanOrEqual(2);
      expect(dA!.floodPackets).toBeLessThanOrEqual(2);
      // Both ends learned each other's MAC from received frames.
      const macB = await lab.macOf(hosts[1]!, 'ovl0');
      const macA = await lab.macOf(hosts[0]!, 'ovl0');
      expect(A.fdb().find((e) => e.mac === macB)).toMatchObject({ peer: 'b', static: false });
      expect(B.fdb().find((e) => e.mac === macA)).toMatchObject({ peer: 'a', static: false });
      expect(A.stats().fdb.learned).toBeGreaterThanOrEqual(1);
    });

    it('every pair of hosts can talk', async () => {
      for (const i of [0, 1, 2]) {
        for (const j of [0, 1, 2].filter((x) => x !== i)) {
          expect((await lab.ping(hosts[i]!, ip(j), { count: 2, intervalSec: 0.05 })).received).toBe(2);
        }
      }
      for (const o of ovs) {
        const t = o.stats().totals;
        expect(t.drops.malformed + t.drops.wrongVni + t.drops.unknownPeer).toBe(0);
      }
    });

    it(`transfers ${MB} MB from A to B across the bridge, sha256 verified, C not involved`, async () => {
      const s0 = ovs.map((o) => o.stats());
      const r = await verifiedTransfer(lab, { from: hosts[0]!, to: hosts[1]!, address: ip(1), megabytes: MB });
      expect(r.received.peer).toBe(ip(0));
      const s1 = ovs.map((o) => o.stats());
      const [dA, dB, dC] = s1.map((s, i) => delta(s.totals, s0[i]!.totals));
      expect(dA!.txBytes).toBeGreaterThanOrEqual(MB << 20);
      expect(dB!.rxBytes).toBeGreaterThanOrEqual(MB << 20);
      expect(dC!.rxPackets).toBeLessThanOrEqual(2);
      expect(dA!.floodPackets).toBeLessThanOrEqual(2);
      const [oA, oB, oC] = s1.map((s, i) => offloadDelta(s, s0[i]!));
      if (mode.on) {
        // A: TSO super-frames from the TAP, UDP GSO trains to B. The bridge carries a train whole,
        // so B's socket receives it as one UDP_GRO datagram, and B coalesces the TCP segments.
        expectTxOffloadsUsed(oA!, 'A (sender)');
        expectRxGroUsed(oB!, 'B (receiver)');
        expectRxCoalescingUsed(oB!, 'B (receiver)');
        expect(oC!.rxGroSegments + oC!.rxCoalescedSegments, 'C saw none of the transfer').toBeLessThanOrEqual(2);
        for (const [i, s] of s1.entries()) expectOffloadsActive(s, labels[i]);
      } else {
        for (const [i, s] of s1.entries()) expectOffloadsIdle(s, labels[i]);
      }
    });
  });
});
