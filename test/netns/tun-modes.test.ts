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
import { Lab, overlayAddress } from '../../lab';
import { describeNetns } from '../helpers/env';
import { delta } from '../helpers/overlay';
import { movedDrops, overlayPair, pingsBothWays, transferCounted } from '../helpers/pair';
import type { Pair } from '../helpers/pair';

const UNDERLAY_MTU = 1500;

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

describeNetns('L3 overlays on TUN devices', { tools: ['ping'] }, () => {
  for (const family of [4, 6] as const) {
    for (const mode of MODES) {
      describe(`${mode.label} over an IPv${family} underlay`, () => {
        let lab: Lab;
        let p: Pair;
        const mtu = UNDERLAY_MTU - mode.overhead4 - (family === 6 ? 20 : 0);

        beforeAll(async () => {
          lab = await Lab.create();
          p = await overlayPair(lab, { device: 'tun', encap: mode.encap, family });
        });
        afterAll(async () => {
          await lab?.destroy();
        });

        it('derives the TUN MTU from the underlay MTU minus the overhead', () => {
          expect(p.A.device.mtu).toBe(mtu);
          expect(p.B.device.mtu).toBe(mtu);
        });

        it('pings both ways with IPv4 and IPv6 inside, full-size DF packets included', async () => {
          await pingsBothWays(lab, p, true);
          const a0 = p.A.stats();
          const full = mtu - 28;
          const fits = await lab.exec(p.a, 'ping', ['-n', '-q', '-M', 'do', '-c', '2', '-i', '0.05', '-W', '2', '-s', String(full), overlayAddress(2)], { allowFailure: true });
          expect(fits.stdout).toMatch(/2 packets transmitted, 2 received/);
          const over = await lab.exec(p.a, 'ping', ['-n', '-M', 'do', '-c', '1', '-W', '1', '-s', String(full + 1), overlayAddress(2)], { allowFailure: true });
          expect(over.code).not.toBe(0);
          expect(movedDrops(delta(p.A.stats().totals, a0.totals))).toEqual({});
        });

        it('carries a verified TCP transfer, every packet counted on the peer', async () => {
          await transferCounted(lab, p, 16, `tun ${mode.label} IPv${family}`);
        });
      });
    }
  }
});
