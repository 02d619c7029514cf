// Kernel routes that follow the peers on TUN (device.routes, lib/routes.ts): the README's own
// example, where b's allowedIps hold 10.2.0.0/16 outside the device's 198.19.0.1/24, works as
// written, with no `ip route add` by hand, for IPv4 and IPv6; each route comes with its peer and
// goes with it; a route somebody else holds for the same prefix is reported and left alone;
// routeTable and routeMetric say where the routes go; close takes them all; routes: off adds none.
//
// IPv6 is on in both namespaces before the devices are made (without router solicitations,
// which a TUN would send to ff02::2 and count as noRoute), so IPv6 routes can be installed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay, RouteEvent } from '../../lib/overlay';
import { describeNetns, waitFor } from '../helpers/env';
import { startForwarder } from '../helpers/overlay';
import { verifiedTransfer } from '../helpers/transfer';

/** Every route of ours in the namespace, both families, every table (`ip route show table all`, the proto 79 lines). */
async function ourRoutes(lab: Lab, host: Host): Promise<string[]> {
  const lines: string[] = [];
  for (const family of ['-4', '-6']) {
    const { stdout } = await lab.ip(host, [family, 'route', 'show', 'table', 'all']);
    lines.push(...stdout.split('\n').map((l) => l.trim()).filter((l) => / proto 79 /.test(l)));
  }
  return lines;
}

function tunConfig(host: Host, addresses: string[], peers: Array<Record<string, unknown>>, device: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    device: { type: 'tun', name: 'ovl0', addresses, ...device },
    // The README's TUN example, as written (b's allowedIps there, plus an IPv6 prefix of the same kind).
    encap: { type: 'gre', key: 7 },
    underlay: { local: host.underlay },
    mssClamp: 'auto',
    peers,
  };
}

