// GRE-in-UDP (RFC 8086) between two overlayfwd hosts in network namespaces: encap.type gre-udp,
// UDP port 4754, Ethernet frames (GRE protocol type 0x6558) on a TAP device. The GRE header
// (RFC 2784/2890) is 4 bytes, plus 4 for the checksum (C bit, `checksum: true`) and 4 for the key
// (K bit, `key` set); no sequence numbers are sent.
//
// 1. Key 0x2a and checksums: the default MTU (underlay − 54 = 1446), pings both ways with
//    full-size DF frames, a sha256-verified 30 MB TCP transfer each way with the offloads on.
// 2. No options: MTU 1454, pings, a verified 20 MB transfer, and the receive rules of a host that
//    configures neither option (a key is refused, a checksum is verified when present).
// 3. The wire, dissected by tshark: flags C and K only, version 0, key 42, protocol type 0x6558,
//    the checksum validated by tshark and by an RFC 1071 sum of our own (test/helpers/raw-ip.ts), inner TCP checksums
//    complete, UDP 4754 from a source port in 49152–65535 derived from the inner flow.
// 4. Hostile input against the key+checksum host: crafted datagrams from B's namespace, each kind
//    dropped under its reason with exact deltas and never delivered, while pings keep working;
//    valid crafted packets (and ones with the ignored reserved bits 6–12 set) ARE delivered.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host, LabProcess } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import type { Counters, DropReason, OverlayStats } from '../../lib/types';
import { DROP_REASONS } from '../../lib/types';
import { describeNetns, sleep, waitFor } from '../helpers/env';
import { expectOffloadsActive, expectRxCoalescingUsed, expectRxGroUsed, expectTxOffloadsUsed, offloadDelta } from '../helpers/offloads';
import { delta, peerCounters, startForwarder } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';
import { ethernetFrame, sendDatagrams, snmpCounters } from '../helpers/udp';
import type { Datagram } from '../helpers/udp';
import { movedDrops } from '../helpers/pair';
import { internetChecksum } from '../helpers/raw-ip';
import { captureDropped, primeCapture, stopCapture } from '../helpers/capture';

const GRE_UDP_PORT = 4754;
const PROTO_ETHERNET = 0x6558; // Transparent Ethernet Bridging
const KEY = 0x2a;
const UNDERLAY_MTU = 1500;
const KEYED = { type: 'gre-udp', key: KEY, checksum: true } as const;
const PLAIN = { type: 'gre-udp' } as const;
/** Outer IPv4 20 + UDP 8 + GRE 4 (+ 4 checksum) (+ 4 key) + inner Ethernet 14. */
const MTU_KEYED = UNDERLAY_MTU - (20 + 8 + 4 + 4 + 4 + 14); // 1446
const MTU_PLAIN = UNDERLAY_MTU - (20 + 8 + 4 + 14); // 1454
/** Drop reasons a receiver can count for a datagram it got (the others are about sending). */
/** ICMP data making a 65-byte echo frame: a GRE checksum over an odd number of bytes. */
const ODD = Buffer.from('overlayfwd gre-udp odd.');
const RX_REASONS: DropReason[] = ['malformed', 'wrongVni', 'wrongKey', 'badChecksum', 'unknownPeer', 'tooBig', 'unknownOption', 'oam', 'loop'];

// ---- GRE and frame builders --------------------------------------------------------------------


interface GreFields {
  /**
   * C bit and the checksum field: 'good' = the RFC 1071 sum over the GRE header and payload,
   * 'bad' = that sum with two bits flipped, a number = that value. Absent: C clear, no field.
   */
  checksum?: 'good' | 'bad' | number;
  /** K bit and the key field. Absent: K clear, no field. */
  key?: number;
  /** The 3-bit version (default 0). */
  version?: number;
  /** OR'ed into the first 16-bit word: reserved bit 1 = 0x4000, 4 = 0x0800, 5 = 0x0400, 6–12 = 0x03f8. */
  reserved?: number;
  protocol?: number;
}

