// The strongSwan lab on its own: two charons (kernel-libipsec, userspace ESP) in two namespaces
// joined by veth establish IKEv2 SAs and carry inner traffic as ESP in UDP 4500 through their
// TUN devices; certificate authentication with lab/pki.ts credentials (and the rejections the
// expired and the foreign-CA certificates are made for); a SIGKILLed peer found dead by DPD;
// and nothing left behind after stop() and lab.destroy(). The IKE tests build on this.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addTunnelAddress, Charon, isEstablished, Lab, Pki } from '../../lab';
import type { Host, IkeSa, SwanctlConnection } from '../../lab';
import { primeCapture, stopCapture } from '../helpers/capture';
import { describeStrongswan } from '../helpers/strongswan';

const PSK = 'lab-psk-0123456789abcdef';

/** Alive and not a zombie. */
function pidAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

interface Side {
  host: Host;
  charon: Charon;
  inner: string;
  id: string;
}

/** A host's half of a host-to-host tunnel: inner address `inner` (on lo) to the other side's. */
function connection(self: Side, peer: Side, auth: Partial<SwanctlConnection> = {}): SwanctlConnection {
  return {
    name: 'tun',
    localAddrs: [self.host.underlay],
    remoteAddrs: [peer.host.underlay],
    local: { auth: 'psk', id: self.id },
    remote: { auth: 'psk', id: peer.id },
    proposals: ['aes256gcm16-prfsha256-x25519'],
    encap: true,
    mobike: false,
    children: [{ name: 'net', localTs: [`${self.inner}/32`], remoteTs: [`${peer.inner}/32`], espProposals: ['aes256gcm16-x25519'] }],
    ...auth,
  };
}

/** Two hosts on a veth pair, a charon in each, inner addresses 198.19.N.1 and .2 on their loopbacks. */
async function twoCharons(lab: Lab, n: number, options: { retransmit?: { timeout?: number; tries?: number; base?: number } } = {}): Promise<[Side, Side]> {
  const [ha, hb] = await lab.pair(`a${n}`, `b${n}`);
  const sides: Side[] = [];
  for (const [host, i, label] of [[ha, 1, 'a'], [hb, 2, 'b']] as const) {
    const inner = `198.19.${n}.${i}`;
    await addTunnelAddress(lab, host, inner);
    const charon = await Charon.start(lab, host, { name: `${label}${n}`, ...options });
    sides.push({ host, charon, inner, id: `${label}.test` });
  }
  return [sides[0]!, sides[1]!];
}

const up = (sas: IkeSa[]) => isEstablished(sas, 'tun', 'net');
const childOf = (sas: IkeSa[]) => {
  const ike = sas.find((s) => s.name === 'tun' && s.state === 'ESTABLISHED');
  const child = ike?.children.find((c) => c.name === 'net' && c.state === 'INSTALLED');
  if (!ike || !child) throw new Error(`no established tun/net in ${JSON.stringify(sas.map((s) => [s.name, s.state]))}`);
  return { ike, child };
};

