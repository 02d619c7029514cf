// Packet captures of the netns tests (tshark -P, tcpdump --print): how many packets they have
// handed over so far, stopping them without losing the last ones, and what they say about
// themselves on stderr when they stop.
import type { LabProcess } from '../../lab';
import { sleep } from './env';

/**
 * Packets a capture has printed so far: tshark -P numbers its lines ("  12 0.003 ..."), tcpdump
 * --print starts each with the time ("17:30:00.123456 IP ..."). Printed means written: both
 * print a packet once they have it from the kernel.
 */
export function capturedPackets(stdout: string): number {
  return (stdout.match(/^\s*(?:\d+ |\d\d:\d\d:\d\d\.\d+ )/gm) ?? []).length;
}

/** How long a capture's count must stay put to be settled: more than dumpcap's 250 ms block timeout. */
const QUIET_MS = 600;

/**
 * Waits until a capture holds every packet that has arrived: it has printed at least `atLeast`
 * packets and then nothing more for QUIET_MS. Returns the count. The kernel hands a capture its
 * ring a block at a time, on a timer (250 ms for dumpcap, 1 s for tcpdump without
 * --immediate-mode), and on a loaded machine the capture may not yet have run to read a block
 * it was handed: a fixed sleep is not enough.
 */
export async function settleCapture(capture: LabProcess, what: string, atLeast = 1, timeoutMs = 20_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  let seen = capturedPackets(capture.stdout);
  let quietSince = Date.now();
  for (;;) {
    await sleep(100);
    const now = capturedPackets(capture.stdout);
    if (now !== seen) {
      seen = now;
      quietSince = Date.now();
    }
    if (seen >= atLeast && Date.now() - quietSince >= QUIET_MS) return seen;
    if (Date.now() > end) {
      throw new Error(`the capture of ${what} printed ${seen} packets in ${timeoutMs} ms, expected at least ${atLeast}; it printed:\n${capture.stdout.slice(-3000)}\n${capture.stderr.slice(-1000)}`);
    }
  }
}

/**
 * Stops a capture (SIGINT) once it is settled (settleCapture): a block the kernel has not handed
 * over when the capture stops is dropped without being counted.
 */
export async function stopCapture(capture: LabProcess, what: string, atLeast = 1, timeoutMs = 20_000): Promise<void> {
  try {
    await settleCapture(capture, what, atLeast, timeoutMs);
  } finally {
    await capture.stop(10_000, 'SIGINT');
  }
}

/**
 * Makes sure a capture is live before the traffic under test: tshark says "Capturing on" before
 * dumpcap has even started. Sends `prime` (a packet the capture's filter takes) until one shows
 * up, lets the capture settle and returns its count: the packets before the traffic, for the
 * caller to skip.
 */
export async function primeCapture(capture: LabProcess, what: string, prime: () => Promise<unknown>, timeoutMs = 30_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  while (capturedPackets(capture.stdout) === 0) {
    if (Date.now() > end) throw new Error(`the capture of ${what} showed none of its priming packets in ${timeoutMs} ms; it printed:\n${capture.stdout.slice(-2000)}\n${capture.stderr.slice(-1000)}`);
    await prime();
    await sleep(200);
  }
  return settleCapture(capture, what, 1, timeoutMs);
}

/**
 * Packets the capture lost (the kernel's ring or dumpcap fell behind), summed over interfaces:
 * tshark prints "N packets dropped from IFACE" when N > 0. A test that counts captured frames
 * against what was sent adds this back, so a busy machine cannot fail it, while a forwarder
 * that sent too few still does.
 */
export function captureDropped(stderr: string): number {
  let dropped = 0;
  for (const m of stderr.matchAll(/(\d+) packets? dropped/g)) dropped += Number(m[1]);
  return dropped;
}
