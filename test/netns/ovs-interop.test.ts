// overlayfwd against an independent implementation of every tunnel it speaks on TAP: Open vSwitch's
// userspace (netdev) datapath, run in its own namespace with its own ovsdb-server and
// ovs-vswitchd (test/helpers/ovs.ts).
//
//   ns fwd: overlayfwd, TAP ovl0 198.19.0.1/24, underlay veth0 198.18.N.1 (TX checksum offload off:
//           OVS reads its veth through AF_PACKET and drops tunnel packets with unfinished checksums)
//   ns ovs: br-int 198.19.0.2/24 with tunnel port tun0 (type=vxlan|geneve|gre, options:remote_ip,
//           options:key), br-phy 198.18.N.2/24 with the veth as its port
//
// Per tunnel type, with overlayfwd's offloads on (UDP GSO: outer checksums completed by the kernel
// because the veth does not offload them) and off (zero UDP checksums): the MTUs agree, pings both ways (full-size frames with DF included), a
// sha256-verified TCP transfer each way, and proof from both sides that the traffic really went
// through the tunnel: overlayfwd's per-peer counters (encapsulated toward and decapsulated from OVS,
// no drops) and OVS's tunnel port counters and datapath drop counters.
//
// Adding a mode is one line in CASES (encapFor() turns the OVS tunnel into overlayfwd's `encap`
// section, tunnelOverhead() gives the MTU). GRE here is Ethernet over GRE (protocol 0x6558) on
// raw IP protocol 47, with and without a key.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import type { Counters } from '../../lib/types';
import { describeNetns } from '../helpers/env';
import { OFFLOAD_MODES, offloadConfig } from '../helpers/offloads';
import { encapFor, startOvs, tunnelOverhead } from '../helpers/ovs';
import type { OvsHost, OvsTunnel } from '../helpers/ovs';
import { delta, peerCounters, startForwarder, totalDrops } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';

interface Case {
  label: string;
  tunnel: OvsTunnel;
}

const CASES: Case[] = [
  { label: 'vxlan, VNI 42', tunnel: { type: 'vxlan', key: 42 } },
  { label: 'geneve, VNI 4242', tunnel: { type: 'geneve', key: 4242 } },
  { label: 'gre, key 42', tunnel: { type: 'gre', key: 42 } },
  { label: 'gre, no key', tunnel: { type: 'gre' } },
];

const MB = 50;
const UNDERLAY_MTU = 1500;
const PEER = 'ovs';
const FWD_ADDR = overlayAddress(1);
const OVS_ADDR = overlayAddress(2);

const OVS_TOOLS = ['ovsdb-tool', 'ovsdb-server', 'ovs-vswitchd', 'ovs-vsctl', 'ovs-appctl', 'ovs-ofctl', 'ethtool', 'ping'];

/** Non-zero drop counters, by reason. */
function drops(c: Counters): Record<string, number> {
  return Object.fromEntries(Object.entries(c.drops).filter(([, n]) => n !== 0));
}