describeStrongswan('strongSwan lab: charon with kernel-libipsec in namespaces', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.create({ prefix: 'swan' });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('PSK, AES-GCM-256 and x25519: both ends ESTABLISHED/INSTALLED, and a ping crosses the veth only as ESP in UDP 4500', async () => {
    const [a, b] = await twoCharons(lab, 1);
    await b.charon.load({ connections: [connection(b, a)], secrets: [{ ids: [a.id, b.id], secret: PSK }] });
    await a.charon.load({ connections: [connection(a, b)], secrets: [{ ids: [a.id, b.id], secret: PSK }] });
    await a.charon.initiate('net', 'tun');
    const sasA = await a.charon.waitFor(up, 10_000, 'tun/net up on a');
    const sasB = await b.charon.waitFor(up, 10_000, 'tun/net up on b');
    const A = childOf(sasA);
    const B = childOf(sasB);
    expect(A.ike).toMatchObject({ initiator: true, localHost: a.host.underlay, remoteHost: b.host.underlay, localId: 'a.test', remoteId: 'b.test', encrAlg: 'AES_GCM_16', encrKeysize: 256, prfAlg: 'PRF_HMAC_SHA2_256', dhGroup: 'CURVE_25519', natAny: true });
    // libipsec floats IKE to 4500 too.
    expect([A.ike.localPort, A.ike.remotePort]).toEqual([4500, 4500]);
    expect(B.ike.initiator).toBe(false);
    expect(A.child).toMatchObject({ mode: 'TUNNEL', protocol: 'ESP', encap: true, encrAlg: 'AES_GCM_16', encrKeysize: 256, esn: false, localTs: ['198.19.1.1/32'], remoteTs: ['198.19.1.2/32'] });
    expect(A.child.spiIn).toBe(B.child.spiOut);
    expect(A.child.spiOut).toBe(B.child.spiIn);
    expect(A.child.rekeyTime).toBeGreaterThan(0);
    expect(A.child.lifeTime).toBeGreaterThan(A.child.rekeyTime!);

    // libipsec's route: the peer's inner address into the TUN, from ours, in table 220.
    const routes = await lab.ip(a.host, ['route', 'show', 'table', '220']);
    expect(routes.stdout).toMatch(/^198\.19\.1\.2 dev ipsec0 .*src 198\.19\.1\.1/m);

    const file = path.join(lab.tmpdir(), 'esp-in-udp.pcap');
    const capture = lab.spawn(a.host, 'tshark', ['-n', '-l', '-P', '-i', a.host.underlayDev, '-F', 'pcap', '-w', file, '-f', 'not arp']);
    await capture.waitForOutput(/Capturing on/, 20_000);
    // "Capturing on" comes before the capture is live: ping until the first packets show up
    // (two pings a round, so that at least one request and its reply are in).
    const primed = await primeCapture(capture, 'the priming pings', () => lab.ping(a.host, b.inner, { count: 2, intervalSec: 0.1, timeoutSec: 1 }));
    expect(primed).toBeGreaterThanOrEqual(2);
    const ping = await lab.ping(a.host, b.inner, { count: 5, intervalSec: 0.1 });
    expect(ping.received).toBe(5);
    await stopCapture(capture, 'the pings', primed + 10);
    const fields = ['frame.protocols', 'ip.src', 'ip.dst', 'udp.srcport', 'udp.dstport', 'esp.spi'];
    const { stdout } = await lab.exec(a.host, 'tshark', ['-n', '-r', file, '-T', 'fields', '-E', 'separator=/t', ...fields.flatMap((f) => ['-e', f])]);
    const rows = stdout.split('\n').filter((l) => l.trim()).map((l) => l.split('\t'));
    expect(rows.length).toBeGreaterThanOrEqual(primed + 10);
    const spis = new Set([A.child.spiIn, A.child.spiOut].map((s) => parseInt(s, 16)));
    for (const [protocols, src, dst, sport, dport, spi] of rows) {
      expect(protocols).toMatch(/^eth:ethertype:ip:udp:(udpencap:)?esp$/);
      expect(protocols).not.toMatch(/icmp/);
      expect(new Set([src, dst])).toEqual(new Set([a.host.underlay, b.host.underlay]));
      expect([sport, dport]).toEqual(['4500', '4500']);
      expect(spis.has(parseInt(spi!, 16))).toBe(true);
    }
    // The SA counters saw the five requests and the five replies.
    const after = childOf(await a.charon.listSas()).child;
    expect(after.packetsOut).toBeGreaterThanOrEqual(5);
    expect(after.packetsIn).toBeGreaterThanOrEqual(5);
    expect(after.bytesOut).toBeGreaterThanOrEqual(5 * 84);
    expect(childOf(await b.charon.listSas()).child.packetsIn).toBeGreaterThanOrEqual(5);

    // A rekey of the child (PFS with x25519) gives new SPIs, and traffic goes on.
    await a.charon.rekey({ child: 'net' });
    const rekeyed = await a.charon.waitFor(
      (sas) => sas.some((s) => s.children.some((c) => c.name === 'net' && c.state === 'INSTALLED' && c.spiIn !== A.child.spiIn && c.dhGroup === 'CURVE_25519')),
      10_000,
      'a rekeyed child with PFS',
    );
    expect(rekeyed.find((s) => s.name === 'tun')!.uniqueid).toBe(A.ike.uniqueid);
    expect((await lab.ping(a.host, b.inner, { count: 3, intervalSec: 0.1 })).received).toBe(3);
    expect(a.charon.log()).toMatch(/CHILD_SA net\{\d+\} established with SPIs/);

    // terminate() sends a DELETE: the responder's IKE_SA goes too.
    await a.charon.terminate('tun');
    await b.charon.waitFor((sas) => sas.length === 0, 10_000, 'b to drop the IKE_SA');
    await a.charon.stop();
    await b.charon.stop();
  });

  it('certificates from lab/pki.ts: ECDSA P-256 and Ed25519 host certificates authenticate; expired and foreign-CA ones do not', async () => {
    const [a, b] = await twoCharons(lab, 2);
    const pki = await Pki.create(lab);
    const ca = await pki.ca('labca');
    const rogue = await pki.ca('rogue');
    const certA = await pki.host(ca, 'a', { dns: ['a.test'], ips: [a.host.underlay] });
    const certB = await pki.host(ca, 'b', { dns: ['b.test'], ips: [b.host.underlay] });
    expect(certA.dn).toBe('C=XX, O=overlayfwd lab, CN=a.test');
    expect(certA.issuerDn).toBe(ca.dn);
    expect(certA.certPem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(await pki.print(certA)).toMatch(/altNames:\s+a\.test, 198\.18\.\d+\.1/);
    const pubkey = (self: Side, peer: Side, cert: { certPath: string }) =>
      connection(self, peer, { local: { auth: 'pubkey', id: self.id, certs: [path.basename(cert.certPath)] }, remote: { auth: 'pubkey', id: peer.id } });

    await a.charon.load({ connections: [pubkey(a, b, certA)] }, { certs: [certA], keys: [certA], cas: [ca] });
    await b.charon.load({ connections: [pubkey(b, a, certB)] }, { certs: [certB], keys: [certB], cas: [ca] });
    await a.charon.initiate('net', 'tun');
    const A = childOf(await a.charon.waitFor(up, 10_000, 'tun/net up on a'));
    childOf(await b.charon.waitFor(up, 10_000, 'tun/net up on b'));
    expect(A.ike.remoteId).toBe('b.test');
    expect(a.charon.log()).toMatch(/authentication of 'b\.test' with ECDSA_WITH_SHA256_DER successful/);
    expect((await lab.ping(a.host, b.inner, { count: 3, intervalSec: 0.1 })).received).toBe(3);
    await a.charon.terminate('tun');
    await b.charon.waitFor((sas) => sas.length === 0, 10_000, 'b to drop the IKE_SA');

    // Ed25519 host keys (RFC 8420) under the same ECDSA CA.
    const edA = await pki.host(ca, 'a-ed', { keyType: 'ed25519', dns: ['a.test'] });
    const edB = await pki.host(ca, 'b-ed', { keyType: 'ed25519', dns: ['b.test'] });
    await a.charon.load({ connections: [pubkey(a, b, edA)] }, { certs: [edA], keys: [edA] });
    await b.charon.load({ connections: [pubkey(b, a, edB)] }, { certs: [edB], keys: [edB] });
    await a.charon.initiate('net', 'tun');
    await a.charon.waitFor(up, 10_000, 'tun/net up on a with Ed25519');
    expect(a.charon.log()).toMatch(/authentication of 'b\.test' with ED25519 successful/);
    await a.charon.terminate('tun');
    await b.charon.waitFor((sas) => sas.length === 0, 10_000, 'b to drop the IKE_SA');

    // b presents an expired certificate, then one of a CA a does not trust: a refuses both.
    const expired = await pki.host(ca, 'b-expired', { dns: ['b.test'], expired: true });
    expect(expired.notAfter.getTime()).toBeLessThan(Date.now());
    const foreign = await pki.host(rogue, 'b-rogue', { dns: ['b.test'] });
    expect(foreign.issuerDn).toBe(rogue.dn);
    const cases = [
      [expired, /subject certificate invalid \(valid from .* to .*\)/],
      [foreign, /no issuer certificate found for "C=XX, O=overlayfwd lab, CN=b\.test"\s+\S+ \S+ <tun\|\d+>\s+issuer is "C=XX, O=overlayfwd lab, CN=overlayfwd lab CA rogue"/],
    ] as const;
    for (const [bad, why] of cases) {
      await a.charon.load({ connections: [pubkey(a, b, certA)] }, { certs: [certA], keys: [certA], cas: [ca] });
      await b.charon.load({ connections: [pubkey(b, a, bad)] }, { certs: [bad], keys: [bad], cas: [ca] });
      // Forget b's certificates received before (charon caches them).
      await a.charon.swanctl(['--flush-certs']);
      const mark = a.charon.log().length;
      const res = await a.charon.swanctlResult(['--initiate', '--child', 'net', '--ike', 'tun', '--timeout', '10'], { timeoutMs: 20_000 });
      expect(res.code).not.toBe(0);
      expect(res.stdout + res.stderr).toMatch(/initiate failed/);
      expect(isEstablished(await a.charon.listSas(), 'tun')).toBe(false);
      const log = a.charon.log().slice(mark);
      expect(log).toMatch(why);
      expect(log).toMatch(/no trusted ECDSA public key found for 'b\.test'/);
    }
  });

  it('a SIGKILLed charon is declared dead by its peer through DPD', async () => {
    const [a, b] = await twoCharons(lab, 3, { retransmit: { timeout: 0.5, tries: 2, base: 1.4 } });
    const dpd = (self: Side, peer: Side) => {
      const c = connection(self, peer, { dpdDelay: 1 });
      c.children[0]!.dpdAction = 'clear';
      return c;
    };
    await b.charon.load({ connections: [dpd(b, a)], secrets: [{ ids: [a.id, b.id], secret: PSK }] });
    await a.charon.load({ connections: [dpd(a, b)], secrets: [{ ids: [a.id, b.id], secret: PSK }] });
    await a.charon.initiate('net', 'tun');
    await a.charon.waitFor(up, 10_000, 'tun/net up on a');
    const pid = b.charon.pid!;
    await b.charon.kill();
    expect(pidAlive(pid)).toBe(false);
    expect(b.charon.running).toBe(false);
    // dpd_delay 1 s, then 0.5 + 0.7 + 0.98 s of retransmissions.
    await a.charon.waitFor((sas) => sas.length === 0, 15_000, 'a to give up on the dead peer');
    expect(a.charon.log()).toMatch(/giving up after 2 retransmits/);
  });
});

