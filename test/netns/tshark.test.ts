// overlayfwd's VXLAN packets as tshark's dissector sees them: captured on A's underlay veth while
// A pings B across the overlay (B is the kernel VXLAN device), then read back field by field.
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import { primeCapture, stopCapture } from '../helpers/capture';
import { describeNetns } from '../helpers/env';
import { startForwarder } from '../helpers/overlay';

const VNI = 4242;

interface Row {
  vni: string;
  flags: string;
  flagsReserved: string;
  reserved8: string;
  srcport: number;
  dstport: number;
  protocols: string;
  payload: string;
  ipSrc: string;
  innerDstport: number | null;
  /** UDP length field (header included). */
  udpLength: number;
  /** Total length of the inner IP packet (null for ARP). */
  innerIpLength: number | null;
}

const PRIMER_PORT = 19999;
const FLOW_PORTS = Array.from({ length: 16 }, (_, i) => 20000 + i);

describeNetns('VXLAN on the wire, dissected by tshark', { tools: ['tshark', 'ethtool'] }, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let rows: Row[];

  beforeAll(async () => {
    lab = await Lab.create();
    [a, b] = await lab.pair('a', 'b');
    await startForwarder(lab, { host: a, address: `${overlayAddress(1)}/24`, peers: [{ name: 'b', endpoint: b.underlay }], vni: VNI });
    await lab.kernelVxlan(b, { vni: VNI, remotes: [a.underlay], addresses: [`${overlayAddress(2)}/24`] });

    // The capture should show packets as they go on the wire. veth takes UDP GSO batches whole,
    // and a tap on it would see one super-datagram where a NIC sends several: segment in software.
    await lab.exec(a, 'ethtool', ['-K', a.underlayDev, 'tx-udp-segmentation', 'off', 'tso', 'off', 'gso', 'off']);
    const file = path.join(lab.tmpdir(), 'vxlan.pcapng');
    // -P: also print a summary line per packet, so we can tell when the capture is really live.
    const capture = lab.spawn(a, 'tshark', ['-n', '-l', '-P', '-i', a.underlayDev, '-w', file, '-f', `udp dst port 4789 and src host ${a.underlay}`]);
    await capture.waitForOutput(/Capturing on/, 30_000);
    const udp = (ports: number[]) =>
      `import socket\nfor p in [${ports.join(',')}]:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.bind(('${overlayAddress(1)}', p))\n    s.sendto(b'flow', ('${overlayAddress(2)}', p))\n    s.close()\n`;
    // Prime until the first packet shows up (this also resolves ARP).
    const primed = await primeCapture(capture, 'the primer', () => lab.exec(a, 'python3', ['-c', udp([PRIMER_PORT])]));
    const ping = await lab.ping(a, overlayAddress(2), { count: 5, intervalSec: 0.1 });
    expect(ping.received).toBe(5);
    // 16 UDP flows with different ports: the outer source port is a hash of the inner flow.
    await lab.exec(a, 'python3', ['-c', udp(FLOW_PORTS)]);
    await stopCapture(capture, 'the pings and the UDP flows', primed + ping.received + FLOW_PORTS.length);

    const fields = ['vxlan.vni', 'vxlan.flags', 'vxlan.flags_reserved', 'vxlan.reserved8', 'udp.srcport', 'udp.dstport', 'frame.protocols', 'udp.payload', 'ip.src', 'udp.length', 'ip.len'];
    const { stdout } = await lab.exec(a, 'tshark', ['-n', '-r', file, '-d', 'udp.port==4789,vxlan', '-T', 'fields', '-E', 'separator=/t', '-E', 'aggregator=|', ...fields.flatMap((f) => ['-e', f])]);
    rows = stdout
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        const [vni, flags, flagsReserved, reserved8, srcport, dstport, protocols, payload, ipSrc, udpLength, ipLen] = l.split('\t').map((f) => f.split('|'));
        return {
          vni: vni?.[0] ?? '',
          flags: flags?.[0] ?? '',
          flagsReserved: flagsReserved?.[0] ?? '',
          reserved8: reserved8?.[0] ?? '',
          srcport: Number(srcport?.[0]),
          dstport: Number(dstport?.[0]),
          innerDstport: dstport?.[1] ? Number(dstport[1]) : null,
          protocols: protocols?.[0] ?? '',
          payload: payload?.[0] ?? '',
          ipSrc: ipSrc?.[0] ?? '',
          udpLength: Number(udpLength?.[0]),
          innerIpLength: ipLen?.[1] ? Number(ipLen[1]) : null,
        };
      });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('captured one VXLAN packet per UDP datagram', () => {
    for (const r of rows.filter((x) => x.innerIpLength !== null)) {
      const frame = r.udpLength - 8 - 8; // UDP header, VXLAN header
      expect(frame).toBeGreaterThanOrEqual(r.innerIpLength! + 14);
      expect(frame).toBeLessThanOrEqual(Math.max(60, r.innerIpLength! + 14)); // at most padded to the minimum
    }
  });

  it('captured overlayfwd packets', () => {
    // primer(s) + 5 echo requests + 16 UDP flows (+ ARP)
    expect(rows.length).toBeGreaterThanOrEqual(22);
    for (const r of rows) expect(r.ipSrc).toBe(a.underlay);
  });

  it('carries the configured VNI and only the I flag', () => {
    for (const r of rows) {
      expect(r.vni).toBe(String(VNI));
      expect(r.flags).toBe('0x0800'); // tshark's 16-bit flags field: I flag only
      expect(Number(r.flagsReserved)).toBe(0);
      expect(Number(r.reserved8)).toBe(0);
      // The raw 8-byte header: flags word 0x08000000, VNI, reserved byte 0.
      const hdr = r.payload.slice(0, 16);
      expect(hdr.slice(0, 8)).toBe('08000000');
      expect(parseInt(hdr.slice(8, 14), 16)).toBe(VNI);
      expect(hdr.slice(14, 16)).toBe('00');
    }
  });

  it('sends to UDP port 4789 from a source port in 49152-65535', () => {
    for (const r of rows) {
      expect(r.dstport).toBe(4789);
      expect(r.srcport).toBeGreaterThanOrEqual(49152);
      expect(r.srcport).toBeLessThanOrEqual(65535);
    }
  });

  it('derives the source port from the inner flow', () => {
    const icmp = rows.filter((r) => r.protocols.endsWith(':icmp:data') || r.protocols.endsWith(':icmp'));
    // One ping run is one flow: one source port.
    expect(new Set(icmp.map((r) => r.srcport)).size).toBe(1);
    const udp = rows.filter((r) => /vxlan:eth:ethertype:ip:udp/.test(r.protocols) && FLOW_PORTS.includes(r.innerDstport ?? -1));
    expect(udp.length).toBe(16);
    expect(new Set(udp.map((r) => r.srcport)).size).toBeGreaterThan(1);
  });

  it('encapsulates frames that dissect as eth/ip/icmp', () => {
    const icmp = rows.filter((r) => r.protocols.includes('udp:vxlan:eth:ethertype:ip:icmp'));
    expect(icmp.length).toBe(5);
  });
});
