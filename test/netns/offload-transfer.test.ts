// Bulk TCP between two overlayfwd hosts joined by veth, sha256 verified on arrival: 200 MB with
// every offload on and two workers (TSO super-frames segmented and sent as UDP GSO trains,
// received with UDP GRO and coalesced into super-frames for the TAP), the same both ways at once,
// TCP over an IPv6 overlay (TSO6), UDP_SEGMENT trains from an application (USO super-frames on
// the TAP) over IPv4 and IPv6, and 50 MB with one worker and every offload off.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import type { Counters } from '../../lib/types';
import { describeNetns } from '../helpers/env';
import {
  expectOffloadsActive,
  expectOffloadsIdle,
  expectRxCoalescingUsed,
  expectRxGroUsed,
  expectTxOffloadsUsed,
  OFFLOADS_OFF,
  offloadDelta,
} from '../helpers/offloads';
import { delta, peerCounters, startForwarder } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';

/** Receives `count` datagrams (or until 5 s pass without one) and prints their count, sizes and sha256. */
const PY_UDP_RECV = String.raw`
import hashlib, json, socket, sys
addr, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
s.bind((addr, port))
s.settimeout(5)
print('LISTENING', flush=True)
n, sizes, h = 0, {}, hashlib.sha256()
try:
    while n < count:
        b = s.recv(65535)
        n += 1
        sizes[len(b)] = sizes.get(len(b), 0) + 1
        h.update(b)
except socket.timeout:
    pass
print(json.dumps({'count': n, 'sizes': sizes, 'sha256': h.hexdigest()}), flush=True)
`;

/**
 * Sends `trains` UDP_SEGMENT sends of `perTrain` datagrams of `segment` bytes (the last of each
 * 7 bytes short), paced; prints the datagram count and the sha256 of the datagrams in order.
 */
const PY_UDP_GSO_SEND = String.raw`
import hashlib, json, socket, sys, time
addr, port, segment, per_train, trains = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.connect((addr, port))
s.setsockopt(socket.IPPROTO_UDP, 103, segment)  # UDP_SEGMENT
h, n = hashlib.sha256(), 0
for t in range(trains):
    data = bytes((t * 7 + i) & 0xff for i in range(segment * per_train - 7))
    s.send(data)
    for i in range(0, len(data), segment):
        h.update(data[i:i + segment])
        n += 1
    time.sleep(0.002)
print(json.dumps({'count': n, 'sha256': h.hexdigest()}), flush=True)
`;

/** Switches IPv6 on for ovl0 in `host` and gives it `address`/64 without DAD. */
async function addOverlayIpv6(lab: Lab, host: Host, address: string): Promise<void> {
  await lab.exec(host, 'sysctl', ['-q', '-w', 'net.ipv6.conf.ovl0.disable_ipv6=0']);
  await lab.ip(host, ['addr', 'add', `${address}/64`, 'dev', 'ovl0', 'nodad']);
}

interface Pair {
  lab: Lab;
  a: Host;
  b: Host;
  A: Overlay;
  B: Overlay;
}