/** A GRE header (RFC 2784, key per RFC 2890) followed by `payload`. */
function gre(f: GreFields, payload: Buffer = Buffer.alloc(0)): Buffer {
  const hasC = f.checksum !== undefined;
  const hasK = f.key !== undefined;
  const h = Buffer.alloc(4 + (hasC ? 4 : 0) + (hasK ? 4 : 0));
  h.writeUInt16BE((hasC ? 0x8000 : 0) | (hasK ? 0x2000 : 0) | (f.reserved ?? 0) | ((f.version ?? 0) & 7), 0);
  h.writeUInt16BE(f.protocol ?? PROTO_ETHERNET, 2);
  if (hasK) h.writeUInt32BE(f.key! >>> 0, hasC ? 8 : 4);
  const out = Buffer.concat([h, payload]);
  if (hasC) {
    const good = internetChecksum(out); // the checksum field (and Reserved1) are still zero
    out.writeUInt16BE(f.checksum === 'good' ? good : f.checksum === 'bad' ? good ^ 0x0101 : (f.checksum as number), 4);
  }
  return out;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

/** An Ethernet frame holding an ICMP echo request (valid IPv4 and ICMP checksums); 66 bytes by default. */
function icmpEchoFrame(dstMac: string, srcMac: string, srcIp: string, dstIp: string, id: number, seq: number, data: Buffer = Buffer.from('overlayfwd gre-udp probe')): Buffer {
  const icmp = Buffer.concat([Buffer.from([8, 0, 0, 0, id >> 8, id & 0xff, seq >> 8, seq & 0xff]), data]);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  const ip = Buffer.alloc(20);
  ip.writeUInt8(0x45, 0);
  ip.writeUInt16BE(20 + icmp.length, 2);
  ip.writeUInt16BE(0x1234, 4);
  ip.writeUInt16BE(0x4000, 6); // DF
  ip.writeUInt8(64, 8);
  ip.writeUInt8(1, 9); // ICMP
  ipv4Bytes(srcIp).copy(ip, 12);
  ipv4Bytes(dstIp).copy(ip, 16);
  ip.writeUInt16BE(internetChecksum(ip), 10);
  return ethernetFrame(dstMac, srcMac, 0x0800, Buffer.concat([ip, icmp]));
}

// ---- lab set-up --------------------------------------------------------------------------------

interface Pair {
  a: Host;
  b: Host;
  A: Overlay;
  B: Overlay;
}

/** Two hosts on one veth, each running overlayfwd with `encap` and the other as its peer. */
async function grePair(lab: Lab, encap: Record<string, unknown>): Promise<Pair> {
  const [a, b] = await lab.pair('a', 'b');
  const extra = { encap: { ...encap } };
  const A = await startForwarder(lab, { host: a, address: `${overlayAddress(1)}/24`, peers: [{ name: 'b', endpoint: b.underlay }], extra });
  const B = await startForwarder(lab, { host: b, address: `${overlayAddress(2)}/24`, peers: [{ name: 'a', endpoint: a.underlay }], extra });
  return { a, b, A, B };
}

/** Permanent neighbour entries on the overlay both ways: no ARP while frames are counted exactly. */
async function pinNeighbours(lab: Lab, p: Pair): Promise<void> {
  expect((await lab.ping(p.b, overlayAddress(1), { count: 2, intervalSec: 0.05 })).received).toBe(2);
  await lab.ip(p.a, ['neigh', 'replace', overlayAddress(2), 'lladdr', p.B.device.mac, 'dev', 'ovl0', 'nud', 'permanent']);
  await lab.ip(p.b, ['neigh', 'replace', overlayAddress(1), 'lladdr', p.A.device.mac, 'dev', 'ovl0', 'nud', 'permanent']);
  await sleep(200);
}


/** Waits until `want(delta)` holds (or 5 s pass), lets stragglers arrive, returns the delta of A's totals. */
async function settle(ov: Overlay, before: Counters, want: (d: Counters) => boolean): Promise<Counters> {
  await waitFor(() => want(delta(ov.stats().totals, before)), 'the counters', 5000).catch(() => undefined);
  await sleep(200); // nothing more may trickle in
  return delta(ov.stats().totals, before);
}

/** Config, listening socket and derived MTU of one host. */
async function expectConfigAndMtu(lab: Lab, host: Host, ov: Overlay, encap: Record<string, unknown>, mtu: number): Promise<void> {
  expect(ov.config.encap).toMatchObject({ type: 'gre-udp', port: GRE_UDP_PORT, key: encap.key ?? null, checksum: encap.checksum ?? false });
  expect(ov.config.device.mtu).toBeNull(); // not configured: derived
  const { stdout } = await lab.ip(host, ['-j', 'link', 'show', 'dev', host.underlayDev]);
  expect((JSON.parse(stdout) as { mtu: number }[])[0]?.mtu).toBe(UNDERLAY_MTU);
  const dev = JSON.parse((await lab.ip(host, ['-j', 'link', 'show', 'dev', 'ovl0'])).stdout) as { mtu: number }[];
  expect(dev[0]?.mtu).toBe(mtu);
  expect(ov.device.mtu).toBe(mtu);
  const { stdout: ss } = await lab.exec(host, 'ss', ['-Hlun']);
  expect(ss).toContain(`${host.underlay}:${GRE_UDP_PORT}`);
}

/** Pings both ways, then the largest DF ping that fits the TAP MTU, and one byte more (refused locally). */
async function expectPings(lab: Lab, p: Pair, mtu: number): Promise<void> {
  expect((await lab.ping(p.a, overlayAddress(2), { count: 5, intervalSec: 0.05 })).received).toBe(5);
  expect((await lab.ping(p.b, overlayAddress(1), { count: 5, intervalSec: 0.05 })).received).toBe(5);
  const full = mtu - 28; // IPv4 20 + ICMP 8: the outer packet is then exactly 1500 bytes
  for (const [from, to] of [
    [p.a, overlayAddress(2)],
    [p.b, overlayAddress(1)],
  ] as const) {
    const r = await lab.exec(from, 'ping', ['-n', '-q', '-M', 'do', '-c', '3', '-i', '0.05', '-W', '2', '-s', String(full), to], { allowFailure: true });
    expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
    const over = await lab.exec(from, 'ping', ['-n', '-M', 'do', '-c', '1', '-W', '1', '-s', String(full + 1), to], { allowFailure: true });
    expect(over.code).not.toBe(0);
    expect(over.stdout + over.stderr).toMatch(new RegExp(`message too long|mtu\\s*=\\s*${mtu}`, 'i'));
  }
  for (const ov of [p.A, p.B]) expect(movedDrops(ov.stats().totals, RX_REASONS)).toEqual({});
}

interface TransferCheck {
  lab: Lab;
  p: Pair;
  dir: 'A → B' | 'B → A';
  megabytes: number;
  mtu: number;
  label: string;
}

/** A verified TCP transfer one way, counted on the right peers, with no drops and the offloads at work. */
async function checkedTransfer({ lab, p, dir, megabytes, mtu, label }: TransferCheck): Promise<void> {
  const [from, to, tx, rx, txPeer, rxPeer, address, source] =
    dir === 'A → B'
      ? ([p.a, p.b, p.A, p.B, 'b', 'a', overlayAddress(2), overlayAddress(1)] as const)
      : ([p.b, p.a, p.B, p.A, 'a', 'b', overlayAddress(1), overlayAddress(2)] as const);
  const tx0 = tx.stats();
  const rx0 = rx.stats();
  const r = await verifiedTransfer(lab, { from, to, address, megabytes, timeoutMs: 60_000 });
  expect(r.received.peer).toBe(source);
  await sleep(100);
  const tx1 = tx.stats();
  const rx1 = rx.stats();
  const bytes = megabytes << 20;
  const minFrames = Math.floor(bytes / (mtu - 40)); // at most MTU − 40 bytes of TCP payload per frame
  const sent = delta(peerCounters(tx1, txPeer), peerCounters(tx0, txPeer));
  const got = delta(peerCounters(rx1, rxPeer), peerCounters(rx0, rxPeer));
  expect(sent.txBytes).toBeGreaterThanOrEqual(bytes);
  expect(sent.txPackets).toBeGreaterThanOrEqual(minFrames);
  expect(got.rxBytes).toBeGreaterThanOrEqual(bytes);
  expect(got.rxPackets).toBeGreaterThanOrEqual(minFrames);
  // Nothing arrives that was not sent; the ACKs went the other way on the same peers.
  expect(got.rxPackets).toBeLessThanOrEqual(sent.txPackets);
  expect(got.rxBytes).toBeLessThanOrEqual(sent.txBytes);
  expect(got.txPackets).toBeGreaterThan(0);
  expect(sent.rxPackets).toBeGreaterThan(0);
  for (const s of [delta(tx1.totals, tx0.totals), delta(rx1.totals, rx0.totals)]) expect(movedDrops(s, RX_REASONS)).toEqual({});
  const ot = offloadDelta(tx1, tx0);
  const or = offloadDelta(rx1, rx0);
  expectTxOffloadsUsed(ot, `${label} ${dir}: sender`);
  expectRxGroUsed(or, `${label} ${dir}: receiver`);
  expectRxCoalescingUsed(or, `${label} ${dir}: receiver`);
  console.log(`[gre-udp ${label}] ${dir}: ${megabytes} MB in ${r.seconds.toFixed(2)} s (${r.mbitPerSecond.toFixed(0)} Mbit/s), ${sent.txPackets} frames`);
}

describeNetns('GRE-in-UDP between two overlayfwd hosts', { tools: ['tshark', 'ethtool', 'tcpdump', 'ping', 'ss'] }, () => {
  // ---- 1. key and checksum: the data path --------------------------------------------------------
  describe('key 0x2a and checksums: MTU 1446, pings, 30 MB each way', () => {
    let lab: Lab;
    let p: Pair;

    beforeAll(async () => {
      lab = await Lab.create();
      p = await grePair(lab, KEYED);
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('listens on UDP 4754 and defaults the TAP MTU to the underlay MTU minus 54', async () => {
      await expectConfigAndMtu(lab, p.a, p.A, KEYED, MTU_KEYED);
      await expectConfigAndMtu(lab, p.b, p.B, KEYED, MTU_KEYED);
      expectOffloadsActive(p.A.stats(), 'A');
      expectOffloadsActive(p.B.stats(), 'B');
    });

    it('pings both ways, full-size frames with DF included', async () => {
      await expectPings(lab, p, MTU_KEYED);
      expect(p.A.fdb().find((e) => e.mac === p.B.device.mac)).toMatchObject({ peer: 'b', static: false });
      expect(p.B.fdb().find((e) => e.mac === p.A.device.mac)).toMatchObject({ peer: 'a', static: false });
    });

    for (const dir of ['A → B', 'B → A'] as const) {
      it(`transfers 30 MB ${dir} over TCP, sha256 verified, offloads on`, async () => {
        await checkedTransfer({ lab, p, dir, megabytes: 30, mtu: MTU_KEYED, label: 'key+csum' });
      });
    }
  });

  // ---- 2. no options -------------------------------------------------------------------------------
  describe('no options: MTU 1454, pings, 20 MB, receive rules without key or checksum', () => {
    const ECHO_ID = 0x4755;
    const SRC_MAC = '02:00:00:00:0c:01';
    let lab: Lab;
    let p: Pair;

    beforeAll(async () => {
      lab = await Lab.create();
      p = await grePair(lab, PLAIN);
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('listens on UDP 4754 and defaults the TAP MTU to the underlay MTU minus 46', async () => {
      await expectConfigAndMtu(lab, p.a, p.A, PLAIN, MTU_PLAIN);
      await expectConfigAndMtu(lab, p.b, p.B, PLAIN, MTU_PLAIN);
    });

    it('pings both ways, full-size frames with DF included', async () => {
      await expectPings(lab, p, MTU_PLAIN);
    });

    it('transfers 20 MB A → B over TCP, sha256 verified', async () => {
      await checkedTransfer({ lab, p, dir: 'A → B', megabytes: 20, mtu: MTU_PLAIN, label: 'plain' });
    });

    it('refuses a key, verifies a checksum when one is present, delivers valid packets with or without one', async () => {
      await pinNeighbours(lab, p);
      let seq = 0;
      const echo = (data?: Buffer) => icmpEchoFrame(p.A.device.mac, SRC_MAC, overlayAddress(2), overlayAddress(1), ECHO_ID, ++seq, data);
      const cases: { what: string; payload: Buffer; reason: DropReason | null }[] = [
        { what: 'plain (no options)', payload: gre({}, echo()), reason: null },
        { what: 'with a correct checksum', payload: gre({ checksum: 'good' }, echo()), reason: null },
        { what: 'with a correct checksum, odd length', payload: gre({ checksum: 'good' }, echo(ODD)), reason: null },
        { what: 'with a wrong checksum, odd length', payload: gre({ checksum: 'bad' }, echo(ODD)), reason: 'badChecksum' },
        { what: 'with a wrong checksum', payload: gre({ checksum: 'bad' }, echo()), reason: 'badChecksum' },
        { what: 'with a key (0x2a)', payload: gre({ key: KEY }, echo()), reason: 'wrongKey' },
        { what: 'with a key (0) and a correct checksum', payload: gre({ key: 0, checksum: 'good' }, echo()), reason: 'wrongKey' },
        { what: 'version 1', payload: gre({ version: 1 }, echo()), reason: 'malformed' },
      ];
      const results: unknown[] = [];
      const wanted: unknown[] = [];
      for (const { what, payload, reason } of cases) {
        const s0 = p.A.stats();
        await sendDatagrams(lab, p.b, p.a.underlay, GRE_UDP_PORT, [{ src: p.b.underlay, payload }]);
        // Delivered: A's kernel answers the echo request through the overlay (rx 1, tx 1).
        const d = await settle(p.A, s0.totals, (x) => (reason ? x.drops[reason] >= 1 : x.rxPackets >= 1 && x.txPackets >= 1));
        results.push({ what, rx: d.rxPackets, tx: d.txPackets, drops: movedDrops(d) });
        wanted.push({ what, rx: reason ? 0 : 1, tx: reason ? 0 : 1, drops: reason ? { [reason]: 1 } : {} });
      }
      expect(results).toEqual(wanted);
      expect((await lab.ping(p.b, overlayAddress(1), { count: 3, intervalSec: 0.05 })).received).toBe(3);
    });
  });

  // ---- 3. the wire, dissected by tshark ------------------------------------------------------------
  describe('on the wire, dissected by tshark (key 0x2a, checksums)', () => {
    interface Row {
      ipSrc: string;
      srcport: number;
      dstport: number;
      udpLength: number;
      flagsAndVersion: string;
      cBit: string;
      kBit: string;
      sBit: string;
      routing: string;
      reservedFlags: string;
      version: string;
      checksum: string;
      checksumStatus: string;
      key: string;
      proto: string;
      protocols: string;
      payload: string;
      icmpType: string;
      innerDstport: number | null;
      innerIpLength: number | null;
      tcpChecksumStatus: string;
    }
    const PRIMER_PORT = 19999;
    const FLOW_PORTS = Array.from({ length: 16 }, (_, i) => 20000 + i);
    const TCP_MB = 2;
    let lab: Lab;
    let p: Pair;
    let rows: Row[];
    // Frames the capture itself lost on a busy machine (tshark says so on stderr when it stops).
    let lost = 0;

    beforeAll(async () => {
      lab = await Lab.create();
      p = await grePair(lab, KEYED);
      // One datagram = one packet in the capture, with its checksums complete: veth would carry
      // UDP GSO trains (and TSO super-packets) whole and leave offloaded checksums unfinished.
      for (const h of [p.a, p.b]) await lab.exec(h, 'ethtool', ['-K', h.underlayDev, 'tx-udp-segmentation', 'off', 'tso', 'off', 'gso', 'off', 'tx', 'off']);
      const file = path.join(lab.tmpdir(), 'gre-udp.pcapng');
      const capture = lab.spawn(p.a, 'tshark', ['-n', '-l', '-P', '-i', p.a.underlayDev, '-w', file, '-f', `udp port ${GRE_UDP_PORT}`]);
      await capture.waitForOutput(/Capturing on/, 30_000);
      const udp = (ports: number[]) =>
        `import socket\nfor p in [${ports.join(',')}]:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.bind(('${overlayAddress(1)}', p))\n    s.sendto(b'flow5', ('${overlayAddress(2)}', p))\n    s.close()\n`;
      const primed = await primeCapture(capture, 'the primer', () => lab.exec(p.a, 'python3', ['-c', udp([PRIMER_PORT])]));
      expect((await lab.ping(p.a, overlayAddress(2), { count: 5, intervalSec: 0.1 })).received).toBe(5);
      await lab.exec(p.a, 'python3', ['-c', udp(FLOW_PORTS)]);
      // Bulk TCP: TSO super-frames cut into wire frames, each with its own GRE checksum.
      await verifiedTransfer(lab, { from: p.a, to: p.b, address: overlayAddress(2), megabytes: TCP_MB });
      // At least the 5 requests (replies and the transfer's frames come on top) and the flows.
      await stopCapture(capture, 'the pings, the UDP flows and the transfer', primed + 5 + FLOW_PORTS.length);
      lost = captureDropped(capture.stderr);

      const fields = [
        'ip.src',
        'udp.srcport',
        'udp.dstport',
        'udp.length',
        'gre.flags_and_version',
        'gre.flags.checksum',
        'gre.flags.key',
        'gre.flags.sequence_number',
        'gre.flags.routing',
        'gre.flags.reserved',
        'gre.flags.version',
        'gre.checksum',
        'gre.checksum.status',
        'gre.key',
        'gre.proto',
        'frame.protocols',
        'udp.payload',
        'icmp.type',
        'ip.len',
        'tcp.checksum.status',
      ];
      // tshark 4.0 decodes UDP 4754 as GRE by itself; -d keeps that true for builds that do not.
      const { stdout } = await lab.exec(p.a, 'tshark', [
        '-n',
        '-r',
        file,
        '-d',
        `udp.port==${GRE_UDP_PORT},gre`,
        '-o',
        'tcp.check_checksum:TRUE',
        '-T',
        'fields',
        '-E',
        'separator=/t',
        '-E',
        'aggregator=|',
        ...fields.flatMap((f) => ['-e', f]),
      ]);
      rows = stdout
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => {
          const c = l.split('\t').map((f) => f.split('|'));
          const at = (i: number, j = 0) => c[i]?.[j] ?? '';
          return {
            ipSrc: at(0),
            srcport: Number(at(1)),
            dstport: Number(at(2)),
            innerDstport: at(2, 1) ? Number(at(2, 1)) : null,
            udpLength: Number(at(3)),
            flagsAndVersion: at(4),
            cBit: at(5),
            kBit: at(6),
            sBit: at(7),
            routing: at(8),
            reservedFlags: at(9),
            version: at(10),
            checksum: at(11),
            checksumStatus: at(12),
            key: at(13),
            proto: at(14),
            protocols: at(15),
            payload: at(16).replace(/:/g, ''),
            icmpType: at(17),
            innerIpLength: at(18, 1) ? Number(at(18, 1)) : null,
            tcpChecksumStatus: at(19),
          };
        });
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    const isTrue = /^(1|True)$/i;
    const isFalse = /^(0|False)$/i;

    it('captured GRE-in-UDP packets from both hosts, one per UDP datagram, Ethernet inside', () => {
      // primer(s) + 5 echo requests + 16 flows + the TCP data from A; replies and ACKs from B.
      const fromA = rows.filter((r) => r.ipSrc === p.a.underlay);
      expect(fromA.length + lost, `${fromA.length} frames from A captured, ${lost} lost by the capture`).toBeGreaterThanOrEqual(22 + Math.floor((TCP_MB << 20) / (MTU_KEYED - 40)));
      expect(rows.filter((r) => r.ipSrc === p.b.underlay).length).toBeGreaterThanOrEqual(5);
      for (const r of rows) {
        expect(r.protocols).toMatch(/:udp:gre:eth:ethertype:/);
        if (r.innerIpLength === null) continue;
        const frame = r.udpLength - 8 - 12; // UDP header, GRE header with checksum and key
        expect(frame).toBeGreaterThanOrEqual(r.innerIpLength + 14);
        expect(frame).toBeLessThanOrEqual(Math.max(60, r.innerIpLength + 14));
        expect(r.udpLength + 20).toBeLessThanOrEqual(UNDERLAY_MTU);
      }
    });

    it('flags C and K only, version 0, key 42, protocol type 0x6558', () => {
      for (const r of rows) {
        expect(Number(r.flagsAndVersion)).toBe(0xa000);
        expect(r.cBit).toMatch(isTrue);
        expect(r.kBit).toMatch(isTrue);
        expect(r.sBit).toMatch(isFalse);
        expect(r.routing).toMatch(isFalse);
        expect(Number(r.reservedFlags)).toBe(0);
        expect(Number(r.version)).toBe(0);
        expect(Number(r.key)).toBe(KEY);
        expect(Number(r.proto)).toBe(PROTO_ETHERNET);
        // The raw header: a000 6558, checksum, Reserved1 = 0, key.
        const hdr = r.payload.slice(0, 24);
        expect(hdr.slice(0, 8)).toBe('a0006558');
        expect(hdr.slice(12, 16)).toBe('0000');
        expect(hdr.slice(16, 24)).toBe(KEY.toString(16).padStart(8, '0'));
      }
    });

    it('carries a GRE checksum that tshark validates and that matches an RFC 1071 sum over header and payload', () => {
      const bad = rows.filter((r) => r.checksumStatus !== '1'); // 0 Bad, 1 Good, 2 Unverified
      expect(bad.map((r) => ({ src: r.ipSrc, status: r.checksumStatus, protocols: r.protocols }))).toEqual([]);
      for (const r of rows) {
        const b = Buffer.from(r.payload, 'hex');
        expect(internetChecksum(b)).toBe(0); // a correct checksum makes the sum over everything 0xffff
        const field = b.readUInt16BE(4);
        b.writeUInt16BE(0, 4);
        expect(internetChecksum(b)).toBe(field);
        expect(Number(r.checksum)).toBe(field);
      }
    });

    it('carries inner TCP segments with complete checksums (cut from TSO super-frames)', () => {
      const tcp = rows.filter((r) => r.protocols.includes('gre:eth:ethertype:ip:tcp'));
      expect(tcp.length + lost, `${tcp.length} TCP frames captured, ${lost} lost by the capture`).toBeGreaterThan(Math.floor((TCP_MB << 20) / (MTU_KEYED - 40)));
      expect(tcp.filter((r) => r.tcpChecksumStatus !== '1').map((r) => ({ src: r.ipSrc, status: r.tcpChecksumStatus }))).toEqual([]);
    });

    it('sends to UDP port 4754 from a source port in 49152-65535, derived from the inner flow', () => {
      for (const r of rows) {
        expect(r.dstport).toBe(GRE_UDP_PORT);
        expect(r.srcport).toBeGreaterThanOrEqual(49152);
        expect(r.srcport).toBeLessThanOrEqual(65535);
      }
      const fromA = rows.filter((r) => r.ipSrc === p.a.underlay);
      const pings = fromA.filter((r) => r.icmpType === '8');
      expect(new Set(pings.map((r) => r.srcport)).size).toBe(1);
      const flows = fromA.filter((r) => /gre:eth:ethertype:ip:udp/.test(r.protocols) && FLOW_PORTS.includes(r.innerDstport ?? -1));
      expect(flows.length).toBe(16);
      expect(new Set(flows.map((r) => r.srcport)).size).toBeGreaterThan(1);
    });

    it('checksums odd-length payloads too (inner UDP with 5 bytes: a 47-byte frame)', () => {
      const odd = rows.filter((r) => (r.udpLength - 8) % 2 === 1);
      expect(odd.length).toBeGreaterThanOrEqual(16);
      for (const r of odd) expect(r.checksumStatus).toBe('1');
    });

    it('carries frames that dissect as eth/ip/icmp: 5 echo requests from A, 5 replies from B', () => {
      const icmp = rows.filter((r) => r.protocols.includes('udp:gre:eth:ethertype:ip:icmp'));
      expect(icmp.filter((r) => r.ipSrc === p.a.underlay && r.icmpType === '8').length).toBe(5);
      expect(icmp.filter((r) => r.ipSrc === p.b.underlay && r.icmpType === '0').length).toBe(5);
    });
  });

  // ---- 4. hostile input on UDP 4754 ----------------------------------------------------------------
  describe('hostile input on UDP 4754 (key 0x2a, checksums required)', () => {
    const PER_KIND = 5;
    const PROBE_ETHERTYPE = 0x88b5; // IEEE local experimental: nothing else in the lab uses it
    const SRC_MAC = '02:00:00:00:0b:01';
    const VALID_MAC = '02:00:00:00:0b:0a';
    const RESERVED_MAC = '02:00:00:00:0b:0b';
    const ECHO_ID = 0x4754;

    interface Kind {
      what: string;
      reason: DropReason;
      datagram: Datagram;
    }

    let lab: Lab;
    let p: Pair;
    let stranger: string;
    let capture: LabProcess;
    let kinds: Kind[];

    beforeAll(async () => {
      lab = await Lab.create();
      p = await grePair(lab, KEYED);
      // A second address in B's namespace that is not a configured peer.
      stranger = p.b.underlay.replace(/\.\d+$/, '.99');
      await lab.addAddress(p.b, p.b.underlayDev, `${stranger}/24`);

      const probe = ethernetFrame(p.A.device.mac, SRC_MAC, PROBE_ETHERTYPE, Buffer.from('overlayfwd gre-udp bad-input probe'));
      const ok = { checksum: 'good', key: KEY } as const;
      const valid = gre(ok, probe);
      // The builder itself: a correct checksum sums (with everything else) to 0xffff.
      expect(internetChecksum(valid)).toBe(0);
      expect(internetChecksum(gre({ ...ok, checksum: 'bad' }, probe))).not.toBe(0);
      const from = (src: string) => (what: string, reason: DropReason, payload: Buffer): Kind => ({ what, reason, datagram: { src, payload, count: PER_KIND } });
      const k = from(p.b.underlay);
      kinds = [
        k('version 1', 'malformed', gre({ ...ok, version: 1 }, probe)),
        k('version 7', 'malformed', gre({ ...ok, version: 7 }, probe)),
        k('reserved bit 1 (0x4000)', 'malformed', gre({ ...ok, reserved: 0x4000 }, probe)),
        k('reserved bit 4 (0x0800)', 'malformed', gre({ ...ok, reserved: 0x0800 }, probe)),
        k('reserved bit 5 (0x0400)', 'malformed', gre({ ...ok, reserved: 0x0400 }, probe)),
        k('empty datagram', 'malformed', Buffer.alloc(0)),
        k('truncated: 2 bytes', 'malformed', valid.subarray(0, 2)),
        k('truncated: 4 bytes (C and K set)', 'malformed', valid.subarray(0, 4)),
        k('truncated: header without the key (8 bytes)', 'malformed', valid.subarray(0, 8)),
        k('header only, no inner frame (correct checksum)', 'malformed', gre(ok)),
        k('runt inner frame, 13 bytes (correct checksum)', 'malformed', gre(ok, probe.subarray(0, 13))),
        k('protocol type 0x0800 (correct checksum)', 'malformed', gre({ ...ok, protocol: 0x0800 }, probe)),
        k('wrong key (0x2b)', 'wrongKey', gre({ ...ok, key: KEY + 1 }, probe)),
        k('wrong key (0xffffffff)', 'wrongKey', gre({ ...ok, key: 0xffffffff }, probe)),
        k('key missing (K clear, correct checksum)', 'wrongKey', gre({ checksum: 'good' }, probe)),
        k('checksum missing (C clear, K set)', 'badChecksum', gre({ key: KEY }, probe)),
        k('wrong checksum', 'badChecksum', gre({ ...ok, checksum: 'bad' }, probe)),
        from(stranger)('valid packet from an unknown source address', 'unknownPeer', valid),
      ];

      // Everything the forwarder writes to A's TAP.
      capture = lab.spawn(p.a, 'tcpdump', ['-n', '-l', '-e', '-i', 'ovl0', 'inbound']);
      await capture.waitForOutput(/listening on/, 30_000);
      await pinNeighbours(lab, p);
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    const probeLines = (text: string) => text.split('\n').filter((l) => l.includes('0x88b5'));
    const delivered = () => probeLines(capture.stdout).length;

    it('delivers a crafted valid packet (key 0x2a, correct checksum) and answers it', async () => {
      const frame = icmpEchoFrame(p.A.device.mac, VALID_MAC, overlayAddress(2), overlayAddress(1), ECHO_ID, 1);
      const s0 = p.A.stats();
      const seen = capture.stdout.length;
      await sendDatagrams(lab, p.b, p.a.underlay, GRE_UDP_PORT, [{ src: p.b.underlay, payload: gre({ checksum: 'good', key: KEY }, frame) }]);
      const d = await settle(p.A, s0.totals, (x) => x.rxPackets >= 1 && x.txPackets >= 1);
      const b = delta(peerCounters(p.A.stats(), 'b'), peerCounters(s0, 'b'));
      expect({ rx: d.rxPackets, rxBytes: d.rxBytes, tx: d.txPackets, drops: movedDrops(d) }).toEqual({ rx: 1, rxBytes: frame.length, tx: 1, drops: {} });
      expect({ rx: b.rxPackets, tx: b.txPackets }).toEqual({ rx: 1, tx: 1 });
      await waitFor(() => capture.stdout.slice(seen).includes(`ICMP echo request, id ${ECHO_ID}, seq 1`), 'tcpdump to see the echo request on ovl0', 5000);
      expect(capture.stdout.slice(seen)).toContain(VALID_MAC);
      expect(p.A.fdb().find((e) => e.mac === VALID_MAC)).toMatchObject({ peer: 'b', static: false });
    });

    it('counts each kind of bad datagram under its reason, exactly, on the right peer, and delivers none', async () => {
      const results: unknown[] = [];
      const wanted: unknown[] = [];
      for (const { what, reason, datagram } of kinds) {
        const s0 = p.A.stats();
        const seen = capture.stdout.length;
        expect(await sendDatagrams(lab, p.b, p.a.underlay, GRE_UDP_PORT, [datagram])).toBe(PER_KIND);
        const d = await settle(p.A, s0.totals, (x) => x.drops[reason] >= PER_KIND);
        const peerB = delta(peerCounters(p.A.stats(), 'b'), peerCounters(s0, 'b'));
        results.push({
          what,
          drops: movedDrops(d),
          // A datagram from a configured peer is counted on that peer; from a stranger, on no peer.
          peerBDrops: movedDrops(peerB),
          rxPackets: d.rxPackets,
          txPackets: d.txPackets,
          onDevice: probeLines(capture.stdout.slice(seen)),
        });
        wanted.push({
          what,
          drops: { [reason]: PER_KIND },
          peerBDrops: reason === 'unknownPeer' ? {} : { [reason]: PER_KIND },
          rxPackets: 0,
          txPackets: 0,
          onDevice: [],
        });
      }
      expect(results).toEqual(wanted);
      expect(delivered()).toBe(0);
      expect(p.A.fdb().map((e) => e.mac)).not.toContain(SRC_MAC);
      expect((await lab.ping(p.b, overlayAddress(1), { count: 3, intervalSec: 0.05 })).received).toBe(3);
    });

    it('delivers a crafted valid packet of odd length (65-byte frame) and answers it', async () => {
      const frame = icmpEchoFrame(p.A.device.mac, VALID_MAC, overlayAddress(2), overlayAddress(1), ECHO_ID, 3, ODD);
      expect(frame.length % 2).toBe(1);
      const s0 = p.A.stats();
      const seen = capture.stdout.length;
      await sendDatagrams(lab, p.b, p.a.underlay, GRE_UDP_PORT, [{ src: p.b.underlay, payload: gre({ checksum: 'good', key: KEY }, frame) }]);
      const d = await settle(p.A, s0.totals, (x) => x.rxPackets >= 1 && x.txPackets >= 1);
      expect({ rx: d.rxPackets, rxBytes: d.rxBytes, tx: d.txPackets, drops: movedDrops(d) }).toEqual({ rx: 1, rxBytes: frame.length, tx: 1, drops: {} });
      await waitFor(() => capture.stdout.slice(seen).includes(`ICMP echo request, id ${ECHO_ID}, seq 3`), 'tcpdump to see the echo request on ovl0', 5000);
    });

    it('ignores reserved bits 6-12 on receipt (RFC 2784 §2.3): delivered and answered', async () => {
      const frame = icmpEchoFrame(p.A.device.mac, RESERVED_MAC, overlayAddress(2), overlayAddress(1), ECHO_ID, 2);
      const payload = gre({ checksum: 'good', key: KEY, reserved: 0x03f8 }, frame);
      expect(payload.readUInt16BE(0)).toBe(0xa3f8);
      const s0 = p.A.stats();
      const seen = capture.stdout.length;
      await sendDatagrams(lab, p.b, p.a.underlay, GRE_UDP_PORT, [{ src: p.b.underlay, payload }]);
      const d = await settle(p.A, s0.totals, (x) => x.rxPackets >= 1 && x.txPackets >= 1);
      expect({ rx: d.rxPackets, tx: d.txPackets, drops: movedDrops(d) }).toEqual({ rx: 1, tx: 1, drops: {} });
      await waitFor(() => capture.stdout.slice(seen).includes(`ICMP echo request, id ${ECHO_ID}, seq 2`), 'tcpdump to see the echo request on ovl0', 5000);
    });

    it('keeps forwarding while flooded with every bad kind, and counts every datagram', async () => {
      const rounds = 200;
      const all = kinds.map((x) => ({ ...x.datagram, count: rounds }));
      const expected: Partial<Record<DropReason, number>> = {};
      for (const x of kinds) expected[x.reason] = (expected[x.reason] ?? 0) + rounds;
      const total = kinds.length * rounds;
      const reasons = Object.keys(expected) as DropReason[];
      const deliveredBefore = delivered();
      const udp0 = await snmpCounters(lab, p.a, 'Udp');
      const before: OverlayStats = p.A.stats();
      const t0 = Date.now();
      const [sent, ping] = await Promise.all([
        sendDatagrams(lab, p.b, p.a.underlay, GRE_UDP_PORT, all, { interleave: true, burst: 64, pause: 0.004 }),
        lab.ping(p.b, overlayAddress(1), { count: 30, intervalSec: 0.02 }),
      ]);
      const floodMs = Date.now() - t0;
      expect(sent).toBe(total);
      expect(ping.received).toBeGreaterThanOrEqual(28);
      const udp1 = await snmpCounters(lab, p.a, 'Udp');
      const kernelDropped = (udp1.InErrors ?? 0) - (udp0.InErrors ?? 0);
      const counted = (d: Counters) => reasons.reduce((s, r) => s + d.drops[r], 0);
      const d = await settle(p.A, before.totals, (x) => counted(x) + kernelDropped >= total);
      console.log(`[gre-udp] flood: ${total} bad datagrams + ${ping.transmitted} pings in ${floodMs} ms, kernel dropped ${kernelDropped}`);
      // Whatever the kernel did not drop for a full receive buffer, overlayfwd counted (the kernel
      // may also have dropped some of the ping's datagrams, which are not in `total`).
      expect(counted(d) + kernelDropped).toBeGreaterThanOrEqual(total);
      expect(counted(d) + kernelDropped).toBeLessThanOrEqual(total + (ping.transmitted - ping.received) * 2);
      expect(kernelDropped).toBeLessThan(total / 10);
      if (kernelDropped === 0) expect(movedDrops(d)).toEqual(expected);
      for (const r of reasons) expect(d.drops[r]).toBeLessThanOrEqual(expected[r]!);
      expect(movedDrops(d, DROP_REASONS.filter((r) => !reasons.includes(r)))).toEqual({});
      expect(delivered()).toBe(deliveredBefore);
      expect(p.A.fdb().map((e) => e.mac)).not.toContain(SRC_MAC);
      expect((await lab.ping(p.b, overlayAddress(1), { count: 5, intervalSec: 0.05 })).received).toBe(5);
      expect((await lab.ping(p.a, overlayAddress(2), { count: 5, intervalSec: 0.05 })).received).toBe(5);
    });
  });
});