describeNetns('kernel routes follow the peers on TUN (device.routes)', { tools: ['ping'] }, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let A: Overlay;
  const events: RouteEvent[] = [];
  const peerB = () => ({ name: 'b', endpoint: b.underlay, allowedIps: ['198.19.0.2/32', 'fd00:198:19::2/128', '10.2.0.0/16', 'fd00:198:20::/64'] });

  beforeAll(async () => {
    lab = await Lab.create();
    [a, b] = await lab.pair('a', 'b');
    for (const host of [a, b]) {
      await lab.exec(host, 'sysctl', ['-q', '-w', 'net.ipv6.conf.default.router_solicitations=0', 'net.ipv6.conf.default.disable_ipv6=0']);
    }
    // b holds 10.2.0.1 and fd00:198:20::1 on its own device: the other side of the README's example.
    await startForwarder(lab, {
      host: b,
      address: '198.19.0.2/24',
      peers: [],
      extra: tunConfig(b, ['198.19.0.2/24', 'fd00:198:19::2/64', '10.2.0.1/16', 'fd00:198:20::1/64'], [
        { name: 'a', endpoint: a.underlay, allowedIps: ['198.19.0.1/32', 'fd00:198:19::1/128'] },
      ]),
    });
    A = await startForwarder(lab, { host: a, address: '198.19.0.1/24', peers: [], extra: tunConfig(a, ['198.19.0.1/24', 'fd00:198:19::1/64'], [peerB()]) });
    A.on('route', (e) => events.push(e));
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('routes b\'s prefixes outside the device\'s own into ovl0: ping and a transfer to 10.2.0.1, ping to fd00:198:20::1, no ip route by hand', async () => {
    expect(await ourRoutes(lab, a)).toEqual(['10.2.0.0/16 dev ovl0 proto 79 scope link', 'fd00:198:20::/64 dev ovl0 proto 79 metric 1024 pref medium']);
    // The prefixes inside 198.19.0.1/24 and fd00:198:19::1/64 ride the connected routes: none of ours.
    expect(A.kernelRoutes()).toEqual({ device: 'ovl0', table: 254, metric: 0, installed: ['10.2.0.0/16', 'fd00:198:20::/64'], missing: [] });
    expect((await lab.ip(a, ['route', 'get', '10.2.0.1'])).stdout).toMatch(/^10\.2\.0\.1 dev ovl0 /);
    expect((await lab.ping(a, '10.2.0.1', { count: 3, intervalSec: 0.05 })).received).toBe(3);
    expect((await lab.ping(a, 'fd00:198:20::1', { count: 3, intervalSec: 0.05 })).received).toBe(3);
    const r = await verifiedTransfer(lab, { from: a, to: b, address: '10.2.0.1', megabytes: 4, timeoutMs: 60_000 });
    expect(r.received.bytes).toBe(4 << 20);
    // The start's routes were reported after create() resolved, to a listener attached then.
    await waitFor(() => events.length > 0, 'the route event of the start');
    expect(events[0]).toMatchObject({ kind: 'added', op: 'add', prefixes: ['10.2.0.0/16', 'fd00:198:20::/64'], device: 'ovl0', table: 254, metric: 0 });
  });

  it('a peer added at run time brings its routes, and takes them away when removed', async () => {
    events.length = 0;
    A.peers.add({ name: 'c', endpoint: '198.18.0.9', allowedIps: ['10.3.0.0/16', '10.3.7.0/24', 'fd00:198:30::/48'] });
    expect(await ourRoutes(lab, a)).toEqual(
      expect.arrayContaining(['10.3.0.0/16 dev ovl0 proto 79 scope link', '10.3.7.0/24 dev ovl0 proto 79 scope link', 'fd00:198:30::/48 dev ovl0 proto 79 metric 1024 pref medium']),
    );
    expect(events).toEqual([expect.objectContaining({ kind: 'added', prefixes: ['10.3.0.0/16', '10.3.7.0/24', 'fd00:198:30::/48'] })]);
    expect(A.peers.remove('c')).toBe(true);
    expect(await ourRoutes(lab, a)).toEqual(['10.2.0.0/16 dev ovl0 proto 79 scope link', 'fd00:198:20::/64 dev ovl0 proto 79 metric 1024 pref medium']);
    expect(events[1]).toMatchObject({ kind: 'removed', op: 'remove', prefixes: ['10.3.0.0/16', '10.3.7.0/24', 'fd00:198:30::/48'] });
  });

  it('a prefix that moves to another peer in a replace keeps its route: nothing is removed or re-added', async () => {
    events.length = 0;
    A.peers.replace([
      { name: 'b', endpoint: b.underlay, allowedIps: ['198.19.0.2/32', 'fd00:198:19::2/128', 'fd00:198:20::/64'] },
      { name: 'c', endpoint: '198.18.0.9', allowedIps: ['10.2.0.0/16'] },
    ]);
    expect(events).toEqual([]);
    expect(await ourRoutes(lab, a)).toEqual(['10.2.0.0/16 dev ovl0 proto 79 scope link', 'fd00:198:20::/64 dev ovl0 proto 79 metric 1024 pref medium']);
    A.peers.replace([peerB()]);
    expect(events).toEqual([]);
    expect((await lab.ping(a, '10.2.0.1', { count: 2, intervalSec: 0.05 })).received).toBe(2);
  });

  it('a route somebody else holds for the prefix (same table and metric) is reported, never tracked, and survives the peer', async () => {
    events.length = 0;
    await lab.ip(a, ['route', 'add', '10.4.0.0/16', 'dev', 'lo']);
    A.peers.add({ name: 'd', endpoint: '198.18.0.10', allowedIps: ['10.4.0.0/16', '10.5.0.0/16'] });
    expect(events).toEqual([
      expect.objectContaining({ kind: 'added', prefixes: ['10.5.0.0/16'] }),
      expect.objectContaining({ kind: 'exists', op: 'add', prefixes: ['10.4.0.0/16'], code: 'EEXIST' }),
    ]);
    expect(A.kernelRoutes()!.missing).toEqual([{ prefix: '10.4.0.0/16', code: 'EEXIST', message: expect.any(String) as string }]);
    expect(A.kernelRoutes()!.installed).not.toContain('10.4.0.0/16');
    A.peers.remove('d');
    expect((await lab.ip(a, ['route', 'show', '10.4.0.0/16'])).stdout.trim()).toBe('10.4.0.0/16 dev lo scope link');
    expect(await ourRoutes(lab, a)).not.toContain('10.5.0.0/16 dev ovl0 proto 79 scope link');
    await lab.ip(a, ['route', 'del', '10.4.0.0/16', 'dev', 'lo']);
  });

  it('close takes every route with the device', async () => {
    expect((await ourRoutes(lab, a)).length).toBe(2);
    await A.close();
    expect(await ourRoutes(lab, a)).toEqual([]);
  });

  it('routeTable and routeMetric put them where the host wants them, IPv6 too; close takes them', async () => {
    const T = await startForwarder(lab, {
      host: a,
      address: '198.19.0.1/24',
      peers: [],
      extra: tunConfig(a, ['198.19.0.1/24', 'fd00:198:19::1/64'], [peerB()], { routeTable: 1000, routeMetric: 50 }),
    });
    expect((await lab.ip(a, ['route', 'show', 'table', '1000'])).stdout.trim()).toBe('10.2.0.0/16 dev ovl0 proto 79 scope link metric 50');
    expect((await lab.ip(a, ['-6', 'route', 'show', 'table', '1000'])).stdout.trim()).toBe('fd00:198:20::/64 dev ovl0 proto 79 metric 50 pref medium');
    // None in main: the host's own rules decide when table 1000 is looked at.
    expect((await lab.ip(a, ['route', 'show', 'table', 'main', 'proto', '79'])).stdout.trim()).toBe('');
    await lab.ip(a, ['rule', 'add', 'to', '10.2.0.0/16', 'lookup', '1000', 'priority', '100']);
    expect((await lab.ping(a, '10.2.0.1', { count: 2, intervalSec: 0.05 })).received).toBe(2);
    await lab.ip(a, ['rule', 'del', 'priority', '100']);
    await T.close();
    expect(await ourRoutes(lab, a)).toEqual([]);
  });

  it('routes: off adds none, and then 10.2.0.1 is unreachable as before', async () => {
    const O = await startForwarder(lab, {
      host: a,
      address: '198.19.0.1/24',
      peers: [],
      extra: tunConfig(a, ['198.19.0.1/24', 'fd00:198:19::1/64'], [peerB()], { routes: 'off' }),
    });
    expect(O.kernelRoutes()).toBeNull();
    expect(O.config.device.routes).toBe('off');
    expect(await ourRoutes(lab, a)).toEqual([]);
    const ping = await lab.exec(a, 'ping', ['-n', '-c', '1', '-W', '1', '10.2.0.1'], { allowFailure: true });
    expect(ping.code).not.toBe(0);
    expect(ping.stderr + ping.stdout).toMatch(/Network is unreachable/);
    O.peers.add({ name: 'c', endpoint: '198.18.0.9', allowedIps: ['10.3.0.0/16'] });
    expect(await ourRoutes(lab, a)).toEqual([]);
    await O.close();
  });
});
