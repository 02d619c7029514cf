// The modes with no independent peer on this machine (its kernel has no GRE, IP-in-IP or
// GRE-in-UDP module) against scapy as the reference on both sides (lab/helpers/scapy-reference.py):
//
// 1. Decapsulation: host b runs no forwarder; scapy there builds the encapsulation of a fixed set
//    of inner packets (IPv4 ICMP with DSCP/ECN bits, IPv4 UDP with DF, IPv6 ICMPv6 with a traffic
//    class and flow label) and sends it to A over TUN: each must come out of A's device exactly
//    as scapy put it inside, byte for byte, and be counted as received from b.
// 2. Encapsulation: what a's kernel answers (echo replies, an ICMP port unreachable, an ICMPv6
//    echo reply) A encapsulates toward b; scapy parses b's capture of it and builds the
//    encapsulation it expects for each inner packet seen on A's device: the two must be equal
//    byte for byte (outer header fields the RFCs fix, lengths and checksums, the GRE header, the
//    inner packet).
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import { helperPath } from '../../lab/system';
import { stopCapture } from '../helpers/capture';
import { describeNetns } from '../helpers/env';
import { peerCounters, startForwarder } from '../helpers/overlay';
import { enableIpv6, INNER6, movedDrops } from '../helpers/pair';

/** Debian's python3, which has the python3-scapy package (a python3 earlier on PATH may not). */
const SYSTEM_PYTHON = '/usr/bin/python3';
function scapyMissing(): string | null {
  try {
    if (fs.existsSync(SYSTEM_PYTHON) && fs.readdirSync('/usr/lib/python3/dist-packages').includes('scapy')) return null;
  } catch {
    // no dist-packages at all
  }
  return 'scapy is not installed for /usr/bin/python3 (apt-get install python3-scapy)';
}

interface CheckResult {
  device: string[];
  inner: string[];
  checked: number;
  mismatches: Array<{ expected: string; got: string }>;
  missing: string[];
}

const MODES = [{ type: 'gre-udp' }, { type: 'gre' }, { type: 'ipip' }] as const;

describeNetns('scapy as the reference peer of the modes no kernel module speaks', { tools: ['tcpdump'], also: scapyMissing }, () => {
  let lab: Lab | undefined;
  afterEach(async () => {
    await lab?.destroy();
    lab = undefined;
  });

  for (const encap of MODES) {
    it(`${encap.type}: scapy's packets decapsulate to exactly their inner packet, and what A sends is scapy's encapsulation byte for byte`, async () => {
      lab = await Lab.create();
      const [a, b] = await lab.pair('a', 'b');
      const A = await startForwarder(lab, {
        host: a,
        address: `${overlayAddress(1)}/24`,
        peers: [],
        extra: {
          device: { type: 'tun', name: 'ovl0', addresses: [`${overlayAddress(1)}/24`] },
          encap,
          peers: [{ name: 'b', endpoint: b.underlay, allowedIps: [`${overlayAddress(2)}/32`, `${INNER6[1]}/128`] }],
        },
      });
      await enableIpv6(lab, a, 'ovl0', INNER6[0]);
      // The veth would hand b the UDP checksum a's socket left to the device (a partial sum):
      // computed in full, as a NIC would, b's capture holds the checksum on the wire.
      await lab.disableTxChecksumOffload(a, a.underlayDev);
      const dir = lab.tmpdir();
      const innerPcap = path.join(dir, `${encap.type}-inner.pcap`);
      const outerPcap = path.join(dir, `${encap.type}-outer.pcap`);
      // --immediate-mode: without it tcpdump gets its packets from the kernel a second late and
      // loses what it has not got when it stops; --print -l: a line per packet, to wait on.
      const capture = (host: Host, dev: string, file: string, filter: string[]) =>
        lab!.spawn(host, 'tcpdump', ['-n', '-U', '--immediate-mode', '--print', '-l', '-i', dev, '-w', file, ...filter]);
      const onDevice = capture(a, 'ovl0', innerPcap, []);
      const onWire = capture(b, b.underlayDev, outerPcap, ['src', 'host', a.underlay]);
      await Promise.all([onDevice.waitForOutput(/listening on/, 20_000), onWire.waitForOutput(/listening on/, 20_000)]);
      const before = peerCounters(A.stats(), 'b');

      const sent = await lab.exec(b, SYSTEM_PYTHON, [helperPath('scapy-reference.py'), 'send', encap.type, b.underlay, a.underlay], { timeoutMs: 60_000 });
      const crafted = (JSON.parse(sent.stdout.trim().split('\n').pop()!) as { sent: string[] }).sent;
      // On A's device: the crafted packets and a's three answers; on b's wire: A's encapsulation of
      // the answers.
      await Promise.all([stopCapture(onDevice, "A's device", 2 * crafted.length), stopCapture(onWire, "b's underlay", crafted.length)]);

      const check = await lab.exec(a, SYSTEM_PYTHON, [helperPath('scapy-reference.py'), 'check', encap.type, outerPcap, innerPcap, a.underlay, b.underlay], { timeoutMs: 60_000 });
      const r = JSON.parse(check.stdout.trim().split('\n').pop()!) as CheckResult;
      console.log(`[scapy ${encap.type}] ${crafted.length} crafted, ${r.device.length} on A's device, ${r.checked} of A's checked against scapy's encapsulation`);

      // 1. Each crafted inner packet came out of A's device exactly, and was counted from b.
      for (const inner of crafted) expect(r.device).toContain(inner);
      const d = peerCounters(A.stats(), 'b');
      expect(d.rxPackets - before.rxPackets).toBe(crafted.length);
      // 2. A's answers (echo reply, port unreachable, ICMPv6 echo reply) are scapy's encapsulation.
      expect(r.missing).toEqual([]);
      expect(r.mismatches).toEqual([]);
      expect(r.checked).toBeGreaterThanOrEqual(3);
      expect(d.txPackets - before.txPackets).toBeGreaterThanOrEqual(r.checked);
      const { unreachable: _refused, ...others } = movedDrops(d);
      // (b runs no forwarder: its kernel may refuse A's packets, which A counts as unreachable.)
      expect(others).toEqual({});
    });
  }
});
