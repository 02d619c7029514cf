// `overlayfwd demo`: a self-contained demonstration. Two network namespaces joined by a veth pair
// (the "underlay", 198.18.0.0/24), an overlayfwd forwarder in each (in this process, VXLAN VNI 42,
// TAP device ovl0 with 198.19.0.1 and 198.19.0.2), pings across the overlay, a short iperf3 TCP
// stream (or a ping flood when iperf3 is missing) with live per-peer stats every second, and
// everything removed again on exit or Ctrl-C.
import { Overlay } from '../overlay';
import { Lab, commandExists, labUnavailableReason, overlayAddress } from '../../lab';
import type { Host, LabProcess } from '../../lab';
import type { Counters } from '../types';

export interface DemoOptions {
  /** Length of the traffic phase in seconds (default 5). */
  durationSeconds?: number;
  /** Where lines go (default: stdout; errors to stderr, prefixed "overlayfwd: " as every command's are). */
  write?: (line: string) => void;
}

const VNI = 42;

class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

function fmtCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function fmtBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

function fmtBits(bitsPerSecond: number): string {
  if (bitsPerSecond >= 1e9) return `${(bitsPerSecond / 1e9).toFixed(2)} Gbit/s`;
  if (bitsPerSecond >= 1e6) return `${(bitsPerSecond / 1e6).toFixed(1)} Mbit/s`;
  if (bitsPerSecond >= 1e3) return `${(bitsPerSecond / 1e3).toFixed(1)} kbit/s`;
  return `${bitsPerSecond.toFixed(0)} bit/s`;
}

function fmtPps(pps: number): string {
  return pps >= 1e3 ? `${(pps / 1e3).toFixed(1)} kpkt/s` : `${pps.toFixed(0)} pkt/s`;
}

function dropsOf(c: Counters): number {
  return Object.values(c.drops).reduce((s, n) => s + n, 0);
}

interface Side {
  label: string;
  peer: string;
  overlay: Overlay;
}

function peerCounters(side: Side): Counters | undefined {
  return side.overlay.stats().peers[side.peer];
}

