// MTU done right between two overlayfwd hosts. The devices are given MTU 1500 on a 1500-byte
// underlay, more than the tunnel carries whole, so the forwarder itself must teach senders the
// path MTU: a DF packet that does not fit gets an ICMP Fragmentation Needed (IPv4) or Packet Too
// Big (IPv6) back through the device, carrying the real limit (underlay MTU minus overhead), and
// the sender's kernel learns it: `ping -M do` first reports the ICMP, then refuses locally with
// that MTU, and a packet of exactly that size crosses. On TAP the answer is an Ethernet frame.
//
// The optional TCP MSS clamp (`mssClamp: auto`) lowers the MSS of SYNs crossing the tunnel to
// the tunnel's MTU minus 40, seen by tshark on the receiving host.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import { primeCapture, stopCapture } from '../helpers/capture';
import { describeNetns } from '../helpers/env';
import { delta } from '../helpers/overlay';
import { INNER6, overlayPair } from '../helpers/pair';
import type { Pair } from '../helpers/pair';
import { verifiedTransfer } from '../helpers/transfer';

/** Both devices get MTU 1500: more than the tunnel carries whole over a 1500-byte underlay. */
function pair(lab: Lab, device: 'tun' | 'tap', encap: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<Pair> {
  return overlayPair(lab, { device, encap, mtu: 1500, extra });
}

/** `ping -M do` with a packet of `total` bytes (IPv4: 28 bytes of headers, IPv6: 48). */
function dfPing(lab: Lab, host: Host, address: string, total: number, count = 1) {
  const v6 = address.includes(':');
  const size = total - (v6 ? 48 : 28);
  return lab.exec(host, 'ping', [v6 ? '-6' : '-4', '-n', '-M', 'do', '-c', String(count), '-i', '0.1', '-W', '1', '-s', String(size), address], { allowFailure: true });
}

async function expectPathMtuLearned(lab: Lab, p: Pair, address: string, limit: number): Promise<void> {
  const before = p.A.stats();
  const first = await dfPing(lab, p.a, address, 1500);
  expect(first.code).not.toBe(0);
  const text = first.stdout + first.stderr;
  expect(text).toMatch(address.includes(':') ? new RegExp(`Packet too big: mtu=${limit}`) : new RegExp(`Frag needed and DF set \\(mtu = ${limit}\\)`));
  // The kernel now knows: the next oversized ping is refused locally with the learned MTU.
  const second = await dfPing(lab, p.a, address, 1500);
  expect(second.code).not.toBe(0);
  expect(second.stdout + second.stderr).toMatch(new RegExp(`(mtu[ =:]+${limit}|[Mm]essage too long)`));
  // And a packet of exactly the limit crosses.
  const fits = await dfPing(lab, p.a, address, limit, 2);
  expect(fits.stdout).toMatch(/2 packets transmitted, 2 received/);
  const after = p.A.stats();
  expect(after.generated.icmpTooBig - before.generated.icmpTooBig).toBe(1);
  expect(delta(after.totals, before.totals).drops.tooBig).toBe(1);
}

describeNetns('path MTU: ICMP Fragmentation Needed / Packet Too Big, MSS clamp', { tools: ['ping', 'tshark'] }, () => {
  describe('gre on TUN, device MTU 1500 over a 1500-byte underlay (the tunnel carries 1476)', () => {
    let lab: Lab;
    let p: Pair;
    beforeAll(async () => {
      lab = await Lab.create();
      p = await pair(lab, 'tun', { type: 'gre' });
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('answers an oversized IPv4 DF packet with Fragmentation Needed, mtu 1476, and the sender learns it', async () => {
      expect(p.A.device.mtu).toBe(1500);
      await expectPathMtuLearned(lab, p, overlayAddress(2), 1476);
      const route = await lab.ip(p.a, ['route', 'get', overlayAddress(2)]);
      expect(route.stdout).toMatch(/mtu 1476/);
    });

    it('answers an oversized IPv6 packet with Packet Too Big, mtu 1476', async () => {
      await expectPathMtuLearned(lab, p, INNER6[1], 1476);
    });

    it('carries TCP at the learned MTU, sha256 verified', async () => {
      const r = await verifiedTransfer(lab, { from: p.a, to: p.b, address: overlayAddress(2), megabytes: 8, timeoutMs: 60_000 });
      expect(r.received.peer).toBe(overlayAddress(1));
    });
  });

  describe('gre-udp on TAP, device MTU 1500 (the tunnel carries 1468)', () => {
    let lab: Lab;
    let p: Pair;
    beforeAll(async () => {
      lab = await Lab.create();
      p = await pair(lab, 'tap', { type: 'gre-udp' });
      expect((await lab.ping(p.a, overlayAddress(2), { count: 2, intervalSec: 0.1 })).received).toBe(2);
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('answers with an Ethernet frame carrying Fragmentation Needed, mtu 1468', async () => {
      await expectPathMtuLearned(lab, p, overlayAddress(2), 1468);
    });
  });

  describe('mssClamp: auto on gre over TUN, device MTU 1500', () => {
    let lab: Lab;
    let p: Pair;
    beforeAll(async () => {
      lab = await Lab.create();
      p = await pair(lab, 'tun', { type: 'gre' }, { mssClamp: 'auto' });
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('lowers the MSS of SYNs both ways to 1436 (1476 − 40)', async () => {
      const file = path.join(lab.tmpdir(), 'syn.pcapng');
      const capture = lab.spawn(p.b, 'tshark', ['-n', '-l', '-P', '-i', 'ovl0', '-w', file, '-f', 'tcp[tcpflags] & tcp-syn != 0']);
      await capture.waitForOutput(/Capturing on/, 30_000);
      // Primed with SYNs to a closed port (B answers with a reset), skipped below.
      const refused = `import socket\ntry:\n    socket.create_connection(('${overlayAddress(2)}', 9), timeout=1)\nexcept OSError:\n    pass\n`;
      const primed = await primeCapture(capture, 'SYNs on B', () => lab.exec(p.a, 'python3', ['-c', refused]));
      const before = p.A.stats();
      const r = await verifiedTransfer(lab, { from: p.a, to: p.b, address: overlayAddress(2), megabytes: 2, timeoutMs: 60_000 });
      expect(r.received.peer).toBe(overlayAddress(1));
      // A's SYN and B's SYN-ACK (the transfer may open more than one connection: at least those two).
      await stopCapture(capture, 'SYNs on B', primed + 2);
      const { stdout } = await lab.exec(p.b, 'tshark', ['-n', '-r', file, '-T', 'fields', '-e', 'ip.src', '-e', 'tcp.flags.ack', '-e', 'tcp.options.mss_val', '-e', 'tcp.checksum.status', '-o', 'tcp.check_checksum:TRUE']);
      const rows = stdout.trim().split('\n').slice(primed).map((l) => l.split('\t'));
      // The SYN from A arrived clamped (A's kernel offered 1460: its device MTU is 1500), with a valid checksum.
      const syn = rows.find((r) => r[0] === overlayAddress(1));
      expect(syn?.[2]).toBe('1436');
      expect(syn?.[3]).toMatch(/^(1|Good)$/);
      expect(p.A.stats().generated.mssClamped - before.generated.mssClamped).toBeGreaterThanOrEqual(1);
    });
  });
});
