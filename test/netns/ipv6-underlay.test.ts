// overlayfwd over an IPv6 underlay (the overlay itself stays IPv4): against the kernel VXLAN
// device over IPv6, and between two overlayfwd hosts. The underlay veths get ULA addresses
// fd00:198:18::/64 and fd00:198:19::/64 (nodad: usable at once); IPv6 is switched on for the
// underlay devices only, so the overlay devices stay quiet (no router solicitations or MLD).
//
// Outer IPv6 adds 20 bytes over IPv4: the device MTU defaults to 1500 - 70 = 1430. overlayfwd
// always sends UDP checksums over IPv6, so the kernel device keeps its default of refusing
// zero-checksum datagrams (noudp6zerocsumrx) and still has to accept everything we send.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandExists, Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import type { Counters } from '../../lib/types';
import { captureDropped, primeCapture, stopCapture } from '../helpers/capture';
import { describeNetns, REQUIRE_NETNS } from '../helpers/env';
import { expectOffloadsActive, expectRxCoalescingUsed, expectRxGroUsed, expectTxOffloadsUsed, offloadDelta } from '../helpers/offloads';
import { peerCounters, startForwarder } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';

const MB = 24;
const MTU = 1430;
/** Largest ICMP echo payload that fits the overlay MTU unfragmented (MTU - 20 IPv4 - 8 ICMP). */
const FULL_PING = MTU - 28;
const WIRE_TOOLS = ['tshark', 'ethtool'].filter((t) => !commandExists(t));

/** Switches IPv6 on for `host`'s underlay device and gives it `address`/64 without DAD. */
async function addIpv6Underlay(lab: Lab, host: Host, address: string): Promise<void> {
  await lab.exec(host, 'sysctl', ['-q', '-w', `net.ipv6.conf.${host.underlayDev}.disable_ipv6=0`]);
  await lab.ip(host, ['addr', 'add', `${address}/64`, 'dev', host.underlayDev, 'nodad']);
}

async function linkMtu(lab: Lab, host: Host, dev: string): Promise<number> {
  const { stdout } = await lab.ip(host, ['-j', 'link', 'show', 'dev', dev]);
  return (JSON.parse(stdout) as { mtu: number }[])[0]!.mtu;
}

function expectNoBadDrops(c: Counters, where: string): void {
  for (const r of ['malformed', 'wrongVni', 'unknownPeer', 'noRoute', 'tooBig', 'deviceError', 'socketError'] as const) {
    expect(c.drops[r], `${where}: drops.${r}`).toBe(0);
  }
}

