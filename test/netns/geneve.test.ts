// Geneve (RFC 8926) between two overlayfwd hosts in network namespaces: encap.type geneve, VNI
// 4242, UDP port 6081, Ethernet (protocol type 0x6558) on a TAP device, no options sent.
//
// 1. The data path: the default MTU (underlay MTU − 50), pings both ways, a sha256-verified
//    50 MB TCP transfer each way, and the per-peer counters (a third, silent peer stays idle).
// 2. The wire, dissected by tshark: version 0, no options, the VNI, protocol type 0x6558,
//    UDP 6081 from a source port in 49152–65535, inner frames eth/ip/icmp.
// 3. Hostile input: crafted Geneve datagrams sent to A's port 6081 from B's namespace, each kind
//    dropped and counted under its reason with exact deltas and never delivered, while pings keep
//    working; and a packet with a non-critical option (or reserved bits set) IS delivered.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host, LabProcess } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import type { Counters, DropReason } from '../../lib/types';
import { DROP_REASONS } from '../../lib/types';
import { primeCapture, stopCapture } from '../helpers/capture';
import { describeNetns, sleep, waitFor } from '../helpers/env';
import { delta, peerCounters, startForwarder } from '../helpers/overlay';
import type { PeerSpec } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';
import { ethernetFrame, sendDatagrams, snmpCounters } from '../helpers/udp';
import type { Datagram } from '../helpers/udp';
import { movedDrops } from '../helpers/pair';
import { internetChecksum } from '../helpers/raw-ip';

const VNI = 4242;
const GENEVE_PORT = 6081;
const PROTO_ETHERNET = 0x6558;
const MB = 50;
const UNDERLAY_MTU = 1500;
const OVERHEAD = 50; // outer IPv4 20 + UDP 8 + Geneve 8 + inner Ethernet 14
/** Drop reasons a receiver can count for a datagram it got (the others are about sending). */
const RX_REASONS: DropReason[] = ['malformed', 'wrongVni', 'unknownPeer', 'tooBig', 'unknownOption', 'oam', 'loop'];

// ---- Geneve and frame builders -----------------------------------------------------------------

interface GeneveFields {
  vni?: number;
  /** 2-bit version (default 0). */
  version?: number;
  /** Opt Len in 4-byte words (default: options.length / 4). */
  optionWords?: number;
  /** O bit (OAM). */
  oam?: boolean;
  /** C bit (critical options present). */
  critical?: boolean;
  /** The six reserved bits of byte 1. */
  reservedFlags?: number;
  protocol?: number;
  /** Byte 7. */
  reserved?: number;
}

/** Geneve header followed by `options` (RFC 8926 §3.4). */
function geneve(f: GeneveFields, options: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(8);
  const words = f.optionWords ?? options.length / 4;
  h.writeUInt8(((f.version ?? 0) << 6) | (words & 0x3f), 0);
  h.writeUInt8((f.oam ? 0x80 : 0) | (f.critical ? 0x40 : 0) | ((f.reservedFlags ?? 0) & 0x3f), 1);
  h.writeUInt16BE(f.protocol ?? PROTO_ETHERNET, 2);
  h.writeUIntBE(f.vni ?? VNI, 4, 3);
  h.writeUInt8(f.reserved ?? 0, 7);
  return Buffer.concat([h, options]);
}

/** One Geneve option TLV; `lengthWords` overrides the 5-bit length field (default: data.length / 4). */
function option(cls: number, type: number, data: Buffer = Buffer.alloc(0), lengthWords?: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt16BE(cls, 0);
  h.writeUInt8(type, 2);
  h.writeUInt8((lengthWords ?? data.length / 4) & 0x1f, 3);
  return Buffer.concat([h, data]);
}


function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

