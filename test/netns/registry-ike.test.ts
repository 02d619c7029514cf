// Registry mode with ESP keyed by IKEv2: hosts that join through etcd establish their SAs by
// certificate on their own. One CA and one certificate per host; etcd holds each host's
// identity (the subject of its certificate) and nothing secret; every pair of hosts carries
// verified traffic over ESP, each host proving the identity it registered.
import crypto from 'node:crypto';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EtcdServer, Lab, Pki } from '../../lab';
import type { CertAuthority, Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import { describeNetns, waitFor } from '../helpers/env';
import { loadOverlay } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';

const NETWORK = '10.101.0.0/16';

describeNetns('registry on etcd with IKEv2 certificates', { tools: ['etcd', 'pki'] }, () => {
  let lab: Lab;
  let etcd: EtcdServer;
  let hosts: Host[];
  let ca: CertAuthority;
  let pki: Pki;
  const overlays = new Map<string, Overlay>();
  const keys = new Map<string, string>();
  const lines: string[] = [];
  const prefix = `/ovi-${crypto.randomBytes(4).toString('hex')}`;

  async function join(host: Host): Promise<Overlay> {
    const cert = await pki.host(ca, host.label, { dn: `C=XX, O=overlayfwd lab, CN=${host.label}.mesh` });
    keys.set(host.label, cert.keyPem);
    const OverlayCls = await loadOverlay();
    const ov = await OverlayCls.create({
      name: 'ovl0',
      netns: host.ns,
      device: { type: 'tun', name: 'ovl0' },
      encap: { type: 'esp' },
      underlay: { local: host.underlay },
      workers: 1,
      ike: { auth: 'certificate', certificate: cert.certPath, privateKey: cert.keyPath, ca: [ca.certPath] },
      registry: { etcd: { endpoints: [etcd.endpoint], prefix, ttlSeconds: 5 }, network: NETWORK, subnetLength: 24 },
      node: { name: host.label },
      control: { socket: path.join(lab.tmpdir(), `${host.label}.sock`) },
    });
    lab.onDestroy(() => ov.close());
    ov.on('ike', (l) => lines.push(`${host.label} ${JSON.stringify(l)}`));
    overlays.set(host.label, ov);
    return ov;
  }

  beforeAll(async () => {
    lab = await Lab.create({ prefix: 'rik' });
    process.env.OVERLAYFWD_STATE_DIR = path.join(lab.tmpdir(), 'state');
    etcd = await EtcdServer.start(lab);
    pki = await Pki.create(lab);
    ca = await pki.ca('mesh');
    hosts = await lab.switched(['a', 'b', 'c']);
  }, 60_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('three hosts join, negotiate ESP with each other by certificate, and carry verified TCP between every pair', async () => {
    await Promise.all(hosts.map((h) => join(h)));
    const established = (label: string) =>
      overlays
        .get(label)!
        .peers.list()
        .filter((p) => p.ikeSa?.state === 'established' && p.ikeSa.child).length;
    // Both ends of a pair start at once: each pair settles on one IKE SA (the duplicate goes).
    await waitFor(() => hosts.every((h) => established(h.label) === 2 && overlays.get(h.label)!.stats().ike?.sessions === 2), 'every host to have one IKE SA with each of the other two', 20_000).catch((e: Error) => {
      const states = hosts.map((h) => `${h.label}: ${JSON.stringify(overlays.get(h.label)!.peers.list().map((p) => [p.name, p.ikeSa]))}`);
      throw new Error(`${e.message}\n${states.join('\n')}\n${lines.slice(-40).join('\n')}`);
    });
    const subnet = (label: string) => overlays.get(hosts.find((h) => h.label !== label)!.label)!.registry!.nodes().find((n) => n.name === label)!.subnet;
    const address = (label: string) => subnet(label).replace(/\.0\/24$/, '.1');
    for (const from of hosts) {
      for (const to of hosts) {
        if (from === to) continue;
        const ping = await lab.ping(from, address(to.label), { count: 2, timeoutSec: 1 });
        if (ping.received !== 2) {
          const dump = hosts.map((h) => `${h.label}: ${JSON.stringify(overlays.get(h.label)!.stats().totals.drops)} ${JSON.stringify(overlays.get(h.label)!.peers.list().map((p) => [p.name, p.allowedIps, p.ikeSa]))}`);
          const installed = hosts.map((h) => `${h.label} installed: ${JSON.stringify([...((overlays.get(h.label) as any).ike.installed.peers as Map<string, any>).entries()].map(([k, v]) => [k, v.out?.sa.spi, v.in.map((x: any) => x.sa.spi)]))}`);
          throw new Error(`ping ${from.label} -> ${to.label} failed\n${installed.join('\n')}\n${lines.join('\n')}`);
        }
      }
    }
    for (let i = 0; i < hosts.length; i++) {
      for (let j = 0; j < hosts.length; j++) {
        if (i === j) continue;
        const r = await verifiedTransfer(lab, { from: hosts[i]!, to: hosts[j]!, address: address(hosts[j]!.label), megabytes: 2 });
        expect(r.received.sha256).toBe(r.sha256);
      }
    }
    for (const h of hosts) {
      const stats = overlays.get(h.label)!.stats();
      expect(Object.entries(stats.totals.drops).filter(([, n]) => n > 0)).toEqual([]);
      // Every byte went through ESP SAs that IKE made: a Child SA per peer, none keyed by hand.
      for (const p of overlays.get(h.label)!.peers.list()) expect(p.sa).toBeUndefined();
    }
    // etcd holds each host's identity and nothing secret.
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      const all = await client.getAll().prefix(prefix).strings();
      const text = JSON.stringify(all);
      expect(text).toContain('CN=a.mesh');
      expect(text).not.toMatch(/PRIVATE KEY|BEGIN/);
      for (const key of keys.values()) expect(text).not.toContain(key.split('\n')[1]!);
    } finally {
      client.close();
    }
  }, 120_000);
});