describeNetns('IPv6 underlay', {}, () => {
  describe('against the kernel VXLAN device over IPv6', () => {
    const A6 = 'fd00:198:18::1';
    const B6 = 'fd00:198:18::2';
    let lab: Lab;
    let a: Host;
    let b: Host;
    let ov: Overlay;

    beforeAll(async () => {
      lab = await Lab.create();
      [a, b] = await lab.pair('a', 'b');
      await addIpv6Underlay(lab, a, A6);
      await addIpv6Underlay(lab, b, B6);
      ov = await startForwarder(lab, {
        host: a,
        address: `${overlayAddress(1)}/24`,
        peers: [{ name: 'b', endpoint: B6 }],
        extra: { underlay: { local: A6 } },
      });
      await lab.kernelVxlan(b, { vni: 42, local: B6, remotes: [A6], addresses: [`${overlayAddress(2)}/24`] });
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it(`defaults the device MTU to ${MTU} (1500 - 70), as the kernel does for its own device`, async () => {
      expect(ov.config.underlay.local).toBe(A6);
      expect(ov.config.device.mtu).toBeNull();
      expect(ov.device.mtu).toBe(MTU);
      expect(await linkMtu(lab, a, 'ovl0')).toBe(MTU);
      expect(await linkMtu(lab, b, 'vx0')).toBe(MTU);
      // The kernel device refuses zero UDP checksums over IPv6 (its default, kept on purpose).
      const { stdout } = await lab.ip(b, ['-d', 'link', 'show', 'dev', 'vx0']);
      expect(stdout).toContain(`local ${B6}`);
      expect(stdout).toMatch(/\bnoudp6zerocsumrx\b/);
      expectOffloadsActive(ov.stats());
    });

    it('pings both ways, small and full-size', async () => {
      expect((await lab.ping(a, overlayAddress(2), { count: 5, intervalSec: 0.05 })).received).toBe(5);
      expect((await lab.ping(b, overlayAddress(1), { count: 5, intervalSec: 0.05 })).received).toBe(5);
      expect((await lab.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.05, size: FULL_PING })).received).toBe(3);
      expect((await lab.ping(b, overlayAddress(1), { count: 3, intervalSec: 0.05, size: FULL_PING })).received).toBe(3);
    });

    it(`transfers ${MB} MB from overlayfwd to the kernel, sha256 verified`, async () => {
      const s0 = ov.stats();
      const r = await verifiedTransfer(lab, { from: a, to: b, address: overlayAddress(2), megabytes: MB });
      expect(r.received.peer).toBe(overlayAddress(1));
      const s1 = ov.stats();
      expect(peerCounters(s1, 'b').txBytes - peerCounters(s0, 'b').txBytes).toBeGreaterThanOrEqual(MB << 20);
      expectTxOffloadsUsed(offloadDelta(s1, s0), 'overlayfwd sending over IPv6');
    });

    it(`transfers ${MB} MB from the kernel to overlayfwd, sha256 verified`, async () => {
      const s0 = ov.stats();
      const r = await verifiedTransfer(lab, { from: b, to: a, address: overlayAddress(1), megabytes: MB });
      expect(r.received.peer).toBe(overlayAddress(2));
      const s1 = ov.stats();
      expect(peerCounters(s1, 'b').rxBytes - peerCounters(s0, 'b').rxBytes).toBeGreaterThanOrEqual(MB << 20);
      expectRxCoalescingUsed(offloadDelta(s1, s0), 'overlayfwd receiving over IPv6');
    });

    it('counted everything under peer b, with no bad drops; learned the kernel MAC', () => {
      const s = ov.stats();
      const p = peerCounters(s, 'b');
      expect(p.txPackets).toBeGreaterThan(0);
      expect(p.rxPackets).toBeGreaterThan(0);
      expectNoBadDrops(s.totals, 'totals');
      expectOffloadsActive(s);
      expect(ov.fdb().some((e) => e.peer === 'b' && !e.static)).toBe(true);
    });

    // Last in this group: it changes A's underlay device. With segmentation and checksum offload
    // off on the veth, the capture shows each datagram as it would leave a NIC, checksums done.
    const wireTitle = 'on the wire: IPv6/UDP to 4789 with a good non-zero checksum, inner IPv4 and TCP checksums good (tshark)';
    it.skipIf(WIRE_TOOLS.length > 0 && !REQUIRE_NETNS)(WIRE_TOOLS.length ? `${wireTitle} [skipped: ${WIRE_TOOLS.join(', ')} not installed]` : wireTitle, async () => {
      await lab.exec(a, 'ethtool', ['-K', a.underlayDev, 'tx', 'off', 'tx-udp-segmentation', 'off', 'tso', 'off', 'gso', 'off']);
      const file = path.join(lab.tmpdir(), 'vxlan6.pcapng');
      const capture = lab.spawn(a, 'tshark', ['-n', '-l', '-P', '-B', '64', '-i', a.underlayDev, '-w', file, '-f', `udp dst port 4789 and src host ${A6}`]);
      await capture.waitForOutput(/Capturing on/, 30_000);
      // Ping until the capture shows a packet: then it is live.
      const primed = await primeCapture(capture, 'the pings', () => lab.ping(a, overlayAddress(2), { count: 1, timeoutSec: 1 }));
      const s0 = ov.stats();
      await verifiedTransfer(lab, { from: a, to: b, address: overlayAddress(2), megabytes: 4 });
      await stopCapture(capture, 'the transfer', primed + 100);
      // The TCP data still left as TSO super-frames cut by overlayfwd (whose checksums are
      // the ones under test) and GSO trains (which the kernel now splits before the capture).
      expectTxOffloadsUsed(offloadDelta(ov.stats(), s0), 'overlayfwd sending over IPv6');

      const fields = ['ipv6.src', 'ipv6.dst', 'udp.dstport', 'udp.checksum', 'udp.checksum.status', 'ip.checksum.status', 'tcp.checksum.status'];
      const { stdout } = await lab.exec(a, 'tshark', [
        '-n', '-r', file, '-d', 'udp.port==4789,vxlan',
        '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE',
        '-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=f',
        ...fields.flatMap((f) => ['-e', f]),
      ], { timeoutMs: 60_000 });
      const rows = stdout.split('\n').filter((l) => l.trim()).map((l) => l.split('\t'));
      const good = (v: string | undefined) => v === '1' || v === 'Good';
      let tcp = 0;
      for (const [i, [src, dst, dstport, udpSum, udpStatus, ipStatus, tcpStatus]] of rows.entries()) {
        const row = `frame ${i + 1}: ${rows[i]!.join(' ')}`;
        expect(src, row).toBe(A6);
        expect(dst, row).toBe(B6);
        expect(dstport, row).toBe('4789');
        expect(Number(udpSum), row).not.toBe(0);
        expect(good(udpStatus), row).toBe(true);
        if (ipStatus) expect(good(ipStatus), row).toBe(true);
        if (tcpStatus) {
          expect(good(tcpStatus), row).toBe(true);
          tcp++;
        }
      }
      // 4 MB in segments of at most 1378 bytes (1430 - 20 - 32), less what the capture itself
      // lost on a busy machine (it says so on stderr).
      const lost = captureDropped(capture.stderr);
      expect(tcp + lost, `${tcp} TCP frames captured, ${lost} lost by the capture`).toBeGreaterThanOrEqual(Math.floor((4 << 20) / 1378));
    });
  });

  describe('between two overlayfwd hosts over IPv6', () => {
    const A6 = 'fd00:198:19::1';
    const B6 = 'fd00:198:19::2';
    let lab: Lab;
    let a: Host;
    let b: Host;
    let A: Overlay;
    let B: Overlay;

    beforeAll(async () => {
      lab = await Lab.create();
      [a, b] = await lab.pair('a', 'b');
      await addIpv6Underlay(lab, a, A6);
      await addIpv6Underlay(lab, b, B6);
      // Both endpoint spellings: a bare address and [address]:port.
      A = await startForwarder(lab, { host: a, address: `${overlayAddress(1)}/24`, peers: [{ name: 'b', endpoint: B6 }], extra: { underlay: { local: A6 } } });
      B = await startForwarder(lab, {
        host: b,
        address: `${overlayAddress(2)}/24`,
        peers: [{ name: 'a', endpoint: `[${A6}]:4789` }],
        workers: 2,
        extra: { underlay: { local: B6 } },
      });
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it(`both devices default to MTU ${MTU}`, async () => {
      expect(A.device.mtu).toBe(MTU);
      expect(B.device.mtu).toBe(MTU);
      expect(await linkMtu(lab, a, 'ovl0')).toBe(MTU);
      expect(await linkMtu(lab, b, 'ovl0')).toBe(MTU);
      expect(B.config.peers[0]!.endpoint).toEqual({ address: A6, port: 4789 });
    });

    it('pings both ways, small and full-size', async () => {
      expect((await lab.ping(a, overlayAddress(2), { count: 5, intervalSec: 0.05 })).received).toBe(5);
      expect((await lab.ping(b, overlayAddress(1), { count: 5, intervalSec: 0.05 })).received).toBe(5);
      expect((await lab.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.05, size: FULL_PING })).received).toBe(3);
      expect((await lab.ping(b, overlayAddress(1), { count: 3, intervalSec: 0.05, size: FULL_PING })).received).toBe(3);
    });

    it(`transfers ${MB} MB each way, sha256 verified, with UDP GSO and GRO over IPv6`, async () => {
      const a0 = A.stats();
      const b0 = B.stats();
      const ab = await verifiedTransfer(lab, { from: a, to: b, address: overlayAddress(2), megabytes: MB });
      expect(ab.received.peer).toBe(overlayAddress(1));
      const a1 = A.stats();
      const b1 = B.stats();
      expect(peerCounters(a1, 'b').txBytes - peerCounters(a0, 'b').txBytes).toBeGreaterThanOrEqual(MB << 20);
      expect(peerCounters(b1, 'a').rxBytes - peerCounters(b0, 'a').rxBytes).toBeGreaterThanOrEqual(MB << 20);
      expectTxOffloadsUsed(offloadDelta(a1, a0), 'A (sender)');
      expectRxGroUsed(offloadDelta(b1, b0), 'B (receiver)');
      expectRxCoalescingUsed(offloadDelta(b1, b0), 'B (receiver)');

      const ba = await verifiedTransfer(lab, { from: b, to: a, address: overlayAddress(1), megabytes: MB });
      expect(ba.received.peer).toBe(overlayAddress(2));
      const a2 = A.stats();
      const b2 = B.stats();
      expectTxOffloadsUsed(offloadDelta(b2, b1), 'B (sender)');
      expectRxGroUsed(offloadDelta(a2, a1), 'A (receiver)');
      expectRxCoalescingUsed(offloadDelta(a2, a1), 'A (receiver)');
    });

    it('counted no bad drops on either side', () => {
      for (const [o, where] of [
        [A, 'A'],
        [B, 'B'],
      ] as const) {
        const s = o.stats();
        expectNoBadDrops(s.totals, where);
        expectOffloadsActive(s, where);
      }
    });
  });
});
