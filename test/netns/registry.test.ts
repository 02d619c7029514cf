// Registry mode against a real etcd (Debian's etcd-server): hosts in network namespaces join by
// themselves with `subnet: auto`, learn each other from the watch and carry traffic; a crashed
// host leaves every table within its lease, and comes back to its subnet; etcd crashing under a
// transfer stops nothing; hostile records are skipped without harming the others; hosts racing
// for a small network get unique subnets or a clear error.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdServer, Lab } from '../../lab';
import type { Host, LabProcess } from '../../lab';
import { ConfigError, parseConfig } from '../../lib/config';
import type { Overlay } from '../../lib/overlay';
import { Registry } from '../../lib/registry/registry';
import { describeNetns, ROOT, sleep, waitFor } from '../helpers/env';
import { loadOverlay } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';
import { startUdpStream } from '../helpers/udp-stream';

const TTL = 3;
const NETWORK = '10.100.0.0/16';
const MAIN = path.join(ROOT, 'dist', 'lib', 'cli', 'main.js');

/** Runs the CLI in this (the root) namespace; resolves with its exit code and output. */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function hostConfig(lab: Lab, etcd: EtcdServer, prefix: string, host: Host): Record<string, unknown> {
  return {
    name: 'ovl0',
    netns: host.ns,
    device: { type: 'tun', name: 'ovl0' },
    encap: { type: 'gre-udp' },
    underlay: { local: host.underlay },
    workers: 1,
    registry: { etcd: { endpoints: [etcd.endpoint], prefix, ttlSeconds: TTL }, network: NETWORK, subnetLength: 24 },
    node: { name: host.label },
    control: { socket: path.join(lab.tmpdir(), `${host.label}.sock`) },
  };
}

/** The first address of a host's subnet: its device's address. */
const hostAddress = (subnet: string) => subnet.replace(/\.0\/24$/, '.1');