describeStrongswan('strongSwan lab cleanup', () => {
  it('stop() and lab.destroy() leave no charon process, namespace, TUN, route or directory', async () => {
    const lab = await Lab.create({ prefix: 'swan' });
    let namespaces: string[] = [];
    try {
      const [a, b] = await twoCharons(lab, 4);
      namespaces = [...lab.namespaceNames];
      await b.charon.load({ connections: [connection(b, a)], secrets: [{ ids: [a.id, b.id], secret: PSK }] });
      await a.charon.load({ connections: [connection(a, b)], secrets: [{ ids: [a.id, b.id], secret: PSK }] });
      await a.charon.initiate('net', 'tun');
      await a.charon.waitFor(up, 10_000, 'tun/net up on a');
      expect(await lab.links(a.host)).toContain('ipsec0');
      const pidA = a.charon.pid!;
      const pidB = b.charon.pid!;
      expect(pidAlive(pidA) && pidAlive(pidB)).toBe(true);
      // Each has its own pid file in its own /run; the host's /run has none of theirs.
      expect(fs.existsSync(path.join(a.charon.dir, 'run', 'charon.pid'))).toBe(true);
      expect(fs.readFileSync(path.join(b.charon.dir, 'run', 'charon.pid'), 'utf8').trim()).toBe(String(pidB));

      // A graceful stop takes the TUN, its routes and the directory with it.
      await a.charon.stop();
      expect(pidAlive(pidA)).toBe(false);
      expect(fs.existsSync(a.charon.dir)).toBe(false);
      expect(await lab.links(a.host)).not.toContain('ipsec0');
      expect((await lab.ip(a.host, ['route', 'show', 'table', '220'])).stdout.trim()).toBe('');
      expect(a.charon.log()).toMatch(/SIGTERM received, shutting down/);
      // b is left running for destroy().
      const dirB = b.charon.dir;
      await lab.destroy();
      expect(pidAlive(pidB)).toBe(false);
      expect(fs.existsSync(dirB)).toBe(false);
      for (const ns of namespaces) expect(fs.existsSync(`/run/netns/${ns}`)).toBe(false);
    } finally {
      await lab.destroy();
    }
  });
});
