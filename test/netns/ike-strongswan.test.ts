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
import { primeCapture, stopCapture } from '../helpers/capture';
import { waitFor } from '../helpers/env';
import { delta, startForwarder } from '../helpers/overlay';
import { movedDrops } from '../helpers/pair';
import { sendDatagrams } from '../helpers/udp';
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
  /** charon's initiation is meant to fail. */
  refused?: boolean;
  /** Hosts made already (a capture runs on them). */
  hosts?: [Host, Host];
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
  const [a, b] = o.hosts ?? (await lab.pair(`a${label}`, `b${label}`));
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
  if (!o.weInitiate) {
    if (o.refused) await charon.swanctlResult(['--initiate', '--child', 'net', '--ike', 'ovl', '--timeout', '10']);
    else await charon.initiate('net', 'ovl');
  }
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


    it('charon initiates with a PSK; tshark sees IKEv2 on 500, then on 4500, and ESP in UDP', async () => {
      const [a, b] = await lab.pair('a2', 'b2');
      const file = path.join(lab.tmpdir(), 'ike.pcap');
      const capture = lab.spawn(a, 'tshark', ['-n', '-l', '-P', '-i', a.underlayDev, '-F', 'pcap', '-w', file, '-f', 'udp']);
      await capture.waitForOutput(/Capturing on/, 20_000);
      // Primed with a datagram to port 9, which neither the IKE nor the ESP rows below take.
      await primeCapture(capture, 'IKE and ESP', () => sendDatagrams(lab, a, b.underlay, 9, [{ src: a.underlay, payload: Buffer.from('prime') }]));
      const s = await setup(lab, '2', { weInitiate: false, hosts: [a, b] });
      await bothUp(s);
      await carries(s, 20);
      await stopCapture(capture, 'IKE and ESP', 100);
      const fields = ['frame.protocols', 'udp.srcport', 'udp.dstport', 'isakmp.exchangetype', 'esp.spi'];
      const { stdout } = await lab.exec(a, 'tshark', ['-n', '-r', file, '-T', 'fields', '-E', 'separator=/t', ...fields.flatMap((f) => ['-e', f])]);
      const rows = stdout.split('\n').filter((l) => l.trim()).map((l) => l.split('\t'));
      const isakmp = rows.filter((r) => /isakmp/.test(r[0]!));
      // IKE_SA_INIT (34) on 500, IKE_AUTH (35) on 4500 behind the non-ESP marker, ESP in UDP on 4500.
      expect(isakmp.some((r) => r[1] === '500' && r[2] === '500' && r[3] === '34')).toBe(true);
      expect(isakmp.some((r) => r[1] === '4500' && r[2] === '4500' && r[3] === '35')).toBe(true);
      const esp = rows.filter((r) => /udpencap:esp$|udp:esp$/.test(r[0]!));
      expect(esp.length).toBeGreaterThan(100);
      const ports = new Set(esp.map((r) => `${r[1]}>${r[2]}`));
      expect([...ports]).toEqual(['4500>4500']);
      const child = ourSa(s)!.child!;
      const spis = new Set(esp.map((r) => parseInt(r[4]!, 16)));
      expect(spis).toEqual(new Set([child.inboundSpi, child.outboundSpi]));
      expect(rows.some((r) => /icmp|tcp/.test(r[0]!))).toBe(false);
    }, 240_000);

    describe('certificates from one CA (RFC 7427 signatures)', () => {
      let pki: Pki;
      let ca: CertAuthority;
      let rogue: CertAuthority;
      beforeAll(async () => {
        pki = await Pki.create(lab);
        ca = await pki.ca('mesh');
        rogue = await pki.ca('rogue');
      });
      const certConn = (theirs: HostCredential, cas: CertAuthority[]) => (c: SwanctlConnection): SwanctlConnection => ({
        ...c,
        local: { auth: 'pubkey', id: 'b.test', certs: [theirs] },
        remote: { auth: 'pubkey', id: 'a.test', cacerts: cas },
      });
      const ourCert = (mine: HostCredential, cas: CertAuthority[]) => ({ auth: 'certificate', psk: undefined, certificate: mine.certPath, privateKey: mine.keyPath, ca: cas.map((c) => c.certPath) });

      for (const keyType of ['ecdsa-p256', 'ed25519'] as const) {
        for (const weInitiate of [true, false]) {
          it(`${keyType}, ${weInitiate ? 'overlayfwd' : 'charon'} initiating`, async () => {
            const n = `c${keyType === 'ed25519' ? 'e' : 'p'}${weInitiate ? 'i' : 'r'}`;
            const mine = await pki.host(ca, `a-${n}`, { keyType, dns: ['a.test'] });
            const theirs = await pki.host(ca, `b-${n}`, { keyType, dns: ['b.test'] });
            const s = await setup(lab, n, {
              weInitiate,
              ike: ourCert(mine, [ca]),
              conn: certConn(theirs, [ca]),
              charonFiles: { certs: [theirs], keys: [theirs], cas: [ca] },
            });
            await bothUp(s);
            await carries(s, 10);
          }, 120_000);
        }
      }

      const refusals: Array<[string, (o: { ca: CertAuthority; rogue: CertAuthority }) => Promise<{ theirs: HostCredential; reason: RegExp }>]> = [
        ['a certificate from another CA', async (o) => ({ theirs: await pki.host(o.rogue, 'b-rogue', { dns: ['b.test'] }), reason: /not issued by a trusted CA/ })],
        ['an expired certificate', async (o) => ({ theirs: await pki.host(o.ca, 'b-old', { dns: ['b.test'], expired: true }), reason: /expired/ })],
        ['a certificate for another name', async (o) => ({ theirs: await pki.host(o.ca, 'b-other', { dns: ['c.test'] }), reason: /identity is not in its certificate/ })],
      ];
      for (const [what, make] of refusals) {
        it(`refuses ${what}: no SA, AUTHENTICATION_FAILED, and a log line that says why`, async () => {
          const n = `r${refusals.findIndex((r) => r[0] === what)}`;
          const mine = await pki.host(ca, `a-${n}`, { dns: ['a.test'] });
          const { theirs, reason } = await make({ ca, rogue });
          const s = await setup(lab, n, {
            weInitiate: false,
            refused: true,
            ike: ourCert(mine, [ca]),
            // charon trusts both CAs: the refusal must be ours.
            conn: certConn(theirs, [ca, rogue]),
            charonFiles: { certs: [theirs], keys: [theirs], cas: [ca, rogue] },
          });
          await waitFor(() => s.lines.some((l) => reason.test(String(l.reason ?? ''))), `our refusal (${reason})`, 15_000).catch((e: Error) => {
            throw new Error(`${e.message}; our log:\n${s.lines.map((l) => JSON.stringify(l)).join('\n')}`);
          });
          await waitFor(() => /AUTHENTICATION_FAILED/.test(s.charon.log()), 'charon told AUTHENTICATION_FAILED', 10_000);
          expect(ourSa(s)?.child).toBeUndefined();
          expect((await s.lab.ping(s.a, THEIRS, { count: 1, timeoutSec: 1 })).received).toBe(0);
          expect(s.overlay.stats().peers['b']!.drops.noSa).toBeGreaterThan(0);
        }, 60_000);
      }
    });

    it('a wrong PSK: charon refuses us with AUTHENTICATION_FAILED, we refuse charon, no SA either way', async () => {
      const s = await setup(lab, 'w', { weInitiate: true, charonPsk: 'not-the-same-psk-0123456789' });
      await waitFor(() => s.lines.some((l) => /AUTHENTICATION_FAILED/.test(String(l.reason ?? l.msg))), 'our log of the refusal', 15_000);
      await s.charon.swanctlResult(['--initiate', '--child', 'net', '--ike', 'ovl', '--timeout', '5']);
      await waitFor(() => s.lines.some((l) => /pre-shared key AUTH does not verify/.test(String(l.reason ?? ''))), 'our refusal of charon', 15_000);
      expect(ourSa(s)?.child).toBeUndefined();
      expect((await s.charon.listSas()).some((x) => x.state === 'ESTABLISHED')).toBe(false);
    }, 60_000);

    it('no common proposal: NO_PROPOSAL_CHOSEN, and the log says so', async () => {
      const s = await setup(lab, 'p', { weInitiate: false, refused: true, conn: (c) => ({ ...c, proposals: ['aes128-sha1-modp1024'] }) });
      await waitFor(() => s.lines.some((l) => /NO_PROPOSAL_CHOSEN/.test(String(l.notify ?? ''))), 'our NO_PROPOSAL_CHOSEN', 15_000);
      await waitFor(() => /NO_PROPOSAL_CHOSEN/.test(s.charon.log()), 'charon received NO_PROPOSAL_CHOSEN', 10_000);
      expect(ourSa(s)?.state).not.toBe('established');
    }, 60_000);

    for (const who of ['charon', 'overlayfwd'] as const) {
      it(`rekeys started by ${who} (Child SA every 10 s, IKE SA every 30 s) under verified transfers lose nothing`, async () => {
        const byCharon = who === 'charon';
        const s = await setup(lab, byCharon ? 'kc' : 'ko', {
          weInitiate: !byCharon,
          ike: byCharon ? { rekeySeconds: 3600, ikeRekeySeconds: 3600 } : { rekeySeconds: 10, ikeRekeySeconds: 30 },
          conn: (c) => ({
            ...c,
            rekeyTime: byCharon ? '30s' : '0',
            randTime: '0',
            children: c.children.map((ch) => ({ ...ch, rekeyTime: byCharon ? '10s' : '0', randTime: '0', lifeTime: byCharon ? '12s' : '0' })),
          }),
        });
        await bothUp(s);
        const before = s.overlay.stats();
        const childSpis = new Set<number>();
        const ikeSpis = new Set<string>();
        const watch = setInterval(() => {
          const sa = ourSa(s);
          if (sa?.child) childSpis.add(sa.child.inboundSpi);
          if (sa?.spis) ikeSpis.add(sa.spis.initiator + sa.spis.responder);
        }, 100);
        const until = Date.now() + 36_000;
        let moved = 0;
        try {
          while (Date.now() < until) {
            const r = await verifiedTransfer(s.lab, { from: moved % 2 ? s.b : s.a, to: moved % 2 ? s.a : s.b, address: moved % 2 ? OURS : THEIRS, megabytes: 20, timeoutMs: 60_000 });
            expect(r.received.sha256).toBe(r.sha256);
            moved++;
          }
        } finally {
          clearInterval(watch);
        }
        expect(movedDrops(delta(s.overlay.stats().totals, before.totals))).toEqual({});
        // Three Child SA rekeys and one IKE SA rekey at least.
        expect(childSpis.size).toBeGreaterThanOrEqual(4);
        expect(ikeSpis.size).toBeGreaterThanOrEqual(2);
        console.log(`[rekeys by ${who}] ${moved} transfers, ${childSpis.size} Child SAs, ${ikeSpis.size} IKE SAs, no drop`);
      }, 120_000);
    }

    it('charon killed: dead-peer detection removes the SAs; charon back: the tunnel returns by itself', async () => {
      const s = await setup(lab, 'd', { weInitiate: true, ike: { dpdSeconds: 1, retransmitTimeoutMs: 300, retransmitTries: 3 } });
      await bothUp(s);
      await s.charon.kill();
      await waitFor(() => !ourSa(s)?.child, 'our SAs removed after the peer died', 15_000);
      expect(s.lines.some((l) => /dead peer/.test(String(l.reason ?? '')))).toBe(true);
      const charon = await Charon.start(lab, s.b, { name: 'bd2' });
      await charon.load({ connections: [charonConnection(s.a, s.b)], secrets: [{ ids: ['a.test', 'b.test'], secret: PSK }] });
      await waitFor(() => ourSa(s)?.state === 'established' && !!ourSa(s)?.child, 'the tunnel back', 60_000);
      expect((await s.lab.ping(s.a, THEIRS, { count: 3, intervalSec: 0.1 })).received).toBe(3);
    }, 120_000);
  },
  { addon: true },
);
