// The packet device: overlayfwd attaching an existing interface (here a veth port) to the L2
// overlay through AF_PACKET sockets, as a VXLAN/Geneve gateway for the segment behind it.
//
//   end host a1 ──veth── [gateway A: overlayfwd, device.type packet on gw0] ══underlay══
//       [gateway B: overlayfwd, packet on gw0] ──veth── end host b1
//
// a1 (198.19.0.1) and b1 (198.19.0.2) are ordinary hosts on one stretched segment (MTU 1450, the
// underlay's 1500 minus the 50 bytes of VXLAN/Geneve); the gateways have no overlay address at
// all. For each setup: pings and full-size DF pings both ways, a sha256-verified TCP transfer
// each way with every byte counted on the peers, no drops, and proof that nothing was echoed:
// during a transfer from B's side to A's side A delivers megabytes from B, and if A read those
// frames back from its interface it would send them to B again, so A's bytes toward B would
// reach what it delivered; they stay at the size of the ACKs. The learned tables say the same:
// each gateway learned the far end host's MAC behind its peer, and never its own side's.
// Frames the gateway host itself transmits on the interface and frames addressed to the
// interface's own MAC stay off the overlay, while the same frames sent by a1 onto the segment do
// cross; 802.1Q-tagged frames cross with their tag (the kernel strips it into PACKET_AUXDATA and
// the workers put it back).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import { describeNetns, sleep } from '../helpers/env';
import { delta, loadOverlay, peerCounters, startForwarder } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';
import { movedDrops } from '../helpers/pair';

const SEGMENT_MTU = 1450;
const A1 = '198.19.0.1';
const B1 = '198.19.0.2';
const TEST_ETHERTYPE = 0x88b5; // IEEE 802 local experimental
const FRAMES = 40;

interface Setup {
  label: string;
  encap: Record<string, unknown>;
  workersA: number;
  workersB: number;
  tso: boolean;
  megabytes: number;
  /** Every check, or only the data path (pings, transfers, echo) for the cheaper variants. */
  full: boolean;
}

const SETUPS: Setup[] = [
  // A with two workers: two sockets in a fanout group; B with one socket.
  { label: 'vxlan, workers 2 and 1', encap: { type: 'vxlan', vni: 42 }, workersA: 2, workersB: 1, tso: true, megabytes: 32, full: true },
  { label: 'geneve', encap: { type: 'geneve', vni: 77 }, workersA: 1, workersB: 2, tso: true, megabytes: 16, full: false },
  // No vnet headers: the end hosts must then send wire-sized frames with finished checksums.
  { label: 'vxlan, offloads.tso off', encap: { type: 'vxlan', vni: 42 }, workersA: 1, workersB: 1, tso: false, megabytes: 16, full: false },
];

// Sends COUNT frames of ETHERTYPE (optionally 802.1Q-tagged) out of IFNAME.
const PY_SEND_FRAMES = String.raw`
import socket, struct, sys, time
ifname, dst, src, ethertype, count, vid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
mac = lambda m: bytes.fromhex(m.replace(':', ''))
header = mac(dst) + mac(src)
if vid:
    header += struct.pack('!HH', 0x8100, vid)
frame = header + struct.pack('!H', ethertype) + b'overlayfwd packet-device test'.ljust(46, b'.')
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for _ in range(count):
    s.send(frame)
    time.sleep(0.002)
`;

// Counts received frames of ETHERTYPE on IFNAME for SECONDS, by VLAN tag (the kernel strips a
// received tag into PACKET_AUXDATA): prints {"untagged": n, "tagged": {"vid": n}}.
const PY_COUNT_FRAMES = String.raw`
import json, socket, struct, sys, time
ifname, ethertype, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
SOL_PACKET, PACKET_AUXDATA, VLAN_VALID, OUTGOING = 263, 8, 1 << 4, 4
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
s.bind((ifname, 0))
s.settimeout(0.1)
print('READY', flush=True)
untagged, tagged = 0, {}
end = time.time() + seconds
while time.time() < end:
    try:
        data, ancillary, _flags, address = s.recvmsg(65536, 256)
    except socket.timeout:
        continue
    if address[2] == OUTGOING or len(data) < 14 or struct.unpack('!H', data[12:14])[0] != ethertype:
        continue
    vid = None
    for level, kind, payload in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA:
            status, _len, _snap, _mac, _net, tci = struct.unpack('IIIHHH', payload[:18])
            if status & VLAN_VALID:
                vid = tci & 0xfff
    if vid is None:
        untagged += 1
    else:
        tagged[str(vid)] = tagged.get(str(vid), 0) + 1
print(json.dumps({'untagged': untagged, 'tagged': tagged}), flush=True)
`;

