// L3 overlays on TUN devices between two overlayfwd hosts, for every mode that carries IP:
// gre (IP protocol 47), gre-udp (UDP 4754), geneve (UDP 6081, protocol type 0x0800/0x86DD) and
// ipip (IP protocols 4 and 41), each over an IPv4 and an IPv6 underlay.
//
// Each host routes its peer's overlay addresses by allowedIps (IPv4 and IPv6 inside), so for every
// combination: the TUN MTU defaults to the underlay MTU minus the mode's overhead (no inner
// Ethernet header), pings go both ways with IPv4 and IPv6 inside, a full-size DF ping fits and one
// byte more is refused locally, and a sha256-verified TCP transfer crosses with every packet
// counted on the right peer and nothing dropped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lib/lab';
import type { Host } from '../../lib/lab';
import type { Overlay } from '../../lib/overlay';
import type { Counters } from '../../lib/types';
import { DROP_REASONS } from '../../lib/types';
import { describeNetns, sleep } from '../helpers/env';
import { delta, peerCounters, startForwarder } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';

const UNDERLAY_MTU = 1500;
const A6 = 'fd00:198:18::1';
const B6 = 'fd00:198:18::2';
const INNER6 = ['fd00:198:19::1', 'fd00:198:19::2'] as const;

interface Mode {
  label: string;
  encap: Record<string, unknown>;
  /** Bytes the mode adds over an IPv4 underlay (outer IPv4 included). */
  overhead4: number;
}

const MODES: Mode[] = [
  { label: 'gre', encap: { type: 'gre' }, overhead4: 20 + 4 },
  { label: 'gre key+checksum', encap: { type: 'gre', key: 7, checksum: true }, overhead4: 20 + 12 },
  { label: 'gre-udp', encap: { type: 'gre-udp', key: 9 }, overhead4: 20 + 8 + 8 },
  { label: 'geneve', encap: { type: 'geneve', vni: 77 }, overhead4: 20 + 8 + 8 },
  { label: 'ipip', encap: { type: 'ipip' }, overhead4: 20 },
];

/**
 * Switches IPv6 on for `dev` and gives it `address`/64 without DAD. No router solicitations: on a
 * TUN they go to ff02::2, which no peer's allowedIps holds, and would be counted as noRoute.
 */
async function addIpv6(lab: Lab, host: Host, dev: string, address: string): Promise<void> {
  await lab.exec(host, 'sysctl', ['-q', '-w', `net.ipv6.conf.${dev}.router_solicitations=0`]);
  await lab.exec(host, 'sysctl', ['-q', '-w', `net.ipv6.conf.${dev}.disable_ipv6=0`]);
  await lab.ip(host, ['addr', 'add', `${address}/64`, 'dev', dev, 'nodad']);
}

function movedDrops(c: Counters): Record<string, number> {
  return Object.fromEntries(DROP_REASONS.filter((r) => c.drops[r] !== 0).map((r) => [r, c.drops[r]]));
}

interface Pair {
  a: Host;
  b: Host;
  A: Overlay;
  B: Overlay;
  mtu: number;
}

async function tunPair(lab: Lab, mode: Mode, family: 4 | 6): Promise<Pair> {
  const [a, b] = await lab.pair('a', 'b');
  if (family === 6) {
    await addIpv6(lab, a, a.underlayDev, A6);
    await addIpv6(lab, b, b.underlayDev, B6);
  }
  const start = (host: Host, self: 1 | 2, peer: Host, peerIndex: 1 | 2) =>
    startForwarder(lab, {
      host,
      address: `${overlayAddress(self)}/24`,
      peers: [],
      extra: {
        device: { type: 'tun', name: 'ovl0', addresses: [`${overlayAddress(self)}/24`] },
        encap: { ...mode.encap },
        peers: [
          {
            name: peer.label,
            endpoint: family === 4 ? peer.underlay : peerIndex === 1 ? A6 : B6,
            allowedIps: [`${overlayAddress(peerIndex)}/32`, `${INNER6[peerIndex - 1]}/128`],
          },
        ],
        underlay: { local: family === 4 ? host.underlay : self === 1 ? A6 : B6 },
      },
    });
  const A = await start(a, 1, b, 2);
  const B = await start(b, 2, a, 1);
  await addIpv6(lab, a, 'ovl0', INNER6[0]);
  await addIpv6(lab, b, 'ovl0', INNER6[1]);
  const mtu = UNDERLAY_MTU - mode.overhead4 - (family === 6 ? 20 : 0);
  return { a, b, A, B, mtu };
}

