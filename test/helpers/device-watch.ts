// What a forwarder wrote into its device, seen by tcpdump on that device: a hostile-input test
// concludes "never delivered" from this independent witness, not from the forwarder's own
// rxPackets (which a bug could get wrong in the same way as the delivery).
import type { Host, Lab, LabProcess } from '../../lab';
import { waitFor } from './env';

export interface DeviceWatch {
  /** A position in the capture: since() returns what arrived after it. */
  mark(): number;
  /** Packets seen since `mark`, one tcpdump line each. */
  since(mark: number): string[];
  /** Waits until at least `count` packets arrived since `mark` (rejects after `timeoutMs`). */
  waitSince(mark: number, count: number, what: string, timeoutMs?: number): Promise<void>;
}

/**
 * Starts tcpdump on `device` in `host` for what enters the kernel from the device (`-Q in`:
 * what the forwarder wrote; not what the kernel sends), restricted to `filter` (a pcap
 * expression, e.g. 'icmp or icmp6'). Stopped with the lab.
 */
export async function watchDevice(lab: Lab, host: Host, device: string, filter: string): Promise<DeviceWatch> {
  const capture: LabProcess = lab.spawn(host, 'tcpdump', ['-n', '-l', '-Q', 'in', '-i', device, filter]);
  await capture.waitForOutput(/listening on/, 30_000);
  const lines = (from: number) => capture.stdout.slice(from).split('\n').filter((l) => l.trim() !== '');
  return {
    mark: () => capture.stdout.length,
    since: lines,
    waitSince: (mark, count, what, timeoutMs = 3000) => waitFor(() => lines(mark).length >= count, what, timeoutMs),
  };
}
