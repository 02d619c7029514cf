// overlayfwd against an independent VXLAN implementation: the Linux kernel's VXLAN device.
// ns A: overlayfwd (tap ovl0, VNI 42, 198.19.0.1). ns B: kernel vx0 (VNI 42, dstport 4789,
// remote = A's underlay address, 198.19.0.2). Pings both ways, 50 MB each way with the sha256
// checked on arrival, and the counters on the overlayfwd side. Everything runs with the default
// offloads (TSO super-frames, UDP GSO, UDP GRO, TCP coalescing) and with all of them off.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import { describeNetns } from '../helpers/env';
import {
  expectOffloadsActive,
  expectOffloadsIdle,
  expectRxCoalescingUsed,
  expectTxOffloadsUsed,
  OFFLOAD_MODES,
  offloadConfig,
  offloadDelta,
} from '../helpers/offloads';
import { peerCounters, startForwarder } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';

const MB = 50;

describeNetns('interop with the kernel VXLAN device', {}, () => {
  describe.each(OFFLOAD_MODES)('$label', (mode) => {
    for (const workers of [1, 2]) {
      describe(`workers: ${workers}`, () => {
        let lab: Lab;
        let a: Host;
        let b: Host;
        let ov: Overlay;

        beforeAll(async () => {
          lab = await Lab.create();
          [a, b] = await lab.pair('a', 'b');
          ov = await startForwarder(lab, {
            host: a,
            address: `${overlayAddress(1)}/24`,
            peers: [{ name: 'b', endpoint: b.underlay }],
            workers,
            extra: offloadConfig(mode),
          });
          await lab.kernelVxlan(b, { vni: 42, remotes: [a.underlay], addresses: [`${overlayAddress(2)}/24`] });
        });
        afterAll(async () => {
          await lab?.destroy();
        });

        it('creates the TAP device in the namespace with the overlay address and a VXLAN-sized MTU', async () => {
          const { stdout } = await lab.ip(a, ['-j', 'addr', 'show', 'dev', 'ovl0']);
          const [dev] = JSON.parse(stdout) as { ifname: string; mtu: number; addr_info: { local: string }[] }[];
          expect(dev?.ifname).toBe('ovl0');
          expect(dev?.addr_info.map((x) => x.local)).toContain(overlayAddress(1));
          expect(dev?.mtu).toBe(1450);
          expect(ov.device.name).toBe('ovl0');
          expect(ov.device.mtu).toBe(1450);
          expect(ov.stats().workers).toBe(workers);
          if (mode.on) expectOffloadsActive(ov.stats());
          else expectOffloadsIdle(ov.stats());
        });

        it('pings both ways', async () => {
          expect((await lab.ping(a, overlayAddress(2), { count: 5, intervalSec: 0.05 })).received).toBe(5);
          expect((await lab.ping(b, overlayAddress(1), { count: 5, intervalSec: 0.05 })).received).toBe(5);
          // Full-size frames (1450 - 28 = 1422 bytes of ICMP payload) in both directions.
          expect((await lab.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.05, size: 1422 })).received).toBe(3);
          expect((await lab.ping(b, overlayAddress(1), { count: 3, intervalSec: 0.05, size: 1422 })).received).toBe(3);
        });

        it(`transfers ${MB} MB from overlayfwd to the kernel, sha256 verified`, async () => {
          const s0 = ov.stats();
          const before = peerCounters(s0, 'b');
          const r = await verifiedTransfer(lab, { from: a, to: b, address: overlayAddress(2), megabytes: MB });
          expect(r.received.peer).toBe(overlayAddress(1));
          const s1 = ov.stats();
          const after = peerCounters(s1, 'b');
          expect(after.txBytes - before.txBytes).toBeGreaterThanOrEqual(MB << 20);
          expect(after.txPackets - before.txPackets).toBeGreaterThanOrEqual(Math.floor((MB << 20) / 1450));
          // The kernel's TCP hands the TAP super-frames; they leave as UDP GSO trains.
          if (mode.on) expectTxOffloadsUsed(offloadDelta(s1, s0), 'overlayfwd sending to the kernel');
          else expectOffloadsIdle(s1);
        });

        it(`transfers ${MB} MB from the kernel to overlayfwd, sha256 verified`, async () => {
          const s0 = ov.stats();
          const before = peerCounters(s0, 'b');
          const r = await verifiedTransfer(lab, { from: b, to: a, address: overlayAddress(1), megabytes: MB });
          expect(r.received.peer).toBe(overlayAddress(2));
          const s1 = ov.stats();
          const after = peerCounters(s1, 'b');
          expect(after.rxBytes - before.rxBytes).toBeGreaterThanOrEqual(MB << 20);
          expect(after.rxPackets - before.rxPackets).toBeGreaterThanOrEqual(Math.floor((MB << 20) / 1450));
          // The kernel device sends single datagrams (no UDP GRO to be had on veth); overlayfwd
          // coalesces the TCP segments it decapsulates into super-frames for the TAP.
          if (mode.on) expectRxCoalescingUsed(offloadDelta(s1, s0), 'overlayfwd receiving from the kernel');
          else expectOffloadsIdle(s1);
        });

        it('counted the traffic on the overlayfwd side, with no malformed or misdirected packets', () => {
          const s = ov.stats();
          const p = peerCounters(s, 'b');
          expect(p.rxPackets).toBeGreaterThan(0);
          expect(p.txPackets).toBeGreaterThan(0);
          expect(s.totals.rxPackets).toBeGreaterThanOrEqual(p.rxPackets);
          expect(s.totals.txPackets).toBeGreaterThanOrEqual(p.txPackets);
          expect(s.totals.rxBytes).toBeGreaterThanOrEqual(p.rxBytes);
          expect(s.totals.txBytes).toBeGreaterThanOrEqual(p.txBytes);
          for (const c of [s.totals, p]) {
            expect(c.drops.malformed).toBe(0);
            expect(c.drops.wrongVni).toBe(0);
            expect(c.drops.unknownPeer).toBe(0);
          }
          expect(s.totals.drops.unknownPeer).toBe(0);
          // The kernel's MAC was learned from its frames.
          expect(ov.fdb().some((e) => e.peer === 'b' && !e.static)).toBe(true);
          if (mode.on) expectOffloadsActive(s);
          else expectOffloadsIdle(s);
        });
      });
    }
  });
});
