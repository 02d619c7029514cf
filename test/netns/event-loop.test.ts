// The data path never touches the event loop: with an iperf3 TCP stream running through two
// in-process forwarders, this process's event loop stays (almost) idle.
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import { describeNetns, sleep } from '../helpers/env';
import { peerCounters, startForwarder } from '../helpers/overlay';

describeNetns('event loop under load', { tools: ['iperf3'] }, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let ovA: Overlay;
  let ovB: Overlay;

  beforeAll(async () => {
    lab = await Lab.create();
    [a, b] = await lab.pair('a', 'b');
    ovA = await startForwarder(lab, { host: a, address: `${overlayAddress(1)}/24`, peers: [{ name: 'b', endpoint: b.underlay }] });
    ovB = await startForwarder(lab, { host: b, address: `${overlayAddress(2)}/24`, peers: [{ name: 'a', endpoint: a.underlay }] });
    expect((await lab.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('event-loop utilization stays under 0.05 during a 5 s TCP stream', async () => {
    const server = lab.spawn(b, 'iperf3', ['-s', '-1', '-B', overlayAddress(2), '-p', '5201']);
    await lab.waitForListen(b, 5201, { timeoutMs: 15_000 });
    const before = peerCounters(ovB.stats(), 'a');
    const client = lab.spawn(a, 'iperf3', ['-c', overlayAddress(2), '-p', '5201', '-t', '6', '-J']);
    await sleep(750); // connection set-up and slow start
    const start = performance.eventLoopUtilization();
    await sleep(4500);
    const elu = performance.eventLoopUtilization(start);
    const mid = peerCounters(ovB.stats(), 'a');
    await client.succeed(30_000);
    await server.wait(10_000);
    const result = JSON.parse(client.stdout) as { end: { sum_received: { bytes: number; bits_per_second: number } } };
    const received = result.end.sum_received.bytes;
    console.log(`iperf3 through overlayfwd: ${(result.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s; event-loop utilization ${elu.utilization.toFixed(4)}`);
    expect(received).toBeGreaterThan(10 << 20);
    expect(mid.rxBytes - before.rxBytes).toBeGreaterThan(1 << 20); // traffic was flowing while we measured
    expect(peerCounters(ovA.stats(), 'b').txBytes).toBeGreaterThanOrEqual(received);
    expect(elu.utilization).toBeLessThan(0.05);
  });
});
