// IKEv2 against strongSwan 5.9.8 (charon with kernel-libipsec), the independent implementation:
// overlayfwd on host a (a TUN overlay, 198.19.0.1), charon on host b (198.19.0.2 on its
// loopback, routed into libipsec's TUN). Each side initiates in turn, with a pre-shared key and
// with certificates from one CA; pings and 50 MB sha256-verified each way cross the tunnel;
// tshark sees IKEv2 on 500 and 4500 and ESP in UDP; rekeys of the Child SA and the IKE SA,
// started by either side, lose no byte; a killed charon is found dead and, back, reconnects;
// and the failures (wrong PSK, foreign CA, expired certificate, no common proposal) install
// nothing and say why.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addTunnelAddress, Charon, isEstablished, Lab, overlayAddress, Pki } from '../../lab';
import type { CertAuthority, Host, HostCredential, SwanctlConnection } from '../../lab';
import type { IkeLogLine } from '../../lib/ike/session';
import type { Overlay } from '../../lib/overlay';
import { sleep, waitFor } from '../helpers/env';
import { delta, startForwarder } from '../helpers/overlay';
import { movedDrops } from '../helpers/pair';
import { describeStrongswan } from '../helpers/strongswan';
import { verifiedTransfer } from '../helpers/transfer';

const PSK = 'overlayfwd-strongswan-psk-0123456789';
const OURS = overlayAddress(1);
const THEIRS = overlayAddress(2);

interface Setup {
  lab: Lab;
  a: Host;
  b: Host;
  charon: Charon;
  overlay: Overlay;
  lines: IkeLogLine[];
}

interface Options {
  /** overlayfwd starts the IKE SA (else charon does). */
  weInitiate: boolean;
  /** ike settings of our peer entry (merged over PSK defaults). */
  ike?: Record<string, unknown>;
  /** charon's connection, changed. */
  conn?: (c: SwanctlConnection) => SwanctlConnection;
  charonFiles?: Parameters<Charon['load']>[1];
  charonPsk?: string;
  retransmit?: { timeout?: number; tries?: number; base?: number };
}

function charonConnection(a: Host, b: Host): SwanctlConnection {
  return {
    name: 'ovl',
    localAddrs: [b.underlay],
    remoteAddrs: [a.underlay],
    local: { auth: 'psk', id: 'b.test' },
    remote: { auth: 'psk', id: 'a.test' },
    proposals: ['aes256gcm16-prfsha256-x25519'],
    encap: true,
    mobike: false,
    children: [{ name: 'net', localTs: [`${THEIRS}/32`], remoteTs: [`${OURS}/32`], espProposals: ['aes256gcm16-x25519'] }],
  };
}

async function setup(lab: Lab, label: string, o: Options): Promise<Setup> {
  const [a, b] = await lab.pair(`a${label}`, `b${label}`);
  await addTunnelAddress(lab, b, THEIRS);
  const charon = await Charon.start(lab, b, { name: `b${label}`, ...(o.retransmit ? { retransmit: o.retransmit } : {}) });
  const conn = (o.conn ?? ((c) => c))(charonConnection(a, b));
  await charon.load({ connections: [conn], secrets: [{ ids: ['a.test', 'b.test'], secret: o.charonPsk ?? PSK }] }, o.charonFiles);
  const lines: IkeLogLine[] = [];
  const overlay = await startForwarder(lab, {
    host: a,
    address: `${OURS}/24`,
    peers: [],
    extra: {
      device: { type: 'tun', name: 'ovl0', addresses: [`${OURS}/24`] },
      encap: { type: 'esp' },
      underlay: { local: a.underlay },
      peers: [
        {
          name: 'b',
          endpoint: b.underlay,
          allowedIps: [`${THEIRS}/32`],
          ike: { auth: 'psk', psk: PSK, id: 'a.test', remoteId: 'b.test', espProposals: ['aes256gcm16-x25519'], start: o.weInitiate ? 'on-start' : 'passive', ...o.ike },
        },
      ],
    },
  });
  overlay.on('ike', (l) => lines.push(l));
  if (!o.weInitiate) await charon.initiate('net', 'ovl');
  return { lab, a, b, charon, overlay, lines };
}

const ourSa = (s: Setup) => s.overlay.peers.list()[0]?.ikeSa;

async function bothUp(s: Setup, timeoutMs = 20_000): Promise<void> {
  await waitFor(() => ourSa(s)?.state === 'established' && !!ourSa(s)?.child, 'our IKE and Child SA', timeoutMs).catch((e: Error) => {
    throw new Error(`${e.message}\nour log:\n${s.lines.map((l) => JSON.stringify(l)).join('\n')}\ncharon log:\n${s.charon.log().slice(-4000)}`);
  });
  await s.charon.waitFor((sas) => isEstablished(sas, 'ovl', 'net'), timeoutMs, 'charon IKE and Child SA');
}

/** Pings and 50 MB verified each way, nothing dropped on our side. */
async function carries(s: Setup, megabytes = 50): Promise<void> {
  const before = s.overlay.stats();
  expect((await s.lab.ping(s.a, THEIRS, { count: 3, intervalSec: 0.1 })).received).toBe(3);
  expect((await s.lab.ping(s.b, OURS, { count: 3, intervalSec: 0.1 })).received).toBe(3);
  const there = await verifiedTransfer(s.lab, { from: s.a, to: s.b, address: THEIRS, megabytes, timeoutMs: 120_000 });
  const back = await verifiedTransfer(s.lab, { from: s.b, to: s.a, address: OURS, megabytes, timeoutMs: 120_000 });
  expect(there.received.sha256).toBe(there.sha256);
  expect(back.received.sha256).toBe(back.sha256);
  expect(movedDrops(delta(s.overlay.stats().totals, before.totals))).toEqual({});
}

describeStrongswan(
  'IKEv2 against strongSwan',
  () => {
    let lab: Lab;
    beforeAll(async () => {
      lab = await Lab.create({ prefix: 'iks' });
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('overlayfwd initiates with a PSK: ESP in UDP carries pings and 50 MB each way', async () => {
      const s = await setup(lab, '1', { weInitiate: true });
      await bothUp(s);
      await carries(s);
      const theirs = (await s.charon.listSas()).find((x) => x.name === 'ovl')!;
      const child = ourSa(s)!.child!;
      expect(theirs.children[0]!.spiIn).toBe(child.outboundSpi.toString(16).padStart(8, '0'));
      expect(theirs.children[0]!.spiOut).toBe(child.inboundSpi.toString(16).padStart(8, '0'));
      expect(JSON.stringify(s.lines)).not.toContain(PSK);
    }, 240_000);

  },
  { addon: true },
);