interface FrameCount {
  untagged: number;
  tagged: Record<string, number>;
}


/** An end host behind `gateway`: its eth0 and the gateway's gw0 are the two ends of one veth. */
async function endHost(lab: Lab, gateway: Host, label: string, address: string): Promise<Host> {
  const end = await lab.addHost(label);
  await lab.ip(end, ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'gw0', 'netns', gateway.ns]);
  await lab.ip(end, ['link', 'set', 'eth0', 'mtu', String(SEGMENT_MTU)]);
  await lab.ip(gateway, ['link', 'set', 'gw0', 'mtu', String(SEGMENT_MTU)]);
  await lab.ip(end, ['addr', 'add', `${address}/24`, 'dev', 'eth0']);
  await lab.ip(end, ['link', 'set', 'eth0', 'up']);
  await lab.ip(gateway, ['link', 'set', 'gw0', 'up']);
  return end;
}

interface LinkDetails {
  mtu: number;
  promiscuity: number;
  flags: string[];
  address: string;
  addr_info?: unknown[];
}

async function linkDetails(lab: Lab, host: Host, dev: string): Promise<LinkDetails> {
  const { stdout } = await lab.ip(host, ['-j', '-d', 'addr', 'show', 'dev', dev]);
  return (JSON.parse(stdout) as LinkDetails[])[0]!;
}

function packetConfig(setup: Setup, peer: Host): Record<string, unknown> {
  return {
    device: { type: 'packet', interface: 'gw0' },
    encap: { ...setup.encap },
    offloads: { tso: setup.tso },
    peers: [{ name: peer.label === 'gwa' ? 'a' : 'b', endpoint: peer.underlay }],
  };
}

