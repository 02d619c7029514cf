// Hostile input on the underlay: crafted VXLAN datagrams sent to overlayfwd's port 4789 from the
// peer's namespace. Each kind must be dropped and counted under its reason, with exact deltas,
// never delivered to the device, and never disturb real traffic.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host, LabProcess } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import type { Counters } from '../../lib/types';
import { describeNetns, sleep, waitFor } from '../helpers/env';
import { delta, startForwarder } from '../helpers/overlay';
import { ethernetFrame, sendDatagrams, snmpCounters, vxlanHeader } from '../helpers/udp';
import type { Datagram } from '../helpers/udp';

const VNI = 42;
const PROBE_ETHERTYPE = 0x88b5; // IEEE local experimental: nothing else in the lab uses it
const SRC_MAC = '02:00:00:00:0b:01';
const WRONG_VNI_MAC = '02:00:00:00:0b:02';
const UNKNOWN_PEER_MAC = '02:00:00:00:0b:03';
const PER_KIND = 5;

describeNetns('bad input on the underlay', { tools: ['tcpdump'] }, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let ov: Overlay;
  let stranger: string;
  let capture: LabProcess;
  let malformed: Datagram[];
  let wrongVni: Datagram[];
  let unknownPeer: Datagram[];
  let valid: Datagram;

  beforeAll(async () => {
    lab = await Lab.create();
    [a, b] = await lab.pair('a', 'b');
    ov = await startForwarder(lab, { host: a, address: `${overlayAddress(1)}/24`, peers: [{ name: 'b', endpoint: b.underlay }], vni: VNI });
    await lab.kernelVxlan(b, { vni: VNI, remotes: [a.underlay], addresses: [`${overlayAddress(2)}/24`] });
    // A second address in the peer's namespace that is not a configured peer.
    stranger = b.underlay.replace(/\.\d+$/, '.99');
    await lab.addAddress(b, b.underlayDev, `${stranger}/24`);

    const frame = (src: string) => ethernetFrame(ov.device.mac, src, PROBE_ETHERTYPE, Buffer.from('overlayfwd bad-input probe'));
    const good = frame(SRC_MAC);
    const hdr = vxlanHeader({ vni: VNI });
    const m = (payload: Buffer): Datagram => ({ src: b.underlay, payload, count: PER_KIND });
    malformed = [
      m(Buffer.alloc(0)), // empty
      m(Buffer.from([0x08, 0, 0, 0])), // truncated header
      m(hdr.subarray(0, 7)), // truncated header
      m(Buffer.concat([vxlanHeader({ vni: VNI, flags: 0x00 }), good])), // I flag missing
      m(Buffer.concat([vxlanHeader({ vni: VNI, flags: 0x0c }), good])), // a reserved flag bit
      m(Buffer.concat([vxlanHeader({ vni: VNI, flags: 0x88 }), good])), // a reserved flag bit
      m(Buffer.concat([vxlanHeader({ vni: VNI, reserved1: 0x800000 }), good])), // reserved byte 1
      m(Buffer.concat([vxlanHeader({ vni: VNI, reserved1: 0x000001 }), good])), // reserved byte 3
      m(Buffer.concat([vxlanHeader({ vni: VNI, reserved2: 0x01 }), good])), // reserved byte 7
      m(hdr), // no inner frame
      m(Buffer.concat([hdr, good.subarray(0, 13)])), // runt inner frame (< 14 bytes)
    ];
    wrongVni = [
      { src: b.underlay, payload: Buffer.concat([vxlanHeader({ vni: VNI + 1 }), frame(WRONG_VNI_MAC)]), count: PER_KIND },
      { src: b.underlay, payload: Buffer.concat([vxlanHeader({ vni: 0 }), frame(WRONG_VNI_MAC)]), count: PER_KIND },
    ];
    unknownPeer = [{ src: stranger, payload: Buffer.concat([hdr, frame(UNKNOWN_PEER_MAC)]), count: PER_KIND }];
    valid = { src: b.underlay, payload: Buffer.concat([hdr, good]), count: 1 };

    // Everything that the forwarder writes to the device.
    capture = lab.spawn(a, 'tcpdump', ['-n', '-l', '-e', '-i', 'ovl0', 'inbound']);
    await capture.waitForOutput(/listening on/, 30_000);
    expect((await lab.ping(b, overlayAddress(1), { count: 3, intervalSec: 0.05 })).received).toBe(3);
    // Permanent neighbour entries: no ARP probes on the overlay while we count frames exactly.
    await lab.ip(a, ['neigh', 'replace', overlayAddress(2), 'lladdr', await lab.macOf(b, 'vx0'), 'dev', 'ovl0', 'nud', 'permanent']);
    await lab.ip(b, ['neigh', 'replace', overlayAddress(1), 'lladdr', ov.device.mac, 'dev', 'vx0', 'nud', 'permanent']);
    await sleep(500);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  /** Probe frames seen on the device (tcpdump prints every inbound frame). */
  const delivered = () => capture.stdout.split('\n').filter((l) => l.includes('0x88b5')).length;

  async function settle(before: Counters, want: (d: Counters) => boolean): Promise<Counters> {
    await waitFor(() => want(delta(ov.stats().totals, before)), 'the drop counters', 5000).catch(() => undefined);
    await sleep(300); // nothing more may trickle in
    return delta(ov.stats().totals, before);
  }

  it('counts each kind of bad datagram under its reason, exactly, and delivers none', async () => {
    const kinds: [string, Datagram[], keyof Counters['drops']][] = [
      ['malformed', malformed, 'malformed'],
      ['wrong VNI', wrongVni, 'wrongVni'],
      ['unknown source', unknownPeer, 'unknownPeer'],
    ];
    const results: unknown[] = [];
    const wanted: unknown[] = [];
    for (const [what, datagrams, reason] of kinds) {
      for (const dg of datagrams) {
        const before = ov.stats().totals;
        const seenBefore = capture.stdout.length;
        await sendDatagrams(lab, b, a.underlay, 4789, [dg]);
        const d = await settle(before, (x) => x.drops[reason] >= PER_KIND);
        const id = `${what}: ${dg.payload.length} bytes ${dg.payload.subarray(0, 8).toString('hex')}`;
        const others = Object.fromEntries(Object.entries(d.drops).filter(([r, n]) => r !== reason && n !== 0));
        const onDevice = capture.stdout.slice(seenBefore).split('\n').filter((l) => l.includes('0x88b5'));
        results.push({ id, [reason]: d.drops[reason], others, rxPackets: d.rxPackets, onDevice });
        wanted.push({ id, [reason]: PER_KIND, others: {}, rxPackets: 0, onDevice: [] });
      }
    }
    expect(results).toEqual(wanted);
    expect(delivered()).toBe(0);
    // Nothing was learned from the rejected frames.
    const macs = ov.fdb().map((e) => e.mac);
    expect(macs).not.toContain(WRONG_VNI_MAC);
    expect(macs).not.toContain(UNKNOWN_PEER_MAC);
    expect(macs).not.toContain(SRC_MAC);
  });

  it('delivers a well-formed datagram from the peer (the probe works)', async () => {
    const before = ov.stats().totals;
    await sendDatagrams(lab, b, a.underlay, 4789, [valid]);
    const d = await settle(before, (x) => x.rxPackets >= 1);
    expect(d.rxPackets).toBe(1);
    await waitFor(() => delivered() === 1, 'tcpdump to see the probe frame', 5000);
    expect(ov.fdb().find((e) => e.mac === SRC_MAC)).toMatchObject({ peer: 'b' });
  });

  it('keeps forwarding while flooded with bad datagrams, and counts every one', async () => {
    const rounds = 400;
    const all = [...malformed, ...wrongVni, ...unknownPeer].map((d) => ({ ...d, count: rounds }));
    const expected = { malformed: malformed.length * rounds, wrongVni: wrongVni.length * rounds, unknownPeer: unknownPeer.length * rounds };
    const total = expected.malformed + expected.wrongVni + expected.unknownPeer;
    const udpBefore = await snmpCounters(lab, a, 'Udp');
    const before = ov.stats().totals;
    const [sent, ping] = await Promise.all([
      sendDatagrams(lab, b, a.underlay, 4789, all, { interleave: true, burst: 64, pause: 0.003 }),
      lab.ping(b, overlayAddress(1), { count: 20, intervalSec: 0.1 }),
    ]);
    expect(sent).toBe(total);
    expect(ping.received).toBeGreaterThanOrEqual(19);
    const udpAfter = await snmpCounters(lab, a, 'Udp');
    const kernelDropped = (udpAfter.InErrors ?? 0) - (udpBefore.InErrors ?? 0);
    const d = await settle(before, (x) => x.drops.malformed + x.drops.wrongVni + x.drops.unknownPeer + kernelDropped >= total);
    // Whatever the kernel did not drop for a full receive buffer, overlayfwd counted.
    expect(d.drops.malformed + d.drops.wrongVni + d.drops.unknownPeer + kernelDropped).toBe(total);
    expect(d.drops.malformed).toBeLessThanOrEqual(expected.malformed);
    expect(d.drops.wrongVni).toBeLessThanOrEqual(expected.wrongVni);
    expect(d.drops.unknownPeer).toBeLessThanOrEqual(expected.unknownPeer);
    expect(kernelDropped).toBeLessThan(total / 10);
    expect(delivered()).toBe(1);
    // And afterwards.
    expect((await lab.ping(b, overlayAddress(1), { count: 5, intervalSec: 0.05 })).received).toBe(5);
    expect((await lab.ping(a, overlayAddress(2), { count: 5, intervalSec: 0.05 })).received).toBe(5);
  });
});
