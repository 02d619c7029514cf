// A TAP overlay keeps its identity across a restart, and says where its addresses are.
//
// Host A's overlayfwd is stopped and started again with the same config while host B (overlayfwd
// too) pings A's overlay address: A's device comes back with the same MAC (derived from the
// machine ID, lib/device-mac.ts), so B's neighbour entry for A stays valid and the ping resumes
// at once instead of after B's entry times out (about 13 s with a fresh random MAC per start).
// A's gratuitous ARP at start reaches B's device (tshark on B's ovl0), and moves B's neighbour
// entry at once when the MAC did change (a new device.mac). Addresses added to A's device
// after start are announced too: IPv4 with a gratuitous ARP, IPv6 with an unsolicited Neighbor
// Advertisement once duplicate address detection is done.
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab, overlayAddress, type Host, type LabProcess } from '../../lab';
import { chooseDeviceMac } from '../../lib/device-mac';
import type { AnnounceEvent, Overlay } from '../../lib/overlay';
import { primeCapture, stopCapture } from '../helpers/capture';
import { describeNetns, sleep, waitFor } from '../helpers/env';
import { forwarderConfig, loadOverlay, startForwarder, type OverlayClass } from '../helpers/overlay';
import { enableIpv6 } from '../helpers/pair';
import { sendDatagrams } from '../helpers/udp';

const bare = (mac: string) => mac.replace(/:/g, '');

const A_IP = overlayAddress(1);
const B_IP = overlayAddress(2);
/** How long A stays down between stop and start. */
const DOWN_MS = 1000;
/** The ping must be back this soon after A's start returned ("about a second"). */
const RECOVERY_LIMIT_MS = 1500;

interface Neighbour {
  lladdr?: string;
  state?: string[];
}

async function neighbour(lab: Lab, host: Host, address: string): Promise<Neighbour | undefined> {
  const { stdout } = await lab.ip(host, ['-j', 'neigh', 'show', address, 'dev', 'ovl0']);
  return (JSON.parse(stdout || '[]') as Neighbour[])[0];
}

/** Reply times (ms since the epoch) of a `ping -D` running in the lab. */
function replyTimes(pinger: LabProcess): number[] {
  return [...pinger.stdout.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Number(m[1]) * 1000);
}

interface Frame {
  time: number;
  src: string;
  fields: string[];
}

/** tshark writing what B's overlay device receives to a file, read back with -T fields. */
async function captureOnB(lab: Lab, b: Host, name: string): Promise<{ stop: (fields: string[]) => Promise<Frame[]> }> {
  const file = path.join(lab.tmpdir(), `${name}.pcap`);
  // UDP to port 9 only to prime the capture: B's datagrams to A carry no ARP or ICMPv6 fields.
  const capture = lab.spawn(b, 'tshark', ['-n', '-l', '-P', '-i', 'ovl0', '-F', 'pcap', '-w', file, '-f', 'arp or icmp6 or udp dst port 9']);
  await capture.waitForOutput(/Capturing on/, 30_000);
  await primeCapture(capture, "B's ARP and ICMPv6", () => sendDatagrams(lab, b, A_IP, 9, [{ src: B_IP, payload: Buffer.from('prime') }]));
  return {
    stop: async (fields) => {
      await stopCapture(capture, "B's ARP and ICMPv6", 1);
      const all = ['frame.time_epoch', 'eth.src', ...fields];
      const { stdout } = await lab.exec(b, 'tshark', ['-n', '-r', file, '-T', 'fields', '-E', 'separator=/t', ...all.flatMap((f) => ['-e', f])]);
      return stdout
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => l.split('\t'))
        // Booleans print as True/False or 1/0 depending on tshark's version; bytes with or without colons.
        .map(([time, src, ...rest]) => ({ time: Number(time) * 1000, src: src ?? '', fields: rest.map((v) => (v === 'True' ? '1' : v === 'False' ? '0' : v)) }));
    },
  };
}

const ARP_FIELDS = ['arp.opcode', 'arp.isgratuitous', 'arp.src.proto_ipv4', 'arp.dst.proto_ipv4', 'arp.src.hw_mac', 'eth.dst'];