describeNetns('packet device: an existing interface on the L2 overlay', { tools: ['ping'] }, () => {
  for (const setup of SETUPS) {
    describe(setup.label, () => {
      let lab: Lab;
      let gwA: Host;
      let gwB: Host;
      let a1: Host;
      let b1: Host;
      let A: Overlay;
      let B: Overlay;
      let macA1: string;
      let macB1: string;

      beforeAll(async () => {
        lab = await Lab.create();
        [gwA, gwB] = await lab.pair('gwa', 'gwb');
        a1 = await endHost(lab, gwA, 'enda', A1);
        b1 = await endHost(lab, gwB, 'endb', B1);
        if (!setup.tso) {
          // Without vnet headers nothing can cut a super-frame or finish an offloaded checksum.
          for (const end of [a1, b1]) await lab.exec(end, 'ethtool', ['-K', 'eth0', 'tx', 'off', 'tso', 'off', 'gso', 'off']);
        }
        A = await startForwarder(lab, { host: gwA, address: '', peers: [], workers: setup.workersA, extra: packetConfig(setup, gwB) });
        B = await startForwarder(lab, { host: gwB, address: '', peers: [], workers: setup.workersB, extra: packetConfig(setup, gwA) });
        macA1 = await lab.macOf(a1, 'eth0');
        macB1 = await lab.macOf(b1, 'eth0');
      });
      afterAll(async () => {
        await lab?.destroy();
      });

      it('attaches gw0 as it is: its own name, MTU and MAC, promiscuous, no address', async () => {
        for (const [ov, host] of [[A, gwA], [B, gwB]] as const) {
          const link = await linkDetails(lab, host, 'gw0');
          expect(ov.device.name).toBe('gw0');
          expect(ov.device.mtu).toBe(SEGMENT_MTU);
          expect(link.mtu).toBe(SEGMENT_MTU);
          expect(ov.device.mac).toBe(link.address);
          expect(link.promiscuity).toBeGreaterThanOrEqual(1);
          expect(link.addr_info ?? []).toEqual([]);
          expect(ov.stats().offloads.active.tso).toBe(setup.tso);
        }
        expect(A.stats().workers).toBe(setup.workersA);
      });

      it('pings a1 <-> b1 through the overlay, full-size DF packets included', async () => {
        const a0 = A.stats();
        const b0 = B.stats();
        expect((await lab.ping(a1, B1, { count: 5, intervalSec: 0.05 })).received).toBe(5);
        expect((await lab.ping(b1, A1, { count: 5, intervalSec: 0.05 })).received).toBe(5);
        const full = SEGMENT_MTU - 28;
        for (const [from, to] of [[a1, B1], [b1, A1]] as const) {
          const fits = await lab.exec(from, 'ping', ['-n', '-q', '-M', 'do', '-c', '3', '-i', '0.05', '-W', '2', '-s', String(full), to], { allowFailure: true });
          expect(fits.stdout).toMatch(/3 packets transmitted, 3 received/);
        }
        const towardB = delta(peerCounters(A.stats(), 'b'), peerCounters(a0, 'b'));
        const fromA = delta(peerCounters(B.stats(), 'a'), peerCounters(b0, 'a'));
        // Each way: 8 echo requests of a1's and 8 replies to b1's (plus ARP).
        expect(towardB.txPackets).toBeGreaterThanOrEqual(16);
        expect(towardB.rxPackets).toBeGreaterThanOrEqual(16);
        expect(fromA.rxPackets).toBe(towardB.txPackets);
        expect(movedDrops(delta(A.stats().totals, a0.totals))).toEqual({});
        expect(movedDrops(delta(B.stats().totals, b0.totals))).toEqual({});
        // Each gateway learned the far end host behind its peer, and nothing of its own side.
        expect(A.fdb().map((e) => `${e.mac}@${e.peer}`)).toEqual([`${macB1}@b`]);
        expect(B.fdb().map((e) => `${e.mac}@${e.peer}`)).toEqual([`${macA1}@a`]);
      });

      for (const direction of ['a1 -> b1', 'b1 -> a1'] as const) {
        it(`carries a verified TCP transfer ${direction}, counted on the peers, nothing echoed, nothing dropped`, async () => {
          const [from, to, address, sender, receiver, senderPeer, receiverPeer] =
            direction === 'a1 -> b1' ? ([a1, b1, B1, A, B, 'b', 'a'] as const) : ([b1, a1, A1, B, A, 'a', 'b'] as const);
          const a0 = A.stats();
          const b0 = B.stats();
          const s0 = sender.stats();
          const r0 = receiver.stats();
          const r = await verifiedTransfer(lab, { from, to, address, megabytes: setup.megabytes, timeoutMs: 90_000 });
          expect(r.received.peer).toBe(direction === 'a1 -> b1' ? A1 : B1);
          await sleep(100);
          const bytes = setup.megabytes << 20;
          const sent = delta(peerCounters(sender.stats(), senderPeer), peerCounters(s0, senderPeer));
          const got = delta(peerCounters(receiver.stats(), receiverPeer), peerCounters(r0, receiverPeer));
          expect(sent.txBytes).toBeGreaterThanOrEqual(bytes);
          expect(got.rxBytes).toBeGreaterThanOrEqual(bytes);
          expect(got.rxPackets).toBeLessThanOrEqual(sent.txPackets);
          // The receiving gateway delivered the data onto its segment; had it read those frames
          // back, it would have sent them to the sender's gateway again: what it sent back is the
          // ACKs, a few percent of what it delivered.
          expect(got.txBytes).toBeLessThan(got.rxBytes / 10);
          expect(sent.rxBytes).toBeLessThan(sent.txBytes / 10);
          expect(movedDrops(delta(A.stats().totals, a0.totals))).toEqual({});
          expect(movedDrops(delta(B.stats().totals, b0.totals))).toEqual({});
          if (setup.tso) {
            // The sender's stack handed its gateway TSO super-frames through the veth (vnet headers).
            expect(sender.stats().offloads.txSuperFrames - s0.offloads.txSuperFrames).toBeGreaterThan(0);
          } else {
            expect(sender.stats().offloads.txSuperFrames - s0.offloads.txSuperFrames).toBe(0);
          }
          expect(A.fdb().map((e) => e.mac)).not.toContain(macA1);
          expect(B.fdb().map((e) => e.mac)).not.toContain(macB1);
          console.log(`[packet ${setup.label}] ${setup.megabytes} MB ${direction} in ${r.seconds.toFixed(2)} s (${r.mbitPerSecond.toFixed(0)} Mbit/s)`);
        });
      }

      if (!setup.full) return;

      /** Sends FRAMES test frames with `send` while b1 counts what arrives on its eth0. */
      async function arrivingAtB1(send: () => Promise<unknown>): Promise<FrameCount> {
        const listener = lab.spawn(b1, 'python3', ['-u', '-c', PY_COUNT_FRAMES, 'eth0', String(TEST_ETHERTYPE), '1.5']);
        await listener.waitForOutput('READY', 10_000);
        await send();
        const out = await listener.succeed(10_000);
        return JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as FrameCount;
      }
      const sendFrames = (host: Host, dev: string, dst: string, vid = 0) =>
        lab.exec(host, 'python3', ['-c', PY_SEND_FRAMES, dev, dst, '02:00:00:00:aa:01', String(TEST_ETHERTYPE), String(FRAMES), String(vid)]);

      it('bridges what the segment sends: broadcast frames from a1 reach b1', async () => {
        const counted = await arrivingAtB1(() => sendFrames(a1, 'eth0', 'ff:ff:ff:ff:ff:ff'));
        expect(counted).toEqual({ untagged: FRAMES, tagged: {} });
      });

      it('never bridges frames the gateway host itself transmits on the interface', async () => {
        const a0 = A.stats();
        const counted = await arrivingAtB1(() => sendFrames(gwA, 'gw0', 'ff:ff:ff:ff:ff:ff'));
        expect(counted).toEqual({ untagged: 0, tagged: {} });
        expect(A.stats().totals.floodPackets - a0.totals.floodPackets).toBe(0);
      });

      it("keeps frames for the interface's own MAC (the gateway host's traffic) off the overlay", async () => {
        const counted = await arrivingAtB1(() => sendFrames(a1, 'eth0', A.device.mac));
        expect(counted).toEqual({ untagged: 0, tagged: {} });
      });

      it('carries 802.1Q-tagged frames with their tag (the kernel strips it; the workers put it back)', async () => {
        const counted = await arrivingAtB1(() => sendFrames(a1, 'eth0', 'ff:ff:ff:ff:ff:ff', 100));
        expect(counted).toEqual({ untagged: 0, tagged: { '100': FRAMES } });
      });

      it('fails loudly, naming the interface, for one that is missing, down, or the underlay', async () => {
        const OverlayCls = await loadOverlay();
        const attempt = (iface: string) =>
          OverlayCls.create({
            name: 'gwx',
            netns: gwA.ns,
            device: { type: 'packet', interface: iface },
            encap: { type: 'vxlan', vni: 43, port: 4790 },
            underlay: { local: gwA.underlay },
            workers: 1,
            control: { socket: `${lab.tmpdir()}/gwx.sock` },
          });
        await expect(attempt('nope0')).rejects.toMatchObject({ code: 'ENODEV', message: expect.stringMatching(/nope0/) });
        await expect(attempt(gwA.underlayDev)).rejects.toMatchObject({ code: 'ELOOP', message: expect.stringMatching(new RegExp(`${gwA.underlayDev} holds the underlay address`)) });
        await lab.ip(gwA, ['link', 'add', 'spare0', 'type', 'veth', 'peer', 'name', 'spare1']);
        await expect(attempt('spare0')).rejects.toMatchObject({ code: 'ENETDOWN', message: expect.stringMatching(/spare0 is down/) });
        await lab.ip(gwA, ['link', 'del', 'spare0']);
      });

      it('leaves the interface as it found it when closed', async () => {
        await A.close();
        const link = await linkDetails(lab, gwA, 'gw0');
        expect(link.promiscuity).toBe(0);
        expect(link.mtu).toBe(SEGMENT_MTU);
        expect(link.flags).toContain('UP');
        expect(link.addr_info ?? []).toEqual([]);
      });
    });
  }
});
