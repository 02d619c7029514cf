// 100 create/close cycles of a forwarder in a namespace leak no fds, threads, devices or memory.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import { forwarderFds, ownThreads } from '../helpers/own-threads';
import { describeNetns, sleep } from '../helpers/env';
import { forwarderConfig, loadOverlay } from '../helpers/overlay';
import type { OverlayClass } from '../helpers/overlay';

const CYCLES = 100;

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Lets the event loop turn (Node-API finalizers of collected objects run from it) and collects
 * garbage when the process runs with --expose-gc (vitest.config.ts gives the netns project that),
 * so that memory still waiting for the GC is not mistaken for a leak.
 */
async function settleMemory(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    global.gc?.();
    await tick();
  }
  return process.memoryUsage().rss;
}

describeNetns('forwarder lifecycle', {}, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let Overlay: OverlayClass;

  beforeAll(async () => {
    lab = await Lab.create();
    [a, b] = await lab.pair('a', 'b');
    Overlay = await loadOverlay();
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it(`${CYCLES} create/close cycles leave fds, threads, devices and RSS as they were`, async () => {
    const config = forwarderConfig(lab, { host: a, address: `${overlayAddress(1)}/24`, peers: [{ name: 'b', endpoint: b.underlay }], workers: 2 });
    // Warm up: the addon, libuv's thread pool and V8's compilers start their threads once.
    for (let i = 0; i < 3; i++) {
      const ov = await Overlay.create(config);
      await ov.close();
    }
    await sleep(200);
    // Counted by what a forwarder holds (helpers/own-threads.ts), not every thread and fd of the
    // vitest worker, whose runtime starts and ends its own on its own schedule.
    const fds = forwarderFds();
    expect(ownThreads()).toEqual([]);
    const links = (await lab.links(a)).sort();
    const rss = await settleMemory();

    for (let i = 0; i < CYCLES; i++) {
      const ov = await Overlay.create(config);
      if (i === 0) {
        expect(await lab.links(a)).toContain('ovl0');
        expect(ownThreads().filter((t) => t.name.startsWith('ovl-worker')).length).toBe(2);
        expect(forwarderFds().devices).toBeGreaterThan(fds.devices);
      }
      await ov.close();
      await ov.close(); // idempotent
      // As in a real program the event loop turns between cycles. A closed forwarder's counters
      // block (read by stats() after close) is native memory freed by a finalizer once the GC has
      // collected the overlay, so collect each time: what remains after that is a leak.
      await settleMemory();
    }

    // Threads are joined and fds closed by close(); allow a moment for anything asynchronous
    // (a condition waited on, not a fixed sleep).
    const settled = () => JSON.stringify({ fds: forwarderFds(), threads: ownThreads() }) === JSON.stringify({ fds, threads: [] });
    for (let i = 0; i < 100 && !settled(); i++) await sleep(100);
    expect({ fds: forwarderFds(), threads: ownThreads() }).toEqual({ fds, threads: [] });
    expect((await lab.links(a)).sort()).toEqual(links);
    expect(links).not.toContain('ovl0');
    const growth = (await settleMemory()) - rss;
    console.log(`${CYCLES} cycles: RSS ${(rss / 1e6).toFixed(1)} MB -> ${((rss + growth) / 1e6).toFixed(1)} MB (gc ${global.gc ? 'forced' : 'not exposed'})`);
    if (global.gc) expect(growth, `RSS grew by ${(growth / 1e6).toFixed(1)} MB`).toBeLessThan(30 * 1024 * 1024);
  });

  it('a forwarder still works after the cycles', async () => {
    const config = forwarderConfig(lab, { host: a, address: `${overlayAddress(1)}/24`, peers: [{ name: 'b', endpoint: b.underlay }] });
    const ov = await Overlay.create(config);
    try {
      await lab.kernelVxlan(b, { vni: 42, remotes: [a.underlay], addresses: [`${overlayAddress(2)}/24`] });
      expect((await lab.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
    } finally {
      await ov.close();
    }
  });
});