describeNetns('L3 overlays on TUN devices', { tools: ['ping'] }, () => {
  for (const family of [4, 6] as const) {
    for (const mode of MODES) {
      describe(`${mode.label} over an IPv${family} underlay`, () => {
        let lab: Lab;
        let p: Pair;

        beforeAll(async () => {
          lab = await Lab.create();
          p = await tunPair(lab, mode, family);
        });
        afterAll(async () => {
          await lab?.destroy();
        });

        it('derives the TUN MTU from the underlay MTU minus the overhead', () => {
          expect(p.A.device.mtu).toBe(p.mtu);
          expect(p.B.device.mtu).toBe(p.mtu);
        });

        it('pings both ways with IPv4 and IPv6 inside, full-size DF packets included', async () => {
          const a0 = p.A.stats();
          const b0 = p.B.stats();
          expect((await lab.ping(p.a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
          expect((await lab.ping(p.b, overlayAddress(1), { count: 3, intervalSec: 0.05 })).received).toBe(3);
          expect((await lab.ping(p.a, INNER6[1], { count: 3, intervalSec: 0.05 })).received).toBe(3);
          expect((await lab.ping(p.b, INNER6[0], { count: 3, intervalSec: 0.05 })).received).toBe(3);
          const full = p.mtu - 28;
          const fits = await lab.exec(p.a, 'ping', ['-n', '-q', '-M', 'do', '-c', '2', '-i', '0.05', '-W', '2', '-s', String(full), overlayAddress(2)], { allowFailure: true });
          expect(fits.stdout).toMatch(/2 packets transmitted, 2 received/);
          const over = await lab.exec(p.a, 'ping', ['-n', '-M', 'do', '-c', '1', '-W', '1', '-s', String(full + 1), overlayAddress(2)], { allowFailure: true });
          expect(over.code).not.toBe(0);
          expect(movedDrops(delta(p.A.stats().totals, a0.totals))).toEqual({});
          expect(movedDrops(delta(p.B.stats().totals, b0.totals))).toEqual({});
        });

        it('carries a verified TCP transfer, every packet counted on the peer', async () => {
          const megabytes = 16;
          const a0 = p.A.stats();
          const b0 = p.B.stats();
          const r = await verifiedTransfer(lab, { from: p.a, to: p.b, address: overlayAddress(2), megabytes, timeoutMs: 60_000 });
          expect(r.received.peer).toBe(overlayAddress(1));
          await sleep(100);
          const sent = delta(peerCounters(p.A.stats(), 'b'), peerCounters(a0, 'b'));
          const got = delta(peerCounters(p.B.stats(), 'a'), peerCounters(b0, 'a'));
          expect(sent.txBytes).toBeGreaterThanOrEqual(megabytes << 20);
          expect(got.rxBytes).toBeGreaterThanOrEqual(megabytes << 20);
          expect(got.rxPackets).toBeLessThanOrEqual(sent.txPackets);
          expect(movedDrops(delta(p.A.stats().totals, a0.totals))).toEqual({});
          expect(movedDrops(delta(p.B.stats().totals, b0.totals))).toEqual({});
          console.log(`[tun ${mode.label} IPv${family}] ${megabytes} MB in ${r.seconds.toFixed(2)} s (${r.mbitPerSecond.toFixed(0)} Mbit/s)`);
        });
      });
    }
  }
});