describeNetns('a stable TAP identity across restarts, and announced addresses', { tools: ['ping', 'tshark'] }, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let B: Overlay;
  let Overlay: OverlayClass;
  let configA: Record<string, unknown>;
  const running = new Set<Overlay>();

  const startA = async (config: Record<string, unknown> = configA): Promise<Overlay> => {
    const ov = await Overlay.create(config);
    running.add(ov);
    return ov;
  };
  const stopA = async (ov: Overlay): Promise<void> => {
    await ov.close();
    running.delete(ov);
  };

  beforeAll(async () => {
    lab = await Lab.create();
    [a, b] = await lab.pair('a', 'b');
    Overlay = await loadOverlay();
    B = await startForwarder(lab, { host: b, address: `${B_IP}/24`, peers: [{ name: 'a', endpoint: a.underlay }] });
    configA = forwarderConfig(lab, { host: a, address: `${A_IP}/24`, peers: [{ name: 'b', endpoint: b.underlay }] });
    lab.onDestroy(async () => {
      for (const ov of running) await ov.close();
    });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('restarted under a ping: same MAC, B keeps a valid neighbour entry, the ping resumes within about a second, B sees the gratuitous ARP', async () => {
    let A = await startA();
    const mac = A.device.mac;
    expect(mac).toBe(await lab.macOf(a, 'ovl0'));
    expect(mac).toBe(chooseDeviceMac(A.config).mac);
    expect(parseInt(mac.slice(0, 2), 16) & 0x03, 'locally administered unicast').toBe(0x02);
    expect((await lab.ping(b, A_IP, { count: 3, intervalSec: 0.05 })).received).toBe(3);
    expect((await neighbour(lab, b, A_IP))?.lladdr).toBe(mac);

    const capture = await captureOnB(lab, b, 'restart');
    const pinger = lab.spawn(b, 'ping', ['-D', '-n', '-i', '0.05', A_IP]);
    await waitFor(() => replyTimes(pinger).length >= 5, 'replies before the restart');

    await stopA(A);
    await sleep(DOWN_MS);
    const startedAt = Date.now();
    const announced: AnnounceEvent[] = [];
    A = await startA();
    const upAt = Date.now();
    A.on('announce', (e) => announced.push(e));
    await waitFor(() => replyTimes(pinger).some((t) => t >= upAt), 'a reply after the restart', 30_000);
    const recovery = replyTimes(pinger).find((t) => t >= upAt)! - upAt;
    const gap = recovery + (upAt - startedAt) + DOWN_MS;
    console.log(`[stable-mac] ping back ${recovery.toFixed(0)} ms after the restarted overlay was up (start took ${upAt - startedAt} ms; ${gap.toFixed(0)} ms without replies in all)`);
    pinger.kill('SIGINT');
    await pinger.wait(5000);

    expect(A.device.mac).toBe(mac);
    expect(recovery).toBeLessThan(RECOVERY_LIMIT_MS);
    const entry = await neighbour(lab, b, A_IP);
    expect(entry?.lladdr).toBe(mac);
    expect(entry?.state?.some((s) => ['FAILED', 'INCOMPLETE'].includes(s)), JSON.stringify(entry)).toBe(false);
    // B learned one MAC behind A, not one per start.
    expect(B.fdb().filter((e) => e.peer === 'a' && !e.static).map((e) => e.mac)).toEqual([mac]);

    const frames = await capture.stop(ARP_FIELDS);
    const garps = frames.filter((f) => f.time >= startedAt - 50 && f.fields[1] === '1' && f.fields[2] === A_IP);
    expect(garps.length, JSON.stringify(frames)).toBeGreaterThanOrEqual(1);
    // A request (1) to the broadcast address, from A's MAC, for A's own address.
    expect(garps[0]!.src).toBe(mac);
    expect(garps[0]!.fields).toEqual(['1', '1', A_IP, A_IP, mac, 'ff:ff:ff:ff:ff:ff']);
    expect(A.stats().generated.announcements).toBe(1);
    expect(A.stats().generated.announceFailures).toBe(0);
    expect(announced).toEqual([{ address: A_IP, family: 4, kind: 'gratuitousArp', when: 'start' }]);
    await stopA(A);
  });

  it('a changed MAC (a new device.mac): the gratuitous ARP moves B\'s neighbour entry at once', async () => {
    let A = await startA();
    expect((await lab.ping(b, A_IP, { count: 3, intervalSec: 0.05 })).received).toBe(3);
    const before = A.device.mac;
    expect((await neighbour(lab, b, A_IP))?.lladdr).toBe(before);
    const pinger = lab.spawn(b, 'ping', ['-D', '-n', '-i', '0.05', A_IP]);
    await waitFor(() => replyTimes(pinger).length >= 5, 'replies before the restart');
    await stopA(A);
    await sleep(DOWN_MS);
    const other = '02:00:5e:10:00:01';
    A = await startA({ ...configA, device: { ...(configA.device as object), mac: other } });
    const upAt = Date.now();
    await waitFor(() => replyTimes(pinger).some((t) => t >= upAt), 'a reply after the restart', 30_000);
    const recovery = replyTimes(pinger).find((t) => t >= upAt)! - upAt;
    console.log(`[stable-mac] new MAC: ping back ${recovery.toFixed(0)} ms after the restarted overlay was up`);
    pinger.kill('SIGINT');
    await pinger.wait(5000);
    expect(A.device.mac).toBe(other);
    expect(recovery).toBeLessThan(RECOVERY_LIMIT_MS);
    expect((await neighbour(lab, b, A_IP))?.lladdr).toBe(other);
    await stopA(A);
  });

  it('addresses added after start are announced: IPv4 by a gratuitous ARP, IPv6 by an unsolicited NA once out of DAD', async () => {
    const A = await startA();
    const mac = A.device.mac;
    const events: AnnounceEvent[] = [];
    A.on('announce', (e) => events.push(e));
    await waitFor(() => events.some((e) => e.when === 'start'), 'the start announcement');
    const capture = await captureOnB(lab, b, 'added');

    const extra4 = '198.19.1.1';
    await lab.addAddress(a, 'ovl0', `${extra4}/24`);
    // IPv6 on: the link-local address goes through DAD first; the ULA one is added without.
    await enableIpv6(lab, a, 'ovl0', 'fd00:198:19::1');
    await waitFor(() => events.filter((e) => e.when === 'added').length >= 3, 'three added addresses announced', 15_000);
    // The kernel's refreshes of known addresses (flags, lifetimes) announce nothing more.
    await lab.ip(a, ['addr', 'change', `${extra4}/24`, 'dev', 'ovl0', 'valid_lft', '1000', 'preferred_lft', '1000']);
    await sleep(500);

    const added = events.filter((e) => e.when === 'added');
    const linkLocal = added.find((e) => e.address.startsWith('fe80:'))?.address;
    expect(added.map((e) => [e.address, e.kind, e.error])).toEqual(
      expect.arrayContaining([
        [extra4, 'gratuitousArp', undefined],
        ['fd00:198:19::1', 'unsolicitedNa', undefined],
        [linkLocal, 'unsolicitedNa', undefined],
      ]),
    );
    expect(added).toHaveLength(3);
    expect(A.stats().generated.announcements).toBe(1 + 3);

    const fields = [...ARP_FIELDS, 'icmpv6.type', 'icmpv6.nd.na.target_address', 'icmpv6.nd.na.flag.o', 'icmpv6.nd.na.flag.s', 'icmpv6.opt.target_linkaddr', 'icmpv6.checksum.status', 'ipv6.src', 'ipv6.dst', 'ipv6.hlim'];
    const frames = (await capture.stop(fields)).filter((f) => f.src === mac);
    const garp = frames.filter((f) => f.fields[1] === '1' && f.fields[2] === extra4);
    expect(garp, JSON.stringify(frames)).toHaveLength(1);
    const nas = frames.filter((f) => f.fields[6] === '136');
    for (const target of ['fd00:198:19::1', linkLocal!]) {
      const na = nas.filter((f) => f.fields[7] === target);
      expect(na, `NA for ${target}: ${JSON.stringify(frames)}`).toHaveLength(1);
      // Override set, Solicited clear, A's MAC as the target link-layer address, checksum good
      // (tshark's status 1), from the target to all-nodes with hop limit 255.
      const [override, solicited, linkAddress, ...rest] = na[0]!.fields.slice(8);
      expect([override, solicited, bare(linkAddress ?? ''), ...rest]).toEqual(['1', '0', bare(mac), '1', target, 'ff02::1', '255']);
    }
    await stopA(A);
  });
});