/** An Ethernet frame holding an ICMP echo request (valid IPv4 and ICMP checksums). */
function icmpEchoFrame(dstMac: string, srcMac: string, srcIp: string, dstIp: string, id: number, seq: number): Buffer {
  const data = Buffer.from('overlayfwd geneve option probe');
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

// ---- lab set-up ------------------------------------------------------------------------------

interface Pair {
  a: Host;
  b: Host;
  A: Overlay;
  B: Overlay;
}

/** Two hosts on one veth, each running overlayfwd (Geneve, VNI 4242) with the other as peer. */
async function genevePair(lab: Lab, extraPeers: PeerSpec[] = []): Promise<Pair> {
  const [a, b] = await lab.pair('a', 'b');
  const extra = { encap: { type: 'geneve', vni: VNI } };
  const A = await startForwarder(lab, { host: a, address: `${overlayAddress(1)}/24`, peers: [{ name: 'b', endpoint: b.underlay }, ...extraPeers], extra });
  const B = await startForwarder(lab, { host: b, address: `${overlayAddress(2)}/24`, peers: [{ name: 'a', endpoint: a.underlay }, ...extraPeers], extra });
  return { a, b, A, B };
}


describeNetns('Geneve between two overlayfwd hosts', { tools: ['tshark', 'ethtool', 'tcpdump'] }, () => {
  // ---- 1. the data path ------------------------------------------------------------------------
  describe('data path: MTU, pings, verified transfers, per-peer counters', () => {
    let lab: Lab;
    let p: Pair;
    // A configured peer that never answers (nobody has the address): it may get flooded frames,
    // never unicast, and never sends anything.
    const silent: PeerSpec = { name: 'c', endpoint: '198.18.0.77' };

    beforeAll(async () => {
      lab = await Lab.create();
      p = await genevePair(lab, [silent]);
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('uses UDP 6081 and defaults the TAP MTU to the underlay MTU minus 50', async () => {
      for (const [host, ov] of [
        [p.a, p.A],
        [p.b, p.B],
      ] as const) {
        expect(ov.config.encap).toEqual({ type: 'geneve', vni: VNI, port: GENEVE_PORT, key: null, checksum: false, sequence: false });
        expect(ov.config.device.mtu).toBeNull(); // not configured: derived
        const { stdout } = await lab.ip(host, ['-j', 'link', 'show', 'dev', host.underlayDev]);
        expect((JSON.parse(stdout) as { mtu: number }[])[0]?.mtu).toBe(UNDERLAY_MTU);
        const dev = JSON.parse((await lab.ip(host, ['-j', 'addr', 'show', 'dev', 'ovl0'])).stdout) as { mtu: number; addr_info: { local: string }[] }[];
        expect(dev[0]?.mtu).toBe(UNDERLAY_MTU - OVERHEAD);
        expect(ov.device.mtu).toBe(UNDERLAY_MTU - OVERHEAD);
        const { stdout: ss } = await lab.exec(host, 'ss', ['-Hlun']);
        expect(ss).toContain(`${host.underlay}:${GENEVE_PORT}`);
      }
    });

    it('pings both ways, full-size frames with DF included', async () => {
      expect((await lab.ping(p.a, overlayAddress(2), { count: 5, intervalSec: 0.05 })).received).toBe(5);
      expect((await lab.ping(p.b, overlayAddress(1), { count: 5, intervalSec: 0.05 })).received).toBe(5);
      // 1450 − 20 − 8 = 1422 bytes of ICMP payload with DF: the largest inner packet fits the
      // underlay exactly (1422 + 28 + 14 + 8 + 8 + 20 = 1500).
      const full = UNDERLAY_MTU - OVERHEAD - 28;
      for (const [from, to] of [
        [p.a, overlayAddress(2)],
        [p.b, overlayAddress(1)],
      ] as const) {
        const r = await lab.exec(from, 'ping', ['-n', '-q', '-M', 'do', '-c', '3', '-i', '0.05', '-W', '2', '-s', String(full), to], { allowFailure: true });
        expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
        // One byte more does not fit the TAP's MTU: the sender's own stack refuses it.
        // (Not -q: iputils ping does not print local errors in quiet mode.)
        const over = await lab.exec(from, 'ping', ['-n', '-M', 'do', '-c', '1', '-W', '1', '-s', String(full + 1), to], { allowFailure: true });
        expect(over.code).not.toBe(0);
        expect(over.stdout + over.stderr).toMatch(/message too long|mtu\s*=\s*1450/i);
      }
      for (const ov of [p.A, p.B]) expect(movedDrops(ov.stats().totals, RX_REASONS)).toEqual({});
      // Both learned the other's TAP MAC from received frames, under the right peer.
      const macA = p.A.device.mac;
      const macB = p.B.device.mac;
      expect(p.A.fdb().find((e) => e.mac === macB)).toMatchObject({ peer: 'b', static: false });
      expect(p.B.fdb().find((e) => e.mac === macA)).toMatchObject({ peer: 'a', static: false });
    });

    for (const dir of ['A → B', 'B → A'] as const) {
      it(`transfers ${MB} MB ${dir} over TCP, sha256 verified, counted on the right peers`, async () => {
        const [from, to, tx, rx, txPeer, rxPeer, address] =
          dir === 'A → B' ? ([p.a, p.b, p.A, p.B, 'b', 'a', overlayAddress(2)] as const) : ([p.b, p.a, p.B, p.A, 'a', 'b', overlayAddress(1)] as const);
        const tx0 = tx.stats();
        const rx0 = rx.stats();
        const r = await verifiedTransfer(lab, { from, to, address, megabytes: MB });
        expect(r.received.peer).toBe(dir === 'A → B' ? overlayAddress(1) : overlayAddress(2));
        await sleep(100);
        const tx1 = tx.stats();
        const rx1 = rx.stats();
        const bytes = MB << 20;
        // At most 1450 − 20 − 20 = 1410 bytes of TCP payload per wire frame.
        const minFrames = Math.floor(bytes / (UNDERLAY_MTU - OVERHEAD - 40));
        const sent = delta(peerCounters(tx1, txPeer), peerCounters(tx0, txPeer));
        const got = delta(peerCounters(rx1, rxPeer), peerCounters(rx0, rxPeer));
        expect(sent.txBytes).toBeGreaterThanOrEqual(bytes);
        expect(sent.txPackets).toBeGreaterThanOrEqual(minFrames);
        expect(got.rxBytes).toBeGreaterThanOrEqual(bytes);
        expect(got.rxPackets).toBeGreaterThanOrEqual(minFrames);
        // Nothing arrives that was not sent (per-datagram counting on both ends).
        expect(got.rxPackets).toBeLessThanOrEqual(sent.txPackets);
        expect(got.rxBytes).toBeLessThanOrEqual(sent.txBytes);
        // The ACKs go the other way, on the same pair of peers.
        expect(got.txPackets).toBeGreaterThan(0);
        expect(sent.rxPackets).toBeGreaterThan(0);
        expect(sent.rxPackets).toBeLessThan(sent.txPackets);
        // The silent peer took no part; totals are the sums over the peers.
        for (const [s0, s1, peer] of [
          [tx0, tx1, txPeer],
          [rx0, rx1, rxPeer],
        ] as const) {
          const c = delta(peerCounters(s1, 'c'), peerCounters(s0, 'c'));
          expect({ tx: c.txPackets, rx: c.rxPackets }).toEqual({ tx: 0, rx: 0 });
          const t = delta(s1.totals, s0.totals);
          const only = delta(peerCounters(s1, peer), peerCounters(s0, peer));
          const pick = (x: Counters) => ({ tx: x.txPackets, rx: x.rxPackets, txBytes: x.txBytes, rxBytes: x.rxBytes });
          expect(pick(t)).toEqual(pick(only));
          expect(movedDrops(t, RX_REASONS)).toEqual({});
        }
        console.log(`[geneve] ${dir}: ${MB} MB in ${r.seconds.toFixed(2)} s (${r.mbitPerSecond.toFixed(0)} Mbit/s), ${sent.txPackets} frames`);
      });
    }

    it('the silent peer only ever got flooded frames and never sent anything; no drops but its own unreachables', () => {
      for (const ov of [p.A, p.B]) {
        const s = ov.stats();
        const c = peerCounters(s, 'c');
        expect(c.rxPackets).toBe(0);
        expect(c.txPackets).toBeLessThanOrEqual(s.totals.floodPackets);
        // No host has c's address: the underlay's neighbour lookup fails, and the kernel answers
        // the copies flooded to it with ICMP host unreachable, counted on c. (The other peer's
        // forwarder, started second, may have refused the first flood the same way.)
        expect(c.drops.unreachable).toBeLessThanOrEqual(c.txPackets);
        const { unreachable, ...others } = movedDrops(s.totals);
        expect(others).toEqual({});
        const onPeers = Object.values(s.peers).reduce((n, x) => n + x.drops.unreachable, 0);
        expect(unreachable ?? 0).toBe(onPeers);
      }
      // A's first ARP request was flooded to both of its peers.
      expect(peerCounters(p.A.stats(), 'c').txPackets).toBeGreaterThanOrEqual(1);
    });
  });

  // ---- 2. the wire, dissected by tshark ------------------------------------------------------
  describe('on the wire, dissected by tshark', () => {
    interface Row {
      ipSrc: string;
      srcport: number;
      dstport: number;
      udpLength: number;
      version: string;
      flags: string;
      oam: string;
      critical: string;
      protoType: string;
      vni: string;
      reserved: string;
      options: string;
      option: string;
      protocols: string;
      payload: string;
      icmpType: string;
      innerDstport: number | null;
      innerIpLength: number | null;
    }
    const PRIMER_PORT = 19999;
    const FLOW_PORTS = Array.from({ length: 16 }, (_, i) => 20000 + i);
    let lab: Lab;
    let p: Pair;
    let rows: Row[];

    beforeAll(async () => {
      lab = await Lab.create();
      p = await genevePair(lab);
      // One datagram = one packet in the capture: veth would carry UDP GSO trains (and TSO
      // super-packets) whole; make the stack segment before the device, on both ends.
      for (const h of [p.a, p.b]) await lab.exec(h, 'ethtool', ['-K', h.underlayDev, 'tx-udp-segmentation', 'off', 'tso', 'off', 'gso', 'off']);
      const file = path.join(lab.tmpdir(), 'geneve.pcapng');
      const capture = lab.spawn(p.a, 'tshark', ['-n', '-l', '-P', '-i', p.a.underlayDev, '-w', file, '-f', `udp port ${GENEVE_PORT}`]);
      await capture.waitForOutput(/Capturing on/, 30_000);
      const udp = (ports: number[]) =>
        `import socket\nfor p in [${ports.join(',')}]:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.bind(('${overlayAddress(1)}', p))\n    s.sendto(b'flow', ('${overlayAddress(2)}', p))\n    s.close()\n`;
      const primed = await primeCapture(capture, 'the primer', () => lab.exec(p.a, 'python3', ['-c', udp([PRIMER_PORT])]));
      expect((await lab.ping(p.a, overlayAddress(2), { count: 5, intervalSec: 0.1 })).received).toBe(5);
      await lab.exec(p.a, 'python3', ['-c', udp(FLOW_PORTS)]);
      // At least the 5 requests (the replies come on top) and the flows.
      await stopCapture(capture, 'the pings and the UDP flows', primed + 5 + FLOW_PORTS.length);

      const fields = [
        'ip.src',
        'udp.srcport',
        'udp.dstport',
        'udp.length',
        'geneve.version',
        'geneve.flags',
        'geneve.flags.oam',
        'geneve.flags.critical',
        'geneve.proto_type',
        'geneve.vni',
        'geneve.reserved',
        'geneve.options',
        'geneve.option',
        'frame.protocols',
        'udp.payload',
        'icmp.type',
        'ip.len',
      ];
      const { stdout } = await lab.exec(p.a, 'tshark', [
        '-n',
        '-r',
        file,
        '-d',
        `udp.port==${GENEVE_PORT},geneve`,
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
            version: at(4),
            flags: at(5),
            oam: at(6),
            critical: at(7),
            protoType: at(8),
            vni: at(9),
            reserved: at(10),
            options: at(11),
            option: at(12),
            protocols: at(13),
            payload: at(14),
            icmpType: at(15),
            innerIpLength: at(16, 1) ? Number(at(16, 1)) : null,
          };
        });
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('captured Geneve packets from both hosts, one per UDP datagram', () => {
      // primer(s) + 5 echo requests + 16 flows from A; 5 echo replies and port unreachables from B.
      expect(rows.filter((r) => r.ipSrc === p.a.underlay).length).toBeGreaterThanOrEqual(22);
      expect(rows.filter((r) => r.ipSrc === p.b.underlay).length).toBeGreaterThanOrEqual(5);
      for (const r of rows) {
        expect(r.protocols).toMatch(/:udp:geneve:eth:ethertype:/);
        if (r.innerIpLength === null) continue;
        const frame = r.udpLength - 8 - 8; // UDP header, Geneve header (no options)
        expect(frame).toBeGreaterThanOrEqual(r.innerIpLength + 14);
        expect(frame).toBeLessThanOrEqual(Math.max(60, r.innerIpLength + 14));
      }
    });

    it('version 0, no options, no O or C bit, protocol type 0x6558, VNI 4242', () => {
      for (const r of rows) {
        expect(r.version).toBe('0');
        expect(Number(r.flags)).toBe(0);
        expect(r.oam).toMatch(/^(0|False)$/i);
        expect(r.critical).toMatch(/^(0|False)$/i);
        expect(Number(r.protoType)).toBe(PROTO_ETHERNET);
        expect(Number(r.vni)).toBe(VNI); // tshark prints it in hex: 0x001092
        expect(Number(r.reserved)).toBe(0);
        expect(r.options).toBe('');
        expect(r.option).toBe('');
        // The raw header: version 0 and options length 0 in byte 0, flags 0, 0x6558, VNI, 0.
        const hdr = r.payload.replace(/:/g, '').slice(0, 16);
        expect(hdr).toBe(`00006558${VNI.toString(16).padStart(6, '0')}00`);
      }
    });

    it('sends to UDP port 6081 from a source port in 49152-65535', () => {
      for (const r of rows) {
        expect(r.dstport).toBe(GENEVE_PORT);
        expect(r.srcport).toBeGreaterThanOrEqual(49152);
        expect(r.srcport).toBeLessThanOrEqual(65535);
      }
    });

    it('derives the source port from the inner flow', () => {
      const fromA = rows.filter((r) => r.ipSrc === p.a.underlay);
      const pings = fromA.filter((r) => r.icmpType === '8');
      expect(new Set(pings.map((r) => r.srcport)).size).toBe(1);
      const flows = fromA.filter((r) => /geneve:eth:ethertype:ip:udp/.test(r.protocols) && FLOW_PORTS.includes(r.innerDstport ?? -1));
      expect(flows.length).toBe(16);
      expect(new Set(flows.map((r) => r.srcport)).size).toBeGreaterThan(1);
    });

    it('carries frames that dissect as eth/ip/icmp: 5 echo requests from A, 5 replies from B', () => {
      const icmp = rows.filter((r) => r.protocols.includes('udp:geneve:eth:ethertype:ip:icmp'));
      expect(icmp.filter((r) => r.ipSrc === p.a.underlay && r.icmpType === '8').length).toBe(5);
      expect(icmp.filter((r) => r.ipSrc === p.b.underlay && r.icmpType === '0').length).toBe(5);
    });
  });

  // ---- 3. hostile input on UDP 6081 ------------------------------------------------------------
  describe('hostile input on UDP 6081', () => {
    const PER_KIND = 5;
    const PROBE_ETHERTYPE = 0x88b5; // IEEE local experimental: nothing else in the lab uses it
    const SRC_MAC = '02:00:00:00:0b:01';
    const OPTION_MAC = '02:00:00:00:0b:0a';
    const RESERVED_MAC = '02:00:00:00:0b:0b';
    const ECHO_ID = 0x4e56;

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
      p = await genevePair(lab);
      // A second address in B's namespace that is not a configured peer.
      stranger = p.b.underlay.replace(/\.\d+$/, '.99');
      await lab.addAddress(p.b, p.b.underlayDev, `${stranger}/24`);

      const probe = ethernetFrame(p.A.device.mac, SRC_MAC, PROBE_ETHERTYPE, Buffer.from('overlayfwd geneve bad-input probe'));
      const data4 = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
      const from = (src: string) => (what: string, reason: DropReason, payload: Buffer): Kind => ({ what, reason, datagram: { src, payload, count: PER_KIND } });
      const k = from(p.b.underlay);
      kinds = [
        k('empty datagram', 'malformed', Buffer.alloc(0)),
        k('truncated: 4 bytes', 'malformed', geneve({}).subarray(0, 4)),
        k('truncated: 7 bytes', 'malformed', geneve({}).subarray(0, 7)),
        k('header only', 'malformed', geneve({})),
        k('version 1', 'malformed', Buffer.concat([geneve({ version: 1 }), probe])),
        k('version 3', 'malformed', Buffer.concat([geneve({ version: 3 }), probe])),
        k('options length (63 words) beyond the packet', 'malformed', Buffer.concat([geneve({ optionWords: 63 }), probe])),
        k('options length (2 words), packet ends inside the options', 'malformed', Buffer.concat([geneve({ optionWords: 2 }), option(0x0102, 0x01)])),
        k('option length overruns the options area', 'malformed', Buffer.concat([geneve({ optionWords: 1 }, option(0x0102, 0x01, Buffer.alloc(0), 1)), probe])),
        k(
          'second option overruns the options area',
          'malformed',
          Buffer.concat([geneve({ optionWords: 3 }, Buffer.concat([option(0x0102, 0x01, data4), option(0x0102, 0x02, Buffer.alloc(0), 2)])), probe]),
        ),
        k('protocol type 0x0800', 'malformed', Buffer.concat([geneve({ protocol: 0x0800 }), probe])),
        k('runt inner frame (13 bytes)', 'malformed', Buffer.concat([geneve({}), probe.subarray(0, 13)])),
        k('runt inner frame after an option', 'malformed', Buffer.concat([geneve({}, option(0x0102, 0x01, data4)), probe.subarray(0, 13)])),
        k('critical option (class 0x0102, type 0x80)', 'unknownOption', Buffer.concat([geneve({}, option(0x0102, 0x80, data4)), probe])),
        k('critical option after a non-critical one', 'unknownOption', Buffer.concat([geneve({}, Buffer.concat([option(0x0102, 0x01, data4), option(0x0102, 0x80)])), probe])),
        k('C bit set, no options', 'unknownOption', Buffer.concat([geneve({ critical: true }), probe])),
        k('O bit set (OAM)', 'oam', Buffer.concat([geneve({ oam: true }), probe])),
        k('O bit set with a non-critical option', 'oam', Buffer.concat([geneve({ oam: true }, option(0x0102, 0x01, data4)), probe])),
        k('wrong VNI (4243)', 'wrongVni', Buffer.concat([geneve({ vni: VNI + 1 }), probe])),
        k('wrong VNI (0)', 'wrongVni', Buffer.concat([geneve({ vni: 0 }), probe])),
        from(stranger)('valid packet from an unknown source address', 'unknownPeer', Buffer.concat([geneve({}), probe])),
      ];

      // Everything the forwarder writes to A's TAP.
      capture = lab.spawn(p.a, 'tcpdump', ['-n', '-l', '-e', '-i', 'ovl0', 'inbound']);
      await capture.waitForOutput(/listening on/, 30_000);
      expect((await lab.ping(p.b, overlayAddress(1), { count: 3, intervalSec: 0.05 })).received).toBe(3);
      // Permanent neighbour entries: no ARP on the overlay while we count frames exactly.
      await lab.ip(p.a, ['neigh', 'replace', overlayAddress(2), 'lladdr', p.B.device.mac, 'dev', 'ovl0', 'nud', 'permanent']);
      await lab.ip(p.b, ['neigh', 'replace', overlayAddress(1), 'lladdr', p.A.device.mac, 'dev', 'ovl0', 'nud', 'permanent']);
      await sleep(300);
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    const probeLines = (text: string) => text.split('\n').filter((l) => l.includes('0x88b5'));
    const delivered = () => probeLines(capture.stdout).length;

    async function settle(before: Counters, want: (d: Counters) => boolean): Promise<Counters> {
      await waitFor(() => want(delta(p.A.stats().totals, before)), 'the counters', 5000).catch(() => undefined);
      await sleep(250); // nothing more may trickle in
      return delta(p.A.stats().totals, before);
    }

    it('counts each kind of bad datagram under its reason, exactly, on the right peer, and delivers none', async () => {
      const results: unknown[] = [];
      const wanted: unknown[] = [];
      for (const { what, reason, datagram } of kinds) {
        const s0 = p.A.stats();
        const seen = capture.stdout.length;
        expect(await sendDatagrams(lab, p.b, p.a.underlay, GENEVE_PORT, [datagram])).toBe(PER_KIND);
        const d = await settle(s0.totals, (x) => x.drops[reason] >= PER_KIND);
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
      // And the overlay still works afterwards.
      expect((await lab.ping(p.b, overlayAddress(1), { count: 3, intervalSec: 0.05 })).received).toBe(3);
    });

    it('delivers a packet with a non-critical option (class 0x0102, type 0x01, 4 bytes) and answers it', async () => {
      const frame = icmpEchoFrame(p.A.device.mac, OPTION_MAC, overlayAddress(2), overlayAddress(1), ECHO_ID, 1);
      const payload = Buffer.concat([geneve({}, option(0x0102, 0x01, Buffer.from([1, 2, 3, 4]))), frame]);
      expect(payload.readUInt8(0)).toBe(2); // version 0, options length 2 words
      const s0 = p.A.stats();
      const seen = capture.stdout.length;
      await sendDatagrams(lab, p.b, p.a.underlay, GENEVE_PORT, [{ src: p.b.underlay, payload }]);
      // A's kernel answers the echo request: the reply goes back to B through the overlay.
      const d = await settle(s0.totals, (x) => x.rxPackets >= 1 && x.txPackets >= 1);
      const b = delta(peerCounters(p.A.stats(), 'b'), peerCounters(s0, 'b'));
      expect({ rx: d.rxPackets, rxBytes: d.rxBytes, tx: d.txPackets, drops: movedDrops(d) }).toEqual({ rx: 1, rxBytes: frame.length, tx: 1, drops: {} });
      expect({ rx: b.rxPackets, tx: b.txPackets }).toEqual({ rx: 1, tx: 1 });
      await waitFor(() => capture.stdout.slice(seen).includes(`ICMP echo request, id ${ECHO_ID}, seq 1`), 'tcpdump to see the echo request on ovl0', 5000);
      expect(capture.stdout.slice(seen)).toContain(OPTION_MAC);
      expect(p.A.fdb().find((e) => e.mac === OPTION_MAC)).toMatchObject({ peer: 'b', static: false });
    });

    it('ignores the reserved fields on receipt (RFC 8926 §3.4): reserved flag bits and byte 7 set, delivered', async () => {
      const frame = icmpEchoFrame(p.A.device.mac, RESERVED_MAC, overlayAddress(2), overlayAddress(1), ECHO_ID, 2);
      const payload = Buffer.concat([geneve({ reservedFlags: 0x3f, reserved: 0xff }), frame]);
      const s0 = p.A.stats();
      const seen = capture.stdout.length;
      await sendDatagrams(lab, p.b, p.a.underlay, GENEVE_PORT, [{ src: p.b.underlay, payload }]);
      const d = await settle(s0.totals, (x) => x.rxPackets >= 1 && x.txPackets >= 1);
      expect({ rx: d.rxPackets, tx: d.txPackets, drops: movedDrops(d) }).toEqual({ rx: 1, tx: 1, drops: {} });
      await waitFor(() => capture.stdout.slice(seen).includes(`ICMP echo request, id ${ECHO_ID}, seq 2`), 'tcpdump to see the echo request on ovl0', 5000);
    });

    it('keeps forwarding while flooded with every bad kind, and counts every datagram', async () => {
      const rounds = 300;
      const all = kinds.map((x) => ({ ...x.datagram, count: rounds }));
      const expected: Partial<Record<DropReason, number>> = {};
      for (const x of kinds) expected[x.reason] = (expected[x.reason] ?? 0) + rounds;
      const total = kinds.length * rounds;
      const reasons = Object.keys(expected) as DropReason[];
      const deliveredBefore = delivered();
      const udp0 = await snmpCounters(lab, p.a, 'Udp');
      const before = p.A.stats().totals;
      const t0 = Date.now();
      const [sent, ping] = await Promise.all([
        sendDatagrams(lab, p.b, p.a.underlay, GENEVE_PORT, all, { interleave: true, burst: 64, pause: 0.004 }),
        lab.ping(p.b, overlayAddress(1), { count: 40, intervalSec: 0.02 }),
      ]);
      const floodMs = Date.now() - t0;
      expect(sent).toBe(total);
      expect(ping.received).toBeGreaterThanOrEqual(38);
      const udp1 = await snmpCounters(lab, p.a, 'Udp');
      const kernelDropped = (udp1.InErrors ?? 0) - (udp0.InErrors ?? 0);
      const counted = (d: Counters) => reasons.reduce((s, r) => s + d.drops[r], 0);
      const d = await settle(before, (x) => counted(x) + kernelDropped >= total);
      console.log(`[geneve] flood: ${total} bad datagrams + ${ping.transmitted} pings in ${floodMs} ms, kernel dropped ${kernelDropped}`);
      // Whatever the kernel did not drop for a full receive buffer, overlayfwd counted (the
      // kernel may also have dropped some of the ping's datagrams, which are not in `total`).
      expect(counted(d) + kernelDropped).toBeGreaterThanOrEqual(total);
      expect(counted(d) + kernelDropped).toBeLessThanOrEqual(total + (ping.transmitted - ping.received) * 2);
      expect(kernelDropped).toBeLessThan(total / 10);
      if (kernelDropped === 0) expect(movedDrops(d)).toEqual(expected);
      for (const r of reasons) expect(d.drops[r]).toBeLessThanOrEqual(expected[r]!);
      expect(movedDrops(d, DROP_REASONS.filter((r) => !reasons.includes(r)))).toEqual({});
      expect(delivered()).toBe(deliveredBefore);
      expect(p.A.fdb().map((e) => e.mac)).not.toContain(SRC_MAC);
      // And afterwards, both ways.
      expect((await lab.ping(p.b, overlayAddress(1), { count: 5, intervalSec: 0.05 })).received).toBe(5);
      expect((await lab.ping(p.a, overlayAddress(2), { count: 5, intervalSec: 0.05 })).received).toBe(5);
    });
  });
});
