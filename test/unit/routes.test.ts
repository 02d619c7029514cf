// lib/routes.ts against a fake kernel: which prefixes get routes, the order of adds and removes
// around a table swap, what is never removed (somebody else's route), retries, abort, and the
// lines `up` prints. The real kernel is in test/netns/routes.test.ts.
import { describe, expect, it } from 'vitest';
import { ConfigError, networkOf, parseCidr, parseConfig } from '../../lib/config';
import { isNetwork, prefixBits, prefixContains, prefixNetworkText } from '../../lib/config/addresses';
import type { NativeRouteResult } from '../../lib/native';
import { describeRouteEvent, KernelRoutes, kernelRoutesFor, type RouteEvent } from '../../lib/routes';
import type { ResolvedPeer } from '../../lib/types';

function peer(name: string, allowedIps: string[]): ResolvedPeer {
  return { name, endpoint: { address: '198.18.0.2', port: 4754 }, allowedIps, macs: [] };
}

/** A kernel that holds routes by prefix and answers `refuse(prefix)` when it returns a code. */
class FakeKernel {
  readonly routes = new Set<string>();
  readonly calls: Array<{ op: 'add' | 'remove'; prefixes: string[] }> = [];
  refuse: (op: 'add' | 'remove', prefix: string) => string | null = () => null;

  apply = (op: 'add' | 'remove', prefixes: string[]): NativeRouteResult[] => {
    this.calls.push({ op, prefixes: [...prefixes] });
    return prefixes.map((p) => {
      const code = this.refuse(op, p) ?? (op === 'add' && this.routes.has(p) ? 'EEXIST' : op === 'remove' && !this.routes.has(p) ? 'ESRCH' : null);
      if (code) return { code, errno: -1, message: `${code} from the fake kernel` };
      if (op === 'add') this.routes.add(p);
      else this.routes.delete(p);
      return 0;
    });
  };
}

function setup(connected = ['198.19.0.1/24', 'fd00:198:19::1/64']) {
  const kernel = new FakeKernel();
  const events: RouteEvent[] = [];
  const routes = new KernelRoutes('ovl0', connected, 254, 0, kernel.apply, (e) => events.push(e));
  return { kernel, events, routes };
}