export async function runDemo(options: DemoOptions = {}): Promise<number> {
  const out = options.write ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const error = options.write ?? ((line: string) => void process.stderr.write(`overlayfwd: ${line}\n`));
  const duration = Math.max(1, Math.round(options.durationSeconds ?? 5));

  const reason = labUnavailableReason();
  if (reason) {
    error(`demo: ${reason}.`);
    error('the demo creates network namespaces, veth pairs and TAP devices, which needs root: run `sudo overlayfwd demo`.');
    return 1;
  }

  let interrupted = false;
  let wake: (() => void) | null = null;
  const interruptedPromise = new Promise<never>((_, reject) => {
    wake = () => reject(new Interrupted());
  });
  interruptedPromise.catch(() => undefined);
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    out('\ninterrupted: cleaning up ...');
    wake?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  /** Runs a step, abandoning it on Ctrl-C (the lab's cleanup stops whatever it started). */
  const step = <T>(p: Promise<T>): Promise<T> => {
    if (interrupted) return Promise.reject(new Interrupted());
    return Promise.race([p, interruptedPromise]);
  };

  let lab: Lab | null = null;
  let ticker: NodeJS.Timeout | undefined;
  try {
    lab = await Lab.create({ prefix: 'ovd' });
    const l = lab;
    out('overlayfwd demo: two network namespaces, VXLAN (VNI 42) over a veth underlay');
    const [a, b] = await step(l.pair('a', 'b'));
    const start = async (host: Host, index: number, peer: Host): Promise<Overlay> => {
      const ov = await Overlay.create({
        name: 'ovl0',
        netns: host.ns,
        device: { type: 'tap', name: 'ovl0', addresses: [`${overlayAddress(index)}/24`] },
        encap: { type: 'vxlan', vni: VNI },
        underlay: { local: host.underlay },
        workers: 1,
        peers: [{ name: peer.label, endpoint: peer.underlay }],
        control: { socket: `${l.tmpdir()}/${host.label}.sock` },
      });
      l.onDestroy(() => ov.close());
      return ov;
    };
    const ovA = await step(start(a, 1, b));
    const ovB = await step(start(b, 2, a));
    for (const [host, ov, idx] of [[a, ovA, 1], [b, ovB, 2]] as const) {
      out(`  host ${host.label}: netns ${host.ns}, underlay ${host.underlay} on ${host.underlayDev}, overlay ${overlayAddress(idx)} on ${ov.device.name} (mtu ${ov.device.mtu}, ${ov.device.mac})`);
    }

    const ping1 = await step(l.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.2 }));
    out(`ping a -> b (${overlayAddress(2)}) across the overlay: ${ping1.received}/${ping1.transmitted} replies`);
    const ping2 = await step(l.ping(b, overlayAddress(1), { count: 3, intervalSec: 0.2 }));
    out(`ping b -> a (${overlayAddress(1)}) across the overlay: ${ping2.received}/${ping2.transmitted} replies`);

    const sides: Side[] = [
      { label: 'a', peer: 'b', overlay: ovA },
      { label: 'b', peer: 'a', overlay: ovB },
    ];
    let last = sides.map((s) => peerCounters(s));
    let lastTime = process.hrtime.bigint();
    let startTime = lastTime;
    const tick = () => {
      const now = process.hrtime.bigint();
      const dt = Number(now - lastTime) / 1e9 || 1;
      lastTime = now;
      // Seconds since traffic started, from the clock: on a busy machine a timer fires late.
      const elapsed = Math.max(1, Math.round(Number(now - startTime) / 1e9));
      const cur = sides.map((s) => peerCounters(s));
      for (const [i, side] of sides.entries()) {
        const c = cur[i];
        const p = last[i];
        if (!c || !p) continue;
        const txRate = ((c.txBytes - p.txBytes) * 8) / dt;
        const rxRate = ((c.rxBytes - p.rxBytes) * 8) / dt;
        out(
          `[${String(elapsed).padStart(3)}s] ${side.label} peer ${side.peer}: ` +
            `tx ${fmtCount(c.txPackets)} pkt ${fmtBytes(c.txBytes)} (${fmtBits(txRate)}, ${fmtPps((c.txPackets - p.txPackets) / dt)})  ` +
            `rx ${fmtCount(c.rxPackets)} pkt ${fmtBytes(c.rxBytes)} (${fmtBits(rxRate)}, ${fmtPps((c.rxPackets - p.rxPackets) / dt)})  ` +
            `drops ${fmtCount(dropsOf(c))}`,
        );
      }
      last = cur;
    };

    let trafficOk = false;
    if (commandExists('iperf3')) {
      out(`iperf3: one TCP stream a -> b for ${duration} s across the overlay`);
      const server: LabProcess = l.spawn(b, 'iperf3', ['-s', '-1', '-B', overlayAddress(2), '-p', '5201']);
      await step(l.waitForListen(b, 5201, { timeoutMs: 10_000 }));
      const client = l.spawn(a, 'iperf3', ['-c', overlayAddress(2), '-p', '5201', '-t', String(duration), '-J']);
      startTime = process.hrtime.bigint();
      ticker = setInterval(tick, 1000);
      const status = await step(client.wait((duration + 30) * 1000));
      clearInterval(ticker);
      ticker = undefined;
      try {
        const result = JSON.parse(client.stdout) as { end?: { sum_received?: { bytes?: number; bits_per_second?: number } }; error?: string };
        const recv = result.end?.sum_received;
        if (result.error) out(`iperf3: ${result.error}`);
        if (recv?.bytes) {
          out(`iperf3: ${fmtBytes(recv.bytes)} received, ${fmtBits(recv.bits_per_second ?? 0)}`);
          trafficOk = recv.bytes > 0;
        }
      } catch {
        out(`iperf3 failed (${status.signal ?? status.code}): ${(client.stderr || client.stdout).trim().slice(-500)}`);
      }
      await server.stop(1000);
    } else {
      out(`iperf3 is not installed: ping flood a -> b for ${duration} s instead`);
      startTime = process.hrtime.bigint();
      ticker = setInterval(tick, 1000);
      const flood = await step(l.ping(a, overlayAddress(2), { count: duration * 500, intervalSec: 0.002, size: 1400, timeoutSec: 1 }));
      clearInterval(ticker);
      ticker = undefined;
      out(`ping flood: ${flood.received}/${flood.transmitted} replies`);
      trafficOk = flood.received > 0;
    }

    const fa = peerCounters(sides[0]!);
    const fb = peerCounters(sides[1]!);
    out('totals:');
    for (const [side, c] of [[sides[0]!, fa], [sides[1]!, fb]] as const) {
      if (!c) continue;
      out(`  ${side.label} peer ${side.peer}: tx ${fmtCount(c.txPackets)} pkt ${fmtBytes(c.txBytes)}, rx ${fmtCount(c.rxPackets)} pkt ${fmtBytes(c.rxBytes)}, drops ${fmtCount(dropsOf(c))}`);
    }
    const crossed = ping1.received > 0 && ping2.received > 0 && trafficOk && (fa?.txPackets ?? 0) > 0 && (fb?.rxPackets ?? 0) > 0;
    out(crossed ? 'traffic crossed the overlay: OK' : 'traffic did NOT cross the overlay');
    return crossed ? 0 : 1;
  } catch (err) {
    // Interrupted before it could show traffic crossing: not a success (exit 1, as documented).
    if (err instanceof Interrupted) return 1;
    error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    if (ticker) clearInterval(ticker);
    if (lab) {
      try {
        await lab.destroy();
        out('removed the demo namespaces, devices and processes');
      } catch (err) {
        error(`demo: cleanup error: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
