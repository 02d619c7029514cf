// The data path when the world misbehaves around it: the TAP device deleted by hand, the device
// set down, and an underlay whose MTU is smaller than the overlay assumes (UDP GSO trains the
// kernel refuses must still go out, one datagram at a time).
import { afterEach, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import type { HealthChange } from '../../lib/types';
import { describeNetns, sleep, waitFor } from '../helpers/env';
import { delta, peerCounters, startForwarder } from '../helpers/overlay';
import { ownThreads, ownThreadsCpu } from '../helpers/own-threads';
import { verifiedTransfer } from '../helpers/transfer';

interface Pair {
  lab: Lab;
  a: Host;
  b: Host;
  A: Overlay;
  B: Overlay;
}

async function makePair(extra: Record<string, unknown> = {}, underlayMtu?: number): Promise<Pair> {
  const lab = await Lab.create();
  try {
    const [a, b] = await lab.pair('a', 'b');
    if (underlayMtu !== undefined) {
      for (const host of [a, b]) {
        const links = await lab.links(host);
        for (const link of links.filter((l) => l !== 'lo')) await lab.ip(host, ['link', 'set', link, 'mtu', String(underlayMtu)]);
      }
    }
    const peer = (h: Host) => [{ name: h.label, endpoint: h.underlay }];
    const A = await startForwarder(lab, { host: a, address: `${overlayAddress(1)}/24`, peers: peer(b), extra });
    const B = await startForwarder(lab, { host: b, address: `${overlayAddress(2)}/24`, peers: peer(a), extra });
    return { lab, a, b, A, B };
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}

describeNetns('failure modes', { tools: ['ping'] }, () => {
  let p: Pair | undefined;
  afterEach(async () => {
    await p?.lab.destroy();
    p = undefined;
  });

  it('notices a device deleted under it, stops using it without spinning, and closes cleanly', async () => {
    p = await makePair();
    const { lab, a, A } = p;
    expect((await lab.ping(a, overlayAddress(2), { count: 2 })).received).toBe(2);
    expect(A.healthy).toBe(true);
    const health: HealthChange[] = [];
    A.on('healthChanged', (e) => health.push(e));
    await lab.ip(a, ['link', 'del', 'ovl0']);
    await waitFor(() => !A.healthy, 'overlay reports the lost device', 5_000);
    expect(A.stats().healthy).toBe(false);
    // The event follows within its once-a-second look, once.
    await waitFor(() => health.length > 0, 'the healthChanged event', 3_000);
    // A worker that kept polling a dead fd would burn a core here: measured on the workers' own
    // threads (not the whole process: on a loaded machine a spinning thread still gets a share).
    const workers = ownThreads('ovl-worker');
    expect(workers.length).toBeGreaterThan(0);
    const before = ownThreadsCpu('ovl-worker');
    const wall = Date.now();
    await sleep(1500);
    const used = ownThreadsCpu('ovl-worker') - before;
    // Idle, a worker wakes once a second: a few hundredths of a CPU second at most. Spinning, it
    // takes whatever share of a core the machine gives it, a third or more at a load of 6 on 2 cores.
    expect(used / ((Date.now() - wall) / 1000)).toBeLessThan(0.1);
    expect(health).toEqual([{ healthy: false, reason: expect.any(String) }]);
    await A.close();
    expect(A.closed).toBe(true);
  });

  it('counts frames it cannot write to a down device as drops, not as received', async () => {
    p = await makePair();
    const { lab, a, b, A } = p;
    expect((await lab.ping(b, overlayAddress(1), { count: 2 })).received).toBe(2);
    await lab.ip(a, ['link', 'set', 'ovl0', 'down']);
    const before = peerCounters(A.stats(), 'b');
    // B still knows A's MAC, so its pings arrive at A's worker, which cannot deliver them.
    await lab.exec(b, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', overlayAddress(1)], { allowFailure: true });
    const d = delta(peerCounters(A.stats(), 'b'), before);
    expect(d.rxPackets).toBe(0);
    expect(d.drops.deviceError + d.drops.queueFull).toBeGreaterThanOrEqual(3);
    await lab.ip(a, ['link', 'set', 'ovl0', 'up']);
    expect((await lab.ping(b, overlayAddress(1), { count: 2 })).received).toBeGreaterThanOrEqual(1);
    expect(delta(peerCounters(A.stats(), 'b'), before).rxPackets).toBeGreaterThanOrEqual(2);
  });

  it('carries TCP when the underlay MTU is below what the overlay MTU needs (the sender learns the path MTU)', async () => {
    // Overlay MTU 1450 needs a 1500-byte underlay; this one has 1400, so a full-size DF packet
    // (TCP sets DF) does not fit: it is answered with ICMP Fragmentation Needed (mtu 1364) and
    // counted as tooBig, and TCP carries on with smaller segments.
    p = await makePair({ device: { type: 'tap', name: 'ovl0', mtu: 1450, addresses: [] } }, 1400);
    const { lab, a, b, A, B } = p;
    await lab.ip(a, ['addr', 'add', `${overlayAddress(1)}/24`, 'dev', 'ovl0']);
    await lab.ip(b, ['addr', 'add', `${overlayAddress(2)}/24`, 'dev', 'ovl0']);
    expect(A.device.mtu).toBe(1450);
    const a0 = peerCounters(A.stats(), 'b');
    const r = await verifiedTransfer(lab, { from: a, to: b, address: overlayAddress(2), megabytes: 20, timeoutMs: 60_000 });
    expect(r.received.peer).toBe(overlayAddress(1));
    const d = delta(peerCounters(A.stats(), 'b'), a0);
    expect(d.drops.tooBig).toBeGreaterThanOrEqual(1);
    expect(A.stats().generated.icmpTooBig).toBeGreaterThanOrEqual(1);
    expect((await lab.ip(a, ['route', 'get', overlayAddress(2)])).stdout).toMatch(/mtu 1364/);
    expect(d.txBytes).toBeGreaterThanOrEqual(20 << 20);
    expect(B.stats().totals.drops.malformed).toBe(0);
  });
});
