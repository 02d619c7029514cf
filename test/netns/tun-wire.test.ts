// The raw-IP modes on the wire and under hostile input: GRE (IP protocol 47) and IP-in-IP
// (protocols 4 and 41) between two overlayfwd hosts with TUN devices.
//
// 1. tshark dissects what A sends: the outer protocol, GRE flags/version/key/protocol type, the
//    inner addresses, and the outer header rules of RFC 2003/6040: the DSCP and ECN copied from
//    the inner packet, DF copied from it, TTL 64.
// 2. Crafted packets from B's namespace (a raw socket: the kernel writes a genuine outer header)
//    to A: each bad kind is dropped under its reason with exact counts and never delivered, valid
//    ones are delivered; and an inner packet addressed to the peer's own underlay address is a
//    routing loop, refused on the way out.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { Counters, DropReason } from '../../lib/types';
import { primeCapture, stopCapture } from '../helpers/capture';
import { watchDevice } from '../helpers/device-watch';
import { describeNetns, sleep, waitFor } from '../helpers/env';
import { delta } from '../helpers/overlay';
import { bit, INNER6, movedDrops, overlayPair } from '../helpers/pair';
import type { Pair } from '../helpers/pair';
import { gre, ipv4Echo, ipv6Echo, sendRawPackets } from '../helpers/raw-ip';

const KEY = 5;
const STRANGER = '198.18.0.99';

function tunPair(lab: Lab, encap: Record<string, unknown>, extraRoutesToB: string[] = []): Promise<Pair> {
  // A prefix that holds B's underlay address would get a kernel route (device.routes auto) that
  // sends A's own tunnel packets to B into the tunnel: the loop the data path's check is tested
  // for here comes from B's packets, so A routes by hand (that is, not at all) then.
  return overlayPair(lab, { device: 'tun', encap, extraRoutesToB, ...(extraRoutesToB.length > 0 ? { routes: 'off' as const } : {}) });
}

/**
 * Captures A's outgoing packets matching `filter` while `traffic` runs, which sends at least
 * `expected` of them; returns tshark's fields per packet of the traffic. The capture is primed
 * with pings to B (which the filter takes: A's tunnel packets), skipped in the result.
 */
async function captureFields(lab: Lab, host: Host, filter: string, fields: string[], expected: number, traffic: () => Promise<void>): Promise<string[][][]> {
  const file = path.join(lab.tmpdir(), `capture-${Date.now()}.pcapng`);
  const capture = lab.spawn(host, 'tshark', ['-n', '-l', '-P', '-i', host.underlayDev, '-w', file, '-f', filter]);
  await capture.waitForOutput(/Capturing on/, 30_000);
  const primed = await primeCapture(capture, filter, () => lab.ping(host, overlayAddress(2), { count: 1, timeoutSec: 1 }));
  await traffic();
  await stopCapture(capture, filter, primed + expected);
  const { stdout } = await lab.exec(host, 'tshark', ['-n', '-r', file, '-T', 'fields', '-E', 'separator=/t', '-E', 'aggregator=|', ...fields.flatMap((f) => ['-e', f])]);
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .slice(primed)
    .map((l) => l.split('\t').map((f) => f.split('|')));
}

interface Case {
  what: string;
  payload: Buffer;
  protocol?: number;
  src?: string;
  reason: DropReason | null;
}

/**
 * Sends each case from B, one at a time, and checks A's counters move exactly as the case says,
 * and that tcpdump on A's device sees the packet arrive exactly when it is a valid one (every
 * crafted inner packet is an ICMP echo).
 */
