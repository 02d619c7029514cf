// A UDP stream across the overlay that runs until stopped (lab/helpers/udp-stream.py): for a test
// that changes something under traffic for as long as the change takes, and then counts every
// datagram. Losses are set against what the kernel itself dropped in the hosts on the way.
import type { Host } from './hosts';
import type { Lab } from './lab';
import { helperPath } from './system';
import { kernelDrops, kernelDropsBetween, type KernelDrops } from './kernel-drops';

export interface StreamResult {
  sent: number;
  received: number;
  lost: number;
  /** Datagrams the sender could not send (not counted as sent). */
  sendErrors: number;
  /** What the kernel dropped in the hosts while the stream ran, by place, and the sum. */
  kernel: { total: number; where: Record<string, number> };
}

export interface UdpStream {
  stop(): Promise<StreamResult>;
}

function lastJson(text: string, key: string): Record<string, number> {
  const line = text.split('\n').reverse().find((l) => l.includes(`"${key}"`));
  if (!line) throw new Error(`udp-stream printed no ${key} line:\n${text}`);
  return JSON.parse(line) as Record<string, number>;
}

/** Starts a receiver on `to` (bound to `address`) and a sender on `from`, `pps` datagrams of `size` bytes a second. */
export async function startUdpStream(
  lab: Lab,
  opts: { from: Host; to: Host; address: string; port: number; pps?: number; size?: number },
): Promise<UdpStream> {
  const hosts = [opts.from, opts.to];
  const receiver = lab.spawn(opts.to, 'python3', [helperPath('udp-stream.py'), 'recv', opts.address, String(opts.port)]);
  await receiver.waitForOutput(/"listening"/, 10_000);
  const before: KernelDrops = await kernelDrops(lab, hosts);
  const sender = lab.spawn(opts.from, 'python3', [helperPath('udp-stream.py'), 'send', opts.address, String(opts.port), String(opts.pps ?? 2000), String(opts.size ?? 1000)]);
  // The stream is running when this returns: a python slow to start on a busy machine would
  // otherwise leave the change under test with less traffic, or none, under it.
  await sender.waitForOutput(/"started"/, 10_000);
  return {
    async stop(): Promise<StreamResult> {
      sender.kill('SIGTERM');
      await sender.wait(10_000);
      // What is in flight arrives (the receiver's buffer holds it until it reads, and it reads on
      // after SIGTERM until nothing has come for 200 ms).
      await new Promise((r) => setTimeout(r, 300));
      receiver.kill('SIGTERM');
      await receiver.wait(10_000);
      const { sent = 0, sendErrors = 0 } = lastJson(sender.stdout, 'sent');
      const { received = 0 } = lastJson(receiver.stdout, 'received');
      return { sent, received, lost: sent - received, sendErrors, kernel: kernelDropsBetween(before, await kernelDrops(lab, hosts)) };
    },
  };
}
