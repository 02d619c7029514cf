// Registry mode over a three-member etcd cluster, with TAP devices: each host's record carries
// its device MAC, which every other host installs as a static forwarding entry; one member killed,
// the hosts go on through the other two, and a host that joins afterwards is learned by all.
import crypto from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EtcdServer, Lab } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import { describeNetns, waitFor } from '../helpers/env';
import { loadOverlay } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';

const hostAddress = (subnet: string) => subnet.replace(/\.0\/24$/, '.1');

describeNetns('registry on a three-member etcd cluster, TAP hosts', { tools: ['etcd'] }, () => {
  let lab: Lab;
  let members: EtcdServer[];
  let hosts: Host[];
  const overlays = new Map<string, Overlay>();
  const prefix = `/ovt-cluster-${crypto.randomBytes(4).toString('hex')}`;

  async function join(host: Host): Promise<Overlay> {
    const OverlayCls = await loadOverlay();
    const ov = await OverlayCls.create({
      name: 'ovl0',
      netns: host.ns,
      device: { type: 'tap', name: 'ovl0' },
      encap: { type: 'vxlan', vni: 77 },
      underlay: { local: host.underlay },
      workers: 1,
      registry: { etcd: { endpoints: members.map((m) => m.endpoint), prefix, ttlSeconds: 3 }, network: '10.120.0.0/16', subnetLength: 24 },
      node: { name: host.label },
      control: { socket: path.join(lab.tmpdir(), `${host.label}.sock`) },
    });
    lab.onDestroy(() => ov.close());
    overlays.set(host.label, ov);
    return ov;
  }
  const peersOf = (label: string) => overlays.get(label)!.peers.list();
  const subnetOf = (label: string) => overlays.get(label)!.nodes().self.subnet;

  beforeAll(async () => {
    lab = await Lab.create();
    process.env.OVERLAYFWD_STATE_DIR = path.join(lab.tmpdir(), 'state');
    members = await EtcdServer.startCluster(lab, 3);
    hosts = await lab.switched(['a', 'b', 'c']);
  }, 60_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('installs every other host device MAC as a static entry, and carries traffic over the L2 overlay', async () => {
    await join(hosts[0]!);
    await join(hosts[1]!);
    await waitFor(() => peersOf('a').length === 1 && peersOf('b').length === 1, 'a and b to learn each other', 3000);
    // The MAC arrives with a second write of the record, after the device exists.
    await waitFor(() => peersOf('a')[0]!.macs.length === 1 && peersOf('b')[0]!.macs.length === 1, 'the MACs to arrive', 3000);
    expect(peersOf('a')[0]!.macs).toEqual([overlays.get('b')!.device.mac]);
    expect(peersOf('b')[0]!.macs).toEqual([overlays.get('a')!.device.mac]);
    const fdb = overlays.get('a')!.fdb();
    expect(fdb).toContainEqual(expect.objectContaining({ mac: overlays.get('b')!.device.mac, peer: 'b', static: true }));
    const r = await verifiedTransfer(lab, { from: hosts[0]!, to: hosts[1]!, address: hostAddress(subnetOf('b')), megabytes: 4 });
    expect(r.received.sha256).toBe(r.sha256);
  });

  it('goes on through the other members when one is killed, and learns a host that joins afterwards', async () => {
    await members[0]!.stop('SIGKILL');
    await join(hosts[2]!);
    await waitFor(() => ['a', 'b'].every((h) => peersOf(h).some((p) => p.name === 'c')), 'a and b to learn c', 10_000);
    await waitFor(() => peersOf('c').length === 2, 'c to learn a and b', 10_000);
    const ping = await lab.ping(hosts[2]!, hostAddress(subnetOf('a')), { count: 3, intervalSec: 0.1, timeoutSec: 2 });
    expect(ping.received).toBe(3);
    // Nobody was removed while a member was away.
    expect(peersOf('a').map((p) => p.name).sort()).toEqual(['b', 'c']);
  });
});