async function expectVerdicts(lab: Lab, p: Pair, cases: Case[], protocol: number): Promise<void> {
  const device = await watchDevice(lab, p.a, 'ovl0', 'icmp or icmp6');
  const results: unknown[] = [];
  const wanted: unknown[] = [];
  for (const c of cases) {
    const before = p.A.stats().totals;
    const mark = device.mark();
    await sendRawPackets(lab, p.b, p.a.underlay, [{ src: c.src ?? p.b.underlay, protocol: c.protocol ?? protocol, payload: c.payload }]);
    const done = (d: Counters) => (c.reason === null ? d.rxPackets >= 1 : (d.drops[c.reason] ?? 0) >= 1);
    await waitFor(() => done(delta(p.A.stats().totals, before)), c.what, 10_000).catch(() => undefined);
    if (c.reason === null) await device.waitSince(mark, 1, `${c.what} on the device`).catch(() => undefined);
    await sleep(100);
    const d = delta(p.A.stats().totals, before);
    results.push({ what: c.what, delivered: d.rxPackets, drops: movedDrops(d), onDevice: device.since(mark).length });
    wanted.push({ what: c.what, delivered: c.reason === null ? 1 : 0, drops: c.reason === null ? {} : { [c.reason]: 1 }, onDevice: c.reason === null ? 1 : 0 });
  }
  expect(results).toEqual(wanted);
}

