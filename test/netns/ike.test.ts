// IKEv2 between two overlayfwd hosts: the ESP SAs negotiated, not configured.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import { describeNetns, waitFor } from '../helpers/env';
import { overlayPair, pingsBothWays, transferCounted, type Pair } from '../helpers/pair';

const PSK = 'overlayfwd-test-psk-0123456789';

async function established(p: Pair): Promise<void> {
  await waitFor(() => {
    const a = p.A.peers.list()[0]?.ikeSa;
    const b = p.B.peers.list()[0]?.ikeSa;
    return a?.state === 'established' && !!a.child && b?.state === 'established' && !!b.child;
  }, 'IKE SAs established on both hosts', 15_000);
}

describeNetns('IKEv2 between two overlayfwd hosts', { tools: ['ping'] }, () => {
  for (const [udp, family] of [[true, 4], [false, 4], [true, 6], [false, 6]] as const) {
    describe(`${udp ? 'UDP-encapsulated ESP (IKE moves to 4500)' : 'ESP on IP protocol 50 (IKE stays on 500)'}, IPv${family} underlay`, () => {
      let lab: Lab;
      let p: Pair;
      const lines: unknown[] = [];
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
      }, 120_000);
    });
  }
});
