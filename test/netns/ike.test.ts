// IKEv2 between two overlayfwd hosts: the ESP SAs negotiated, not configured.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { IkeLogLine } from '../../lib/ike/session';
import { OverlayMetrics } from '../../lib/metrics';
import { describeNetns, sleep, waitFor } from '../helpers/env';
import { delta } from '../helpers/overlay';
import { movedDrops, overlayPair, pingsBothWays, transferCounted, type Pair } from '../helpers/pair';

const PSK = 'overlayfwd-test-psk-0123456789';

async function established(p: Pair): Promise<void> {
  await waitFor(() => {
    const a = p.A.peers.list()[0]?.ikeSa;
    const b = p.B.peers.list()[0]?.ikeSa;
    // Both ends start at once: wait until the pair has settled on one IKE SA.
    return a?.state === 'established' && !!a.child && b?.state === 'established' && !!b.child && p.A.stats().ike?.sessions === 1 && p.B.stats().ike?.sessions === 1;
  }, 'one IKE SA established between the hosts', 15_000);
}

describeNetns('IKEv2 between two overlayfwd hosts', { tools: ['ping'] }, () => {
  for (const [udp, family] of [[true, 4], [false, 4], [true, 6], [false, 6]] as const) {
    describe(`${udp ? 'UDP-encapsulated ESP (IKE moves to 4500)' : 'ESP on IP protocol 50 (IKE stays on 500)'}, IPv${family} underlay`, () => {
      let lab: Lab;
      let p: Pair;
      const lines: IkeLogLine[] = [];
      beforeAll(async () => {
        lab = await Lab.create({ prefix: `ike${udp ? 'u' : 'r'}${family}` });
        p = await overlayPair(lab, { device: 'tun', family, encap: { type: 'esp', udp }, extra: { ike: { auth: 'psk', psk: PSK, rekeySeconds: 3600 } } });
        p.A.on('ike', (l) => lines.push(l));
        await established(p);
      }, 60_000);
      afterAll(async () => {
        await lab?.destroy();
      });

      it('negotiates the SAs and carries pings and a verified transfer', async () => {
        await pingsBothWays(lab, p, false);
        await transferCounted(lab, p, 20, 'ike');
        const a = p.A.peers.list()[0]!.ikeSa!;
        expect(a.child!.cipher).toBe('aes-256-gcm');
        expect(JSON.stringify(lines)).not.toContain(PSK);
        // The IKE state reaches Prometheus too.
        const text = await new OverlayMetrics([p.A]).metrics();
        expect(text).toMatch(/^overlayfwd_ike_peers_established\{instance_name="ovl0"\} 1$/m);
        expect(text).toMatch(/^overlayfwd_ike_child_sas_total\{instance_name="ovl0"\} [1-9]/m);
        expect(text).not.toContain(PSK);
      }, 120_000);

      it('resolves simultaneous rekeys (RFC 7296 §2.8.1) of the Child SA and of the IKE SA without a lost packet', async () => {
        const a0 = p.A.stats();
        const b0 = p.B.stats();
        const childBefore = p.A.peers.list()[0]!.ikeSa!.child!;
        const ping = lab.ping(p.a, overlayAddress(2), { count: 150, intervalSec: 0.02 });
        await sleep(300);
        // Both ends start the same rekey in the same tick: two exchanges cross on the wire.
        expect(p.A.rekeyIke('b') && p.B.rekeyIke('a')).toBe(true);
        await sleep(1200);
        expect(p.A.rekeyIke('b', 'ike') && p.B.rekeyIke('a', 'ike')).toBe(true);
        const pinged = (await ping).received;
        expect([pinged, movedDrops(delta(p.A.stats().totals, a0.totals)), movedDrops(delta(p.B.stats().totals, b0.totals))]).toEqual([150, {}, {}]);
        await waitFor(() => {
          const a = p.A.peers.list()[0]!.ikeSa!;
          const b = p.B.peers.list()[0]!.ikeSa!;
          return !!a.child && !!b.child && a.child.inboundSpi === b.child.outboundSpi && a.child.outboundSpi === b.child.inboundSpi && a.spis?.initiator === b.spis?.initiator;
        }, 'one Child SA and one IKE SA left, the same on both ends', 10_000);
        const a = p.A.peers.list()[0]!.ikeSa!;
        expect(a.child!.inboundSpi).not.toBe(childBefore.inboundSpi);
        await pingsBothWays(lab, p, false);
        expect(movedDrops(delta(p.A.stats().totals, a0.totals))).toEqual({});
        expect(movedDrops(delta(p.B.stats().totals, b0.totals))).toEqual({});
        expect(lines.some((l) => /simultaneous/.test(String(l.msg)))).toBe(true);
      }, 60_000);
    });
  }

  describe('a byte limit (ike.rekeyBytes)', () => {
    let lab: Lab;
    let p: Pair;
    beforeAll(async () => {
      lab = await Lab.create({ prefix: 'ikeb' });
      p = await overlayPair(lab, { device: 'tun', encap: { type: 'esp' }, extra: { ike: { auth: 'psk', psk: PSK, rekeyBytes: 8_000_000 } } });
      await established(p);
    }, 60_000);
    afterAll(async () => {
      await lab?.destroy();
    });

    it('rekeys the Child SA once that many bytes crossed it, losing nothing', async () => {
      const spis = new Set<number>();
      const a0 = p.A.stats();
      for (let i = 0; i < 4; i++) {
        spis.add(p.A.peers.list()[0]!.ikeSa!.child!.inboundSpi);
        await transferCounted(lab, p, 10, 'ike rekeyBytes');
        await sleep(1500);
      }
      spis.add(p.A.peers.list()[0]!.ikeSa!.child!.inboundSpi);
      expect(spis.size).toBeGreaterThanOrEqual(3);
      expect(movedDrops(delta(p.A.stats().totals, a0.totals))).toEqual({});
    }, 120_000);
  });

  describe('start: on-traffic (and passive on the other end)', () => {
    let lab: Lab;
    let p: Pair;
    beforeAll(async () => {
      lab = await Lab.create({ prefix: 'iket' });
      p = await overlayPair(lab, {
        device: 'tun',
        encap: { type: 'esp' },
        extra: { ike: { auth: 'psk', psk: PSK } },
        peerFields: (self) => ({ ike: { start: self === 1 ? 'on-traffic' : 'passive' } }),
      });
    }, 60_000);
    afterAll(async () => {
      await lab?.destroy();
    });

    it('negotiates nothing until a packet waits for the SA, then establishes and carries it', async () => {
      await sleep(1500);
      expect(p.A.peers.list()[0]!.ikeSa!.state).toBe('down');
      expect(p.B.stats().ike!.sessions).toBe(0);
      // The first packets wait (noSa); the poll sees them and starts IKE.
      await lab.ping(p.a, overlayAddress(2), { count: 2, timeoutSec: 1 });
      await established(p);
      expect(p.A.stats().peers['b']!.drops.noSa).toBeGreaterThan(0);
      expect(p.A.peers.list()[0]!.ikeSa!.role).toBe('initiator');
      await pingsBothWays(lab, p, false);
    }, 60_000);
  });
});