describeNetns('raw-IP modes on TUN: the wire and hostile input', { tools: ['tshark', 'ping', 'python3', 'tcpdump'] }, () => {
  describe('gre with key 5', () => {
    let lab: Lab;
    let p: Pair;

    beforeAll(async () => {
      lab = await Lab.create();
      // 198.18.0.2/32 (B's own underlay address) is routed into the tunnel: the loop case.
      p = await tunPair(lab, { type: 'gre', key: KEY }, ['198.18.0.2/32']);
      await lab.ip(p.b, ['addr', 'add', `${STRANGER}/24`, 'dev', p.b.underlayDev]);
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('sends GRE version 0 with K only, key 5, protocol 0x0800/0x86DD, outer DSCP/ECN and DF from the inner packet', async () => {
      const fields = ['ip.proto', 'ip.src', 'ip.dst', 'ip.dsfield', 'ip.flags.df', 'ip.ttl', 'gre.flags.checksum', 'gre.flags.key', 'gre.flags.sequence_number', 'gre.flags.version', 'gre.proto', 'gre.key', 'ipv6.src'];
      const rows = await captureFields(lab, p.a, `ip proto 47 and src host ${p.a.underlay}`, fields, 6, async () => {
        // DSCP EF (46) with ECT(0): tos 0xba; DF set by -M do.
        expect((await lab.exec(p.a, 'ping', ['-n', '-q', '-c', '2', '-i', '0.1', '-Q', '0xba', '-M', 'do', overlayAddress(2)])).code).toBe(0);
        expect((await lab.exec(p.a, 'ping', ['-n', '-q', '-c', '2', '-i', '0.1', '-M', 'dont', overlayAddress(2)])).code).toBe(0);
        expect((await lab.ping(p.a, INNER6[1], { count: 2, intervalSec: 0.1 })).received).toBe(2);
      });
      const v4 = rows.filter((r) => r[10]?.[0] === '0x0800');
      const v6 = rows.filter((r) => r[10]?.[0] === '0x86dd');
      expect(v4.length).toBe(4);
      expect(v6.length).toBeGreaterThanOrEqual(2);
      for (const r of [...v4, ...v6]) {
        expect(r[0]?.[0]).toBe('47');
        expect(r[1]?.[0]).toBe(p.a.underlay);
        expect(r[2]?.[0]).toBe(p.b.underlay);
        expect(r[5]?.[0]).toBe('64');
        // C, K, S and the version: K only, version 0.
        expect([bit(r[6]?.[0]), bit(r[7]?.[0]), bit(r[8]?.[0]), r[9]?.[0]]).toEqual([0, 1, 0, '0']);
        expect(Number(r[11]?.[0])).toBe(KEY);
      }
      // Inner addresses: the second ip.src is the inner one.
      for (const r of v4) expect(r[1]?.[1]).toBe(overlayAddress(1));
      for (const r of v6) expect(r[12]?.[0]).toBe(INNER6[0]);
      // The first two pings: tos 0xba and DF copied; the next two: tos 0, DF clear.
      expect(v4.map((r) => [r[3]?.[0], bit(r[4]?.[0])])).toEqual([
        ['0xba', 1],
        ['0xba', 1],
        ['0x00', 0],
        ['0x00', 0],
      ]);
    });

    it('drops each kind of bad packet under its reason and delivers the good ones', async () => {
      const from = overlayAddress(2);
      const to = overlayAddress(1);
      let seq = 0;
      const echo = (o: Parameters<typeof ipv4Echo>[2] = {}) => ipv4Echo(from, to, { seq: ++seq, ...o });
      const cases: Case[] = [
        { what: 'valid, IPv4 inside', payload: gre({ protocol: 0x0800, key: KEY }, echo()), reason: null },
        { what: 'valid, IPv6 inside', payload: gre({ protocol: 0x86dd, key: KEY }, ipv6Echo(INNER6[1], INNER6[0], { seq: ++seq })), reason: null },
        { what: 'valid, with a correct checksum', payload: gre({ protocol: 0x0800, key: KEY, checksum: 'good' }, echo()), reason: null },
        { what: 'valid, reserved bits 6-12 set (ignored)', payload: gre({ protocol: 0x0800, key: KEY, flags: 0x0200 }, echo()), reason: null },
        { what: 'a wrong checksum', payload: gre({ protocol: 0x0800, key: KEY, checksum: 'bad' }, echo()), reason: 'badChecksum' },
        { what: 'no key', payload: gre({ protocol: 0x0800 }, echo()), reason: 'wrongKey' },
        { what: 'another key', payload: gre({ protocol: 0x0800, key: 6 }, echo()), reason: 'wrongKey' },
        { what: 'version 1', payload: gre({ protocol: 0x0800, key: KEY, version: 1 }, echo()), reason: 'malformed' },
        { what: 'reserved bit 1 (routing) set', payload: gre({ protocol: 0x0800, key: KEY, flags: 0x4000 }, echo()), reason: 'malformed' },
        { what: 'truncated GRE header', payload: Buffer.from([0x20, 0x00]), reason: 'malformed' },
        { what: 'Ethernet (0x6558) on a TUN device', payload: gre({ protocol: 0x6558, key: KEY }, Buffer.concat([Buffer.alloc(14), echo()])), reason: 'malformed' },
        { what: 'protocol 0x0800 with IPv6 inside', payload: gre({ protocol: 0x0800, key: KEY }, ipv6Echo(INNER6[1], INNER6[0])), reason: 'malformed' },
        { what: 'inner IPv4 header cut short', payload: gre({ protocol: 0x0800, key: KEY }, echo().subarray(0, 12)), reason: 'malformed' },
        { what: 'inner total length beyond the packet', payload: gre({ protocol: 0x0800, key: KEY }, echo({ totalLength: 200 })), reason: 'malformed' },
        { what: 'inner TTL 0', payload: gre({ protocol: 0x0800, key: KEY }, echo({ ttl: 0 })), reason: 'ttlExpired' },
        { what: 'inner hop limit 0', payload: gre({ protocol: 0x86dd, key: KEY }, ipv6Echo(INNER6[1], INNER6[0], { ttl: 0 })), reason: 'ttlExpired' },
        { what: 'spoofed inner source', payload: gre({ protocol: 0x0800, key: KEY }, ipv4Echo('198.19.0.99', to)), reason: 'spoofed' },
        { what: "inner source = A's own address", payload: gre({ protocol: 0x0800, key: KEY }, ipv4Echo(to, to)), reason: 'spoofed' },
        { what: 'spoofed inner IPv6 source', payload: gre({ protocol: 0x86dd, key: KEY }, ipv6Echo('fd00:198:19::99', INNER6[0])), reason: 'spoofed' },
        { what: 'from an underlay address that is no peer', payload: gre({ protocol: 0x0800, key: KEY }, echo()), src: STRANGER, reason: 'unknownPeer' },
      ];
      await expectVerdicts(lab, p, cases, 47);
      // Pings still work afterwards.
      expect((await lab.ping(p.a, overlayAddress(2), { count: 2, intervalSec: 0.05 })).received).toBe(2);
    });

    it("refuses to encapsulate a packet for the peer's own underlay address (a routing loop)", async () => {
      const before = p.A.stats().totals;
      const r = await lab.exec(p.a, 'ping', ['-n', '-c', '2', '-i', '0.1', '-W', '1', '-I', 'ovl0', p.b.underlay], { allowFailure: true });
      expect(r.code).not.toBe(0);
      await sleep(100);
      const d = delta(p.A.stats().totals, before);
      expect(movedDrops(d)).toEqual({ loop: 2 });
      expect(d.txPackets).toBe(0);
    });
  });

  describe('gre with sequence numbers (RFC 2890)', () => {
    let lab: Lab;
    let p: Pair;

    beforeAll(async () => {
      lab = await Lab.create();
      p = await tunPair(lab, { type: 'gre', sequence: true });
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('sends S with a sequence number that grows by one per packet', async () => {
      const rows = await captureFields(lab, p.a, `ip proto 47 and src host ${p.a.underlay}`, ['gre.flags.sequence_number', 'gre.sequence_number', 'gre.flags.key'], 4, async () => {
        expect((await lab.ping(p.a, overlayAddress(2), { count: 4, intervalSec: 0.05 })).received).toBe(4);
      });
      expect(rows.length).toBeGreaterThanOrEqual(4);
      const sequences = rows.map((r) => Number(r[1]?.[0]));
      for (const r of rows) expect([bit(r[0]?.[0]), bit(r[2]?.[0])]).toEqual([1, 0]);
      for (let i = 1; i < sequences.length; i++) expect(sequences[i]).toBe(sequences[i - 1]! + 1);
    });

    it('delivers newer sequence numbers and drops missing, repeated and older ones', async () => {
      const from = overlayAddress(2);
      const to = overlayAddress(1);
      let seq = 100;
      const echo = () => ipv4Echo(from, to, { seq: ++seq });
      const cases: Case[] = [
        { what: 'sequence 1000', payload: gre({ protocol: 0x0800, sequence: 1000 }, echo()), reason: null },
        { what: 'sequence 1000 again', payload: gre({ protocol: 0x0800, sequence: 1000 }, echo()), reason: 'outOfOrder' },
        { what: 'sequence 999 (older)', payload: gre({ protocol: 0x0800, sequence: 999 }, echo()), reason: 'outOfOrder' },
        { what: 'no sequence number', payload: gre({ protocol: 0x0800 }, echo()), reason: 'malformed' },
        { what: 'sequence 1001', payload: gre({ protocol: 0x0800, sequence: 1001 }, echo()), reason: null },
        { what: 'sequence 5000 (a gap is fine)', payload: gre({ protocol: 0x0800, sequence: 5000 }, echo()), reason: null },
        { what: 'sequence 4999 after it', payload: gre({ protocol: 0x0800, sequence: 4999 }, echo()), reason: 'outOfOrder' },
      ];
      await expectVerdicts(lab, p, cases, 47);
    });
  });

  describe('gre-udp: the outer DSCP and ECN (RFC 6040) in a UDP mode', () => {
    let lab: Lab;
    let p: Pair;

    beforeAll(async () => {
      lab = await Lab.create();
      p = await tunPair(lab, { type: 'gre-udp' });
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('copies the inner DSCP and ECN into the outer IPv4 header', async () => {
      const rows = await captureFields(lab, p.a, `udp dst port 4754 and src host ${p.a.underlay}`, ['ip.dsfield'], 4, async () => {
        expect((await lab.exec(p.a, 'ping', ['-n', '-q', '-c', '2', '-i', '0.1', '-Q', '0xba', overlayAddress(2)])).code).toBe(0);
        expect((await lab.exec(p.a, 'ping', ['-n', '-q', '-c', '2', '-i', '0.1', overlayAddress(2)])).code).toBe(0);
      });
      // Outer first, inner second: the same byte, then 0 for the plain pings.
      expect(rows.map((r) => r[0])).toEqual([
        ['0xba', '0xba'],
        ['0xba', '0xba'],
        ['0x00', '0x00'],
        ['0x00', '0x00'],
      ]);
    });

    it('drops outer CE over a Not-ECT inner packet and delivers it over an ECN-capable one', async () => {
      const from = overlayAddress(2);
      const to = overlayAddress(1);
      const send = async (innerTos: number, seq: number) => {
        const payload = gre({ protocol: 0x0800 }, ipv4Echo(from, to, { tos: innerTos, seq }));
        const script = `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 3)\ns.bind(('${p.b.underlay}', 0))\ns.sendto(bytes.fromhex('${payload.toString('hex')}'), ('${p.a.underlay}', 4754))\n`;
        const before = p.A.stats().totals;
        await lab.exec(p.b, 'python3', ['-c', script]);
        const arrived = () => delta(p.A.stats().totals, before);
        await waitFor(() => {
          const d = arrived();
          return d.rxPackets + d.drops.ecn >= 1;
        }, `the datagram with inner tos ${innerTos}`, 10_000).catch(() => undefined);
        await sleep(100); // nothing more may come
        const d = arrived();
        return { delivered: d.rxPackets, drops: movedDrops(d) };
      };
      expect(await send(0x00, 1)).toEqual({ delivered: 0, drops: { ecn: 1 } });
      expect(await send(0x02, 2)).toEqual({ delivered: 1, drops: {} });
    });
  });

  describe('ipip', () => {
    let lab: Lab;
    let p: Pair;

    beforeAll(async () => {
      lab = await Lab.create();
      p = await tunPair(lab, { type: 'ipip' });
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('sends IPv4 in protocol 4 and IPv6 in protocol 41, with the inner packet right behind the outer header', async () => {
      const rows = await captureFields(lab, p.a, `(ip proto 4 or ip proto 41) and src host ${p.a.underlay}`, ['ip.proto', 'ip.src', 'ip.ttl', 'ipv6.src', 'ipv6.dst', 'frame.protocols'], 4, async () => {
        expect((await lab.ping(p.a, overlayAddress(2), { count: 2, intervalSec: 0.1 })).received).toBe(2);
        expect((await lab.ping(p.a, INNER6[1], { count: 2, intervalSec: 0.1 })).received).toBe(2);
      });
      const v4 = rows.filter((r) => r[0]?.[0] === '4');
      const v6 = rows.filter((r) => r[0]?.[0] === '41');
      expect(v4.length).toBe(2);
      expect(v6.length).toBeGreaterThanOrEqual(2);
      for (const r of v4) {
        expect(r[1]).toEqual([p.a.underlay, overlayAddress(1)]);
        expect(r[5]?.[0]).toMatch(/ip:ip:icmp/);
      }
      for (const r of v6) {
        expect(r[1]?.[0]).toBe(p.a.underlay);
        expect(r[3]?.[0]).toBe(INNER6[0]);
        expect(r[4]?.[0]).toBe(INNER6[1]);
      }
    });

    it('drops each kind of bad packet under its reason and delivers the good ones', async () => {
      const from = overlayAddress(2);
      const to = overlayAddress(1);
      const cases: Case[] = [
        { what: 'valid IPv4 in protocol 4', payload: ipv4Echo(from, to, { seq: 1 }), protocol: 4, reason: null },
        { what: 'valid IPv6 in protocol 41', payload: ipv6Echo(INNER6[1], INNER6[0], { seq: 2 }), protocol: 41, reason: null },
        { what: 'IPv6 in protocol 4', payload: ipv6Echo(INNER6[1], INNER6[0]), protocol: 4, reason: 'malformed' },
        { what: 'IPv4 in protocol 41', payload: ipv4Echo(from, to), protocol: 41, reason: 'malformed' },
        { what: 'an empty payload', payload: Buffer.alloc(0), protocol: 4, reason: 'malformed' },
        { what: 'inner TTL 0', payload: ipv4Echo(from, to, { ttl: 0 }), protocol: 4, reason: 'ttlExpired' },
        { what: 'spoofed inner source', payload: ipv4Echo('198.19.0.77', to), protocol: 4, reason: 'spoofed' },
        { what: 'spoofed inner IPv6 source', payload: ipv6Echo('fd00:198:19::77', INNER6[0]), protocol: 41, reason: 'spoofed' },
      ];
      await expectVerdicts(lab, p, cases, 4);
    });
  });
});