describe('kernel routes (lib/routes.ts)', () => {
  it('routes the prefixes outside the connected ones, each network once, host bits cleared, IPv6 in canonical form', () => {
    const { routes } = setup();
    const wanted = routes.wanted([
      peer('b', ['198.19.0.2/32', '198.19.0.0/24', '10.2.0.7/16', 'fd00:198:19::2/128', 'fd00:198:20:0:0:0:0:1/64']),
      peer('c', ['10.2.0.0/16', '198.19.0.0/16', '0.0.0.0/0', 'fd00:198:19::/48', '::/0']),
    ]);
    // Inside 198.19.0.0/24 or fd00:198:19::/64: the connected route does it. Wider ones are not inside.
    expect([...wanted]).toEqual(['10.2.0.0/16', 'fd00:198:20::/64', '198.19.0.0/16', '0.0.0.0/0', 'fd00:198:19::/48', '::/0']);
    expect([...setup([]).routes.wanted([peer('b', ['198.19.0.2/32'])])]).toEqual(['198.19.0.2/32']);
  });

  it('adds before the swap and removes after it; a prefix that moves between peers is left alone', () => {
    const { kernel, routes, events } = setup();
    const order: string[] = [];
    const swap = (peers: ResolvedPeer[]) => {
      const step = routes.begin(peers);
      order.push(`swap:${kernel.calls.length}`);
      step.commit();
    };
    swap([peer('b', ['10.2.0.0/16', '198.19.0.2/32'])]);
    expect(kernel.calls).toEqual([{ op: 'add', prefixes: ['10.2.0.0/16'] }]);
    expect(order).toEqual(['swap:1']);
    swap([peer('b', ['10.3.0.0/16']), peer('c', ['10.2.0.0/16'])]);
    // The add of 10.3.0.0/16 came before the swap, nothing was removed: 10.2.0.0/16 only moved.
    expect(kernel.calls.slice(1)).toEqual([{ op: 'add', prefixes: ['10.3.0.0/16'] }]);
    swap([peer('c', ['10.2.0.0/16'])]);
    expect(kernel.calls.slice(2)).toEqual([{ op: 'remove', prefixes: ['10.3.0.0/16'] }]);
    expect(order).toEqual(['swap:1', 'swap:2', 'swap:2']);
    expect([...kernel.routes]).toEqual(['10.2.0.0/16']);
    expect(events.map((e) => [e.kind, e.prefixes])).toEqual([
      ['added', ['10.2.0.0/16']],
      ['added', ['10.3.0.0/16']],
      ['removed', ['10.3.0.0/16']],
    ]);
    expect(routes.state()).toEqual({ device: 'ovl0', table: 254, metric: 0, installed: ['10.2.0.0/16'], missing: [] });
  });

  it("never removes a route it did not add: an existing one is reported (exists), not tracked, and outlives the peer", () => {
    const { kernel, routes, events } = setup();
    kernel.routes.add('10.4.0.0/16'); // somebody else's
    routes.begin([peer('d', ['10.4.0.0/16', '10.5.0.0/16'])]).commit();
    expect(events).toEqual([
      { kind: 'added', op: 'add', prefixes: ['10.5.0.0/16'], device: 'ovl0', table: 254, metric: 0 },
      { kind: 'exists', op: 'add', prefixes: ['10.4.0.0/16'], device: 'ovl0', table: 254, metric: 0, code: 'EEXIST', message: 'EEXIST from the fake kernel' },
    ]);
    expect(routes.state().missing).toEqual([{ prefix: '10.4.0.0/16', code: 'EEXIST', message: 'EEXIST from the fake kernel' }]);
    routes.begin([]).commit();
    expect(kernel.calls.at(-1)).toEqual({ op: 'remove', prefixes: ['10.5.0.0/16'] });
    expect([...kernel.routes]).toEqual(['10.4.0.0/16']);
    expect(routes.state().missing).toEqual([]);
  });

  it('tries a refused route again at the next change: a conflict each time, a device-wide refusal with one probe, quietly while it stays', () => {
    const { kernel, routes, events } = setup([]);
    let ipv6 = false;
    kernel.refuse = (op, p) => (op === 'add' && p.includes(':') && !ipv6 ? 'EACCES' : null);
    const peers = [peer('b', ['fd00:1::/64', 'fd00:2::/64', 'fd00:3::/64', '10.2.0.0/16'])];
    routes.begin(peers).commit();
    expect(events.map((e) => [e.kind, e.code, e.prefixes.length])).toEqual([
      ['added', undefined, 1],
      ['failed', 'EACCES', 3],
    ]);
    events.length = 0;
    kernel.calls.length = 0;
    routes.begin(peers).commit();
    // One probe, refused as before: the other two are not asked, and nothing is said again.
    expect(kernel.calls).toEqual([{ op: 'add', prefixes: ['fd00:1::/64'] }]);
    expect(events).toEqual([]);
    ipv6 = true;
    kernel.calls.length = 0;
    routes.begin(peers).commit();
    expect(kernel.calls).toEqual([
      { op: 'add', prefixes: ['fd00:1::/64'] },
      { op: 'add', prefixes: ['fd00:2::/64', 'fd00:3::/64'] },
    ]);
    expect(events).toEqual([expect.objectContaining({ kind: 'added', prefixes: ['fd00:1::/64', 'fd00:2::/64', 'fd00:3::/64'] })]);
    expect(routes.state().missing).toEqual([]);
  });

  it('abort takes back what begin added, and only that', () => {
    const { kernel, routes } = setup([]);
    routes.begin([peer('b', ['10.2.0.0/16'])]).commit();
    routes.begin([peer('b', ['10.2.0.0/16']), peer('c', ['10.3.0.0/16'])]).abort();
    expect([...kernel.routes]).toEqual(['10.2.0.0/16']);
    expect(routes.state().installed).toEqual(['10.2.0.0/16']);
  });

  it('a route deleted by hand (ESRCH on removal) is simply gone; a removal the kernel refuses stays ours and is tried again', () => {
    const { kernel, routes, events } = setup([]);
    routes.begin([peer('b', ['10.2.0.0/16', '10.3.0.0/16'])]).commit();
    kernel.routes.delete('10.2.0.0/16');
    kernel.refuse = (op, p) => (op === 'remove' && p === '10.3.0.0/16' ? 'EBUSY' : null);
    events.length = 0;
    routes.begin([]).commit();
    expect(events.map((e) => [e.kind, e.op, e.prefixes, e.code])).toEqual([
      ['removed', 'remove', ['10.2.0.0/16'], undefined],
      ['failed', 'remove', ['10.3.0.0/16'], 'EBUSY'],
    ]);
    expect(routes.state().installed).toEqual(['10.3.0.0/16']);
    kernel.refuse = () => null;
    routes.begin([]).commit();
    expect(routes.state().installed).toEqual([]);
    expect(kernel.routes.size).toBe(0);
  });

  it('forget (close: the device took its routes) holds nothing, and removes nothing', () => {
    const { kernel, routes } = setup([]);
    routes.begin([peer('b', ['10.2.0.0/16'])]).commit();
    routes.forget();
    kernel.calls.length = 0;
    expect(routes.state().installed).toEqual([]);
    expect(kernel.calls).toEqual([]);
  });

  it('describes each event in one line', () => {
    const base = { device: 'ovl0', table: 254, metric: 0 };
    expect(describeRouteEvent({ ...base, kind: 'added', op: 'add', prefixes: ['10.2.0.0/16'] })).toBe('added route 10.2.0.0/16 dev ovl0 table main metric 0');
    expect(describeRouteEvent({ ...base, table: 1000, metric: 50, kind: 'removed', op: 'remove', prefixes: ['a/1', 'b/2', 'c/3', 'd/4', 'e/5', 'f/6', 'g/7'] })).toBe(
      'removed 7 routes (a/1, b/2, c/3, d/4, e/5 and 2 more) dev ovl0 table 1000 metric 50',
    );
    expect(describeRouteEvent({ ...base, kind: 'exists', op: 'add', prefixes: ['10.4.0.0/16'], code: 'EEXIST', message: 'File exists' })).toBe(
      "a route to 10.4.0.0/16 with table main and metric 0 exists already and is not overlayfwd's: left as it is, never removed, and the kernel sends that traffic where it says, not necessarily into ovl0 (remove it, or give device.routeMetric or device.routeTable another value)",
    );
    expect(describeRouteEvent({ ...base, kind: 'failed', op: 'add', prefixes: ['fd00::/64'], code: 'EACCES', message: 'IPv6 is disabled on nexthop device' })).toBe(
      'could not add route fd00::/64 dev ovl0 table main metric 0: EACCES IPv6 is disabled on nexthop device',
    );
  });

  it('keeps routes on TUN with routes auto only', () => {
    const apply = () => [];
    const base = { name: 'ovl0', encap: { type: 'gre-udp' }, underlay: { local: '198.18.0.1' } };
    const tun = parseConfig({ ...base, device: { type: 'tun', addresses: ['198.19.0.1/24'] } });
    expect(tun.device).toMatchObject({ routes: 'auto', routeTable: 254, routeMetric: 0 });
    expect(kernelRoutesFor(tun, 'ovl0', [], apply, () => {})).toBeInstanceOf(KernelRoutes);
    const off = parseConfig({ ...base, device: { type: 'tun', routes: 'off' } });
    expect(kernelRoutesFor(off, 'ovl0', [], apply, () => {})).toBeNull();
    const tap = parseConfig({ ...base, device: { type: 'tap' } });
    expect(tap.device.routes).toBeUndefined();
    expect(kernelRoutesFor(tap, 'ovl0', [], apply, () => {})).toBeNull();
  });

  it('device.routes, routeTable and routeMetric: what they take, and only on TUN', () => {
    const base = { name: 'ovl0', encap: { type: 'gre-udp' }, underlay: { local: '198.18.0.1' } };
    const issues = (device: Record<string, unknown>): string[] => {
      try {
        parseConfig({ ...base, device });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
      }
      return [];
    };
    expect(parseConfig({ ...base, device: { type: 'tun', routeTable: 'main', routeMetric: 4294967295 } }).device).toMatchObject({ routeTable: 254, routeMetric: 4294967295 });
    expect(parseConfig({ ...base, device: { type: 'tun', routeTable: 1000, routes: null } }).device).toMatchObject({ routes: 'auto', routeTable: 1000 });
    expect(issues({ type: 'tun', routes: 'on' })).toEqual(['device.routes: "on" must be auto or off']);
    const table = "must be main or a table number from 1 to 4294967295, not 255 (local, the kernel's own)";
    for (const t of [0, 255, 'local', 1.5, 4294967296]) expect(issues({ type: 'tun', routeTable: t })).toEqual([`device.routeTable: ${table}`]);
    expect(issues({ type: 'tun', routeMetric: -1 })).toEqual(['device.routeMetric: must be an integer from 0 to 4294967295']);
    expect(issues({ type: 'tap', routes: 'off', routeMetric: 5 })).toEqual([
      "device.routes: used only with device.type tun (kernel routes follow the peers' allowedIps; a tap device forwards by MAC)",
      "device.routeMetric: used only with device.type tun (kernel routes follow the peers' allowedIps; a tap device forwards by MAC)",
    ]);
  });

  it('prefix arithmetic agrees with the config layer on random prefixes (networks, containment, RFC 5952 text)', () => {
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (let k = 0; k < 2000; k++) {
      const v6 = k % 2 === 1;
      // Zero groups now and then, so that "::" runs of every length and place come up.
      const raw = v6
        ? Array.from({ length: 8 }, () => (rand(3) === 0 ? '0' : rand(65536).toString(16))).join(':') + `/${rand(129)}`
        : Array.from({ length: 4 }, () => rand(256)).join('.') + `/${rand(33)}`;
      const parsed = parseCidr(raw);
      expect(parsed.ok).toBe(true);
      if (!parsed.ok) continue;
      const cidr = parsed.value.cidr;
      const network = networkOf(cidr);
      const canonical = parseCidr(network);
      expect(canonical.ok).toBe(true);
      const bits = prefixBits(cidr);
      expect(prefixNetworkText(bits)).toBe(canonical.ok ? canonical.value.cidr : '');
      expect(isNetwork(bits)).toBe(canonical.ok && canonical.value.cidr === cidr);
      // A prefix holds its own network and every longer prefix inside it; not a shorter one.
      const net = prefixBits(network);
      expect(prefixContains(net, bits)).toBe(true);
      if (bits.length > 0) expect(prefixContains({ ...net, length: net.length }, { ...net, length: net.length - 1 })).toBe(false);
    }
    expect(prefixContains(prefixBits('198.19.0.0/24'), prefixBits('198.19.0.77'))).toBe(true);
    expect(prefixContains(prefixBits('198.19.0.0/24'), prefixBits('198.19.1.77'))).toBe(false);
    expect(prefixContains(prefixBits('fd00:198:19::/64'), prefixBits('fd00:198:19::2'))).toBe(true);
    expect(prefixContains(prefixBits('fd00:198:19::/64'), prefixBits('198.19.0.2'))).toBe(false);
  });

  it('registry mode: the device address takes the network\'s length, so the hosts\' subnets need no route; a static peer outside does', () => {
    const { routes } = setup(['10.100.7.1/16']);
    expect([...routes.wanted([peer('h1', ['10.100.3.0/24']), peer('h2', ['10.100.200.0/24']), peer('static', ['10.2.0.0/16'])])]).toEqual(['10.2.0.0/16']);
  });
});