describeNetns('interop with the Open vSwitch userspace datapath', { tools: OVS_TOOLS }, () => {
  describe.each(CASES.flatMap((c) => OFFLOAD_MODES.map((mode) => ({ ...c, mode, name: `${c.label}, ${mode.label}` }))))('$name', ({ tunnel, mode }) => {
    const mtu = UNDERLAY_MTU - tunnelOverhead(tunnel);
    let lab: Lab;
    let fwd: Host;
    let ovsHost: Host;
    let ov: Overlay;
    let ovs: OvsHost;
    let ovsDropsAtStart: Record<string, number>;

    beforeAll(async () => {
      lab = await Lab.create();
      [fwd, ovsHost] = await lab.pair('fwd', 'ovs');
      await lab.disableTxChecksumOffload(fwd, fwd.underlayDev);
      ovs = await startOvs(lab, ovsHost, { address: `${OVS_ADDR}/24`, remoteIp: fwd.underlay, tunnel });
      ov = await startForwarder(lab, {
        host: fwd,
        address: `${FWD_ADDR}/24`,
        peers: [{ name: PEER, endpoint: ovsHost.underlay }],
        extra: { encap: encapFor(tunnel), ...offloadConfig(mode) },
      });
      ovsDropsAtStart = await ovs.dropCoverage();
    });
    afterEach(async (ctx) => {
      if (ctx.task.result?.state === 'fail' && ovs) {
        console.error(`[ovs-interop] ${ctx.task.name} failed; overlayfwd stats ${JSON.stringify(ov?.stats().totals)}\n${await ovs.diagnostics()}`);
      }
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('agrees with OVS on the overlay MTU and the tunnel', async () => {
      expect(ov.device.mtu).toBe(mtu);
      expect(ovs.mtu).toBe(mtu);
      const { stdout } = await lab.ip(ovsHost, ['-j', 'link', 'show', 'dev', ovs.intBridge]);
      expect((JSON.parse(stdout) as { mtu: number }[])[0]?.mtu).toBe(mtu);
      // The tunnel port is configured as asked, and OVS owns the underlay address (not the veth).
      const opts = (await ovs.vsctl(['get', 'interface', ovs.tunnelPort, 'type', 'options'])).stdout;
      expect(opts).toContain(tunnel.type);
      expect(opts).toContain(`remote_ip="${fwd.underlay}"`);
      if (tunnel.key !== undefined) expect(opts).toContain(`key="${tunnel.key}"`);
      const addrs = JSON.parse((await lab.ip(ovsHost, ['-j', 'addr', 'show'])).stdout) as { ifname: string; addr_info: { local: string }[] }[];
      const owner = addrs.find((l) => l.addr_info.some((x) => x.local === ovsHost.underlay))?.ifname;
      expect(owner).toBe(ovs.phyBridge);
    });

    it('pings both ways, full-size frames with DF included, through both tunnel ends', async () => {
      const s0 = peerCounters(ov.stats(), PEER);
      const t0 = await ovs.portStats();
      expect((await lab.ping(fwd, OVS_ADDR, { count: 5, intervalSec: 0.05 })).received).toBe(5);
      expect((await lab.ping(ovsHost, FWD_ADDR, { count: 5, intervalSec: 0.05 })).received).toBe(5);
      // The largest inner packet: ICMP payload = MTU − 20 (IP) − 8 (ICMP), DF set, so an
      // underlay that could not carry it would fail the ping rather than fragment it.
      const full = mtu - 28;
      for (const [from, to] of [
        [fwd, OVS_ADDR],
        [ovsHost, FWD_ADDR],
      ] as const) {
        const r = await lab.exec(from, 'ping', ['-n', '-q', '-M', 'do', '-c', '3', '-i', '0.05', '-W', '2', '-s', String(full), to], { allowFailure: true });
        expect(r.stdout, `${from.label} → ${to}, ${full} bytes, DF`).toMatch(/3 packets transmitted, 3 received/);
      }
      // 16 echo requests and 16 replies each way crossed the tunnel (plus ARP).
      const d = delta(peerCounters(ov.stats(), PEER), s0);
      expect(d.txPackets).toBeGreaterThanOrEqual(16);
      expect(d.rxPackets).toBeGreaterThanOrEqual(16);
      expect(drops(d)).toEqual({});
      // And OVS counted them on its tunnel port: 16 decapsulated, 16 encapsulated at least.
      await ovs.waitForPortStats(t0, (t) => t.rxPackets >= 16 && t.txPackets >= 16, 'OVS to count the pings on its tunnel port');
    });

    it(`transfers ${MB} MB from overlayfwd to OVS, sha256 verified, every byte encapsulated`, async () => {
      const s0 = peerCounters(ov.stats(), PEER);
      const t0 = await ovs.portStats();
      const r = await verifiedTransfer(lab, { from: fwd, to: ovsHost, address: OVS_ADDR, megabytes: MB });
      expect(r.received.peer).toBe(FWD_ADDR);
      const d = delta(peerCounters(ov.stats(), PEER), s0);
      expect(d.txBytes).toBeGreaterThanOrEqual(MB << 20);
      expect(d.txPackets).toBeGreaterThanOrEqual(Math.floor((MB << 20) / mtu));
      expect(d.rxPackets).toBeGreaterThan(0); // the ACKs came back through the tunnel
      expect(drops(d)).toEqual({});
      const segments = Math.floor((MB << 20) / mtu);
      await ovs.waitForPortStats(t0, (t) => t.rxPackets >= segments && t.rxBytes >= MB << 20, `OVS to decapsulate ${segments} frames`);
      console.log(`[ovs-interop] ${tunnel.type}, ${mode.label}: overlayfwd → OVS ${MB} MB in ${r.seconds.toFixed(2)} s (${r.mbitPerSecond.toFixed(0)} Mbit/s)`);
    });

    it(`transfers ${MB} MB from OVS to overlayfwd, sha256 verified, every byte decapsulated`, async () => {
      const s0 = peerCounters(ov.stats(), PEER);
      const t0 = await ovs.portStats();
      const r = await verifiedTransfer(lab, { from: ovsHost, to: fwd, address: FWD_ADDR, megabytes: MB });
      expect(r.received.peer).toBe(OVS_ADDR);
      const d = delta(peerCounters(ov.stats(), PEER), s0);
      expect(d.rxBytes).toBeGreaterThanOrEqual(MB << 20);
      expect(d.rxPackets).toBeGreaterThanOrEqual(Math.floor((MB << 20) / mtu));
      expect(d.txPackets).toBeGreaterThan(0);
      expect(drops(d)).toEqual({});
      const segments = Math.floor((MB << 20) / mtu);
      await ovs.waitForPortStats(t0, (t) => t.txPackets >= segments && t.txBytes >= MB << 20, `OVS to encapsulate ${segments} frames`);
      console.log(`[ovs-interop] ${tunnel.type}, ${mode.label}: OVS → overlayfwd ${MB} MB in ${r.seconds.toFixed(2)} s (${r.mbitPerSecond.toFixed(0)} Mbit/s)`);
    });

    it('dropped nothing on either side, and overlayfwd learned the OVS bridge MAC from the tunnel', async () => {
      const s = ov.stats();
      const p = peerCounters(s, PEER);
      expect(p.txPackets).toBeGreaterThan(0);
      expect(p.rxPackets).toBeGreaterThan(0);
      expect(totalDrops(s.totals), JSON.stringify(drops(s.totals))).toBe(0);
      expect(totalDrops(p)).toBe(0);
      expect(s.healthy).toBe(true);
      const mac = await ovs.overlayMac();
      expect(ov.fdb().find((e) => e.mac === mac)).toMatchObject({ peer: PEER, static: false });
      // OVS's datapath counted no tunnel pop/push errors or other drops since the start.
      expect(await ovs.dropCoverage()).toEqual(ovsDropsAtStart);
    });
  });
});