async function makePair(workers: number, extra: Record<string, unknown>): Promise<Pair> {
  const lab = await Lab.create();
  try {
    const [a, b] = await lab.pair('a', 'b');
    const peer = (h: Host) => [{ name: h.label, endpoint: h.underlay }];
    const A = await startForwarder(lab, { host: a, address: `${overlayAddress(1)}/24`, peers: peer(b), workers, extra });
    const B = await startForwarder(lab, { host: b, address: `${overlayAddress(2)}/24`, peers: peer(a), workers, extra });
    return { lab, a, b, A, B };
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}

/** Drops that must never happen between two healthy forwarders on a clean veth. */
function expectNoBadDrops(c: Counters, where: string): void {
  for (const r of ['malformed', 'wrongVni', 'unknownPeer', 'noRoute', 'tooBig', 'deviceError', 'socketError', 'loop'] as const) {
    expect(c.drops[r], `${where}: drops.${r}`).toBe(0);
  }
}

describeNetns('bulk TCP between two overlayfwd hosts', {}, () => {
  describe('offloads on, workers: 2', () => {
    const MB = 200;
    let p: Pair;

    beforeAll(async () => {
      p = await makePair(2, {});
    });
    afterAll(async () => {
      await p?.lab.destroy();
    });

    it('has every offload active', () => {
      expectOffloadsActive(p.A.stats(), 'A');
      expectOffloadsActive(p.B.stats(), 'B');
      expect(p.A.stats().workers).toBe(2);
    });

    it(`transfers ${MB} MB from A to B, sha256 verified, with the offloads at work`, async () => {
      const { lab, a, b, A, B } = p;
      const a0 = A.stats();
      const b0 = B.stats();
      const r = await verifiedTransfer(lab, { from: a, to: b, address: overlayAddress(2), megabytes: MB, timeoutMs: 60_000 });
      expect(r.received.peer).toBe(overlayAddress(1));
      const a1 = A.stats();
      const b1 = B.stats();
      const tx = delta(peerCounters(a1, 'b'), peerCounters(a0, 'b'));
      const rx = delta(peerCounters(b1, 'a'), peerCounters(b0, 'a'));
      expect(tx.txBytes).toBeGreaterThanOrEqual(MB << 20);
      expect(tx.txPackets).toBeGreaterThanOrEqual(Math.floor((MB << 20) / 1450));
      expect(rx.rxBytes).toBeGreaterThanOrEqual(MB << 20);
      // Nothing is invented on the way: B delivered at most what A sent.
      expect(rx.rxPackets).toBeLessThanOrEqual(tx.txPackets);
      const oa = offloadDelta(a1, a0);
      const ob = offloadDelta(b1, b0);
      expectTxOffloadsUsed(oa, 'A (sender)');
      expectRxGroUsed(ob, 'B (receiver)');
      expectRxCoalescingUsed(ob, 'B (receiver)');
      // Every GSO segment A sent is a packet it counted, every GRO segment B took in one it delivered.
      expect(oa.txGsoSegments).toBeLessThanOrEqual(delta(a1.totals, a0.totals).txPackets);
      expect(ob.rxGroSegments).toBeLessThanOrEqual(delta(b1.totals, b0.totals).rxPackets);
      process.stderr.write(`[offload-transfer] ${MB} MB A→B: ${r.mbitPerSecond.toFixed(0)} Mbit/s; A ${JSON.stringify(oa)}; B ${JSON.stringify(ob)}\n`);
    });

    it('transfers 50 MB each way at the same time, both sha256 verified', async () => {
      const { lab, a, b, A, B } = p;
      const a0 = A.stats();
      const b0 = B.stats();
      const [ab, ba] = await Promise.all([
        verifiedTransfer(lab, { from: a, to: b, address: overlayAddress(2), megabytes: 50, timeoutMs: 60_000 }),
        verifiedTransfer(lab, { from: b, to: a, address: overlayAddress(1), megabytes: 50, timeoutMs: 60_000 }),
      ]);
      expect(ab.received.peer).toBe(overlayAddress(1));
      expect(ba.received.peer).toBe(overlayAddress(2));
      const oa = offloadDelta(A.stats(), a0);
      const ob = offloadDelta(B.stats(), b0);
      for (const [o, where] of [
        [oa, 'A'],
        [ob, 'B'],
      ] as const) {
        expectTxOffloadsUsed(o, where);
        expectRxGroUsed(o, where);
        expectRxCoalescingUsed(o, where);
      }
    });

    it('transfers 32 MB over an IPv6 overlay (TSO6 super-frames), sha256 verified', async () => {
      const { lab, a, b, A, B } = p;
      await addOverlayIpv6(lab, a, 'fd00:198:19::1');
      await addOverlayIpv6(lab, b, 'fd00:198:19::2');
      const a0 = A.stats();
      const b0 = B.stats();
      const r = await verifiedTransfer(lab, { from: a, to: b, address: 'fd00:198:19::2', megabytes: 32, timeoutMs: 60_000 });
      expect(r.received.peer).toBe('fd00:198:19::1');
      const oa = offloadDelta(A.stats(), a0);
      const ob = offloadDelta(B.stats(), b0);
      expectTxOffloadsUsed(oa, 'A (sender)');
      expectRxGroUsed(ob, 'B (receiver)');
      expectRxCoalescingUsed(ob, 'B (receiver)');
    });

    for (const [family, dst, segment] of [
      ['IPv4', overlayAddress(2), 1200],
      ['IPv4', overlayAddress(2), 1450 - 28],
      ['IPv6', 'fd00:198:19::2', 1000],
      ['IPv6', 'fd00:198:19::2', 1450 - 48],
    ] as const) {
      it(`UDP_SEGMENT trains over ${family} (USO super-frames), ${segment}-byte datagrams, arrive intact and in order`, async () => {
        const { lab, a, b, A, B } = p;
        const trains = 100;
        const perTrain = 20;
        const a0 = A.stats();
        const b0 = B.stats();
        const port = 17000 + segment;
        const server = lab.spawn(b, 'python3', ['-u', '-c', PY_UDP_RECV, dst, String(port), String(trains * perTrain)]);
        await server.waitForOutput('LISTENING', 15_000);
        const { stdout } = await lab.exec(a, 'python3', ['-c', PY_UDP_GSO_SEND, dst, String(port), String(segment), String(perTrain), String(trains)]);
        const sent = JSON.parse(stdout.trim()) as { count: number; sha256: string };
        const line = (await server.succeed(30_000)).split('\n').find((l) => l.startsWith('{'));
        const got = JSON.parse(line ?? '{}') as { count: number; sizes: Record<string, number>; sha256: string };
        expect(sent.count).toBe(trains * perTrain);
        expect(got.sizes).toEqual({ [segment]: trains * (perTrain - 1), [segment - 7]: trains });
        expect(got.count).toBe(sent.count);
        expect(got.sha256).toBe(sent.sha256);
        const oa = offloadDelta(A.stats(), a0);
        const ob = offloadDelta(B.stats(), b0);
        // Each train reached the TAP as one USO super-frame and left as one GSO send.
        expect(oa.txSuperFrames, JSON.stringify(oa)).toBeGreaterThanOrEqual(trains);
        expectTxOffloadsUsed(oa, 'A (sender)');
        expectRxGroUsed(ob, 'B (receiver)');
      });
    }

    it('counted no malformed, misdirected or oversized packets, and no offload fell back', () => {
      for (const [o, where] of [
        [p.A, 'A'],
        [p.B, 'B'],
      ] as const) {
        const s = o.stats();
        expectNoBadDrops(s.totals, where);
        expectOffloadsActive(s, where);
      }
    });
  });

  describe('offloads off, workers: 1', () => {
    const MB = 50;
    let p: Pair;

    beforeAll(async () => {
      p = await makePair(1, { offloads: { ...OFFLOADS_OFF } });
    });
    afterAll(async () => {
      await p?.lab.destroy();
    });

    it(`transfers ${MB} MB from A to B, sha256 verified, one frame per datagram`, async () => {
      const { lab, a, b, A, B } = p;
      expectOffloadsIdle(A.stats(), 'A');
      expectOffloadsIdle(B.stats(), 'B');
      const a0 = peerCounters(A.stats(), 'b');
      const b0 = peerCounters(B.stats(), 'a');
      const r = await verifiedTransfer(lab, { from: a, to: b, address: overlayAddress(2), megabytes: MB, timeoutMs: 60_000 });
      expect(r.received.peer).toBe(overlayAddress(1));
      const tx = delta(peerCounters(A.stats(), 'b'), a0);
      const rx = delta(peerCounters(B.stats(), 'a'), b0);
      expect(tx.txBytes).toBeGreaterThanOrEqual(MB << 20);
      expect(tx.txPackets).toBeGreaterThanOrEqual(Math.floor((MB << 20) / 1450));
      expect(rx.rxBytes).toBeGreaterThanOrEqual(MB << 20);
      expect(rx.rxPackets).toBeLessThanOrEqual(tx.txPackets);
      for (const [o, where] of [
        [A, 'A'],
        [B, 'B'],
      ] as const) {
        const s = o.stats();
        expectOffloadsIdle(s, where);
        expectNoBadDrops(s.totals, where);
      }
      process.stderr.write(`[offload-transfer] ${MB} MB A→B without offloads: ${r.mbitPerSecond.toFixed(0)} Mbit/s\n`);
    });
  });
});