describeNetns('registry on etcd', { tools: ['etcd'] }, () => {
  let lab: Lab;
  let etcd: EtcdServer;
  let hosts: Host[];
  const overlays = new Map<string, Overlay>();
  const events = new Map<string, string[]>();
  const prefix = `/ovt-${crypto.randomBytes(4).toString('hex')}`;

  const peerNames = (label: string) => overlays.get(label)!.peers.list().map((p) => p.name).sort();
  const subnetOf = (label: string) => {
    for (const [other, ov] of overlays) {
      if (other === label) continue;
      const node = ov.registry!.nodes().find((n) => n.name === label);
      if (node) return node.subnet;
    }
    throw new Error(`no host knows ${label}`);
  };

  async function join(host: Host): Promise<Overlay> {
    const OverlayCls = await loadOverlay();
    const ov = await OverlayCls.create(hostConfig(lab, etcd, prefix, host));
    lab.onDestroy(() => ov.close());
    const log: string[] = [];
    events.set(host.label, log);
    for (const name of ['nodeJoined', 'nodeLeft', 'nodeChanged', 'registryDown', 'registryUp', 'recordSkipped'] as const) {
      ov.registry!.on(name, (...args: unknown[]) => log.push(`${name} ${JSON.stringify(args[0])}`));
    }
    overlays.set(host.label, ov);
    return ov;
  }

  beforeAll(async () => {
    lab = await Lab.create();
    process.env.OVERLAYFWD_STATE_DIR = path.join(lab.tmpdir(), 'state');
    etcd = await EtcdServer.start(lab);
    hosts = await lab.switched(['a', 'b', 'c', 'd', 'e', 'f']);
  }, 60_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('four hosts with subnet: auto join, learn each other within a second, and carry verified TCP between every pair', async () => {
    const four = hosts.slice(0, 4);
    await Promise.all(four.map((h) => join(h)));
    const joinedAt = Date.now();
    await waitFor(() => four.every((h) => peerNames(h.label).length === 3), 'every host to learn the other three', 1000);
    expect(Date.now() - joinedAt).toBeLessThanOrEqual(1000);
    for (const h of four) expect(peerNames(h.label)).toEqual(four.filter((x) => x !== h).map((x) => x.label).sort());
    // Unique /24s of the network, the device on the first address of its own.
    const subnets = four.map((h) => subnetOf(h.label));
    expect(new Set(subnets).size).toBe(4);
    for (const s of subnets) expect(s).toMatch(/^10\.100\.\d+\.0\/24$/);
    for (const [i, h] of four.entries()) {
      const shown = await lab.ip(h, ['-4', '-o', 'addr', 'show', 'dev', 'ovl0']);
      expect(shown.stdout).toContain(`${hostAddress(subnets[i]!)}/16`);
      // A peer's allowedIps is its subnet.
      const peer = overlays.get(four[(i + 1) % 4]!.label)!.peers.list().find((p) => p.name === h.label)!;
      expect(peer.allowedIps).toEqual([subnets[i]]);
    }
    for (let i = 0; i < four.length; i++) {
      for (let j = i + 1; j < four.length; j++) {
        const r = await verifiedTransfer(lab, { from: four[i]!, to: four[j]!, address: hostAddress(subnets[j]!), megabytes: 2 });
        expect(r.received.sha256).toBe(r.sha256);
      }
    }
    // Every byte went through the overlay, none was dropped.
    for (const h of four) expect(overlays.get(h.label)!.stats().totals.drops).toSatisfy((d: Record<string, number>) => Object.values(d).every((n) => n === 0));
  });

  it('makes every registry change one hitless table swap: a UDP stream between two hosts loses nothing over 200 changes', async () => {
    const [a, b] = hosts as [Host, Host];
    const joinedBefore = events.get('a')!.filter((e) => e.startsWith('nodeJoined')).length;
    // A steady UDP stream from before the first change to after the last, however long they take.
    const stream = await startUdpStream(lab, { from: a, to: b, address: hostAddress(subnetOf('b')), port: 5302, pps: 2500 });
    await sleep(500);
    // Subnets no real host holds (a put on a held one would replace that host's record).
    const held = new Set(hosts.slice(0, 4).map((h) => subnetOf(h.label)));
    const free = Array.from({ length: 256 }, (_, i) => `10.100.${i}.0/24`).filter((x) => !held.has(x)).slice(0, 100);
    const keyOf = (subnet: string) => `${prefix}/subnets/${subnet.replace('/', '-')}`;
    const client = new Etcd3({ hosts: etcd.endpoint });
    const started = Date.now();
    try {
      // 100 hosts appear and leave again: 200 changes, each a table swap on every host.
      for (const [i, subnet] of free.entries()) {
        await client.put(keyOf(subnet)).value(JSON.stringify({ name: `churn${i}`, endpoint: `198.18.9.${i + 1}` }));
      }
      for (const subnet of free) await client.delete().key(keyOf(subnet));
    } finally {
      client.close();
    }
    const churnMs = Date.now() - started;
    await sleep(500);
    const r = await stream.stop();
    console.log(`[registry] 200 changes in ${churnMs} ms under a UDP stream: ${r.lost}/${r.sent} lost; the kernel dropped ${r.kernel.total} ${JSON.stringify(r.kernel.where)}`);
    expect(events.get('a')!.filter((e) => e.startsWith('nodeJoined')).length - joinedBefore).toBe(100);
    expect(r.sent).toBeGreaterThan(2500);
    // Nothing lost but what the kernel dropped itself: a reader starved of CPU on a busy
    // machine overflows its socket or device queue, and the kernel counts it there.
    expect(r.lost, `${r.lost} lost, the kernel dropped ${r.kernel.total}: ${JSON.stringify(r.kernel.where)}`).toBeLessThanOrEqual(r.kernel.total);
    await waitFor(() => hosts.slice(0, 4).every((h) => peerNames(h.label).length === 3), 'the churn to leave every table', 3000);
  });

  it('skips malformed and hostile records, keeps the table of well-formed hosts, and takes a valid one', async () => {
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      const put = (key: string, value: string) => client.put(`${prefix}/subnets/${key}`).value(value);
      // Keys of subnets no real host holds (a put on a held one would replace that host's record).
      const held = new Set(hosts.slice(0, 4).map((h) => subnetOf(h.label).replace('/', '-')));
      const [k1, k2, k3, k4, ghostKey] = Array.from({ length: 256 }, (_, i) => `10.100.${i}.0-24`).filter((k) => !held.has(k)) as [string, string, string, string, string];
      const bad: Record<string, string> = {
        [k1]: 'not json {',
        '10.200.0.0-24': JSON.stringify({ name: 'outside', endpoint: '198.18.0.90' }),
        [k2]: JSON.stringify({ name: 'noaddr', endpoint: 'not-an-address' }),
        [k3]: JSON.stringify({ name: 'huge', endpoint: '198.18.0.91', pad: 'x'.repeat(100_000) }),
        [k4]: JSON.stringify({ name: 'twin', endpoint: hosts[1]!.underlay }),
        'garbage-key': JSON.stringify({ name: 'nokey', endpoint: '198.18.0.92' }),
      };
      for (const [key, value] of Object.entries(bad)) await put(key, value);
      await put(ghostKey, JSON.stringify({ name: 'ghost', endpoint: '198.18.0.99' }));
      const four = hosts.slice(0, 4);
      await waitFor(() => four.every((h) => peerNames(h.label).includes('ghost')), 'every host to take the valid record', 3000);
      for (const h of four) {
        expect(peerNames(h.label)).toEqual([...four.filter((x) => x !== h).map((x) => x.label), 'ghost'].sort());
        const skipped = events.get(h.label)!.filter((e) => e.startsWith('recordSkipped'));
        for (const key of Object.keys(bad)) {
          // The twin claims b's endpoint: b refuses it as its own, the others keep b, who came first.
          expect(skipped.some((e) => e.includes(JSON.stringify(key))), `${h.label} skipped ${key}`).toBe(true);
        }
      }
      // The well-formed hosts still reach each other.
      const r = await lab.ping(hosts[0]!, hostAddress(subnetOf('b')), { count: 3, intervalSec: 0.1, timeoutSec: 2 });
      expect(r.received).toBe(3);
      await client.delete().key(`${prefix}/subnets/${ghostKey}`);
      await waitFor(() => four.every((h) => !peerNames(h.label).includes('ghost')), 'the removed record to leave every table', 3000);
      for (const key of Object.keys(bad)) await client.delete().key(`${prefix}/subnets/${key}`);
    } finally {
      client.close();
    }
  });

  it('removes a SIGKILLed host from every table within its TTL plus a second; restarted, it gets its subnet back', async () => {
    const four = hosts.slice(0, 4);
    const e = hosts[4]!;
    const file = path.join(lab.tmpdir(), 'e.json');
    fs.writeFileSync(file, JSON.stringify(hostConfig(lab, etcd, prefix, e)));
    const env = { ...process.env, OVERLAYFWD_STATE_DIR: path.join(lab.tmpdir(), 'state-e') };
    const start = (): LabProcess => lab.spawn(null, process.execPath, [MAIN, 'up', '-c', file], { cwd: ROOT, env });
    let up = start();
    try {
      await waitFor(() => four.every((h) => peerNames(h.label).includes('e')), `e to join (${up.stderr})`, 10_000);
      // Up and running (its startup line printed), not merely registered: killed earlier, it would
      // not have remembered its subnet yet.
      await waitFor(() => up.stdout.includes('ovl0 up: device'), `e to finish starting (${up.stderr})`, 10_000);
      const subnet = subnetOf('e');
      up.child.kill('SIGKILL');
      await up.exited;
      const killedAt = Date.now();
      await waitFor(() => four.every((h) => !peerNames(h.label).includes('e')), 'e to leave every table', (TTL + 3) * 1000);
      expect(Date.now() - killedAt).toBeLessThanOrEqual((TTL + 1) * 1000 + 500);
      up = start();
      await waitFor(() => four.every((h) => peerNames(h.label).includes('e')), `e to come back (${up.stderr})`, 10_000);
      expect(subnetOf('e'), up.stderr).toBe(subnet);
      await waitFor(() => up.stdout.includes('ovl0 up: device'), `e to finish starting again (${up.stderr})`, 10_000);
      // What e itself knows: the four, each a peer.
      const shown = await cli('nodes', '-s', path.join(lab.tmpdir(), 'e.sock'), '--json');
      expect(shown.code, shown.stderr).toBe(0);
      const nodes = JSON.parse(shown.stdout) as { self: { name: string; subnet: string }; nodes: { name: string; inTable: boolean }[] };
      expect(nodes.self).toMatchObject({ name: 'e', subnet });
      expect(nodes.nodes.map((n) => [n.name, n.inTable]).sort()).toEqual(four.map((h) => [h.label, true]).sort());
      up.child.kill('SIGTERM');
      await up.exited;
    } finally {
      // A failure above must not leave e running into the next tests.
      if (!up.status) {
        up.child.kill('SIGKILL');
        await up.exited;
      }
    }
    // A clean stop revokes the lease: gone from every table at once.
    await waitFor(() => four.every((h) => !peerNames(h.label).includes('e')), 'e to leave after SIGTERM', 2000);
  });

  it('forwards through an etcd crash without loss or removal, and learns a new host once etcd is back', async () => {
    const four = hosts.slice(0, 4);
    const transfer = verifiedTransfer(lab, { from: four[0]!, to: four[1]!, address: hostAddress(subnetOf('b')), megabytes: 48 });
    await sleep(100);
    await etcd.stop('SIGKILL');
    const r = await transfer;
    expect(r.received.sha256).toBe(r.sha256);
    await waitFor(() => four.every((h) => events.get(h.label)!.some((x) => x.startsWith('registryDown'))), 'registryDown on every host', 10_000);
    await sleep((TTL + 1) * 1000);
    // Fail-static: nothing removed while etcd is away, traffic goes on.
    for (const h of four) expect(peerNames(h.label)).toHaveLength(3);
    const ping = await lab.ping(four[2]!, hostAddress(subnetOf('d')), { count: 3, intervalSec: 0.1, timeoutSec: 2 });
    expect(ping.received).toBe(3);
    await etcd.run();
    await waitFor(() => four.every((h) => events.get(h.label)!.some((x) => x.startsWith('registryUp'))), 'registryUp on every host', 20_000);
    await join(hosts[5]!);
    // Bounds for a busy machine: the clients reconnect with back-off after the outage.
    await waitFor(() => four.every((h) => peerNames(h.label).includes('f')), 'every host to learn f', 30_000);
    await waitFor(() => peerNames('f').length === 4, 'f to learn the four', 30_000);
    const again = await lab.ping(hosts[5]!, hostAddress(subnetOf('a')), { count: 3, intervalSec: 0.1, timeoutSec: 2 });
    expect(again.received).toBe(3);
  });

  it('registry init writes the network once, and registry show lists it with every host record', async () => {
    const fresh = `/ovt-init-${crypto.randomBytes(4).toString('hex')}`;
    const file = path.join(lab.tmpdir(), 'init.json');
    const config = hostConfig(lab, etcd, fresh, hosts[0]!) as { registry: Record<string, unknown> };
    delete config.registry['network'];
    delete config.registry['subnetLength'];
    fs.writeFileSync(file, JSON.stringify(config));
    const missing = await cli('registry', 'init', '-c', file);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/registry init needs the network/);
    const init = await cli('registry', 'init', '-c', file, '--network', '10.150.0.0/16', '--subnet-length', '24');
    expect(init.code).toBe(0);
    expect(init.stdout).toContain(`${fresh}/config: {"network":"10.150.0.0/16","subnetLength":24,"encap":{"type":"gre-udp"`);
    const again = await cli('registry', 'init', '-c', file, '--network', '10.160.0.0/16', '--subnet-length', '24');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already holds .*10\.150\.0\.0\/16.*--force replaces it/);
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      await client.put(`${fresh}/subnets/10.150.9.0-24`).value(JSON.stringify({ name: 'h9', endpoint: '198.18.0.9' }));
      await client.put(`${fresh}/subnets/10.150.10.0-24`).value('{ broken');
    } finally {
      client.close();
    }
    const show = await cli('registry', 'show', '-c', file, '--json');
    expect(show.code).toBe(0);
    const shown = JSON.parse(show.stdout) as { network: { network: string }; hosts: { key: string; name?: string; error?: string }[] };
    expect(shown.network.network).toBe('10.150.0.0/16');
    expect(shown.hosts).toContainEqual({ key: '10.150.9.0-24', name: 'h9', subnet: '10.150.9.0/24', endpoint: '198.18.0.9', mac: null });
    expect(shown.hosts.find((h) => h.key === '10.150.10.0-24')?.error).toMatch(/not JSON/);
    // A host of another mode cannot join this network.
    const vxlan = parseConfig({ ...config, netns: undefined, device: { type: 'tap' }, encap: { type: 'vxlan', vni: 9 } });
    await expect(Registry.open(vxlan, { stateDir: path.join(lab.tmpdir(), 'other') })).rejects.toThrow(
      new RegExp(`encap: the registry's network \\(${fresh}/config\\) runs type "gre-udp".*; this config has type "vxlan"`),
    );
  });

  it('gives twenty hosts racing for a network of eight subnets unique subnets, and the others a clear error', async () => {
    const small = `/ovt-race-${crypto.randomBytes(4).toString('hex')}`;
    const config = (i: number) =>
      parseConfig({
        name: 'race',
        device: { type: 'tun' },
        encap: { type: 'gre-udp' },
        underlay: { local: `198.18.1.${i + 1}` },
        registry: { etcd: { endpoints: [etcd.endpoint], prefix: small, ttlSeconds: TTL }, network: '10.77.0.0/26', subnetLength: 29 },
        node: { name: `racer${i}` },
      });
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => Registry.open(config(i), { stateDir: path.join(lab.tmpdir(), 'race') })));
    const won = results.filter((r): r is PromiseFulfilledResult<Registry> => r.status === 'fulfilled').map((r) => r.value);
    try {
      expect(won).toHaveLength(8);
      expect(new Set(won.map((r) => `${r.subnet.base}`)).size).toBe(8);
      for (const r of results) {
        if (r.status === 'rejected') {
          expect(r.reason).toBeInstanceOf(ConfigError);
          expect((r.reason as Error).message).toMatch(/node\.subnet: no free \/29 left in 10\.77\.0\.0\/26 \(all 8 are leased\)/);
        }
      }
    } finally {
      await Promise.all(won.map((r) => r.close()));
    }
  });
});
